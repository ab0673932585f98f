"""How the factory and the precompute step build the caches and sources of media datasets.

Encoders are passed per media kind (``media_encoders={"video": my_video_vae}``); an entry may
be an encoder or its ``identity`` string (read-only caches), as for images.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from databackend.caches.base import PrecomputeReport
from databackend.caches.stores import open_latent_cache
from databackend.errors import ConfigError
from databackend.media.cache import MediaLatentCache
from databackend.media.select import media_spec_for

if TYPE_CHECKING:
    from databackend.config.models import ImageBackendConfig
    from databackend.config.plan import DataPlan
    from databackend.context import BuildContext

__all__ = ["media_encoder", "open_media_caches", "precompute_media", "reference_media_encoders"]


def reference_media_encoders(given: Mapping[str, Any] | None) -> dict[str, Any]:
    """``given`` with the CPU stand-ins for every kind it lacks."""
    from databackend.audio.encoders import ReferenceAudioEncoder
    from databackend.media.encoders import ReferenceVideoVAE

    return {"video": ReferenceVideoVAE(), "audio": ReferenceAudioEncoder(), **dict(given or {})}


def media_encoder(dataset: ImageBackendConfig, context: BuildContext,
                  encoders: Mapping[str, Any] | None) -> tuple[Any, str | None]:
    """``(encoder, None)`` or ``(None, identity)`` for the dataset's media kind; a clear
    error when none was passed."""
    spec = media_spec_for(dataset, context.options)
    kind = spec.kind if spec is not None else "video"
    found = (encoders or {}).get(kind)
    if found is None:
        raise ConfigError([f"dataset {dataset.id!r} is a {kind} dataset: pass "
                           f"media_encoders={{{kind!r}: encoder}} (or its identity string, or "
                           "use_reference_encoders=True for the CPU stand-in)"])
    return (None, found) if isinstance(found, str) else (found, None)


def open_media_caches(plan: DataPlan, dataset: ImageBackendConfig, metadata: Any,
                      context: BuildContext, encoders: Mapping[str, Any] | None, *,
                      batch_size: int = 1) -> tuple[MediaLatentCache, MediaLatentCache | None]:
    """The clip latent cache and, for ``video.is_i2v``, the first-frame cache."""
    encoder, identity = media_encoder(dataset, context, encoders)
    cache_class = getattr(metadata.spec, "cache_class", MediaLatentCache)  # a kind's own cache

    def make(first_frame: bool) -> MediaLatentCache:
        """One of the two caches."""
        cache = open_latent_cache(plan, dataset, metadata, context, encoder, identity=identity,
                                  batch_size=batch_size, cache_class=cache_class,
                                  first_frame=first_frame)
        assert isinstance(cache, MediaLatentCache)
        return cache

    i2v = bool(getattr(getattr(metadata.spec, "settings", None), "is_i2v", False))
    return make(False), make(True) if i2v else None


def precompute_media(plan: DataPlan, dataset: ImageBackendConfig, metadata: Any,
                     context: BuildContext, options: Mapping[str, Any]
                     ) -> list[tuple[str, str, PrecomputeReport]]:
    """Fill the media caches of one dataset: ``(name, location, report)`` per cache. The
    reference's video batch sizes default to 1; ``options["batch_size"]`` applies here too."""
    encoders = options.get("media_encoders")
    caches = open_media_caches(plan, dataset, metadata, context, encoders,
                               batch_size=options["batch_size"])
    out = []
    for cache in (c for c in caches if c is not None):
        if not cache.precompute_at_startup and not options["include_ondemand"]:
            report = PrecomputeReport(skipped="vae_cache_disable" if cache.disable
                                      else "vae_cache_ondemand")
        elif cache.encoder is None:
            report = PrecomputeReport(skipped="no media encoder (identity only)")
        else:
            report = cache.precompute(rank=context.rank, world_size=context.world_size,
                                      progress=options["progress"])
        out.append((cache.name, cache.describe(), report))
    return out
