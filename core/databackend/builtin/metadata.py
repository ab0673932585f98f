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
                                      context: BuildContext) -> MetadataBackend | None:
    """Return a :class:`~databackend.metadata.discovery.DiscoveryMetadataBackend` (or a
    :class:`~databackend.media.backend.MediaMetadataBackend` for media datasets) for the
    SimpleTuner ``metadata_backend`` names; other names are left to the plugins declaring them."""
    from databackend.config.capabilities import BUILTIN_METADATA_BACKENDS
    from databackend.media.select import media_spec_for
    from databackend.metadata.discovery import DiscoveryMetadataBackend

    if dataset.metadata_backend not in BUILTIN_METADATA_BACKENDS:
        return None
    spec = media_spec_for(dataset, context.options)
    if spec is not None:
        from databackend.media.backend import MediaMetadataBackend

        return MediaMetadataBackend(dataset, storage, context, spec=spec)
    return DiscoveryMetadataBackend(dataset, storage, context)
