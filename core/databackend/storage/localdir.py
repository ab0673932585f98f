"""Fast storage over a local directory: ``os.scandir`` listing and atomic ``os.replace`` writes.

The core uses it for its own output (indexes, default cache folders); the ``databackend-local``
plugin builds the ``local`` dataset type on top of it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import operator
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO, ClassVar, cast

from databackend.errors import StorageError
from databackend.safepath import check_key, confined
from databackend.storage.base import FileInfo, StorageBackend

__all__ = ["IGNORED_DIRS", "LocalDirectory", "WriteFailedError"]

log = logging.getLogger(__name__)

#: Folders that operating systems and tools create and that never hold dataset files.
_NAME = operator.attrgetter("name")
IGNORED_DIRS = frozenset(
    {".Spotlight-V100", ".Trashes", ".fseventsd", ".TemporaryItems", ".zfs",
     ".ipynb_checkpoints", ".git", "__pycache__"}
)


#: ``_new(FileInfo, (path, size, mtime, etag))``: a FileInfo without the named tuple's
#: Python-level ``__new__`` (one is made per listed file).
_new: Callable[[type[FileInfo], tuple[str, int, float, None]], FileInfo] = tuple.__new__  # type: ignore[assignment]


class WriteFailedError(StorageError, OSError):
    """A write failed (a full disk, no permission): names the file and the folder; a full disk
    is ``fatal`` (every further write would fail too). Nothing partial is left behind.
    ``path`` is the file, ``reason_errno`` the operating system's error number."""

    path: str = ""
    reason_errno: int | None = None


def _bad_name(name: str) -> bool:
    """Whether a file name is not valid UTF-8 (``os.scandir`` gives such bytes as surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _skip(skipped: dict[str, int], reason: str, path: str) -> None:
    skipped[reason] = skipped.get(reason, 0) + 1
    log.warning("skipped %s: %s", path.encode("utf-8", "backslashreplace").decode(), reason)


def _walk(top: str, rel: str, seen: set[tuple[int, int]], exts: frozenset[str] | None,
          lazy: frozenset[str], skipped: dict[str, int]) -> Iterator[FileInfo]:
    """Depth-first scandir walk yielding files; follows symlinked folders once (cycle safe).
    Files with an extension in ``lazy`` are not stat'ed: size -1, mtime 0.0. Unreadable
    folders, non-UTF-8 names and anything that is not a regular file (FIFO, socket, device,
    dangling link) are skipped and counted in ``skipped``, never opened."""
    try:
        entries = sorted(os.scandir(top), key=_NAME)
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:  # permission denied, I/O error, symlink loop
        _skip(skipped, f"unreadable folder ({type(exc).__name__})", top)
        return
    for entry in entries:
        name = entry.name
        if not name.isascii() and _bad_name(name):
            _skip(skipped, "file name is not UTF-8", f"{rel}{name}")
            continue
        try:
            is_dir = entry.is_dir()
            st = entry.stat() if is_dir and name not in IGNORED_DIRS else None
        except OSError as exc:  # a symlink loop, a vanished or unreadable entry
            _skip(skipped, f"unreadable entry ({exc.strerror or type(exc).__name__})",
                  f"{rel}{name}")
            continue
        if is_dir:
            if st is None:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            yield from _walk(entry.path, f"{rel}{name}/", seen, exts, lazy, skipped)
            continue
        ext = name.rpartition(".")[2].lower()
        if ext == "tmp-db" or (exts is not None and ext not in exts):
            continue
        if not entry.is_file():
            _skip(skipped, "not a regular file", f"{rel}{name}")
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
        #: Listing entries skipped by reason (unreadable folders, special files, bad names).
        self.skipped: dict[str, int] = {}

    def data_root(self, config: Any) -> str:
        """The folder to serve when no explicit root is given."""
        raise ValueError("LocalDirectory needs a root folder")

    def full(self, path: str) -> str:
        """The absolute path of a relative key; an absolute key, ``..`` or NUL raises
        :class:`~databackend.safepath.UnsafePathError`."""
        if not path:
            return self.root
        check_key(path, f"dataset {self.dataset_id!r}: key")
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
        yield from _walk(top, rel, seen, exts, lazy, self.skipped)

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
        """Write to a temporary file in the same folder, fsync, then ``os.replace``. A key
        whose folder resolves outside the root (through a symlink) is refused."""
        self._write_atomic(path, (data,), len(data))

    def write_chunks(self, path: str, chunks: Iterable[bytes | memoryview]) -> None:
        """:meth:`write` of the concatenated ``chunks``, streamed into the temporary file."""
        self._write_atomic(path, chunks, None)

    def _write_atomic(self, path: str, chunks: Iterable[bytes | memoryview],
                      total: int | None) -> None:
        full = self.full(path)
        folder = os.path.dirname(full)
        os.makedirs(folder, exist_ok=True)
        if "/" in path:
            confined(self.root, path.rpartition("/")[0], what=f"dataset {self.dataset_id!r}: key")
        try:
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp-db")
        except OSError as exc:
            raise self._write_error(path, total or 0, exc) from exc
        size = 0
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in chunks:
                    size += fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, full)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(exc, OSError):
                raise self._write_error(path, size if total is None else total, exc) from exc
            raise

    def _write_error(self, path: str, size: int, exc: OSError) -> WriteFailedError:
        err = WriteFailedError(f"dataset {self.dataset_id!r}: could not write {path!r} "
                               f"({size} bytes) in {self.root}: {exc.strerror or exc}",
                               fatal=exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS))
        err.path, err.reason_errno = self.full(path), exc.errno
        return err

    def delete(self, path: str) -> None:
        """Delete a file; missing is fine. Never deletes outside the root: a key whose folder
        resolves elsewhere (a symlinked folder) raises
        :class:`~databackend.safepath.UnsafePathError`; a symlinked file is unlinked itself."""
        full = self.full(path)
        if "/" in path:
            confined(self.root, path.rpartition("/")[0], what=f"dataset {self.dataset_id!r}: key")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(full)

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

    def list_share(self, rank: int, world: int, *, extensions: Iterable[str]
                   ) -> Iterator[FileInfo] | None:
        """The top-level folders dealt out over the ranks (rank 0 also takes the top-level
        files); None for a subclass with its own :meth:`list` (it lists as a whole)."""
        if type(self).list is not LocalDirectory.list or self.local_path("") is None:
            return None
        return _local_share(self, frozenset(e.lower().lstrip(".") for e in extensions), rank,
                            world)

    def scan_summary(self) -> dict[str, Any]:
        """Listing entries skipped by reason, when any were."""
        return {"skipped": dict(self.skipped)} if self.skipped else {}

    def describe(self) -> str:
        """``type:/abs/root``."""
        return f"{self.name}:{self.root}"


def _top(root: str, exts: frozenset[str], skipped: dict[str, int]
         ) -> tuple[list[str], list[FileInfo]]:
    """The top level of ``root``: folder names (sorted) and matching files (statted)."""
    folders, files = [], []
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except (PermissionError, FileNotFoundError, NotADirectoryError):
        return [], []
    for entry in entries:
        if not entry.name.isascii() and _bad_name(entry.name):
            _skip(skipped, "file name is not UTF-8", entry.name)
            continue
        try:
            if entry.is_dir():
                if entry.name not in IGNORED_DIRS:
                    folders.append(entry.name)
                continue
            ext = entry.name.rpartition(".")[2].lower()
            if ext not in exts:
                continue
            if not entry.is_file():
                _skip(skipped, "not a regular file", entry.name)
                continue
            st = entry.stat()
        except OSError as exc:  # a symlink loop, a vanished or unreadable entry
            _skip(skipped, f"unreadable entry ({exc.strerror or type(exc).__name__})",
                  entry.name)
            continue
        files.append(FileInfo(entry.name, st.st_size, st.st_mtime, None))
    return folders, files


def _local_share(storage: LocalDirectory, exts: frozenset[str], rank: int,
                world: int) -> Iterator[FileInfo]:
    """Rank ``rank``'s files of ``storage``: the top-level folders ``sorted(folders)[rank::world]``
    (rank 0 also the top-level files), by the rules of :meth:`LocalDirectory.list`."""
    folders, files = _top(storage.local_path("") or "", exts, storage.skipped)
    mine = folders[rank::world]
    if rank == 0:
        yield from files
    count = len(files) if rank == 0 else 0
    for folder in mine:
        for info in storage.list(prefix=folder, extensions=exts):
            count += 1
            yield info
    log.info("rank %d listed %d file(s) in %d of %d top-level folder(s)", rank, count,
             len(mine), len(folders))
