"""Fill the caches on a Ray cluster: ``databackend cache --engine ray [--address] [--shares N]``.

The driver scans every dataset (its probes on Ray, see :mod:`databackend.engines.ray`), so
the index exists; then ``shares`` Ray tasks (``num_gpus`` each, for GPU encoders) each run the
single-machine :func:`~databackend.caches.precompute.precompute_plan` as rank ``k`` of
``shares``, reading the persisted index (no scan) and writing through the cache's storage
backend. The entries are the ones a single process writes (content-addressed, written
atomically); a task whose worker dies is retried by Ray and finds its finished entries cached.
The command line travels through the object store (:func:`ray.put`: ``--var`` values may hold
secrets), and credentials in the config are resolved on the workers (``{env:...}``).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from databackend.caches.base import PrecomputeReport

__all__ = ["cache_share", "run_cache"]

log = logging.getLogger(__name__)


def cache_share(args: dict[str, Any], encoders: tuple[Any, Any], share: int,
                shares: int) -> list[tuple[str, str, str, dict[str, Any]]]:
    """Runs on a Ray worker: rank ``share`` of ``shares`` of the precompute; the runs made."""
    import attrs

    from databackend.build import build_metadata, build_storage
    from databackend.caches.precompute import precompute_plan
    from databackend.commands.common import load_plan

    plan, context = load_plan(argparse.Namespace(**args))
    context = attrs.evolve(context, rank=share, world_size=shares)
    metas = {}
    for dataset in plan.datasets:
        if not dataset.disabled:
            meta = build_metadata(dataset, build_storage(dataset, context), context)
            _ = meta.index  # the persisted index the driver's scan wrote
            metas[dataset.id] = meta
    runs = precompute_plan(plan, context, text_encoder=encoders[0], image_encoder=encoders[1],
                           metadata=metas, progress=False, batch_size=args["batch_size"],
                           text_batch_size=args["text_batch_size"], include_ondemand=True)
    return [(r.kind, r.name, r.location, attrs.asdict(r.report)) for r in runs]


def _merge(parts: list[list[tuple[str, str, str, dict[str, Any]]]]) -> list[Any]:
    """One run per cache with the shares' reports added up."""
    from databackend.caches.precompute import CacheRun

    merged: dict[tuple[str, str], CacheRun] = {}
    for part in parts:
        for kind, name, location, r in part:
            old = merged.get((kind, name))
            report = PrecomputeReport(**{**r, "failed": tuple(tuple(f) for f in r["failed"])})
            if old is not None:
                o = old.report
                report = PrecomputeReport(
                    total=o.total + report.total, cached=o.cached + report.cached,
                    encoded=o.encoded + report.encoded, failed=o.failed + report.failed,
                    seconds=max(o.seconds, report.seconds),
                    encode_seconds=o.encode_seconds + report.encode_seconds,
                    skipped=report.skipped)
            merged[kind, name] = CacheRun(kind=kind, name=name, location=location,
                                          report=report)
    return list(merged.values())


def run_cache(args: argparse.Namespace, encoders: tuple[Any, Any], *, shares: int,
              num_gpus: float = 0, max_retries: int = 3) -> list[Any]:
    """Scan on Ray, then fill the caches in ``shares`` Ray tasks; the merged CacheRuns."""
    import ray

    from databackend.build import build_metadata, build_storage
    from databackend.commands.common import load_plan
    from databackend.engines.ray import connect, use_ray

    connect(getattr(args, "address", None))
    plan, context = load_plan(args)
    for dataset in plan.datasets:
        if not dataset.disabled:
            storage = build_storage(dataset, context)
            meta = build_metadata(dataset, storage, context)
            if hasattr(meta, "probe_executor"):
                use_ray(meta)
            meta.scan(progress=False)
            storage.close()
    keys = ("config", "var", "option", "batch_size", "text_batch_size")
    ref = ray.put({k: getattr(args, k) for k in keys})
    encoders_ref = ray.put(encoders)
    task = ray.remote(cache_share).options(num_gpus=num_gpus, max_retries=max_retries)
    parts = ray.get([task.remote(ref, encoders_ref, k, shares) for k in range(shares)])
    return _merge(parts)
