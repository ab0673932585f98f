"""Where each cache lives, and opening caches from a :class:`~databackend.config.DataPlan`.

Text embeddings (per ``text_embeds`` entry, shared by the datasets that use it):

* ``cache_dir`` set: the entry's storage type with root ``cache_dir``;
* no ``cache_dir``, a type declaring ``local_files`` (or no ``text_embeds`` entry at all): the
  local folder ``{options.cache_root}/text/{model_family}``;
* no ``cache_dir``, another type: the backend's own location, under ``text/{model_family}/``.

VAE latents (per dataset):

* ``cache_dir_vae`` set: that root, on the ``image_embeds`` entry's storage when the dataset
  names one, else a local folder;
* ``image_embeds`` without ``cache_dir_vae``: the entry's storage with root ``cache_dir``
  (``local_files`` type without it: ``{options.cache_root}/vae``; other types: the backend's own
  location),
  under ``{model_family}/{dataset id}/``;
* neither: the local folder ``{options.cache_root}/vae/{model_family}/{dataset id}``.

Unlike SimpleTuner, latents of a remote dataset are never written into the dataset's own
bucket unless an ``image_embeds`` entry says so.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from databackend.build import build_storage
from databackend.caches.latents import LatentCache
from databackend.caches.text import TextEmbedCache
from databackend.config.models import ImageEmbedBackendConfig, TextEmbedBackendConfig
from databackend.storage.localdir import LocalDirectory

if TYPE_CHECKING:
    from databackend.caches.encoders import ImageEncoder, TextEncoder
    from databackend.caches.imaging import SampleSource
    from databackend.config.models import BaseBackendConfig, ImageBackendConfig
    from databackend.config.plan import DataPlan
    from databackend.context import BuildContext
    from databackend.storage.base import StorageBackend

__all__ = ["latent_cache_location", "local_files", "open_latent_cache", "open_text_cache",
           "open_text_cache_entry", "text_cache_location"]

#: The id of the text cache used when a plan has no ``text_embeds`` entry.
DEFAULT_TEXT_CACHE_ID = "text-embeds"


def local_files(entry: BaseBackendConfig, context: BuildContext) -> bool:
    """Whether the entry's type declares ``local_files`` (its caches default to the local
    cache folder; decided by the declaration, never by the type's name)."""
    declared = context.registry.types.get(entry.type)
    return bool(declared is not None and declared.local_files)


def _compress(value: bool | None, context: BuildContext) -> bool:
    return context.options.compress_cache if value is None else value


def text_cache_location(entry: TextEmbedBackendConfig | None, context: BuildContext
                        ) -> tuple[StorageBackend, str]:
    """``(storage, prefix)`` of a text cache (see the module doc)."""
    family = context.options.model_family
    if entry is not None and entry.cache_dir:
        return build_storage(entry, context, root=entry.cache_dir), ""
    if entry is None or local_files(entry, context):
        root = os.path.join(context.options.cache_root, "text", family)
        return LocalDirectory(dataset_id=entry.id if entry else DEFAULT_TEXT_CACHE_ID,
                              root=root), ""
    return build_storage(entry, context), f"text/{family}"


def open_text_cache_entry(entry: TextEmbedBackendConfig | None, context: BuildContext,
                          encoder: TextEncoder | None = None, *, identity: str | None = None
                          ) -> TextEmbedCache:
    """The cache of one ``text_embeds`` entry (None: the default local cache)."""
    located, prefix = text_cache_location(entry, context)
    if entry is None:
        return TextEmbedCache(located, encoder=encoder, identity=identity, prefix=prefix,
                              compress=context.options.compress_cache,
                              name=DEFAULT_TEXT_CACHE_ID)
    return TextEmbedCache(located, encoder=encoder, identity=identity, prefix=prefix,
                          compress=_compress(entry.compress_cache, context),
                          write_batch_size=entry.write_batch_size,
                          ondemand=entry.text_cache_ondemand, disable=entry.text_cache_disable,
                          name=entry.id)


def open_text_cache(plan: DataPlan, dataset: ImageBackendConfig, context: BuildContext,
                    encoder: TextEncoder | None = None, *, identity: str | None = None
                    ) -> TextEmbedCache:
    """The text cache a dataset uses (its ``text_embeds``, the default, or the built-in one).

    Datasets sharing a ``text_embeds`` entry may share one cache object: open it once per
    entry with :func:`open_text_cache_entry`.
    """
    return open_text_cache_entry(plan.text_embeds_for(dataset), context, encoder,
                                 identity=identity)


def _image_embeds(plan: DataPlan, dataset: ImageBackendConfig) -> ImageEmbedBackendConfig | None:
    entry = plan.by_id.get(dataset.image_embeds) if dataset.image_embeds else None
    return entry if isinstance(entry, ImageEmbedBackendConfig) else None


def latent_cache_location(plan: DataPlan, dataset: ImageBackendConfig, context: BuildContext
                          ) -> tuple[StorageBackend, str]:
    """``(storage, prefix)`` of a dataset's latent cache (see the module doc)."""
    options, embeds = context.options, _image_embeds(plan, dataset)
    if embeds is None:
        root = dataset.cache_dir_vae or os.path.join(options.cache_root, "vae",
                                                     options.model_family, dataset.id)
        return LocalDirectory(dataset_id=dataset.id, root=root), ""
    if dataset.cache_dir_vae:
        return build_storage(embeds, context, root=dataset.cache_dir_vae), ""
    prefix = f"{options.model_family}/{dataset.id}"
    if embeds.cache_dir:
        return build_storage(embeds, context, root=embeds.cache_dir), prefix
    if local_files(embeds, context):
        root = os.path.join(options.cache_root, "vae")
        return LocalDirectory(dataset_id=embeds.id, root=root), prefix
    return build_storage(embeds, context), prefix


def open_latent_cache(plan: DataPlan, dataset: ImageBackendConfig, metadata: SampleSource,
                      context: BuildContext, encoder: ImageEncoder | None = None, *,
                      identity: str | None = None, batch_size: int = 8,
                      cache_class: type[LatentCache] = LatentCache, **extra: Any) -> LatentCache:
    """A dataset's latent cache, configured from its keys and its ``image_embeds`` entry
    (``cache_class`` and ``extra`` keyword arguments: another kind of latent cache, e.g. the
    media latent cache, configured the same way)."""
    storage, prefix = latent_cache_location(plan, dataset, context)
    embeds = _image_embeds(plan, dataset)
    resolved = plan.settings_for(dataset)  # compress_cache and vae_cache_ondemand, inherited
    compress, ondemand = resolved.compress_cache, resolved.vae_cache_ondemand
    cache = cache_class(storage, metadata, encoder=encoder, identity=identity, prefix=prefix,
                        hash_filenames=dataset.hash_filenames, compress=compress,
                        write_batch_size=embeds.write_batch_size if embeds else 128,
                        ondemand=ondemand, disable=dataset.vae_cache_disable,
                        clear_each_epoch=dataset.vae_cache_clear_each_epoch,
                        batch_size=batch_size, name=dataset.id, **extra)
    cache.max_pixels = context.options.max_image_pixels  # hardening: bounded decode memory
    return cache
