"""Flat scalar metrics: ``factory.scalars()`` (see docs/report.md for the full list).

Every name is ``group/.../figure`` with a float value, ready for TensorBoard's
``add_scalar``, ``wandb.log`` or any logger:

* ``data/step``, ``data/epoch``: where the trainer is (the batches it has been handed);
* ``data/<dataset>/draws``, ``data/<dataset>/share``: batches drawn and their fraction;
* ``data/<dataset>/weight``: its draw probability at the current step;
* ``data/<dataset>/epoch_share``: its share of a whole epoch under the policy;
* ``data/batches``, ``data/wait_ms``, ``data/wait_ms_steady``, ``data/wait_ms_max``,
  ``data/queue_depth``, ``data/produce_ms``: consumer wait and prefetch figures (means over
  the batches handed out so far);
* ``cache/<kind>_<name>/{hits,misses,repairs,encoded,writes}``: batch-time cache counters;
* ``scan/<dataset>/{kept,skipped}``; ``startup/<stage>_s``, ``startup/total_s``;
  ``memory/rss_mb``, ``memory/peak_rss_mb``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from databackend.metrics import rss

__all__ = ["factory_scalars", "metric_name", "runtime_scalars"]

_MB = 1024 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")


def metric_name(*parts: str) -> str:
    """``parts`` joined by ``/``, each with characters outside ``[A-Za-z0-9_.-]`` as ``_``."""
    return "/".join(_UNSAFE.sub("_", p) for p in parts)


def runtime_scalars(state: Mapping[str, Any], ids: list[str], weights: list[float],
                    epoch_shares: list[float]) -> dict[str, float]:
    """``data/*`` figures from a runtime state dict and per-dataset weights (in ``ids`` order)."""
    draws = {i: int(state.get("draws", {}).get(i, 0)) for i in ids}
    total = sum(draws.values())
    out = {"data/step": float(state.get("step", 0)), "data/epoch": float(state.get("epoch", 1))}
    for did, w, share in zip(ids, weights, epoch_shares, strict=True):
        out[metric_name("data", did, "draws")] = float(draws[did])
        out[metric_name("data", did, "share")] = draws[did] / total if total else 0.0
        out[metric_name("data", did, "weight")] = float(w)
        out[metric_name("data", did, "epoch_share")] = float(share)
    return out


def _fetch(fetch: Mapping[str, Any]) -> dict[str, float]:
    return {"data/batches": float(fetch["batches"]), "data/wait_ms": fetch["mean_wait_ms"],
            "data/wait_ms_steady": fetch["steady_mean_wait_ms"],
            "data/wait_ms_max": fetch["max_wait_ms"], "data/queue_depth": fetch["mean_queue_depth"],
            "data/produce_ms": fetch["mean_produce_ms"]}


def _caches(stats: Mapping[str, Mapping[str, int]]) -> dict[str, float]:
    out = {}
    for name, counters in stats.items():
        kind, _, cache = name.partition(":")
        for figure, value in counters.items():
            out[metric_name("cache", f"{kind}_{cache}", figure)] = float(value)
    return out


def _startup(metrics: Mapping[str, Any]) -> dict[str, float]:
    out = {metric_name("startup", f"{s['name']}_s"): float(s["seconds"])
           for s in metrics["stages"]}
    out["startup/total_s"] = float(metrics["total_seconds"])
    for did, scan in metrics["counters"].get("scan", {}).items():
        out[metric_name("scan", did, "kept")] = float(scan["kept"])
        out[metric_name("scan", did, "skipped")] = float(sum(scan["skipped"].values()))
    out["memory/rss_mb"] = round(rss() / _MB, 1)
    out["memory/peak_rss_mb"] = float(metrics["peak_rss_mb"])
    return out


def factory_scalars(factory: Any) -> dict[str, float]:
    """Every scalar of a built factory (see the module docstring for the names)."""
    from databackend.runtime.report import epoch_shares, weights_now

    runtime = factory.runtime
    metrics = factory.metrics.to_dict()
    state = factory.state_dict()  # the trainer's side: what it has been handed
    out = runtime_scalars(state, list(runtime.ids), weights_now(runtime, state),
                          epoch_shares(runtime))
    out.update(_fetch(metrics["fetch"]))
    out.update(_caches(factory.cache_stats()))
    out.update(_startup(metrics))
    return out
