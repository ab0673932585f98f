"""Fast storage over a local directory: ``os.scandir`` listing and atomic ``os.replace`` writes.

The core uses it for its own output (indexes, default cache folders); the ``databackend-local``
plugin builds the ``local`` dataset type on top of it.
"""

from __future__ import annotations

import contextlib
import operator
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO, ClassVar, cast

from databackend.storage.base import FileInfo, StorageBackend

__all__ = ["IGNORED_DIRS", "LocalDirectory"]

#: Folders that operating systems and tools create and that never hold dataset files.
_NAME = operator.attrgetter("name")
IGNORED_DIRS = frozenset(
    {".Spotlight-V100", ".Trashes", ".fseventsd", ".TemporaryItems", ".zfs",
     ".ipynb_checkpoints", ".git", "__pycache__"}
)


#: ``_new(FileInfo, (path, size, mtime, etag))``: a FileInfo without the named tuple's
#: Python-level ``__new__`` (one is made per listed file).
_new: Callable[[type[FileInfo], tuple[str, int, float, None]], FileInfo] = tuple.__new__  # type: ignore[assignment]


def _walk(top: str, rel: str, seen: set[tuple[int, int]], exts: frozenset[str] | None,
          lazy: frozenset[str]) -> Iterator[FileInfo]:
    """Depth-first scandir walk yielding files; follows symlinked folders once (cycle safe).
    Files with an extension in ``lazy`` are not stat'ed: size -1, mtime 0.0."""
    try:
        entries = sorted(os.scandir(top), key=_NAME)
    except (PermissionError, FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        name = entry.name
        if entry.is_dir():
            if name in IGNORED_DIRS:
                continue
            st = entry.stat()
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            yield from _walk(entry.path, f"{rel}{name}/", seen, exts, lazy)
            continue
        ext = name.rpartition(".")[2].lower()
        if ext == "tmp-db" or (exts is not None and ext not in exts):
            continue
        if ext in lazy:
            yield _new(FileInfo, (f"{rel}{name}", -1, 0.0, None))
            continue
        try:
            st = entry.stat()
        except OSError:
            continue
        yield _new(FileInfo, (f"{rel}{name}", st.st_size, st.st_mtime, None))


class LocalDirectory(StorageBackend):
    """Files under one local folder; writes are atomic (temporary file, fsync, rename)."""

    name = "directory"
    #: Internal: built directly with a root, never from a dataset config.
    Config: ClassVar[type[Any]] = dict
    io_concurrency = 8
    local_files = True

    def __init__(self, config: Any = None, *, dataset_id: str = "", root: str | None = None) -> None:
        """Serve the folder ``root`` (or :meth:`data_root` of the config)."""
        super().__init__(config, dataset_id=dataset_id, root=root)
        self.root = os.path.abspath(os.path.expanduser(root if root is not None
                                                       else self.data_root(config)))

    def data_root(self, config: Any) -> str:
        """The folder to serve when no explicit root is given."""
        raise ValueError("LocalDirectory needs a root folder")

    def full(self, path: str) -> str:
        """The absolute path of a relative key."""
        if not path:
            return self.root
        return f"{self.root}/{path}" if os.sep == "/" else os.path.join(self.root, *path.split("/"))

    def list(self, prefix: str = "", *, extensions: Iterable[str] | None = None,
             unstatted: Iterable[str] = ()) -> Iterator[FileInfo]:
        """Walk the tree with scandir; returns sorted relative keys with sizes and mtimes.

        Files with an extension in ``unstatted`` come without a stat (size -1, mtime 0.0): a
        cold scan stats them where it opens them anyway.
        """
        exts = frozenset(e.lower().lstrip(".") for e in extensions) if extensions else None
        lazy = frozenset(e.lower().lstrip(".") for e in unstatted)
        top = self.full(prefix.rstrip("/"))
        rel = f"{prefix.rstrip('/')}/" if prefix else ""
        st = os.stat(top) if os.path.isdir(top) else None
        seen = {(st.st_dev, st.st_ino)} if st else set()
        yield from _walk(top, rel, seen, exts, lazy)

    def read(self, path: str) -> bytes:
        """Read a whole file."""
        with open(self.full(path), "rb") as fh:
            return fh.read()

    def read_range(self, path: str, start: int, length: int) -> bytes:
        """Read ``length`` bytes from ``start`` with one ``pread``."""
        fd = os.open(self.full(path), os.O_RDONLY)
        try:
            return os.pread(fd, length, start)
        finally:
            os.close(fd)

    def write(self, path: str, data: bytes) -> None:
        """Write to a temporary file in the same folder, fsync, then ``os.replace``."""
        full = self.full(path)
        folder = os.path.dirname(full)
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp-db")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, full)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def delete(self, path: str) -> None:
        """Delete a file; missing is fine."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.full(path))

    def exists(self, path: str) -> bool:
        """Whether the file exists."""
        return os.path.exists(self.full(path))

    def stat(self, path: str) -> FileInfo:
        """Size and mtime from ``os.stat``."""
        st = os.stat(self.full(path))
        return FileInfo(path, st.st_size, st.st_mtime)

    def open(self, path: str) -> BinaryIO:
        """Open for binary reading."""
        return cast(BinaryIO, open(self.full(path), "rb"))

    def local_path(self, path: str) -> str | None:
        """Files are local: return the absolute path."""
        return self.full(path)

    def describe(self) -> str:
        """``type:/abs/root``."""
        return f"{self.name}:{self.root}"
