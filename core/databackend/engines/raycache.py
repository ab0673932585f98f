"""Fill the caches on a Ray cluster: ``databackend cache --engine ray [--address] ...``.

1. The driver scans every dataset, its probe chunks as Ray tasks
   (:mod:`databackend.engines.ray`), so every index is persisted.
2. The image latents run as one Ray Data pipeline (:mod:`databackend.engines.raydata`):
   decode on CPU actors, the image encoder on ``--encoders`` actors with ``--num-gpus`` each,
   writes through the cache's storage backend.
3. What the pipeline does not cover (text embeddings, video/audio latents, pixel-aligned
   conditioning, conditioning image embeds) runs as ``--shares`` Ray tasks, each the
   single-machine :func:`~databackend.caches.precompute.precompute_plan` as rank ``k`` of
   ``shares`` over the persisted indexes.

Entries are the ones a single process writes (the same batches, the cache's own writer;
content-addressed, written atomically). A batch or task whose worker dies is retried by Ray and
counted (``retries`` in the reports). The command line travels through the object store
(:func:`ray.put`: ``--var`` values may hold secrets), never in task arguments, and credentials
in the config are resolved on the workers (``{env:...}``).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from databackend.caches.base import PrecomputeReport

__all__ = ["cache_share", "run_cache"]

log = logging.getLogger(__name__)
#: The command-line values the workers rebuild the plan from.
SETTINGS = ("config", "var", "option", "batch_size", "text_batch_size")


def cache_share(args: dict[str, Any], encoders: tuple[Any, Any], share: int,
                shares: int, counter: Any) -> list[tuple[str, str, str, dict[str, Any]]]:
    """Runs on a Ray worker: rank ``share`` of ``shares`` of the precompute (without the
    latents in ``args["elsewhere"]``, which the pipeline fills); the runs made, each with
    this task's re-runs as ``retries`` (registered with ``counter``)."""
    import attrs

    from databackend.build import build_metadata, build_storage
    from databackend.caches.precompute import precompute_plan
    from databackend.commands.common import load_plan
    from databackend.engines.rayretry import started

    attempt = started(counter, f"share:{share}")

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
                           text_batch_size=args["text_batch_size"], include_ondemand=True,
                           latents_elsewhere=args.get("elsewhere", ()))
    return [(r.kind, r.name, r.location, {**attrs.asdict(r.report), "retries": attempt - 1})
            for r in runs]


def _add(o: PrecomputeReport, r: PrecomputeReport) -> PrecomputeReport:
    """Two shares' reports of one cache added up."""
    return PrecomputeReport(total=o.total + r.total, cached=o.cached + r.cached,
                            encoded=o.encoded + r.encoded, failed=o.failed + r.failed,
                            seconds=max(o.seconds, r.seconds),
                            encode_seconds=o.encode_seconds + r.encode_seconds,
                            skipped=r.skipped, wait_seconds=o.wait_seconds + r.wait_seconds,
                            oom_retries=o.oom_retries + r.oom_retries,
                            retries=o.retries + r.retries)


def _merge(parts: list[list[tuple[str, str, str, dict[str, Any]]]]) -> list[Any]:
    """One run per cache with the shares' reports added up."""
    from databackend.caches.precompute import CacheRun

    merged: dict[tuple[str, str], CacheRun] = {}
    for part in parts:
        for kind, name, location, r in part:
            old = merged.get((kind, name))
            report = PrecomputeReport(**{**r, "failed": tuple(tuple(f) for f in r["failed"])})
            if old is not None:
                report = _add(old.report, report)
            merged[kind, name] = CacheRun(kind=kind, name=name, location=location,
                                          report=report)
    return list(merged.values())


def _scan_all(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any], int]:
    """Scan every enabled dataset with its probes on Ray; ``(plan, context, metas, retries)``."""
    from databackend.build import build_metadata, build_storage
    from databackend.commands.common import load_plan
    from databackend.engines.ray import use_ray

    plan, context = load_plan(args)
    metas, retried = {}, 0
    for dataset in plan.datasets:
        if not dataset.disabled:
            meta = build_metadata(dataset, build_storage(dataset, context), context)
            pool = use_ray(meta) if hasattr(meta, "probe_executor") else None
            meta.scan(progress=False)
            retried += pool.retries() if pool is not None else 0
            metas[dataset.id] = meta
    return plan, context, metas, retried


def run_cache(args: argparse.Namespace, encoders: tuple[Any, Any], *, shares: int,
              num_gpus: float = 0, max_retries: int = 3, options: Any = None) -> list[Any]:
    """Scan on Ray, fill the latents in the Ray Data pipeline and the other caches in
    ``shares`` Ray tasks; every CacheRun (the pipeline's first). ``options``: a
    :class:`~databackend.engines.raydata.RayFillOptions` (default: ``num_gpus`` per encoder)."""
    import ray

    from databackend.engines.ray import connect
    from databackend.engines.raydata import RayFillOptions, fill_on_ray, plan_jobs
    from databackend.engines.rayretry import new_counter

    connect(getattr(args, "address", None))
    plan, context, metas, scan_retries = _scan_all(args)
    settings = {k: getattr(args, k) for k in SETTINGS}
    jobs = plan_jobs(plan, context, metas, encoders[1], args.batch_size)
    ref = ray.put({**settings, "identity": encoders[1].identity})
    options = options or RayFillOptions(num_gpus=num_gpus)
    runs = fill_on_ray(jobs, ref, ray.put(encoders[1]), options=options,
                       progress=False if getattr(args, "no_progress", False) else None)
    shares_ref = ray.put({**settings, "elsewhere": [job.dataset for job in jobs]})
    task = ray.remote(cache_share).options(num_gpus=num_gpus, max_retries=max_retries)
    encoders_ref, counter = ray.put(encoders), new_counter()
    parts = ray.get([task.remote(shares_ref, encoders_ref, k, shares, counter)
                     for k in range(shares)])
    if scan_retries:
        log.info("scan on ray: %d probe chunks retried", scan_retries)
    return runs + _merge(parts)
