"""databackend-csv: datasets from CSV lists of image URLs (``"type": "csv"``).

Images are downloaded concurrently into a bounded, least-recently-used cache; headers for the
metadata scan come from HTTP range requests; bad URLs are quarantined. See ``docs/csv.md``.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from databackend.pluginapi import BackendType, CaptionStrategy, hookimpl
from databackend_csv.captions import CsvCaptions
from databackend_csv.config import CsvConfig
from databackend_csv.urls import key_for_url, redact

if TYPE_CHECKING:  # loaded on first use (see __getattr__): registration stays light
    from databackend_csv.backend import CsvBackend
    from databackend_csv.cache import DiskCache
    from databackend_csv.errors import DownloadError, QuarantinedError, ReadOnlyError
    from databackend_csv.quarantine import Quarantine, QuarantineEntry
    from databackend_csv.stats import DownloadEvent

__all__ = [
    "CSV",
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
_LAZY = {"CsvBackend": "backend", "DiskCache": "cache", "DownloadError": "errors",
         "QuarantinedError": "errors", "ReadOnlyError": "errors", "Quarantine": "quarantine",
         "QuarantineEntry": "quarantine", "DownloadEvent": "stats"}


def _location(config: Any) -> str | None:
    """The CSV file (credentials in a URL removed)."""
    return redact(str(config.csv_file)) if getattr(config, "csv_file", None) else None


#: The ``csv`` type: read-only, captions from its caption column by default, the SimpleTuner
#: spellings ``csv_hash_filenames`` (alias) and ``csv_shorten_filenames`` (ignored).
CSV = BackendType(name="csv", Config=CsvConfig, implementation="databackend_csv.backend:CsvBackend",
                  read_only=True, default_caption_strategy="csv",
                  key_aliases={"csv_hash_filenames": "hash_filenames"},
                  ignored_keys={"csv_shorten_filenames"},
                  install_hint="pip install databackend-csv", location=_location)


@hookimpl
def databackend_register_backends() -> Sequence[BackendType]:
    """Register the ``csv`` backend type."""
    return [CSV]


@hookimpl
def databackend_register_caption_strategies() -> Sequence[type[CaptionStrategy]]:
    """Register the ``csv`` caption strategy (the caption column; the type's default)."""
    return [CsvCaptions]


def __getattr__(name: str) -> Any:
    """Load the implementation names on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module 'databackend_csv' has no attribute {name!r}")
    return getattr(importlib.import_module(f"databackend_csv.{_LAZY[name]}"), name)
