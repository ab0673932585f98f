"""databackend-csv: datasets from CSV lists of image URLs (``"type": "csv"``).

Images are downloaded concurrently into a bounded, least-recently-used cache; headers for the
metadata scan come from HTTP range requests; bad URLs are quarantined. See ``docs/csv.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

from databackend.pluginapi import CaptionStrategy, StorageBackend, hookimpl
from databackend_csv.backend import CsvBackend
from databackend_csv.cache import DiskCache
from databackend_csv.captions import CsvCaptions
from databackend_csv.config import CsvConfig
from databackend_csv.errors import DownloadError, QuarantinedError, ReadOnlyError
from databackend_csv.quarantine import Quarantine, QuarantineEntry
from databackend_csv.stats import DownloadEvent
from databackend_csv.urls import key_for_url

__all__ = [
    "DATABACKEND_PLUGIN_API",
    "CsvBackend",
    "CsvCaptions",
    "CsvConfig",
    "DiskCache",
    "DownloadError",
    "DownloadEvent",
    "Quarantine",
    "QuarantineEntry",
    "QuarantinedError",
    "ReadOnlyError",
    "databackend_register_backends",
    "databackend_register_caption_strategies",
    "key_for_url",
]

#: The plugin API this plugin is built for (checked by the core at load time).
DATABACKEND_PLUGIN_API = "1.0"


@hookimpl
def databackend_register_backends() -> Sequence[type[StorageBackend]]:
    """Register the ``csv`` backend type."""
    return [CsvBackend]


@hookimpl
def databackend_register_caption_strategies() -> Sequence[type[CaptionStrategy]]:
    """Register the ``csv`` caption strategy (the caption column; the type's default)."""
    return [CsvCaptions]
