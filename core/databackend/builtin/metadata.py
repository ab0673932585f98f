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
    """Return a :class:`~databackend.metadata.discovery.DiscoveryMetadataBackend` for the
    SimpleTuner ``metadata_backend`` names; other names are left to the plugins declaring them."""
    from databackend.config.capabilities import BUILTIN_METADATA_BACKENDS
    from databackend.metadata.discovery import DiscoveryMetadataBackend

    if dataset.metadata_backend not in BUILTIN_METADATA_BACKENDS:
        return None

    return DiscoveryMetadataBackend(dataset, storage, context)
