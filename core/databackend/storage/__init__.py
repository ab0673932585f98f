"""Storage backends: where dataset files and caches live (local disk, S3, HTTP lists, ...)."""

from __future__ import annotations

from databackend.storage.base import FileInfo, StorageBackend
from databackend.storage.fsspec_backend import FsspecBackend

__all__ = ["FileInfo", "FsspecBackend", "StorageBackend"]
