"""Pieces of :class:`~databackend.factory.DataBackendFactory` that need no factory state of
their own: which encoders a factory uses, how a dataset's batch source is put together, and the
plain scan figures of its summary."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from databackend.media.select import is_media
from databackend.runtime.source import CachedSource

if TYPE_CHECKING:
    from databackend.caches.text import TextEmbedCache
    from databackend.config.models import ImageBackendConfig

__all__ = ["build_source", "encoder_and_identity", "is_encoder", "resolve_encoders",
           "scan_summary", "source_class"]


def resolve_encoders(text: Any, image: Any, media: Mapping[str, Any] | None,
                     conditioning_image: Any, *, reference: bool
                     ) -> tuple[Any, Any, dict[str, Any], Any]:
    """``(text, image, media by kind, conditioning image)`` encoders; with ``reference`` the
    missing ones are the CPU stand-ins."""
    media_encoders = dict(media or {})
    if not reference:
        return text, image, media_encoders, conditioning_image
    from databackend.caches import ReferenceTextEncoder, ReferenceVAE
    from databackend.conditioning.image_embeds import ReferenceImageEmbedder
    from databackend.media.wiring import reference_media_encoders

    return (text if text is not None else ReferenceTextEncoder(),
            image if image is not None else ReferenceVAE(),
            reference_media_encoders(media_encoders),
            conditioning_image if conditioning_image is not None else ReferenceImageEmbedder())


def is_encoder(obj: Any) -> bool:
    """Whether ``obj`` can compute (not None and not an identity string)."""
    return obj is not None and not isinstance(obj, str)


def encoder_and_identity(obj: Any) -> tuple[Any, str | None]:
    """``(encoder, None)`` for an encoder, ``(None, identity)`` for an identity string."""
    if obj is None:
        raise ValueError("the factory needs a text and an image encoder (or their identity "
                         "strings for read-only caches); pass use_reference_encoders=True for "
                         "the CPU stand-ins")
    return (None, obj) if isinstance(obj, str) else (obj, None)


def source_class(dataset: ImageBackendConfig) -> type[CachedSource]:
    """The runtime source of a dataset: media sources add their batch values."""
    if dataset.dataset_type == "audio":  # docs/audio.md
        from databackend.audio.source import AudioSource

        return AudioSource
    if is_media(dataset):
        from databackend.media.source import MediaSource

        return MediaSource
    return CachedSource


def texts_of(factory: Any, dataset: ImageBackendConfig, fresh: bool) -> TextEmbedCache:
    """The text cache of ``dataset`` (``fresh``: a new object, for another thread)."""
    from databackend.caches import open_text_cache_entry

    plan, context = factory.plan, factory.context
    entry = plan.text_embeds_for(dataset)
    if not fresh:
        return factory.text_caches[entry.id if entry else None]  # type: ignore[no-any-return]
    encoder, identity = encoder_and_identity(factory.text_encoder)
    return open_text_cache_entry(entry, context, encoder, identity=identity)


def build_source(factory: Any, dataset: ImageBackendConfig, fresh_text_cache: bool) -> Any:
    """The batch source of one scanned and cached dataset of a built ``factory`` (see
    :meth:`~databackend.factory.DataBackendFactory.dataset_source`)."""
    texts = texts_of(factory, dataset, fresh_text_cache)
    index = factory.metadata[dataset.id].index
    buckets = factory._loadable_buckets(dataset.id, index)
    conditioning = factory.conditioning
    assert conditioning is not None
    paired = conditioning.paired_buckets(
        dataset.id, buckets if buckets is not None else index.buckets())
    extra = {"first_frames": factory.first_frame_caches.get(dataset.id)} if is_media(dataset) \
        else {}
    source = source_class(dataset)(dataset.id, index, factory.latent_caches[dataset.id], texts,
                                   seed=factory.options.seed,
                                   buckets=paired if paired is not None else buckets, **extra)
    encoder, identity = encoder_and_identity(factory.image_encoder)
    return conditioning.wrap(dataset.id, source, factory.metadata, encoder, identity,
                             texts=lambda d: texts_of(factory, d, fresh_text_cache))


def scan_summary(report: Any) -> dict[str, Any]:
    """The figures of one scan report for the factory summary (media: per-bucket frames)."""
    counts = getattr(report, "counts", {})
    out = {"kept": counts.get("kept", 0), "skipped": dict(getattr(report, "skipped", {})),
           "seconds": round(float(getattr(report, "elapsed", 0.0)), 4)}
    if hasattr(report, "kind"):  # media: per-bucket frame counts (databackend.media.report)
        out["kind"] = report.kind
        out["buckets"] = [{k: b.to_dict()[k] for k in ("bucket", "count", "window_frames",
                                                          "source_frames")}
                          for b in report.buckets]
    return out
