"""The built-in metadata backend: header-only discovery scans with a persisted, incremental index.

A scan (:meth:`DiscoveryMetadataBackend.scan`):

1. loads what earlier runs left (the index, and the checkpoint of an interrupted scan);
2. lists the storage (or, with ``preserve_data_backend_cache``, reuses the stored listing) and
   applies ``max_num_samples`` (sorted paths, ``random.Random(dataset_id).shuffle``, first N);
3. sorts every file into: unchanged (same size, mtime and ETag: reused as stored), known but
   placed under other bucketing settings (geometry recomputed from the stored size, no read),
   and new/changed or unreadable last time (the header is read: see
   :mod:`databackend.metadata.scanner`);
4. finds captions for new or changed samples (and all of them when caption settings changed);
5. deletes files only when asked (``delete_problematic_images``: corrupt / not an image;
   ``delete_unwanted_images``: too small / aspect out of range), through ``storage.delete``;
6. writes the index atomically to ``{cache_root}/metadata/{id}/index.dbi`` (never into the
   dataset) when anything changed, and returns a :class:`ScanReport`.

Long scans checkpoint every ``checkpoint_interval_s`` seconds or ``checkpoint_files`` files; a
killed scan resumes. Ranks share the work: ``scan(rank=r, world_size=w)``.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from databackend.errors import DatabackendError, StorageError
from databackend.metadata import params as cfg
from databackend.metadata.backend import MetadataBackend
from databackend.metadata.index import DatasetIndex
from databackend.metadata.report import ScanReport, bucket_table, effective_buckets
from databackend.metadata.scanrun import INDEX_KEY, ScanRun
from databackend.storage.localdir import LocalDirectory

if TYPE_CHECKING:

    from PIL import Image

    from databackend.config.models import ImageBackendConfig
    from databackend.context import BuildContext
    from databackend.geometry import GeometryParams
    from databackend.storage.base import StorageBackend

__all__ = ["DiscoveryMetadataBackend"]

log = logging.getLogger(__name__)


class DiscoveryMetadataBackend(MetadataBackend):
    """Header-only discovery with a persisted, incremental index (see the module docstring).

    Class attributes tune checkpoints and multi-rank waits; ``index_storage`` (a constructor
    argument) moves the index elsewhere than ``{cache_root}/metadata/{id}/``.
    """

    checkpoint_interval_s: float = 60.0
    checkpoint_files: int = 50_000
    rank_timeout_s: float = 1800.0  # the factory option ``peer_timeout_s`` sets it
    rank_poll_s: float = 0.5

    def __init__(self, dataset: ImageBackendConfig, storage: StorageBackend,
                 context: BuildContext, *, index_storage: StorageBackend | None = None,
                 start_method: str | None = None) -> None:
        """Resolve the settings; nothing is read until :meth:`scan` or :attr:`index`."""
        super().__init__(dataset, storage, context)
        opts = context.options
        self._params = cfg.geometry_params(dataset, opts)
        self.caption_settings = cfg.caption_settings(dataset, opts)
        self.settings = cfg.scan_settings(dataset, opts, context.world_size)
        self.rank_timeout_s = opts.peer_timeout_s  # how long other ranks are awaited
        self.index_storage = index_storage or LocalDirectory(
            root=cfg.index_folder(dataset, opts), dataset_id=dataset.id)
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
            found = DatasetIndex.load(self.index_storage, INDEX_KEY)
            if found is None:
                raise DatabackendError(f"dataset {self.dataset.id!r} has no index yet in "
                                       f"{self.index_storage.describe()}; run a scan first")
            if found.params_fingerprint != self.fingerprint and not self.settings.use_persisted:
                raise DatabackendError(f"dataset {self.dataset.id!r}: the stored index was made "
                                       "with other bucketing or caption settings; rescan it")
            self._index = found
        return self._index

    def captions_of(self, i: int) -> tuple[str, ...]:
        """The caption(s) of sample ``i``."""
        return self.index.captions_of(i)

    def scan(self, *, progress: bool = True, rank: int = 0, world_size: int = 1) -> ScanReport:
        """Scan the dataset (see the module docstring) and return what happened.

        With ``world_size > 1`` each rank probes every ``world_size``-th new file, writes its
        rows to ``partial-{tag}-{rank}.dbi`` next to the index, and rank 0 merges them, writes
        the index and ``done.json``; the other ranks wait for it (``rank_timeout_s``) and load
        it. All ranks must see the same listing and share the index folder; no
        ``torch.distributed`` is needed.
        """
        started = time.perf_counter()
        run = ScanRun(self, progress=progress and sys.stderr.isatty(), rank=rank,
                       world_size=max(1, world_size))
        self._index = run.execute()
        report = run.report
        warning = report.describe_index(self._index, self.bucket_rows())
        if warning:
            log.warning("dataset %r: %s", self.dataset.id, warning)
        report.elapsed = time.perf_counter() - started
        self.report = report
        if log.isEnabledFor(logging.INFO):
            log.info("%s", report.format_table())
        return report

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

    def load_image(self, i: int) -> Image.Image:
        """Decode sample ``i`` fully: EXIF orientation applied, RGB; checks the scanned size."""
        from PIL import Image as PILImage
        from PIL import ImageOps

        idx = self.index
        path = idx.paths[i]
        local = self.storage.local_path(path)
        with open(local, "rb") if local else self.storage.open(path) as fh:
            image = ImageOps.exif_transpose(PILImage.open(fh)).convert("RGB")
        expected = (int(idx.original[i, 0]), int(idx.original[i, 1]))
        if image.size != expected:
            raise StorageError(f"dataset {self.dataset.id!r}: {path} is {image.size[0]}x"
                               f"{image.size[1]} but was scanned as {expected[0]}x"
                               f"{expected[1]}; the file changed since the scan, rescan")
        return image
