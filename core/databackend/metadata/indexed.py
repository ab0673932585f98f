"""A public building block for metadata backends: settings, fingerprints and the stored index.

:class:`IndexedMetadataBackend` resolves a dataset's geometry, caption and scan settings from
its config and the factory options, computes their fingerprints, and owns the persisted
:class:`~databackend.metadata.index.DatasetIndex` under ``{cache_root}/metadata/{id}/`` with its
bucket tables. Subclasses say how samples are found (:meth:`scan`) and decoded
(:meth:`load_image`): the built-in discovery backend lists and probes files; the Hugging Face
plugin walks dataset rows. Part of the plugin API (``databackend.pluginapi``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from databackend.errors import DatabackendError
from databackend.metadata import params as cfg
from databackend.metadata.backend import MetadataBackend
from databackend.metadata.index import DatasetIndex
from databackend.metadata.report import bucket_table, effective_buckets
from databackend.storage.localdir import LocalDirectory

if TYPE_CHECKING:
    from databackend.config.models import ImageBackendConfig
    from databackend.context import BuildContext
    from databackend.geometry import GeometryParams
    from databackend.metadata.report import ScanReport
    from databackend.storage.base import FileInfo, StorageBackend

__all__ = ["INDEX_KEY", "IndexedMetadataBackend"]

#: The index's key in the index storage.
INDEX_KEY = "index.dbi"


class IndexedMetadataBackend(MetadataBackend):
    """Settings, fingerprints, the persisted index and bucket tables (see the module docstring).

    Class attributes tune checkpoints and multi-rank waits; ``index_storage`` (a constructor
    argument) moves the index elsewhere than ``{cache_root}/metadata/{id}/``.
    """

    checkpoint_interval_s: float = 60.0
    checkpoint_files: int = 50_000
    rank_timeout_s: float = 3600.0
    rank_poll_s: float = 0.5
    #: Where probe chunks run instead of the local pools (e.g. ``engines.ray.use_ray``).
    probe_executor: Executor | None = None
    #: Lists the dataset in shares elsewhere (``lister(storage, extensions)`` yields the files
    #: of the storage's ``list_share`` shares in order, or returns None when the storage lists
    #: only as a whole; e.g. ``engines.raylisting``); None: this process lists.
    shard_lister: Callable[[StorageBackend, frozenset[str]],
                           Iterator[FileInfo] | None] | None = None
    #: The index class this backend persists (a subclass may store more columns).
    index_class: ClassVar[type[DatasetIndex]] = DatasetIndex

    def __init__(self, dataset: ImageBackendConfig, storage: StorageBackend,
                 context: BuildContext, *, index_storage: StorageBackend | None = None,
                 start_method: str | None = None) -> None:
        """Resolve the settings; nothing is read until :meth:`scan` or :attr:`index`."""
        super().__init__(dataset, storage, context)
        opts = context.options
        self._params = cfg.geometry_params(dataset, opts)
        self.caption_settings = cfg.caption_settings(dataset, opts,
                                                     context.registry.caption_strategies)
        self.settings = cfg.scan_settings(dataset, opts, context.world_size)
        if "rank_timeout_s" not in type(self).__dict__:  # a subclass may pin its own
            self.rank_timeout_s = opts.peer_timeout_s
        self.index_folder = cfg.index_folder(dataset, opts)
        self.index_storage = index_storage or LocalDirectory(root=self.index_folder,
                                                             dataset_id=dataset.id)
        self.start_method = start_method
        self.geometry_fp = cfg.geometry_fingerprint(self._params, opts.seed)
        self.caption_fp = self.caption_settings.fingerprint()
        self.fingerprint = cfg.combined_fingerprint(self.geometry_fp, self.caption_fp)
        self._index: DatasetIndex | None = None
        self.report: ScanReport | None = None

    @property
    def params(self) -> GeometryParams:
        """The dataset's geometry parameters (dataset keys over factory options)."""
        return self._params

    @property
    def index(self) -> DatasetIndex:
        """The index of the last scan, else the persisted one (which must match the settings)."""
        if self._index is None:
            found = self.index_class.load(self.index_storage, INDEX_KEY)
            if found is None:
                raise DatabackendError(f"dataset {self.dataset.id!r} has no index yet in "
                                       f"{self.index_storage.describe()}; run a scan first")
            if found.params_fingerprint != self.fingerprint and not self.settings.use_persisted:
                raise DatabackendError(f"dataset {self.dataset.id!r}: the stored index was made "
                                       "with other bucketing or caption settings; rescan it")
            self._index = found
        return self._index

    def set_index(self, index: DatasetIndex) -> None:
        """Make ``index`` the current one (a subclass's scan calls this when done)."""
        self._index = index

    def captions_of(self, i: int) -> tuple[str, ...]:
        """The caption(s) of sample ``i``."""
        return self.index.captions_of(i)

    def bucket_rows(self) -> list[Any]:
        """The bucket table of the current index under the dataset's batch size and policy."""
        s = self.settings
        return bucket_table(self.index.buckets(), batch_size=s.batch_size, repeats=s.repeats,
                            policy=s.policy, world_size=s.world_size, rounding=self.params.rounding)

    def effective_buckets(self) -> dict[tuple[int, int], np.ndarray]:
        """``{target size: indices}`` after the short-bucket policy (``drop`` removes buckets
        smaller than one batch)."""
        s = self.settings
        return effective_buckets(self.index.buckets(), batch_size=s.batch_size,
                                 repeats=s.repeats, policy=s.policy, world_size=s.world_size)
