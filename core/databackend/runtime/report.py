"""Per-dataset runtime figures: draws against target weights, epoch sizes, short buckets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from databackend.runtime.loop import DataRuntime

__all__ = ["epoch_shares", "runtime_summary", "weights_now"]


def _is_mixture(runtime: DataRuntime) -> bool:
    return getattr(runtime, "policy", "exhaust") == "mixture"


def weights_now(runtime: DataRuntime, state: Mapping[str, Any] | None = None) -> list[float]:
    """Each dataset's draw probability at the current step (0 when used up for the epoch
    under ``exhaust``, or outside its schedule window): at the runtime's own step, or at the
    step of ``state`` (a runtime state dict, e.g. the trainer's side of the prefetcher)."""
    if state is None:
        epoch, step = runtime.epoch, runtime.step
        done = [s.exhausted for s in runtime.samplers]
    else:
        epoch, step = int(state["epoch"]), int(state["step"])
        saved = state.get("datasets", {})
        done = [s.dataset_id in saved and int(saved[s.dataset_id]["epoch"]) == epoch
                and int(saved[s.dataset_id]["position"]) >= s.num_batches
                for s in runtime.samplers]
    if _is_mixture(runtime):
        done = [s.num_batches == 0 for s in runtime.samplers]
    return [float(x) for x in runtime.selector.probabilities(epoch, step, done)]


def epoch_shares(runtime: DataRuntime) -> list[float]:
    """The share of a whole epoch each dataset gets: ``mixture``, its normalised weight;
    ``exhaust``, its batches per epoch over those of every dataset with a positive weight."""
    start = runtime.selector.probabilities(runtime.epoch, 0, [False] * len(runtime.ids))
    if _is_mixture(runtime):
        return [float(x) for x in start]
    counts = [s.num_batches if p > 0 else 0 for s, p in zip(runtime.samplers, start, strict=True)]
    total = sum(counts)
    return [c / total if total else 0.0 for c in counts]


def runtime_summary(runtime: DataRuntime) -> list[dict[str, Any]]:
    """One row per dataset.

    ``target`` is the draw probability at the first step with nothing exhausted (the
    configured weight); ``expected`` is the probability averaged over the steps actually run
    (it moves as datasets are exhausted, leave their schedule window or decay); ``share`` is the
    observed fraction of draws; ``epoch_share`` and ``weight_now`` are :func:`epoch_shares` and
    :func:`weights_now`.
    """
    target = runtime.selector.probabilities(1, 0, [False] * len(runtime.ids))
    shares, now = epoch_shares(runtime), weights_now(runtime)
    steps = sum(runtime.draws.values())
    rows = []
    for i, sampler in enumerate(runtime.samplers):
        did = sampler.dataset_id
        rows.append({
            "id": did, "samples": sampler.num_samples, "buckets": len(sampler.bucket_keys),
            "batch_size": sampler.batch_size, "repeats": sampler.repeats,
            "batches_per_epoch": sampler.num_batches, "draws": runtime.draws[did],
            "share": runtime.draws[did] / steps if steps else 0.0,
            "expected": runtime.expected[did] / steps if steps else 0.0,
            "target": float(target[i]), "epoch_share": shares[i], "weight_now": now[i],
            "short_buckets": [r.describe() for r in sampler.report],
        })
    return rows
