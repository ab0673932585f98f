"""How the factory builds the audio parts: audio caches, their precompute, runtime sources.

* :func:`open_audio_cache`: the cache of one audio dataset, in ``cache_dir_vae`` (or its
  ``image_embeds`` entry, as for image latents), else SimpleTuner's default
  ``{cache_root}/audio/vae/{model_family}/{id}``.
* :func:`audio_sources`: one :class:`~databackend.audio.source.AudioSource` per audio dataset.
* :func:`is_attached`: audio datasets attached to a video set (``source_dataset_id``, or named
  in a video set's ``s2v_datasets``) are not drawn on their own: their audio rides in the video
  batches (:class:`~databackend.audio.source.S2VSource`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from databackend.audio.cache import AudioCache
from databackend.audio.config import AUDIO_KIND
from databackend.audio.source import AudioSource, S2VSource
from databackend.caches.stores import latent_cache_location
from databackend.storage.localdir import LocalDirectory

if TYPE_CHECKING:
    from databackend.audio.encoders import AudioEncoder
    from databackend.audio.metadata import AudioMetadataBackend
    from databackend.config.models import ImageBackendConfig
    from databackend.config.plan import DataPlan
    from databackend.context import BuildContext

__all__ = ["attach_s2v", "audio_sources", "is_attached", "is_audio", "open_audio_cache"]


def is_audio(dataset: ImageBackendConfig) -> bool:
    """Whether ``dataset`` is an audio dataset."""
    return dataset.dataset_type == AUDIO_KIND


def is_attached(plan: DataPlan, dataset: ImageBackendConfig) -> bool:
    """Whether an audio dataset rides in a video set's batches instead of being drawn."""
    if not is_audio(dataset):
        return False
    named = {a for d in plan.datasets for a in d.s2v_ids}
    return dataset.id in named or bool((dataset.audio or {}).get("source_from_video"))


def open_audio_cache(plan: DataPlan, dataset: ImageBackendConfig, meta: AudioMetadataBackend,
                     context: BuildContext, encoder: AudioEncoder | None = None, *,
                     identity: str | None = None, batch_size: int = 8) -> AudioCache:
    """A dataset's audio cache, configured from its keys (see the module docstring)."""
    opts = context.options
    if dataset.cache_dir_vae or dataset.image_embeds:
        storage, prefix = latent_cache_location(plan, dataset, context)
    else:
        root = os.path.join(opts.cache_root, "audio", "vae", opts.model_family, dataset.id)
        storage, prefix = LocalDirectory(dataset_id=dataset.id, root=root), ""
    ondemand = (opts.vae_cache_ondemand if dataset.vae_cache_ondemand is None
                else dataset.vae_cache_ondemand)
    compress = opts.compress_cache if dataset.compress_cache is None else dataset.compress_cache
    return AudioCache(storage, meta, encoder=encoder, identity=identity, prefix=prefix,
                      hash_filenames=dataset.hash_filenames, compress=compress,
                      ondemand=ondemand, disable=dataset.vae_cache_disable,
                      batch_size=batch_size, seed=opts.seed, name=dataset.id)


def audio_sources(caches: Mapping[str, AudioCache], texts: Mapping[str, Any], *,
                  seed: int) -> dict[str, AudioSource]:
    """One source per audio dataset id (``texts`` maps ids to their text caches)."""
    return {ident: AudioSource(ident, cache.meta, cache, texts[ident], seed=seed)
            for ident, cache in caches.items()}


def attach_s2v(dataset: ImageBackendConfig, source: Any,
               audio: Mapping[str, AudioSource]) -> Any:
    """``source`` wrapped in an :class:`S2VSource` when ``dataset`` names ``s2v_datasets``."""
    paired = [audio[a] for a in dataset.s2v_ids if a in audio]
    return S2VSource(source, paired) if paired else source
