"""The metadata backend of media datasets (video now; audio through its own spec).

:class:`MediaMetadataBackend` scans with :class:`~databackend.media.scan.MediaScan` into a
:class:`~databackend.media.index.MediaIndex` kept where the image index would be
(``{cache_root}/metadata/{id}/``), and reads samples back: :meth:`load_frames` decodes only
the window of a sample, :meth:`load_image` its first frame.
"""

from __future__ import annotations

import hashlib
import io
import logging
import sys
import time
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import numpy as np

from databackend.errors import StorageError
from databackend.media.decode import DecodeStats, decode_window
from databackend.media.defaults import DEFAULT_PROBES
from databackend.media.index import MediaIndex
from databackend.media.probe import ProbeRegistry
from databackend.media.reader import RangeFile
from databackend.media.report import MediaScanReport, media_bucket_table
from databackend.media.scan import MediaScan
from databackend.media.spec import MediaKindSpec
from databackend.metadata.indexed import IndexedMetadataBackend

if TYPE_CHECKING:
    from PIL import Image

    from databackend.config.models import ImageBackendConfig
    from databackend.context import BuildContext
    from databackend.media.windows import Window
    from databackend.storage.base import StorageBackend

__all__ = ["MediaMetadataBackend"]

log = logging.getLogger(__name__)
_READ_BLOCK = 1 << 20  # ranged reads while decoding fetch 1 MiB at a time


class MediaMetadataBackend(IndexedMetadataBackend):
    """Scans a media dataset (see the module docstring); ``spec`` says which kind. Settings,
    the rank waits (``peer_timeout_s``) and the persisted index come from
    :class:`~databackend.metadata.indexed.IndexedMetadataBackend`; the fingerprint also
    covers the kind's own settings."""

    index_class = MediaIndex  # type: ignore[assignment]  # duck-types DatasetIndex

    def __init__(self, dataset: ImageBackendConfig, storage: StorageBackend,
                 context: BuildContext, *, spec: MediaKindSpec,
                 probes: ProbeRegistry = DEFAULT_PROBES,
                 index_storage: StorageBackend | None = None) -> None:
        """Resolve the settings; nothing is read until :meth:`scan` or :attr:`index`."""
        super().__init__(dataset, storage, context, index_storage=index_storage)
        self.spec, self.probes = spec, probes
        parts = (self.geometry_fp, self.caption_fp, spec.fingerprint())
        self.fingerprint = hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
        self.decode_stats = DecodeStats()
        self.report: MediaScanReport | None = None  # type: ignore[assignment]

    @property
    def index(self) -> MediaIndex:  # type: ignore[override]  # a DatasetIndex and more
        """The index of the last scan, else the persisted one (which must match the settings)."""
        return cast(MediaIndex, super().index)

    def scan(self, *, progress: bool = True, rank: int = 0, world_size: int = 1
             ) -> MediaScanReport:
        """Scan the dataset (:class:`~databackend.media.scan.MediaScan`) and report."""
        started = time.perf_counter()
        run = MediaScan(self, progress=progress and sys.stderr.isatty(), rank=rank,
                        world_size=max(1, world_size))
        index = run.execute()
        self.set_index(index)  # type: ignore[arg-type]
        report = run.report
        warning = report.describe_index(index.base, self.bucket_rows())
        if warning:
            log.warning("dataset %r: %s", self.dataset.id, warning)
        report.elapsed = time.perf_counter() - started
        self.report = report
        log.info("%s", report.format_table())
        return report

    def bucket_rows(self) -> list[Any]:
        """The bucket table (with window and clip frame counts) of the current index."""
        s, idx = self.settings, self.index
        return media_bucket_table(idx.buckets(), label=self.spec.bucket_label,
                                  window_frames=idx.window_table[:, 1],
                                  source_frames=idx.columns["frames" if self.spec.spatial else "samples"],
                                  batch_size=s.batch_size,
                                  repeats=s.repeats, policy=s.policy, world_size=s.world_size,
                                  rounding=self.params.rounding)

    def effective_buckets(self) -> dict[tuple[int, ...], np.ndarray]:  # type: ignore[override]
        """``{bucket key: indices}`` after the short-bucket policy."""
        buckets = self.index.buckets()
        return {r.key: buckets[r.key] for r in self.bucket_rows() if r.batches > 0}

    def load_frames(self, i: int, window: Window | None = None) -> np.ndarray:
        """The frames of sample ``i``'s window (or of ``window``), RGB ``uint8``
        ``[L, H, W, 3]`` as displayed; only the window is decoded (a seek to the keyframe
        before it)."""
        idx = self.index
        path, info = idx.paths[i], idx.info(i)
        window = window or idx.window(i)
        local = self.storage.local_path(path)
        try:
            if local is not None:
                frames = decode_window(local, window, fps=info.fps, stats=self.decode_stats)
            else:
                with self._open_remote(path, int(idx.file_size[i])) as fh:
                    frames = decode_window(fh, window, fps=info.fps, stats=self.decode_stats)
        except StorageError:
            raise
        except Exception as exc:
            raise StorageError(f"dataset {self.dataset.id!r}: cannot decode {path}: {exc}") from exc
        expected = (int(idx.original[i, 1]), int(idx.original[i, 0]))
        if frames.shape[1:3] != expected:
            raise StorageError(f"dataset {self.dataset.id!r}: {path} decodes to "
                               f"{frames.shape[2]}x{frames.shape[1]} but was scanned as "
                               f"{expected[1]}x{expected[0]}; the file changed, rescan")
        return frames

    def _open_remote(self, path: str, size: int) -> BinaryIO:
        """A seekable file over ranged reads of ``path``; one whole read when the storage
        cannot tell its size."""
        if size <= 0:  # not known to the listing (e.g. path cells of a table)
            size = self.storage.stat(path).size
        if size < 0:
            return io.BytesIO(self.storage.read(path))

        def read_at(at: int, n: int) -> bytes:
            """One ranged read of the clip."""
            return self.storage.read_range(path, at, n)

        return RangeFile(read_at, size, block=_READ_BLOCK, name=path)  # type: ignore[return-value]

    def load_image(self, i: int) -> Image.Image:
        """The first frame of sample ``i``'s window as an RGB image."""
        from PIL import Image as PILImage

        return PILImage.fromarray(self.load_frames(i)[0])
