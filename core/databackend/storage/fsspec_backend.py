"""A storage backend over any fsspec filesystem, so a new storage kind only opens its filesystem."""

from __future__ import annotations

import contextlib
import os
import posixpath
import uuid
from abc import abstractmethod
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO, cast

from databackend.storage.base import FileInfo, StorageBackend

__all__ = ["FsspecBackend"]


def _mtime(info: dict[str, Any]) -> float:
    value = info.get("mtime", info.get("LastModified", info.get("created", 0.0)))
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    try:
        return float(value or 0.0)
    except (TypeError, ValueError):
        return 0.0


class FsspecBackend(StorageBackend):
    """Implements the storage interface over ``fsspec.AbstractFileSystem``.

    Subclasses implement :meth:`make_filesystem` and :meth:`data_root`; everything else
    (listing, ranged reads, atomic writes via a temporary key and a move) is provided.
    """

    def __init__(self, config: Any, *, dataset_id: str, root: str | None = None) -> None:
        """Open the filesystem and resolve the root folder."""
        super().__init__(config, dataset_id=dataset_id, root=root)
        self.fs = self.make_filesystem(config)
        self.root = (root if root is not None else self.data_root(config)).rstrip("/")

    @abstractmethod
    def make_filesystem(self, config: Any) -> Any:
        """Return the ``fsspec.AbstractFileSystem`` this backend reads."""

    def data_root(self, config: Any) -> str:
        """The root folder of the dataset when no explicit root is given."""
        return ""

    def full(self, path: str) -> str:
        """Join ``path`` onto the root."""
        return posixpath.join(self.root, path) if self.root else path

    def _relative(self, full: str) -> str:
        root = self.fs._strip_protocol(self.root) if self.root else ""
        full = self.fs._strip_protocol(full)
        return full[len(root) :].lstrip("/") if root and full.startswith(root) else full

    def list(self, prefix: str = "", *, extensions: Iterable[str] | None = None) -> Iterator[FileInfo]:
        """List files recursively under ``prefix`` with their sizes and mtimes."""
        exts = {e.lower().lstrip(".") for e in extensions} if extensions else None
        base = self.full(prefix) if prefix else (self.root or "")
        if not self.fs.exists(base):
            return
        found = self.fs.find(base, detail=True, withdirs=False)
        for full, info in sorted(cast(dict[str, dict[str, Any]], found).items()):
            if exts is not None and full.rsplit(".", 1)[-1].lower() not in exts:
                continue
            yield FileInfo(self._relative(full), int(info.get("size") or 0), _mtime(info),
                           info.get("ETag"))

    def read(self, path: str) -> bytes:
        """Read one whole file."""
        return cast(bytes, self.fs.cat_file(self.full(path)))

    def read_range(self, path: str, start: int, length: int) -> bytes:
        """Read a byte range (a ranged GET on object stores)."""
        return cast(bytes, self.fs.cat_file(self.full(path), start=start, end=start + length))

    def write(self, path: str, data: bytes) -> None:
        """Write to a temporary sibling, then move it over the final name."""
        full = self.full(path)
        parent = posixpath.dirname(full)
        if parent:
            self.fs.makedirs(parent, exist_ok=True)
        tmp = f"{full}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.fs.pipe_file(tmp, data)
        self.fs.mv(tmp, full)

    def delete(self, path: str) -> None:
        """Delete a file; a missing file is ignored."""
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self.full(path))

    def exists(self, path: str) -> bool:
        """Whether the file exists."""
        return bool(self.fs.exists(self.full(path)))

    def stat(self, path: str) -> FileInfo:
        """Size and mtime of one file."""
        info = self.fs.info(self.full(path))
        return FileInfo(path, int(info.get("size") or 0), _mtime(info), info.get("ETag"))

    def open(self, path: str) -> BinaryIO:
        """Open a file for binary reading."""
        return cast(BinaryIO, self.fs.open(self.full(path), "rb"))

    def describe(self) -> str:
        """``type:root``."""
        return f"{self.name}:{self.root}"
