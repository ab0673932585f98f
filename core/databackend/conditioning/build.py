"""The factory's conditioning glue: generation, pairing, conditioning caches, sources.

:class:`ConditioningBuild` is created once per factory from its :class:`DataPlan`. The factory
calls :meth:`~ConditioningBuild.generate` before scanning a generated dataset,
:meth:`~ConditioningBuild.pair` after every scan, and :meth:`~ConditioningBuild.wrap` for each
sampled (or eval) dataset; :func:`conditioning_runs` fills the conditioning caches during
:func:`~databackend.caches.precompute_plan`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from databackend.caches.base import PrecomputeReport
from databackend.caches.stores import open_latent_cache
from databackend.conditioning import config as cc
from databackend.conditioning.aligned import AlignedSource, PixelEncoder
from databackend.conditioning.captions import CaptionReader, fixed_captions, has_own_captions
from databackend.conditioning.generate import GeneratedOutputs, GenerationReport
from databackend.conditioning.generator import generator_classes
from databackend.conditioning.image_embed_setup import (
    EmbeddedSource,
    open_image_embed_cache,
    uses_image_embeds,
)
from databackend.conditioning.image_embeds import ImageEmbedCache
from databackend.conditioning.pairing import Pairing, load_or_pair, unpair
from databackend.errors import ConfigError
from databackend.metadata.params import index_folder
from databackend.runtime.distributed import gather_union
from databackend.storage.localdir import LocalDirectory

if TYPE_CHECKING:
    from databackend.caches.base import CacheRun
    from databackend.caches.latents import LatentCache
    from databackend.config.models import ImageBackendConfig
    from databackend.config.plan import DataPlan
    from databackend.context import BuildContext
    from databackend.storage.base import StorageBackend

__all__ = ["ConditioningBuild", "conditioning_runs", "is_aligned_conditioning"]

log = logging.getLogger(__name__)
Pair = tuple[str, str]


def is_aligned_conditioning(dataset: ImageBackendConfig) -> bool:
    """A conditioning dataset cached in its source's geometry (not in its own)."""
    return dataset.dataset_type == "conditioning" and cc.effective_type(dataset) in cc.ALIGNED_TYPES


class ConditioningBuild:
    """Conditioning state of one factory (see the module doc)."""

    def __init__(self, plan: DataPlan, context: BuildContext) -> None:
        """Resolve the links of the plan's enabled datasets."""
        self.plan, self.context = plan, context
        self.datasets = {d.id: d for d in plan.datasets if not d.disabled}
        self.links = cc.links(list(self.datasets.values()))
        self.generation: dict[str, GenerationReport] = {}
        self.pairings: dict[Pair, Pairing] = {}
        #: the caches the runtime reads, per link
        self.caches: dict[Pair, LatentCache] = {}
        #: the trainer's conditioning image encoder and the caches it fills, per dataset
        self.image_encoder: Any = None
        self.image_embed_caches: dict[str, ImageEmbedCache] = {}
        self._outputs: dict[str, GeneratedOutputs] = {}
        self._cond_paths: dict[str, Any] = {}

    def outputs(self, cond_id: str, metadata: Mapping[str, Any]) -> GeneratedOutputs:
        """The generator outputs of a generated dataset (its source must be scanned)."""
        if cond_id not in self._outputs:
            d = self.datasets[cond_id]
            assert d.source_dataset_id is not None
            classes = generator_classes(self.context.registry.pm)
            self._outputs[cond_id] = GeneratedOutputs(d, metadata[d.source_dataset_id], classes,
                                                      self.context.options.seed)
        return self._outputs[cond_id]

    def generate(self, dataset: ImageBackendConfig, storage: StorageBackend,
                 metadata: Mapping[str, Any], *, progress: bool | None = None
                 ) -> GenerationReport:
        """Write this rank's share of a generated dataset's missing outputs (every rank must
        call the barrier after it)."""
        run = self.outputs(dataset.id, metadata).run(
            storage, rank=self.context.rank, world_size=self.context.world_size,
            workers=4, progress=progress)
        self.generation[dataset.id] = run
        log.info("dataset %r: %d outputs present, %d generated, %d failed", dataset.id,
                 run.existing, run.generated, len(run.failed))
        return run

    def pair(self, metadata: Mapping[str, Any]) -> dict[Pair, Pairing]:
        """Pair every link (stored pairings are reused when both listings are unchanged)."""
        self.pairings = pairings(self.plan, self.context, metadata, self, save=True)
        self._cond_paths = {c: metadata[c].index.paths for conds in self.links.values()
                            for c in conds}
        for (src, cond), p in self.pairings.items():
            if p.unpaired:
                log.warning("dataset %r: %d sample(s) have no pair in %r and are left out "
                            "(%s)", src, sum(p.unpaired.values()), cond,
                            ", ".join(f"{k}: {v}" for k, v in p.unpaired.items()))
        return self.pairings

    def drop_unloadable(self, runs: Sequence[CacheRun], world_size: int) -> None:
        """Unpair the source samples whose conditioning image failed to load at precompute
        (reason ``conditioning_unloadable``; the union over ranks, so all ranks agree)."""
        for (src, c), pairing in list(self.pairings.items()):
            names = {("conditioning", f"{c}@{src}"), ("latents", c),
                     ("conditioning_image_embeds", c)}
            mine = [path for r in runs if (r.kind, r.name) in names for path, _ in r.report.failed]
            failed = set(gather_union(mine, world_size))
            if failed:
                self.pairings[(src, c)] = unpair(pairing, failed, self._cond_paths[c])

    def paired_rows(self, source_id: str) -> np.ndarray | None:
        """Boolean mask of the source rows that can be trained (paired in every link for
        ``combined``, in at least one for ``random``); None without links."""
        conds = self.links.get(source_id)
        if not conds:
            return None
        masks = np.stack([self.pairings[(source_id, c)].rows >= 0 for c in conds])
        combined = self.context.options.conditioning_multidataset_sampling == "combined"
        return np.asarray(masks.all(axis=0) if combined or len(conds) == 1
                          else masks.any(axis=0))

    def paired_buckets(self, source_id: str, buckets: Mapping[Any, np.ndarray]
                       ) -> dict[Any, np.ndarray] | None:
        """``buckets`` without the unpaired samples (None when the dataset has no links)."""
        keep = self.paired_rows(source_id)
        if keep is None:
            return None
        kept = {b: rows[keep[rows]] for b, rows in buckets.items()}
        return {b: rows for b, rows in kept.items() if len(rows)}

    def cache(self, source_id: str, cond_id: str, metadata: Mapping[str, Any],
              encoder: Any, identity: str | None) -> LatentCache:
        """The cache a link reads (see :func:`open_link_cache`), opened once."""
        if (source_id, cond_id) in self.caches:
            return self.caches[(source_id, cond_id)]
        cache = open_link_cache(self.plan, self.context, self.datasets[cond_id],
                                metadata[source_id], metadata[cond_id],
                                self.pairings[(source_id, cond_id)], encoder, identity)
        self.caches[(source_id, cond_id)] = cache
        return cache

    def wrap(self, source_id: str, inner: Any, metadata: Mapping[str, Any], encoder: Any,
             identity: str | None, texts: Callable[[Any], Any] | None = None) -> Any:
        """``inner`` with its conditioning (``inner`` itself when it has none); ``texts``
        gives a dataset's text cache (for conditioning datasets with their own captions)."""
        if uses_image_embeds(self.datasets[source_id]):
            inner = EmbeddedSource(inner, self.embed_cache(source_id, metadata))
        conds = self.links.get(source_id)
        if not conds:
            return inner
        from databackend.conditioning.source import ConditionedSource, Link  # (torch: lazily)

        links = []
        for c in conds:
            d = self.datasets[c]
            links.append(Link(dataset_id=c, conditioning_type=cc.effective_type(d),
                              output=cc.output_of(d), rows=self.pairings[(source_id, c)].rows,
                              cache=self.cache(source_id, c, metadata, encoder, identity),
                              paths=metadata[c].index.paths, aligned=is_aligned_conditioning(d),
                              captions=self._captions(d, metadata, texts),
                              image_embeds=self.embed_cache(c, metadata)
                              if uses_image_embeds(d) else None))
        mode = self.context.options.conditioning_multidataset_sampling
        return ConditionedSource(inner, links, mode=mode, seed=self.context.options.seed)

    def embed_cache(self, dataset_id: str, metadata: Mapping[str, Any]) -> ImageEmbedCache:
        """A dataset's conditioning image embed cache, opened once (a config error without a
        conditioning image encoder)."""
        if dataset_id not in self.image_embed_caches:
            if self.image_encoder is None:
                raise ConfigError([f"dataset {dataset_id!r} sets `conditioning_image_embeds`, "
                                   "but no conditioning image encoder was given "
                                   "(DataBackendFactory(conditioning_image_encoder=...))"],
                                  source=self.plan.source)
            self.image_embed_caches[dataset_id] = open_image_embed_cache(
                self.plan, self.datasets[dataset_id], metadata[dataset_id], self.context,
                self.image_encoder)
        return self.image_embed_caches[dataset_id]

    def _captions(self, d: ImageBackendConfig, metadata: Mapping[str, Any],
                  texts: Callable[[Any], Any] | None) -> CaptionReader | None:
        if texts is None or not has_own_captions(d):
            return None
        return CaptionReader(d.id, metadata[d.id].index, texts(d), seed=self.context.options.seed,
                             fixed=fixed_captions(d))

    def summary(self) -> dict[str, Any]:
        """Pairing counts and generation figures (JSON-ready)."""
        return {"pairing": [p.to_dict() for p in self.pairings.values()],
                "generated": {k: r.to_dict() for k, r in self.generation.items()}}


def open_link_cache(plan: DataPlan, context: BuildContext, cond: ImageBackendConfig,
                    source_meta: Any, cond_meta: Any, pairing: Pairing, encoder: Any,
                    identity: str | None) -> LatentCache:
    """A link's cache: over the source's rows for pixel-aligned types (pixels through
    :class:`PixelEncoder`), the conditioning dataset's own latent cache otherwise."""
    if not is_aligned_conditioning(cond):
        return open_latent_cache(plan, cond, cond_meta, context, encoder, identity=identity)
    nearest = cc.effective_type(cond) in ("mask", "segmentation")
    aligned = AlignedSource(source_meta, cond_meta, pairing, nearest=nearest)
    if cc.output_of(cond) == "pixels":
        encoder, identity = PixelEncoder(), None
    cache = open_latent_cache(plan, cond, aligned, context, encoder, identity=identity)
    cache.name = f"{cond.id}@{pairing.source_id}"
    return cache


def pairings(plan: DataPlan, context: BuildContext, metadata: Mapping[str, Any],
             build: ConditioningBuild | None = None, *, save: bool = False
             ) -> dict[Pair, Pairing]:
    """Every link's pairing from scanned metadata (stored pairings reused when unchanged)."""
    build = build or ConditioningBuild(plan, context)
    out: dict[Pair, Pairing] = {}
    for src, conds in build.links.items():
        store = LocalDirectory(root=index_folder(build.datasets[src], context.options),
                               dataset_id=src)
        for c in conds:
            d, expected, salt = build.datasets[c], None, ""
            if d.auto_generated:
                gen = build.outputs(c, metadata)
                expected, salt = gen.path, f"{gen.identity}:{gen.seed}"
            out[(src, c)] = load_or_pair(src, c, metadata[src].index, metadata[c].index,
                                         storage=store, salt=salt, expected=expected,
                                         save=save and context.rank == 0)
    return out


def conditioning_runs(plan: DataPlan, context: BuildContext, metadata: Mapping[str, Any],
                      encoder: Any, options: Mapping[str, Any],
                      found: Mapping[Pair, Pairing] | None = None) -> list[CacheRun]:
    """Fill the pixel-aligned conditioning caches (one run per link)."""
    from databackend.caches.base import CacheRun

    build = ConditioningBuild(plan, context)
    found = found if found is not None else pairings(plan, context, metadata, build)
    runs = []
    for (src, c), pairing in found.items():
        cond = build.datasets[c]
        if not is_aligned_conditioning(cond):
            continue
        cache = open_link_cache(plan, context, cond, metadata[src], metadata[c], pairing,
                                encoder, None)
        if not cache.precompute_at_startup and not options["include_ondemand"]:
            report = PrecomputeReport(skipped="vae_cache_disable" if cache.disable
                                      else "vae_cache_ondemand")
        else:
            report = cache.precompute(rank=context.rank, world_size=context.world_size,
                                      progress=options["progress"])
        runs.append(CacheRun(kind="conditioning", name=cache.name, location=cache.describe(),
                             report=report))
    return runs
