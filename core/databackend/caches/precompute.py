"""Fill every cache of a plan: each dataset's latents, then each text cache's captions.

This is what ``databackend cache CONFIG`` runs, and what a trainer calls before training
(datasets whose caches are on demand are left to batch time by :func:`precompute_plan` unless
``include_ondemand`` is set).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from databackend.build import build_storage
from databackend.caches.base import CacheRun, PrecomputeReport
from databackend.caches.stores import open_latent_cache, open_text_cache_entry
from databackend.media.select import is_media
from databackend.runtime.distributed import barrier

if TYPE_CHECKING:
    from databackend.caches.encoders import ImageEncoder, TextEncoder
    from databackend.config.models import ImageBackendConfig
    from databackend.config.plan import DataPlan
    from databackend.context import BuildContext
    from databackend.metadata.backend import MetadataBackend

__all__ = ["CacheRun", "dataset_captions", "open_metadata", "precompute_plan"]

log = logging.getLogger(__name__)



def dataset_captions(index: Any) -> set[str]:
    """Every caption of an index's samples (all captions of multi-caption samples)."""
    out: set[str] = set()
    for captions in index.captions:
        out.update(captions)
    return out


def open_metadata(dataset: ImageBackendConfig, context: BuildContext, *,
                  progress: bool | None = None) -> MetadataBackend:
    """Build a dataset's storage and metadata backend and scan it (``progress``: None shows a
    bar when stderr is a terminal)."""
    from databackend.build import build_metadata, build_storage

    meta = build_metadata(dataset, build_storage(dataset, context), context)
    meta.scan(progress=progress is not False, rank=context.rank, world_size=context.world_size)
    return meta


def _latents(plan: DataPlan, dataset: ImageBackendConfig, meta: MetadataBackend,
             context: BuildContext, encoder: ImageEncoder, options: Mapping[str, Any]) -> CacheRun:
    from databackend.conditioning.build import is_aligned_conditioning  # (import cycle)

    cache = open_latent_cache(plan, dataset, meta, context, encoder,
                              batch_size=options["batch_size"])
    if is_aligned_conditioning(dataset):  # cached in its source's geometry, per link
        report = PrecomputeReport(skipped="pixel-aligned conditioning (see its source's runs)")
    elif not cache.precompute_at_startup and not options["include_ondemand"]:
        report = PrecomputeReport(skipped="vae_cache_disable" if cache.disable
                                  else "vae_cache_ondemand")
    else:
        report = cache.precompute(rank=context.rank, world_size=context.world_size,
                                  progress=options["progress"])
    return CacheRun(kind="latents", name=dataset.id, location=cache.describe(), report=report)


def _media_runs(plan: DataPlan, datasets: list[ImageBackendConfig],
                metas: Mapping[str, MetadataBackend], context: BuildContext,
                options: Mapping[str, Any]) -> list[CacheRun]:
    """Media datasets' latent caches (clips, and i2v first frames): databackend.media."""
    from databackend.media.wiring import precompute_media

    return [CacheRun(kind="latents", name=name, location=where, report=report)
            for d in datasets
            for name, where, report in precompute_media(plan, d, metas[d.id], context, options)]


def _texts(plan: DataPlan, datasets: Iterable[ImageBackendConfig],
           metas: Mapping[str, MetadataBackend], context: BuildContext, encoder: TextEncoder,
           options: Mapping[str, Any]) -> list[CacheRun]:
    from databackend.conditioning.captions import captions_to_cache, has_own_captions

    groups: dict[str | None, set[str]] = {}
    entries = {}
    for dataset in datasets:
        if dataset.dataset_type == "conditioning" and not has_own_captions(dataset):
            continue  # no captions of its own reach a batch (conditioning/captions.py)
        entry = plan.text_embeds_for(dataset)
        entries[entry.id if entry else None] = entry
        groups.setdefault(entry.id if entry else None, {""}).update(
            captions_to_cache(dataset, metas[dataset.id].index))
    runs = []
    for key, captions in groups.items():
        cache = open_text_cache_entry(entries[key], context, encoder)
        if not cache.precompute_at_startup and not options["include_ondemand"]:
            report = PrecomputeReport(skipped="text_cache_disable" if cache.disable
                                      else "text_cache_ondemand")
        else:
            report = cache.precompute(captions, rank=context.rank,
                                      world_size=context.world_size,
                                      batch_size=options["text_batch_size"],
                                      progress=options["progress"])
        runs.append(CacheRun(kind="text", name=cache.name, location=cache.describe(),
                             report=report))
    return runs


def precompute_plan(plan: DataPlan, context: BuildContext, *, text_encoder: TextEncoder,
                    image_encoder: ImageEncoder,
                    metadata: Mapping[str, MetadataBackend] | None = None,
                    progress: bool | None = None, batch_size: int = 8,
                    text_batch_size: int = 32, include_ondemand: bool = False,
                    media_encoders: Mapping[str, Any] | None = None,
                    conditioning_image_encoder: Any = None,
                    latents_elsewhere: Iterable[str] = ()) -> list[CacheRun]:
    """Fill the latent cache of every enabled dataset and every text cache they use.

    ``metadata`` maps dataset ids to scanned metadata backends; missing ones are built and
    scanned. The empty caption (caption dropout) is always cached. Work is split by
    ``context.rank`` / ``context.world_size``. Returns one :class:`CacheRun` per cache.
    Media datasets (video) use ``media_encoders[kind]`` (docs/video.md).
    ``conditioning_image_encoder`` fills the ``conditioning_image_embeds`` caches.
    ``latents_elsewhere``: ids of datasets whose latents another engine fills (no run here).
    """
    datasets = [d for d in plan.datasets if not d.disabled]
    metas = dict(metadata or {})
    from databackend.conditioning.build import ConditioningBuild, conditioning_runs

    generation = ConditioningBuild(plan, context)
    for dataset in datasets:
        if dataset.id not in metas:
            if dataset.auto_generated:  # generated conditioning: its outputs before its scan
                generation.generate(dataset, build_storage(dataset, context), metas,
                                    progress=progress)
                barrier(context.world_size)
            metas[dataset.id] = open_metadata(dataset, context, progress=progress)
    options = {"progress": progress, "batch_size": batch_size,
               "text_batch_size": text_batch_size, "include_ondemand": include_ondemand,
               "media_encoders": media_encoders}
    elsewhere = set(latents_elsewhere)
    runs = [_latents(plan, d, metas[d.id], context, image_encoder, options) for d in datasets
            if not is_media(d) and d.id not in elsewhere]
    runs += _media_runs(plan, [d for d in datasets if is_media(d)], metas, context, options)
    runs += conditioning_runs(plan, context, metas, image_encoder, options)
    runs += _texts(plan, datasets, metas, context, text_encoder, options)
    from databackend.conditioning.image_embed_setup import image_embed_runs

    runs += image_embed_runs(plan, context, metas, conditioning_image_encoder, progress)
    for run in runs:
        log.info("%s cache %s: %s", run.kind, run.name, run.report.to_dict())
    return runs
