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
from typing import TYPE_CHECKING

from databackend.errors import StorageError
from databackend.metadata.indexed import INDEX_KEY, IndexedMetadataBackend
from databackend.metadata.report import ScanReport
from databackend.metadata.scanrun import ScanRun

if TYPE_CHECKING:
    from PIL import Image

    from databackend.storage.base import StorageBackend

__all__ = ["INDEX_KEY", "DiscoveryMetadataBackend"]

log = logging.getLogger(__name__)


class DiscoveryMetadataBackend(IndexedMetadataBackend):
    """Header-only discovery with a persisted, incremental index (see the module docstring).

    Settings, fingerprints, the index and the bucket tables come from
    :class:`~databackend.metadata.indexed.IndexedMetadataBackend`; this class lists and probes.
    """

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
        index = run.execute()
        self.set_index(index)
        report = run.report
        warning = report.describe_index(index, self.bucket_rows())
        if warning:
            log.warning("dataset %r: %s", self.dataset.id, warning)
        report.elapsed = time.perf_counter() - started
        self.report = report
        if log.isEnabledFor(logging.INFO):
            log.info("%s", report.format_table())
        return report

    def raw_image(self, i: int) -> tuple[str | None, StorageBackend] | None:
        """``(local path or None, storage)`` of sample ``i``'s file, for decoders that open it
        themselves (the latent fill's worker processes); None when a subclass decodes in its
        own way (it overrides :meth:`load_image` and not this)."""
        if type(self).load_image is not DiscoveryMetadataBackend.load_image:
            return None
        path = str(self.index.paths[i])
        return self.storage.local_path(path), self.storage

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
