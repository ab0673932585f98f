"""``CsvBackend``: a read-only dataset whose files are the image URLs listed in a CSV."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO

from databackend.pluginapi import FileInfo, StorageBackend
from databackend_csv.cache import DiskCache
from databackend_csv.config import CsvConfig
from databackend_csv.downloader import Downloader
from databackend_csv.errors import ReadOnlyError
from databackend_csv.httpclient import FetchSettings
from databackend_csv.quarantine import Quarantine
from databackend_csv.sources import Fetcher
from databackend_csv.stats import DownloadEvent, DownloadStats
from databackend_csv.table import CsvTable, Row, load_table
from databackend_csv.urls import redact

__all__ = ["CACHE_SUBDIR", "LISTED_MTIME", "LISTED_SIZE", "QUARANTINE_FILE", "CsvBackend"]

logger = logging.getLogger(__name__)

#: Sub-folder of ``csv_cache_dir`` holding the downloaded files.
CACHE_SUBDIR = "objects"
#: File in ``csv_cache_dir`` holding the quarantine.
QUARANTINE_FILE = "quarantine.json"
#: The ``mtime`` listed for a URL: it has none, and a constant keeps rescans incremental (the
#: ``etag``, the URL hash, is the identity). A URL whose quarantine is over is listed with the
#: time of its last failure instead, so an incremental scan sees it as changed and retries it.
LISTED_MTIME = 0.0
#: The ``size`` listed for every URL: unknown before a download (the scanner's convention for
#: "unknown", so it reads a full header), and constant so rescans stay incremental.
LISTED_SIZE = -1

Caption = str | list[str] | None
Results = list[bytes | BaseException]


class CsvBackend(StorageBackend):
    """Image URLs from a CSV as a read-only dataset (``"type": "csv"``).

    Virtual paths are ``ab/<sha256 of the whole URL>.<ext>``. Reads come from a bounded local
    cache or are downloaded (timeouts, retries, per-host limit, content and size checks); bad
    URLs are quarantined and left out of listings until ``csv_quarantine_seconds`` passed.
    """

    name = "csv"
    Config = CsvConfig
    # Declarations (read_only, caption strategy, aliases...): databackend_csv.CSV.
    #: The default of ``csv_concurrency``; each instance holds its dataset's value.
    io_concurrency = 32

    def __init__(self, config: CsvConfig, *, dataset_id: str, root: str | None = None,
                 sleep: Callable[[float], None] | None = None) -> None:
        """Read the CSV and open the cache; raises ``ValueError``/``FileNotFoundError`` naming
        the dataset when the config or the CSV is unusable. ``root`` is ignored."""
        super().__init__(config, dataset_id=dataset_id, root=root)
        problems = config.problems()
        if problems:
            raise ValueError(f"dataset {dataset_id!r}: " + "; ".join(problems))
        # A per-dataset value of the class-level default (read by read_many and the scan).
        self.io_concurrency = config.csv_concurrency
        self.table: CsvTable = self._load(config)
        os.makedirs(config.csv_cache_dir, exist_ok=True)
        self.stats = DownloadStats()
        self.downloader = Downloader(
            DiskCache(os.path.join(config.csv_cache_dir, CACHE_SUBDIR),
                      config.csv_cache_max_bytes),
            Quarantine(os.path.join(config.csv_cache_dir, QUARANTINE_FILE),
                       config.csv_quarantine_seconds),
            Fetcher(FetchSettings.from_config(config),
                    on_request=lambda: self.stats.add("requests"), sleep=sleep),
            self.stats)

    def _load(self, config: CsvConfig) -> CsvTable:
        """The URL table; errors name the dataset."""
        try:
            return load_table(config)
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"dataset {self.dataset_id!r}: `csv_file` "
                                    f"{redact(config.csv_file)} does not exist") from exc
        except ValueError as exc:
            raise ValueError(f"dataset {self.dataset_id!r}: {exc}") from exc

    # --- listing ------------------------------------------------------------------------
    def list(self, prefix: str = "", *, extensions: Iterable[str] | None = None) -> Iterator[FileInfo]:
        """Every URL not in quarantine, sorted by key, without a request; ``size`` is -1
        (:data:`LISTED_SIZE`: unknown), ``etag`` the URL hash."""
        exts = frozenset(e.lower().lstrip(".") for e in extensions) if extensions else None
        quarantine = self.downloader.quarantine
        listed = skipped = 0
        try:
            for row in self.table:
                if prefix and not row.key.startswith(prefix):
                    continue
                if exts is not None and row.key.rpartition(".")[2] not in exts:
                    continue
                if quarantine.blocked(row.key) is not None:
                    skipped += 1
                    continue
                listed += 1
                yield self._info(row)
        finally:
            self.stats.add("listed", listed)
            self.stats.add("skipped_quarantined", skipped)

    def _info(self, row: Row) -> FileInfo:
        """The listing entry of a row (see :data:`LISTED_MTIME`)."""
        entry = self.downloader.quarantine.get(row.key)
        mtime = entry.time if entry is not None else LISTED_MTIME
        return FileInfo(row.key, LISTED_SIZE, mtime, row.key.rpartition("/")[2].split(".")[0])

    def _row(self, path: str) -> Row:
        """The row of a virtual path; ``FileNotFoundError`` if the CSV has no such URL."""
        row = self.table.get(path)
        if row is None:
            raise FileNotFoundError(f"dataset {self.dataset_id!r}: {path!r} is not a URL of "
                                    f"{redact(self.config.csv_file)}")
        return row

    def exists(self, path: str) -> bool:
        """Whether ``path`` is a URL of the CSV that is not quarantined."""
        return path in self.table and self.downloader.quarantine.blocked(path) is None

    def stat(self, path: str) -> FileInfo:
        """The listing entry of ``path`` (no request is made)."""
        return self._info(self._row(path))

    def url(self, path: str) -> str:
        """The URL behind a virtual path."""
        return self._row(path).url

    def caption(self, path: str) -> Caption:
        """The caption column of the URL's row (a list when the URL is listed with several
        captions); None when there is no caption column or the row has none."""
        row = self.table.get(path)
        return row.caption if row is not None else None

    # --- reading ------------------------------------------------------------------------
    def read(self, path: str) -> bytes:
        """The whole image, from the cache or downloaded (then cached).

        Raises ``FileNotFoundError`` for unknown paths, :class:`~databackend_csv.errors.
        QuarantinedError` (without a request) for quarantined URLs and
        :class:`~databackend_csv.errors.DownloadError` when the download fails.
        """
        return self.downloader.read(path, self._row(path).url)

    def read_range(self, path: str, start: int, length: int) -> bytes:
        """``length`` bytes from ``start``; uses an HTTP range request when the file is not
        cached, so image headers are probed without downloading the whole image."""
        if length <= 0:
            return b""
        return self.downloader.read_range(path, self._row(path).url, start, length)

    def open(self, path: str) -> BinaryIO:
        """The whole image as a binary stream."""
        return io.BytesIO(self.read(path))

    # --- read-only ----------------------------------------------------------------------
    def write(self, path: str, data: bytes) -> None:
        """Always raises :class:`~databackend_csv.errors.ReadOnlyError`."""
        raise ReadOnlyError(f"dataset {self.dataset_id!r}: the csv backend is read-only "
                            f"(cannot write {path!r}); put caches on a local or aws backend")

    def delete(self, path: str) -> None:
        """Always raises :class:`~databackend_csv.errors.ReadOnlyError`."""
        raise ReadOnlyError(f"dataset {self.dataset_id!r}: the csv backend is read-only "
                            f"(cannot delete {path!r}); remove the row from the CSV instead")

    # --- reporting ----------------------------------------------------------------------
    def add_listener(self, listener: Callable[[DownloadEvent], None]) -> None:
        """Call ``listener(event)`` after every read (download, range, cache hit, failure);
        for progress displays. Listeners run on the reading threads and must be quick."""
        self.downloader.listeners.append(listener)

    def quarantine_report(self) -> dict[str, Any]:
        """Quarantined URLs: ``total`` and ``by_reason`` (blocked now), ``due`` (failed longer
        than ``csv_quarantine_seconds`` ago: retried by the next read or scan)."""
        quarantine = self.downloader.quarantine
        by_reason = quarantine.counts()
        blocked = sum(by_reason.values())
        return {"total": blocked, "by_reason": by_reason, "due": len(quarantine) - blocked}

    def scan_summary(self) -> dict[str, Any]:
        """Counters for a scan report (the ``StorageBackend`` hook ``databackend scan``
        prints): rows, this session's network and cache counters (``requests``,
        ``downloads``, ``range_reads``, ``bytes_downloaded``, ``cache_hits``, ``failures`` by
        reason...), the quarantine (still reported once its URLs are left out of listings),
        and the cache's size and evictions. No URLs, so no credentials."""
        cache = self.downloader.cache
        return {"rows": len(self.table), **self.stats.snapshot(),
                "quarantine": self.quarantine_report(),
                "cache": {"files": len(cache), "bytes": cache.total_bytes,
                          "max_bytes": cache.max_bytes, "evictions": cache.evictions}}

    def describe(self) -> str:
        """``csv:<csv_file> (<n> urls)`` without credentials or query strings."""
        return f"{self.name}:{redact(self.config.csv_file)} ({len(self.table)} urls)"

    def close(self) -> None:
        """Write the quarantine, close pooled connections and the cache's ledger file."""
        self.downloader.quarantine.flush()
        self.downloader.fetcher.close()
        self.downloader.cache.close()


# The declarations live on the registered type (light to import); the class gets them here too.
from databackend_csv import CSV  # noqa: E402

CSV.declare(CsvBackend)
