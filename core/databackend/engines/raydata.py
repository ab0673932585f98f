"""The latent fill as one Ray Data pipeline: index rows -> decode -> encode -> write.

The driver (which has scanned, so every index is persisted) plans the work exactly as a
single-machine fill does: each dataset's bucketed samples, minus the entries that already
exist, grouped into encoder batches of one target size (:func:`plan_jobs`). Each batch becomes
one row ``(dataset id, batch number, index rows)``; :func:`run_pipeline` streams the rows
through the stages of :mod:`databackend.engines.raystages` (decode on CPU actors, the encoder
on actors with ``num_gpus``, writes on CPU actors) and collects one small result per batch,
showing images/s. Ray Data retries a batch whose worker died; :mod:`rayretry` counts it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from databackend.caches.base import CacheRun, PrecomputeReport, progress_bar

if TYPE_CHECKING:
    from databackend.config.plan import DataPlan
    from databackend.context import BuildContext

__all__ = ["FillJob", "RayFillOptions", "block_count", "check_fits", "fill_on_ray", "plan_jobs",
           "run_pipeline"]

log = logging.getLogger(__name__)


@attrs.frozen
class FillJob:
    """One dataset's share of the fill: ``total`` samples, ``cached`` already present, the
    encoder ``batches`` (index rows) still to do; ``location`` names the cache."""

    dataset: str
    location: str
    total: int
    cached: int
    batches: tuple[tuple[int, ...], ...]


@attrs.frozen(kw_only=True)
class RayFillOptions:
    """How the pipeline uses the cluster.

    ``num_gpus`` per encoder actor (0: on CPU, ``encoder_cpus`` each); ``encoders`` encoder
    actors; ``decoders`` decode actors of ``decoder_cpus`` each (None: as many as fit, from 1
    up to the cluster's CPUs), each with ``decode_threads`` threads; ``writers`` write actors
    of ``writer_cpus`` each.
    """

    num_gpus: float = 0
    encoders: int = 1
    encoder_cpus: float = 0.5
    decoders: int | None = None
    decoder_cpus: float = 1.0
    decode_threads: int = 2
    writers: int = 1
    writer_cpus: float = 0.25


def plan_jobs(plan: DataPlan, context: BuildContext, metas: Mapping[str, Any], encoder: Any,
              batch_size: int) -> list[FillJob]:
    """The fill of every enabled image dataset whose latents the pipeline can make (not
    video/audio, not pixel-aligned conditioning, cache not disabled), planned as a local
    ``precompute`` plans it."""
    from databackend.caches.stores import open_latent_cache
    from databackend.conditioning.build import is_aligned_conditioning
    from databackend.media.select import is_media

    jobs = []
    for dataset in plan.datasets:
        if dataset.disabled or is_media(dataset) or is_aligned_conditioning(dataset):
            continue
        cache = open_latent_cache(plan, dataset, metas[dataset.id], context, encoder,
                                  batch_size=batch_size)
        if cache.disable:
            continue
        mine, todo = cache.missing()
        batches = cache.encode_batches(todo, batch_size)
        jobs.append(FillJob(dataset=dataset.id, location=cache.describe(), total=len(mine),
                            cached=len(mine) - len(todo),
                            batches=tuple(tuple(b) for b in batches)))
    return jobs


def _rows(jobs: Iterable[FillJob]) -> list[dict[str, Any]]:
    return [{"dataset": job.dataset, "batch": n, "indices": list(batch)}
            for job in jobs for n, batch in enumerate(job.batches)]


def block_count(rows: int, cpus: int) -> int:
    """Input blocks of the pipeline: a batch each while there are at most 4 per CPU, else up
    to 16 batches a block (a retried block re-runs at most 16 batches; the driver holds
    ``rows / 16`` block references, not one per batch)."""
    return max(1, min(rows, max(4 * cpus, -(-rows // 16))))


def check_fits(options: RayFillOptions, cluster: Mapping[str, float]) -> None:
    """Raise :class:`~databackend.errors.ConfigError` when the pipeline's fixed actor pools
    (at least one decoder) cannot all be placed on a cluster with ``cluster`` resources (Ray
    Data would wait forever)."""
    cpus = ((options.decoders or 1) * options.decoder_cpus
            + options.encoders * options.encoder_cpus
            + options.writers * options.writer_cpus)
    gpus = options.encoders * options.num_gpus
    have_cpus, have_gpus = float(cluster.get("CPU", 0)), float(cluster.get("GPU", 0))
    if cpus > have_cpus or gpus > have_gpus:
        from databackend.errors import ConfigError

        raise ConfigError([
            f"the Ray fill needs {cpus:g} CPUs and {gpus:g} GPUs for its actors "
            f"({options.decoders or 1} decoders x {options.decoder_cpus:g} CPU, "
            f"{options.encoders} encoders x "
            f"{options.encoder_cpus:g} CPU + {options.num_gpus:g} GPU, {options.writers} writers "
            f"x {options.writer_cpus:g} CPU) but the cluster has {have_cpus:g} CPUs and "
            f"{have_gpus:g} GPUs; lower --decoders, --encoders or --num-gpus"])


def run_pipeline(rows: list[dict[str, Any]], settings: Any, encoder: Any, counter: Any,
                 options: RayFillOptions) -> Any:
    """The Ray Data dataset of the fill (lazy): rows -> decode -> encode -> write results.
    ``settings`` and ``encoder`` are object references; ``counter`` the retry counter."""
    import ray
    import ray.data

    from databackend.engines.raystages import DecodeStage, EncodeStage, WriteStage

    resources: Any = ray.cluster_resources  # (untyped)
    cluster = resources()
    check_fits(options, cluster)
    pool = ray.data.ActorPoolStrategy
    decoders = (pool(size=options.decoders) if options.decoders
                else pool(min_size=1, max_size=max(1, int(cluster.get("CPU", 1)
                                                          / options.decoder_cpus))))
    common: dict[str, Any] = {"batch_size": 1, "batch_format": "numpy"}
    blocks = block_count(len(rows), int(cluster.get("CPU", 1)))
    ds: Any = ray.data.from_items(rows, override_num_blocks=blocks)
    ds = ds.map_batches(DecodeStage, fn_constructor_args=([settings], counter),
                        fn_constructor_kwargs={"threads": options.decode_threads},
                        compute=decoders, num_cpus=options.decoder_cpus, **common)
    ds = ds.map_batches(EncodeStage, fn_constructor_args=([settings], counter, [encoder]),
                        compute=pool(size=options.encoders), num_cpus=options.encoder_cpus,
                        num_gpus=options.num_gpus or None, **common)
    return ds.map_batches(WriteStage, fn_constructor_args=([settings], counter),
                          compute=pool(size=options.writers), num_cpus=options.writer_cpus,
                          **common)


@attrs.define
class _Tally:
    """What came back for one dataset."""

    written: int = 0
    encode_seconds: float = 0.0
    failed: list[tuple[str, str]] = attrs.Factory(list)


def _collect(ds: Any, jobs: list[FillJob], progress: bool | None) -> dict[str, _Tally]:
    """Run the pipeline, showing images/s; the written/failed counts per dataset."""
    tallies = {job.dataset: _Tally() for job in jobs}
    todo = sum(len(b) for job in jobs for b in job.batches)
    start = time.perf_counter()
    with progress_bar(todo, "latents on ray", progress) as bar:
        for row in ds.iter_rows():
            tally, failed = tallies[str(row["dataset"])], json.loads(str(row["failed"]))
            tally.written += int(row["written"])
            tally.encode_seconds += float(row["encode_s"])
            tally.failed += [(str(p), str(e)) for p, e in failed]
            bar.update(int(row["written"]) + len(failed))
            seconds = time.perf_counter() - start
            if seconds > 0 and not bar.disable:
                bar.set_postfix(img_s=f"{bar.n / seconds:.1f}", refresh=False)
    return tallies


def fill_on_ray(jobs: list[FillJob], settings: Any, encoder: Any, *,
                options: RayFillOptions, progress: bool | None = None) -> list[CacheRun]:
    """Fill ``jobs`` through the pipeline; one latents :class:`CacheRun` per job, whose
    report counts the batch re-runs Ray made (``retries``)."""
    import ray.data

    from databackend.engines.rayretry import new_counter, retries

    ray.data.DataContext.get_current().enable_progress_bars = False  # ours shows images/s
    start, counter = time.perf_counter(), new_counter()
    rows = _rows(jobs)
    tallies = (_collect(run_pipeline(rows, settings, encoder, counter, options), jobs, progress)
               if rows else {job.dataset: _Tally() for job in jobs})
    seconds = time.perf_counter() - start
    runs = []
    for job in jobs:
        t = tallies[job.dataset]
        report = PrecomputeReport(total=job.total, cached=job.cached, encoded=t.written,
                                  failed=tuple(t.failed), seconds=seconds,
                                  encode_seconds=t.encode_seconds,
                                  retries=retries(counter, f"fill:{job.dataset}:") if rows else 0)
        log.info("latents %s on ray: %d encoded in %.1fs (%.1f images/s), %d retried",
                 job.dataset, t.written, seconds, report.per_second, report.retries)
        runs.append(CacheRun(kind="latents", name=job.dataset, location=job.location,
                             report=report))
    return runs
