"""The metadata backend interface: scan a dataset into a bucketed index, and read samples back.

The built-in implementation is :class:`databackend.metadata.discovery.DiscoveryMetadataBackend`;
plugins replace it through the ``databackend_make_metadata_backend`` hook.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

    from databackend.config.models import ImageBackendConfig
    from databackend.context import BuildContext
    from databackend.geometry import GeometryParams
    from databackend.metadata.index import DatasetIndex
    from databackend.metadata.report import ScanReport
    from databackend.storage.base import StorageBackend

__all__ = ["MetadataBackend"]


class MetadataBackend(ABC):
    """Owns one dataset's index: discovery, bucketing, captions, persistence, image loading."""

    def __init__(self, dataset: ImageBackendConfig, storage: StorageBackend,
                 context: BuildContext) -> None:
        """Bind the backend to a dataset, its storage and the factory context."""
        self.dataset = dataset
        self.storage = storage
        self.context = context

    @property
    @abstractmethod
    def params(self) -> GeometryParams:
        """The geometry parameters (dataset keys over factory options) used for bucketing."""

    @abstractmethod
    def scan(self, *, progress: bool = True, rank: int = 0, world_size: int = 1) -> ScanReport:
        """Discover new/changed files, bucket them, persist the index, and report what happened."""

    @property
    @abstractmethod
    def index(self) -> DatasetIndex:
        """The current index (loaded from its persisted copy, or from the last scan)."""

    @abstractmethod
    def load_image(self, i: int) -> Image.Image:
        """Fully decode sample ``i`` as RGB with EXIF orientation applied (for the VAE cache)."""

    def sample_key(self, i: int) -> str:
        """A stable identity for sample ``i``: its path plus size and mtime."""
        idx: Any = self.index
        return f"{idx.paths[i]}|{idx.file_size[i]}|{idx.mtime[i]}"
