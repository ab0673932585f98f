"""DataBackendFactory: the public entry point, config in, batches out.

Build order (docs/architecture.md): plugins -> config -> text-embed backends -> image-embed
backends -> datasets (storage) -> metadata (scan) -> caches (precompute unless on demand) ->
samplers. Each stage is timed with its RSS in :attr:`DataBackendFactory.metrics`. A factory holds
everything it creates (plugin manager, caches, runtime, metrics), so several factories in one
process never share state.

Example::

    factory = DataBackendFactory("multidatabackend.json", text_encoder=te, image_encoder=vae,
                                 seed=42).build()
    for batch in factory.iterator():           # prefetching BatchFetcher
        loss = train_step(batch.to("cuda"))
    checkpoint["data"] = factory.state_dict()  # resume with factory.load_state_dict(...)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pluggy

from databackend.audio.s2v import attach_s2v, is_attached
from databackend.build import build_metadata, build_storage
from databackend.caches import (
    CacheRun,
    LatentCache,
    TextEmbedCache,
    open_latent_cache,
    open_text_cache_entry,
    precompute_plan,
)
from databackend.caches.stores import local_files
from databackend.conditioning.build import ConditioningBuild, is_aligned_conditioning
from databackend.config.loader import load_config, parse_entries
from databackend.config.models import ImageBackendConfig
from databackend.config.plan import DataPlan
from databackend.context import BuildContext
from databackend.errors import ConfigError
from databackend.factoryparts import (
    build_source,
    encoder_and_identity,
    is_encoder,
    resolve_encoders,
    scan_summary,
)
from databackend.media.select import is_media
from databackend.metadata.backend import MetadataBackend
from databackend.metrics import Metrics
from databackend.monitor.summary import Summary
from databackend.options import FactoryOptions
from databackend.plugins import make_plugin_manager
from databackend.registry import PluginRegistry
from databackend.runtime.batch import Batch
from databackend.runtime.distributed import barrier, gather_union, resolve_rank
from databackend.runtime.fetcher import BatchFetcher
from databackend.runtime.loop import DataRuntime, RuntimeDataset
from databackend.runtime.mixture import make_runtime, resolve_policy
from databackend.runtime.selector import Schedule
from databackend.runtime.source import CachedSource
from databackend.runtime.strategies import SamplingStrategy
from databackend.runtime.torchdata import BatchIterableDataset
from databackend.storage.base import StorageBackend

__all__ = ["SAMPLED_TYPES", "ConfigSource", "DataBackendFactory"]

log = logging.getLogger(__name__)

#: Dataset types the runtime draws training batches from.
SAMPLED_TYPES = ("image", "video", "audio")

ConfigSource = str | os.PathLike[str] | Sequence[Mapping[str, Any]] | DataPlan
StrategySpec = str | SamplingStrategy | type[SamplingStrategy]


class DataBackendFactory:
    """Builds storage, metadata, caches and the runtime of one config, and serves batches.

    :param config: a config path, a decoded multidatabackend list, or a :class:`DataPlan`.
    :param text_encoder: the trainer's text encoder, or its ``identity`` string to read
        existing caches without computing anything.
    :param image_encoder: the trainer's VAE encoder, or its ``identity`` string.
    :param use_reference_encoders: fill in missing encoders with the CPU reference stand-ins.
    :param variables: ``{name}`` values for config strings.
    :param options: factory options (object or mapping); ``seed`` overrides ``options.seed``.
    :param rank: this process's rank; with ``world_size``, default from torch.distributed.
    :param plugin_manager: use these plugins instead of a fresh default manager.
    :param sampling_strategy: a strategy name (built-in or from a plugin), class or instance;
        default ``options.sampling``.
    :param queue_size: prefetch queue length of :meth:`iterator` (0: no thread).
    :param precompute: fill caches at build time (caches marked on demand are never filled).
    :param max_epochs: stop iterating after this many epochs (None: endless).
    :param media_encoders: encoders of media datasets by kind (``{"video": video_vae}``), or
        their identity strings; see docs/video.md.
    """

    def __init__(self, config: ConfigSource, *, text_encoder: Any = None,
                 image_encoder: Any = None, use_reference_encoders: bool = False,
                 variables: Mapping[str, str] | None = None,
                 options: FactoryOptions | Mapping[str, Any] | None = None,
                 seed: int | None = None, rank: int | None = None, world_size: int | None = None,
                 plugin_manager: pluggy.PluginManager | None = None,
                 sampling_strategy: StrategySpec | None = None, queue_size: int = 10,
                 progress: bool | None = False, precompute: bool = True,
                 max_epochs: int | None = None,
                 media_encoders: Mapping[str, Any] | None = None,
                 conditioning_image_encoder: Any = None) -> None:
        """Store the inputs; nothing is built until :meth:`build`."""
        opts = options if isinstance(options, FactoryOptions) else \
            FactoryOptions.from_mapping(options or {})
        if seed is not None:
            opts = FactoryOptions.from_mapping({"seed": seed}, base=opts)
        self.options = opts
        self.rank, self.world_size = resolve_rank(rank, world_size)
        #: the encoders (media: by kind; conditioning_image: ``conditioning_image_embeds``)
        (self.text_encoder, self.image_encoder, self.media_encoders,
         self.conditioning_image_encoder) = resolve_encoders(
            text_encoder, image_encoder, media_encoders, conditioning_image_encoder,
            reference=use_reference_encoders)
        self._config, self._variables = config, dict(variables or {})
        self._pm, self._strategy_spec = plugin_manager, sampling_strategy
        self.queue_size, self.progress, self.precompute = queue_size, progress, precompute
        self.max_epochs = max_epochs
        self.metrics = Metrics()
        self.metrics.sample_rss()
        self.registry: PluginRegistry | None = None
        self.context: BuildContext | None = None
        self.plan: DataPlan | None = None
        self.text_caches: dict[str | None, TextEmbedCache] = {}
        self.image_embed_storages: dict[str, StorageBackend] = {}
        self.storages: dict[str, StorageBackend] = {}
        self.metadata: dict[str, MetadataBackend] = {}
        self.latent_caches: dict[str, LatentCache] = {}
        #: video datasets with ``is_i2v``: their first-frame latent caches
        self.first_frame_caches: dict[str, LatentCache] = {}
        self.cache_runs: list[CacheRun] = []
        #: per dataset, samples left out of training because their latents could not be made
        self.excluded: dict[str, list[str]] = {}
        self._runtime: DataRuntime | None = None
        self._fetcher: BatchFetcher[Batch] | None = None
        #: conditioning links, generation, pairing and caches (docs/conditioning.md)
        self.conditioning: ConditioningBuild | None = None

    # --- build -------------------------------------------------------------------------------
    def build(self) -> DataBackendFactory:
        """Run every stage once (later calls return at once); returns ``self``."""
        if self._runtime is not None:
            return self
        stages = (("plugins", self._build_plugins), ("config", self._build_config),
                  ("text_embeds", self._build_text_embeds),
                  ("image_embeds", self._build_image_embeds),
                  ("datasets", self._build_datasets), ("metadata", self._build_metadata),
                  ("caches", self._build_caches), ("samplers", self._build_samplers))
        for name, run in stages:
            with self.metrics.stage(name) as details:
                run(details)
        log.info("factory built in %.3f s, peak RSS %.1f MB",
                 sum(self.metrics.stage_seconds().values()), self.metrics.peak_rss / 2**20)
        return self

    def _build_plugins(self, details: dict[str, Any]) -> None:
        pm = self._pm if self._pm is not None else make_plugin_manager()
        self.registry = PluginRegistry.collect(pm)
        self.context = BuildContext(options=self.options, registry=self.registry,
                                    rank=self.rank, world_size=self.world_size)
        details.update(plugins=len(pm.list_name_plugin()), backends=len(self.registry.backends))

    def _build_config(self, details: dict[str, Any]) -> None:
        assert self.registry is not None
        cfg = self._config
        if isinstance(cfg, DataPlan):
            self.plan = cfg
        elif isinstance(cfg, (str, os.PathLike)):
            self.plan = load_config(cfg, self.registry, self.options, variables=self._variables)
        else:
            self.plan = parse_entries(list(cfg), self.registry, self.options,
                                      variables=self._variables)
        for warning in self.plan.warnings:
            log.warning("config: %s", warning)
        details.update(entries=len(self.plan.entries))

    def _ctx(self) -> tuple[DataPlan, BuildContext]:
        assert self.plan is not None and self.context is not None, "build() first"
        return self.plan, self.context

    def _enabled(self) -> list[ImageBackendConfig]:
        return [d for d in self._ctx()[0].datasets if not d.disabled]

    def _build_text_embeds(self, details: dict[str, Any]) -> None:
        plan, context = self._ctx()
        encoder, identity = encoder_and_identity(self.text_encoder)
        for dataset in self._enabled():
            entry = plan.text_embeds_for(dataset)
            key = entry.id if entry else None
            if key not in self.text_caches:
                self.text_caches[key] = open_text_cache_entry(entry, context, encoder,
                                                              identity=identity)
        details.update(caches=len(self.text_caches))

    def _build_image_embeds(self, details: dict[str, Any]) -> None:
        plan, context = self._ctx()
        for entry in plan.image_embeds:
            root = entry.cache_dir if not local_files(entry, context) or entry.cache_dir \
                else os.path.join(self.options.cache_root, "vae")
            self.image_embed_storages[entry.id] = build_storage(entry, context, root=root)
        details.update(entries=len(self.image_embed_storages))

    def _build_datasets(self, details: dict[str, Any]) -> None:
        _, context = self._ctx()
        for dataset in self._enabled():
            self.storages[dataset.id] = build_storage(dataset, context)
        details.update(datasets=len(self.storages))

    def _build_metadata(self, details: dict[str, Any]) -> None:
        plan, context = self._ctx()
        self.conditioning = ConditioningBuild(plan, context)
        self.conditioning.image_encoder = self.conditioning_image_encoder
        for dataset in self._enabled():
            if dataset.auto_generated:  # generated conditioning: outputs before the scan
                self.conditioning.generate(dataset, self.storages[dataset.id], self.metadata,
                                           progress=self.progress)
                barrier(self.world_size)  # every rank, even with nothing to generate
            meta = build_metadata(dataset, self.storages[dataset.id], context)
            report = meta.scan(progress=bool(self.progress), rank=self.rank,
                               world_size=self.world_size)
            self.metadata[dataset.id] = meta
            self.metrics.counters.setdefault("scan", {})[dataset.id] = scan_summary(report)
        barrier(self.world_size, timeout_s=self.options.peer_timeout_s, stage="scan")
        self.conditioning.pair(self.metadata)
        details.update(samples=sum(len(m.index) for m in self.metadata.values()))

    def _build_caches(self, details: dict[str, Any]) -> None:
        plan, context = self._ctx()
        images = [d for d in self._enabled() if not is_media(d)]
        encoder, identity = encoder_and_identity(self.image_encoder) if images else (None, "-")
        for dataset in self._enabled():
            if is_aligned_conditioning(dataset):  # read through its links' caches
                continue
            if is_media(dataset):
                self._open_media_caches(dataset)
                continue
            self.latent_caches[dataset.id] = open_latent_cache(
                plan, dataset, self.metadata[dataset.id], context, encoder, identity=identity)
        can_encode = is_encoder(self.text_encoder) and (
            is_encoder(self.image_encoder) or not images)
        if self.precompute and can_encode:
            self.cache_runs = precompute_plan(
                plan, context, text_encoder=self.text_encoder, image_encoder=self.image_encoder,
                metadata=self.metadata, progress=self.progress,
                media_encoders=self.media_encoders,
                conditioning_image_encoder=self.conditioning_image_encoder)
            barrier(self.world_size, timeout_s=self.options.peer_timeout_s, stage="cache")
            assert self.conditioning is not None
            self.conditioning.drop_unloadable(self.cache_runs, self.world_size)
        elif self.precompute:
            log.info("caches are not precomputed: no text and image encoder to fill them")
        details.update(encoded=sum(r.report.encoded for r in self.cache_runs),
                       cached=sum(r.report.cached for r in self.cache_runs))

    def _open_media_caches(self, dataset: ImageBackendConfig) -> None:
        """The clip (and i2v first-frame) latent caches of a media dataset."""
        from databackend.media.wiring import open_media_caches

        plan, context = self._ctx()
        clips, first = open_media_caches(plan, dataset, self.metadata[dataset.id], context,
                                         self.media_encoders)
        self.latent_caches[dataset.id] = clips
        if first is not None:
            self.first_frame_caches[dataset.id] = first

    def _build_samplers(self, details: dict[str, Any]) -> None:
        plan, _ = self._ctx()
        datasets, sources = [], {}
        for dataset in self._enabled():
            if dataset.dataset_type not in SAMPLED_TYPES:
                log.info("dataset %r (%s) is not sampled for training", dataset.id,
                         dataset.dataset_type)
                continue
            sources[dataset.id] = self.dataset_source(dataset)
        for dataset in self._enabled():  # audio paired with video rides in its batches
            if dataset.id in sources and not is_attached(plan, dataset):
                datasets.append(self._runtime_dataset(dataset, attach_s2v(dataset, sources)))
        try:
            self._runtime = make_runtime(
                datasets, self._strategy(), policy=self.policy,
                steps_per_epoch=self.options.mixture_steps_per_epoch, seed=self.options.seed,
                rank=self.rank, world_size=self.world_size, max_epochs=self.max_epochs)
        except ValueError as exc:  # no datasets, or none that yields a batch
            raise ConfigError([str(exc)], source=plan.source) from exc
        self._runtime.on_epoch.append(self._new_epoch)
        details.update(datasets=len(datasets), strategy=self._runtime.selector.strategy.name,
                       batches_per_epoch=sum(self._runtime.batches_per_epoch.values()))

    def dataset_source(self, dataset: ImageBackendConfig, *, fresh_text_cache: bool = False
                       ) -> Any:
        """The batch source of one scanned and cached dataset: its index, latent and text
        caches, without the samples that cannot be trained (latents that could not be made,
        no conditioning pair), with its conditioning entries. ``fresh_text_cache`` opens its
        own text cache object (a reader in another thread than the prefetcher's)."""
        return build_source(self, dataset, fresh_text_cache)

    def eval_batches(self, dataset_id: str | None = None, *, batch_size: int | None = None,
                     shard: bool = False) -> Iterator[Batch]:
        """Deterministic batches of the eval datasets (all of them in config order, or
        ``dataset_id``), with the same fields as training batches; they never touch the
        training state, so they can run mid-training (see docs/runtime.md)."""
        from databackend.runtime.evaluation import eval_batches

        return eval_batches(self, dataset_id, batch_size=batch_size, shard=shard)
    @property
    def policy(self) -> str:
        """The sampling policy: the config's ``sampling_policy`` if its datasets set one, else
        the ``sampling_policy`` option (``exhaust`` or ``mixture``)."""
        if self.plan is None:
            return self.options.sampling_policy
        return resolve_policy(self.options.sampling_policy, self._enabled())

    def _loadable_buckets(self, dataset_id: str, index: Any) -> dict[Any, Any] | None:
        """The index's buckets without the samples whose latents could not be computed at
        precompute (e.g. a JPEG cut short after its header, which a header scan cannot see):
        they are left out of training, counted and named, never a crash mid-run. The union
        over ranks, so every rank samples the same buckets."""
        mine = [path for run in self.cache_runs if run.kind == "latents" and run.name == dataset_id
                for path, _ in run.report.failed]
        failed = gather_union(mine, self.world_size, timeout_s=self.options.peer_timeout_s)
        if not failed:
            return None
        self.excluded[dataset_id] = failed
        log.warning("dataset %r: %d sample(s) could not be loaded to compute their latents and "
                    "are left out of training (e.g. %s); see the precompute report",
                    dataset_id, len(failed), ", ".join(failed[:3]))
        drop = np.asarray([p for p in (index.position(f) for f in failed) if p is not None])
        kept = {b: rows[~np.isin(rows, drop)] for b, rows in index.buckets().items()}
        return {b: rows for b, rows in kept.items() if len(rows)}

    def _runtime_dataset(self, d: ImageBackendConfig, source: CachedSource) -> RuntimeDataset:
        resolved = self._ctx()[0].settings_for(d)  # its keys over the options, from the plan
        return RuntimeDataset(
            id=d.id, source=source, batch_size=resolved.train_batch_size,
            repeats=d.repeats, probability=d.probability,
            schedule=Schedule(start_epoch=d.start_epoch, start_step=d.start_step,
                              end_epoch=d.end_epoch, end_step=d.end_step),
            disable_after_epoch_step=d.disable_after_epoch_step,
            short_bucket_policy=resolved.short_bucket_policy)

    def _strategy(self) -> SamplingStrategy:
        spec = self._strategy_spec if self._strategy_spec is not None else self.options.sampling
        if isinstance(spec, SamplingStrategy):
            return spec
        if isinstance(spec, type):
            return spec()
        assert self.registry is not None
        return self.registry.strategy_class(spec)()

    def _new_epoch(self, epoch: int) -> None:
        """Epoch hook: caches with ``vae_cache_clear_each_epoch`` are cleared by rank 0."""
        if self.rank == 0:
            linked = self.conditioning.caches.values() if self.conditioning else ()
            for cache in [*self.latent_caches.values(), *linked]:
                cache.new_epoch(epoch)

    # --- iteration -----------------------------------------------------------------------------
    @property
    def runtime(self) -> DataRuntime:
        """The runtime (builds the factory first if needed)."""
        self.build()
        assert self._runtime is not None
        return self._runtime

    def iterator(self, *, prefetch: bool = True, queue_size: int | None = None
                 ) -> BatchFetcher[Batch]:
        """A batch iterator from the current state; a previous iterator is closed first.

        With ``prefetch`` a background thread keeps up to ``queue_size`` batches ready.
        """
        runtime = self.runtime
        self.stop()
        size = (self.queue_size if queue_size is None else queue_size) if prefetch else 0
        self._fetcher = BatchFetcher(runtime.produce, queue_size=size, stats=self.metrics.fetch,
                                     initial_state=runtime.state_dict())
        return self._fetcher

    def __iter__(self) -> BatchFetcher[Batch]:
        return self.iterator()

    def torch_dataset(self) -> BatchIterableDataset:
        """A ``torch.utils.data.IterableDataset``; use ``DataLoader(ds, batch_size=None)``."""
        return BatchIterableDataset(self.iterator)

    def stop(self) -> None:
        """Stop the prefetch thread and rewind the runtime to what its consumer has seen;
        the next :meth:`iterator` continues from there (storages stay open)."""
        fetcher, self._fetcher = self._fetcher, None
        if fetcher is None:
            return
        fetcher.close()
        fetcher.join()
        state = fetcher.state_dict()
        if state is not None and self._runtime is not None:
            self._runtime.load_state_dict(state)

    def state_dict(self) -> dict[str, Any]:
        """The runtime state after the last batch handed to the trainer (JSON-serialisable)."""
        if self._fetcher is not None and self._fetcher.state_dict() is not None:
            return dict(self._fetcher.state_dict() or {})
        return self.runtime.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state``; the next :meth:`iterator` starts there."""
        runtime = self.runtime
        self.stop()
        runtime.load_state_dict(state)

    def close(self) -> None:
        """Stop the prefetch thread and release every storage's connections and pools.

        Call it when training is done (or use the factory as a context manager); a closed
        factory's state_dict and summary still work, but it serves no more batches.
        """
        self.stop()
        caches = [*self.text_caches.values(), *self.latent_caches.values(),
                  *(self.conditioning.caches.values() if self.conditioning else ()),
                  *self.first_frame_caches.values()]
        storages = {id(s): s for s in [*self.storages.values(), *self.image_embed_storages.values(),
                                       *(c.storage for c in caches)]}
        for storage in storages.values():
            try:
                storage.close()
            except Exception as exc:  # closing must not hide the trainer's own exception
                log.warning("closing storage %r failed: %s", storage, exc)

    def __enter__(self) -> DataBackendFactory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reporting -----------------------------------------------------------------------------
    def cache_stats(self) -> dict[str, dict[str, int]]:
        """Hit/miss/repair/encode/write counters of every cache used at batch time."""
        out = {f"latents:{k}": c.stats.to_dict() for k, c in self.latent_caches.items()}
        if self.conditioning is not None:
            out.update({f"conditioning:{c.name}": c.stats.to_dict()
                        for c in self.conditioning.caches.values()})
            out.update({f"image_embeds:{k}": c.stats.to_dict()
                        for k, c in self.conditioning.image_embed_caches.items()})
        out.update({f"latents:{c.name}": c.stats.to_dict() for c in self.first_frame_caches.values()})
        out.update({f"text:{c.name}": c.stats.to_dict() for c in self.text_caches.values()})
        return out

    def summary(self) -> Summary:
        """Stages, memory, per-dataset draws against targets, caches and prefetch figures:
        a typed :class:`~databackend.monitor.summary.Summary` (also a read-only mapping with
        the old dict's keys); ``print(factory.summary())`` shows the CLI's tables."""
        from databackend.runtime.report import runtime_summary

        return Summary.from_parts(
            self.metrics.to_dict(), datasets=runtime_summary(self.runtime),
            precompute=[{"kind": r.kind, "name": r.name, **r.report.to_dict()}
                        for r in self.cache_runs],
            cache_stats=self.cache_stats(), excluded=dict(self.excluded), rank=self.rank,
            world_size=self.world_size, policy=self.policy,
            conditioning=self.conditioning.summary() if self.conditioning else {})

    def scalars(self) -> dict[str, float]:
        """Flat scalar metrics for a trainer's dashboard (TensorBoard, W&B, any logger):
        ``data/<dataset>/draws``, ``data/wait_ms``, ``cache/<name>/hits``, ...; the names are
        listed in docs/report.md and :mod:`databackend.monitor.scalars`."""
        from databackend.monitor.scalars import factory_scalars

        return factory_scalars(self)
