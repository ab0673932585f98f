"""Conditioning image embeddings in the factory: config rules, cache location, precompute runs
and the batch field (the cache itself: :mod:`databackend.conditioning.image_embeds`).

Location of a dataset's entries: ``cache_dir_conditioning_image_embeds`` of the dataset, else the
``conditioning_image_embeds`` entry's ``cache_dir``, else
``{cache_root}/conditioning_image_embeds/{entry id}`` (SimpleTuner's fallback order), on the
entry's storage type, under the dataset id.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from databackend.caches.base import PrecomputeReport
from databackend.conditioning.image_embeds import ImageEmbedCache
from databackend.config.models import (
    BaseBackendConfig,
    ConditioningImageEmbedBackendConfig,
    ImageBackendConfig,
)
from databackend.config.rules import suggest

if TYPE_CHECKING:
    from databackend.caches.base import CacheRun
    from databackend.config.plan import DataPlan
    from databackend.context import BuildContext
    from databackend.runtime.batch import Batch

__all__ = ["EmbeddedSource", "check", "image_embed_runs", "open_image_embed_cache", "stacked",
           "uses_image_embeds"]

_KEYS = ("cache_dir_conditioning_image_embeds", "conditioning_image_embed_batch_size")
_NO_EMBEDS = ("mask", "segmentation")


def uses_image_embeds(dataset: ImageBackendConfig) -> bool:
    """Whether a dataset has a conditioning image embed cache."""
    return bool(dataset.conditioning_image_embeds) and not dataset.disabled


def _dataset_rules(d: ImageBackendConfig, pool: Sequence[str]) -> list[str]:
    label, target = f"dataset {d.id!r}", d.conditioning_image_embeds
    if not target:
        return [f"{label}: `{k}` has no effect without `conditioning_image_embeds`"
                for k in _KEYS if getattr(d, k) is not None]
    out = []
    if target not in pool:
        out.append(f"{label}: `conditioning_image_embeds` names {target!r}, which is not a "
                   f"conditioning_image_embeds entry{suggest(target, list(pool))}")
    if d.dataset_type == "video":
        out.append(f"{label}: `conditioning_image_embeds` is not supported on video datasets "
                   "yet")
    if d.dataset_type == "conditioning" and d.conditioning_type in _NO_EMBEDS:
        out.append(f"{label}: `conditioning_image_embeds` is not for {d.conditioning_type} "
                   "conditioning datasets")
    size = d.conditioning_image_embed_batch_size
    if size is not None and size < 1:
        out.append(f"{label}: `conditioning_image_embed_batch_size` must be at least 1; got "
                   f"{size}")
    return out


def check(entries: Sequence[BaseBackendConfig]) -> list[str]:
    """Every conditioning image embed problem (unknown ids, wrong kinds, misplaced keys)."""
    pool = [e.id for e in entries if isinstance(e, ConditioningImageEmbedBackendConfig)]
    return [p for e in entries if isinstance(e, ImageBackendConfig)
            for p in _dataset_rules(e, pool)]


def open_image_embed_cache(plan: DataPlan, dataset: ImageBackendConfig, source: Any,
                           context: BuildContext, encoder: Any,
                           identity: str | None = None) -> ImageEmbedCache:
    """A dataset's conditioning image embed cache (see the module doc for where it lives)."""
    from databackend.build import build_storage
    from databackend.storage.localdir import LocalDirectory

    entry = plan.by_id[str(dataset.conditioning_image_embeds)]
    assert isinstance(entry, ConditioningImageEmbedBackendConfig)
    root = dataset.cache_dir_conditioning_image_embeds or entry.cache_dir or \
        os.path.join(context.options.cache_root, "conditioning_image_embeds", entry.id)
    storage = LocalDirectory(dataset_id=entry.id, root=root) if entry.type == "local" else \
        build_storage(entry, context, root=root)
    compress = context.options.compress_cache if entry.compress_cache is None else \
        entry.compress_cache
    return ImageEmbedCache(storage, source, encoder=encoder, identity=identity,
                           prefix=dataset.id, compress=compress,
                           write_batch_size=entry.write_batch_size,
                           batch_size=dataset.conditioning_image_embed_batch_size or 8,
                           name=f"{dataset.id}:conditioning_image_embeds")


def image_embed_runs(plan: DataPlan, context: BuildContext, metadata: Mapping[str, Any],
                     encoder: Any, progress: bool | None) -> list[CacheRun]:
    """Fill every dataset's conditioning image embed cache (one run each)."""
    from databackend.caches.base import CacheRun

    runs = []
    for d in plan.datasets:
        if not uses_image_embeds(d):
            continue
        if encoder is None:
            runs.append(CacheRun(kind="conditioning_image_embeds", name=d.id, location="",
                                 report=PrecomputeReport(skipped="no conditioning image "
                                                                 "encoder")))
            continue
        cache = open_image_embed_cache(plan, d, metadata[d.id], context, encoder)
        report = cache.precompute(rank=context.rank, world_size=context.world_size,
                                  progress=progress)
        runs.append(CacheRun(kind="conditioning_image_embeds", name=d.id,
                             location=cache.describe(), report=report))
    return runs


def stacked(cache: ImageEmbedCache, rows: Sequence[int]) -> dict[str, Any]:
    """The embeddings of ``rows`` stacked per encoder output (``{}`` for no rows)."""
    from databackend.runtime.batch import _stack_embeds  # (import cycle)

    return _stack_embeds(cache.get_many(rows)) if len(rows) else {}


class EmbeddedSource:
    """A dataset source whose batches carry ``conditioning_image_embeds`` of their samples."""

    def __init__(self, inner: Any, cache: ImageEmbedCache) -> None:
        """``inner``: a source with ``batch`` (:class:`~databackend.runtime.source.CachedSource`)."""
        self.inner, self.cache = inner, cache
        self.dataset_id: str = inner.dataset_id

    def buckets(self) -> Any:
        """The inner source's buckets."""
        return self.inner.buckets()

    def samples(self, indices: Sequence[int], *, epoch: int, step: int) -> Any:
        """The inner samples."""
        return self.inner.samples(indices, epoch=epoch, step=step)

    def batch(self, indices: list[int], *, epoch: int, step: int, bucket: Any) -> Batch:
        """The inner batch with :attr:`Batch.conditioning_image_embeds`."""
        batch = self.inner.batch(indices, epoch=epoch, step=step, bucket=bucket)
        out: Batch = attrs.evolve(batch, conditioning_image_embeds=stacked(self.cache, indices))
        return out
