"""databackend-csv: datasets from CSV lists of image URLs (``"type": "csv"``).

Images are downloaded concurrently into a bounded, least-recently-used cache; headers for the
metadata scan come from HTTP range requests; bad URLs are quarantined. See ``docs/csv.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

from databackend import StorageBackend, hookimpl
from databackend_csv.backend import CsvBackend
from databackend_csv.cache import DiskCache
from databackend_csv.config import CsvConfig
from databackend_csv.errors import DownloadError, QuarantinedError, ReadOnlyError
from databackend_csv.quarantine import Quarantine, QuarantineEntry
from databackend_csv.stats import DownloadEvent
from databackend_csv.urls import key_for_url

__all__ = [
    "CsvBackend",
    "CsvConfig",
    "DiskCache",
    "DownloadError",
    "DownloadEvent",
    "Quarantine",
    "QuarantineEntry",
    "QuarantinedError",
    "ReadOnlyError",
    "databackend_register_backends",
    "key_for_url",
]


@hookimpl
def databackend_register_backends() -> Sequence[type[StorageBackend]]:
    """Register the ``csv`` backend type."""
    return [CsvBackend]
