"""The zip storage backend: members of one archive as read-only files."""

from __future__ import annotations

import builtins
import threading
import zipfile
from collections.abc import Iterable, Iterator
from typing import Any

from databackend.pluginapi import FileInfo, ReadOnlyStorageError, StorageBackend

__all__ = ["ZipBackend"]


class ZipBackend(StorageBackend):
    """Every file member of ``zip_file``; writes and deletes are refused."""

    name = "zip"

    def __init__(self, config: Any, *, dataset_id: str, root: str | None = None) -> None:
        """Open the archive (kept open; reads are serialised)."""
        super().__init__(config, dataset_id=dataset_id, root=root)
        self._zip = zipfile.ZipFile(config.zip_file)
        self._members = {i.filename: i for i in self._zip.infolist() if not i.is_dir()}
        self._lock = threading.Lock()

    def list(self, prefix: str = "", *, extensions: Iterable[str] | None = None
             ) -> Iterator[FileInfo]:
        """Members under ``prefix`` with the given extensions."""
        exts = {e.lower() for e in extensions} if extensions is not None else None
        for name, info in sorted(self._members.items()):
            ext = name.rpartition(".")[2].lower()
            if name.startswith(prefix) and (exts is None or ext in exts):
                yield FileInfo(name, info.file_size, 0.0, f"{info.CRC:08x}")

    def _info(self, path: str) -> zipfile.ZipInfo:
        if path not in self._members:
            raise FileNotFoundError(f"dataset {self.dataset_id!r}: {path!r} is not in the zip")
        return self._members[path]

    def read(self, path: str) -> bytes:
        """The member's bytes."""
        info = self._info(path)
        with self._lock:
            return self._zip.read(info)

    def exists(self, path: str) -> bool:
        """Whether the member exists."""
        return path in self._members

    def stat(self, path: str) -> FileInfo:
        """Size from the central directory."""
        info = self._info(path)
        return FileInfo(path, info.file_size, 0.0, f"{info.CRC:08x}")

    def caption(self, path: str) -> str | builtins.list[str] | None:
        """The member's comment (None when empty)."""
        return self._info(path).comment.decode("utf-8") or None

    def write(self, path: str, data: bytes) -> None:
        """Refused: read-only."""
        raise ReadOnlyStorageError(f"dataset {self.dataset_id!r}: zip storage is read-only "
                                   f"(cannot write {path!r})")

    def delete(self, path: str) -> None:
        """Refused: read-only."""
        raise ReadOnlyStorageError(f"dataset {self.dataset_id!r}: zip storage is read-only "
                                   f"(cannot delete {path!r})")

    def describe(self) -> str:
        """``zip:{file}``."""
        return f"zip:{self.config.zip_file}"

    def close(self) -> None:
        """Close the archive."""
        self._zip.close()


# The declarations live on the registered type (light to import); the class gets them here too.
from databackend_zipstore import ZIP  # noqa: E402

ZIP.declare(ZipBackend)
