"""Metadata discovery: scan a dataset's images into a persisted, bucketed :class:`DatasetIndex`.

The built-in backend is :class:`~databackend.metadata.discovery.DiscoveryMetadataBackend`
(created through the ``databackend_make_metadata_backend`` hook); see ``docs/metadata.md``.
Submodules import lazily so ``databackend.metadata.backend`` stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BucketRow", "CaptionTable", "DatasetIndex", "DiscoveryMetadataBackend",
           "MetadataBackend", "ScanReport", "SkippedFiles", "bucket_table", "effective_buckets"]

_WHERE = {
    "MetadataBackend": "backend", "CaptionTable": "index", "DatasetIndex": "index",
    "SkippedFiles": "index", "BucketRow": "report", "ScanReport": "report",
    "bucket_table": "report", "effective_buckets": "report",
    "DiscoveryMetadataBackend": "discovery",
}


def __getattr__(name: str) -> Any:
    """Import the public names on first use."""
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"databackend.metadata.{_WHERE[name]}"), name)
