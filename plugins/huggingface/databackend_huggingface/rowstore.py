"""The local row store of streaming datasets: random access to rows seen once in a stream.

A streaming scan reads the ``IterableDataset`` once. The encoded image bytes of every row it
keeps are appended, as they are (no decode, no re-encode), to shard files of at most
``shard_bytes`` each; a row map ``(row, shard, offset, length)`` is written when the pass ends.
Later reads are one ``os.pread``. Layout, under the dataset's index folder::

    rows/{tag}-00000.bin ...      the shards (plain concatenated image files)
    rows/{tag}.map.npy            int64 (n, 4): row, shard, offset, length (sorted by row)

``tag`` identifies the pass (dataset fingerprint and settings), so a store left by a pass over
other data is never read; :meth:`RowStoreWriter.commit` deletes stores of other tags. Shards are
written as ``.part`` files and renamed on commit, so an interrupted pass leaves nothing usable
behind (the next scan starts the pass again). Shards are not fsynced (that would double the
cost of a pass); instead :meth:`RowStore.exists` checks every shard's size against the map, so
a store truncated by a crash is treated as absent and the pass is redone.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import threading

import numpy as np

__all__ = ["RowStore", "RowStoreWriter"]

log = logging.getLogger(__name__)

_GIB = 1 << 30


class RowStoreWriter:
    """Appends rows during one streaming pass; :meth:`commit` makes them readable."""

    def __init__(self, folder: str, tag: str, *, shard_bytes: int = _GIB) -> None:
        """Start a new store for ``tag`` in ``folder`` (created if needed)."""
        self.folder, self.tag, self.shard_bytes = folder, tag, max(1, shard_bytes)
        os.makedirs(folder, exist_ok=True)
        self._entries: list[tuple[int, int, int, int]] = []
        self._shard, self._written = -1, 0
        self._fh: io.BufferedWriter | None = None
        self._parts: list[str] = []

    def _next_shard(self) -> None:
        if self._fh is not None:
            self._fh.close()
        self._shard += 1
        path = os.path.join(self.folder, f"{self.tag}-{self._shard:05d}.bin.part")
        self._parts.append(path)
        self._fh = open(path, "wb")  # noqa: SIM115 (closed in _next_shard/commit/abort)
        self._written = 0

    def add(self, row: int, data: bytes | memoryview) -> None:
        """Append the encoded image of ``row``."""
        size = len(data)
        if self._fh is None or (self._written and size and self._written + size > self.shard_bytes):
            self._next_shard()
        assert self._fh is not None
        self._fh.write(data)
        self._entries.append((row, self._shard, self._written, size))
        self._written += size

    def __len__(self) -> int:
        return len(self._entries)

    def commit(self) -> RowStore:
        """Flush, rename the shards, write the row map, delete other tags' files."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        for part in self._parts:
            os.replace(part, part[:-len(".part")])
        table = np.array(self._entries, dtype=np.int64).reshape(-1, 4)
        table = table[np.argsort(table[:, 0], kind="stable")]
        tmp = os.path.join(self.folder, f".{self.tag}.map.tmp.npy")
        np.save(tmp, table)
        os.replace(tmp, os.path.join(self.folder, f"{self.tag}.map.npy"))
        RowStore.remove_others(self.folder, keep=self.tag)
        return RowStore(self.folder, self.tag)

    def abort(self) -> None:
        """Close and delete the partial shards."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        for part in self._parts:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(part)


class RowStore:
    """Read side of a committed store (thread-safe; file descriptors open on first use)."""

    def __init__(self, folder: str, tag: str) -> None:
        """Open the store ``tag`` in ``folder``; raises FileNotFoundError when it is absent."""
        self.folder, self.tag = folder, tag
        self.table = np.load(os.path.join(folder, f"{tag}.map.npy"))
        self._rows = self.table[:, 0]
        self._fds: dict[int, int] = {}
        self._lock = threading.Lock()

    @staticmethod
    def exists(folder: str, tag: str) -> bool:
        """Whether a complete store for ``tag`` is in ``folder`` (map present, every shard of
        the size the map implies)."""
        path = os.path.join(folder, f"{tag}.map.npy")
        if not os.path.isfile(path):
            return False
        try:
            table = np.load(path)
            for shard in np.unique(table[:, 1]):
                rows = table[table[:, 1] == shard]
                end = int((rows[:, 2] + rows[:, 3]).max())
                if os.path.getsize(os.path.join(folder, f"{tag}-{int(shard):05d}.bin")) != end:
                    return False
        except (OSError, ValueError, IndexError):
            return False
        return True

    @classmethod
    def latest(cls, folder: str) -> RowStore | None:
        """The complete store in ``folder`` (a commit leaves at most one), or None."""
        try:
            names = sorted(n for n in os.listdir(folder) if n.endswith(".map.npy"))
        except (FileNotFoundError, NotADirectoryError):
            return None
        for name in reversed(names):
            tag = name[: -len(".map.npy")]
            if cls.exists(folder, tag):
                return cls(folder, tag)
        return None

    def current(self) -> bool:
        """Whether this store is still in its folder (a newer pass replaces it)."""
        return os.path.isfile(os.path.join(self.folder, f"{self.tag}.map.npy"))

    @staticmethod
    def remove_others(folder: str, keep: str) -> None:
        """Delete the files of every other tag (and stale partial shards)."""
        for name in os.listdir(folder):
            if not name.startswith((keep + "-", keep + ".")) or name.endswith(".part"):
                with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                    os.unlink(os.path.join(folder, name))
                    log.debug("row store: removed stale %s", name)

    def __len__(self) -> int:
        return len(self._rows)

    def _entry(self, row: int) -> np.ndarray:
        k = int(np.searchsorted(self._rows, row))
        if k >= len(self._rows) or self._rows[k] != row:
            raise FileNotFoundError(f"row {row} is not in the row store {self.folder}/{self.tag}")
        return self.table[k]  # type: ignore[no-any-return]

    def has(self, row: int) -> bool:
        """Whether ``row`` was stored."""
        k = int(np.searchsorted(self._rows, row))
        return k < len(self._rows) and int(self._rows[k]) == row

    def size(self, row: int) -> int:
        """The byte size of ``row``."""
        return int(self._entry(row)[3])

    def _fd(self, shard: int) -> int:
        with self._lock:
            fd = self._fds.get(shard)
            if fd is None:
                fd = os.open(os.path.join(self.folder, f"{self.tag}-{shard:05d}.bin"), os.O_RDONLY)
                self._fds[shard] = fd
            return fd

    def read(self, row: int, start: int = 0, length: int | None = None) -> bytes:
        """The bytes of ``row`` (or ``length`` bytes from ``start``)."""
        _, shard, offset, size = (int(v) for v in self._entry(row))
        start = min(max(0, start), size)
        want = size - start if length is None else max(0, min(length, size - start))
        return os.pread(self._fd(shard), want, offset + start)

    def close(self) -> None:
        """Close the open shard files."""
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()
