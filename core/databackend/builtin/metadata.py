"""Built-in metadata creation: the discovery backend (header-only scans, persisted index)."""

from __future__ import annotations

from databackend.config.models import ImageBackendConfig
from databackend.context import BuildContext
from databackend.markers import hookimpl
from databackend.metadata.backend import MetadataBackend
from databackend.storage.base import StorageBackend

__all__ = ["databackend_make_metadata_backend"]


@hookimpl(trylast=True)
def databackend_make_metadata_backend(dataset: ImageBackendConfig, storage: StorageBackend,
                                      context: BuildContext) -> MetadataBackend:
    """Return a :class:`~databackend.metadata.discovery.DiscoveryMetadataBackend`, or a
    :class:`~databackend.media.backend.MediaMetadataBackend` for media datasets."""
    from databackend.media.select import media_spec_for
    from databackend.metadata.discovery import DiscoveryMetadataBackend

    spec = media_spec_for(dataset, context.options)
    if spec is not None:
        from databackend.media.backend import MediaMetadataBackend

        return MediaMetadataBackend(dataset, storage, context, spec=spec)
    return DiscoveryMetadataBackend(dataset, storage, context)
