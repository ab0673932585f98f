"""Built-in metadata creation for ``dataset_type: audio``: the audio metadata backend."""

from __future__ import annotations

from databackend.config.models import ImageBackendConfig
from databackend.context import BuildContext
from databackend.markers import hookimpl
from databackend.metadata.backend import MetadataBackend
from databackend.storage.base import StorageBackend

__all__ = ["databackend_make_metadata_backend"]


@hookimpl(tryfirst=True)
def databackend_make_metadata_backend(dataset: ImageBackendConfig, storage: StorageBackend,
                                      context: BuildContext) -> MetadataBackend | None:
    """An :class:`~databackend.audio.metadata.AudioMetadataBackend` for audio datasets (on
    any storage), else None."""
    if dataset.dataset_type != "audio":
        return None
    from databackend.audio.metadata import AudioMetadataBackend

    return AudioMetadataBackend(dataset, storage, context)
