"""A bounded on-disk download cache with least-recently-used eviction.

Files live at ``{root}/{key}`` (the backend's virtual keys, ``ab/<sha256>.jpg``). Writes are
atomic (temporary file in the same folder, then ``os.replace``). Every hit sets the file's
mtime, so the LRU order survives restarts: the index is rebuilt from a directory scan sorted by
mtime. Space is reserved *before* a file is written and older entries are evicted first, so the
bytes on disk never exceed ``max_bytes``.

Processes sharing a folder hold the limit together: every reservation and eviction happens
under a file lock (``{root}.lock``, the ``filelock`` library) and updates a ledger
(``{root}.ledger``: the bytes held and who wrote it last). A process that finds the ledger
written by another one rescans the folder before reserving, so the limit holds across
processes, not only threads; a process alone never rescans.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator

from filelock import FileLock

from databackend.pluginapi import check_key

__all__ = ["RESYNC_SECONDS", "DiskCache"]

logger = logging.getLogger(__name__)

#: Minimum seconds between two rescans of the cache folder (for processes sharing it).
RESYNC_SECONDS = 30.0
_TMP_SUFFIX = ".part"
_STALE_TMP_SECONDS = 3600.0
_LEDGER_SIZE = 54  # "{total:20d} {token:32}\n"
_POLL = 0.002  # seconds between tries of a file lock another process holds


def _scan(root: str) -> Iterator[tuple[float, str, int]]:
    """``(mtime, key, size)`` of every cached file; removes temporary files left by crashes."""
    now = time.time()
    with contextlib.suppress(FileNotFoundError):
        for sub in os.scandir(root):
            if not sub.is_dir():
                continue
            for entry in os.scandir(sub.path):
                with contextlib.suppress(OSError):
                    st = entry.stat()
                    if not entry.name.endswith(_TMP_SUFFIX):
                        yield st.st_mtime, f"{sub.name}/{entry.name}", st.st_size
                    elif now - st.st_mtime > _STALE_TMP_SECONDS:
                        os.unlink(entry.path)


class DiskCache:
    """Whole downloaded files under ``root``, at most ``max_bytes`` in total (LRU eviction)."""

    def __init__(self, root: str, max_bytes: int) -> None:
        """Open (and create) the cache folder and index what it already holds."""
        self.root = root
        self.max_bytes = max_bytes
        self.evictions = 0
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, int] = OrderedDict()
        self._total = 0
        self._pending: dict[str, int] = {}  # reserved, being written: never evicted
        self._synced = 0.0
        self._token = ""
        self._fd: int | None = None
        os.makedirs(root, exist_ok=True)
        self._flock = FileLock(f"{root.rstrip(os.sep)}.lock")
        with self._lock, self._flock.acquire(poll_interval=_POLL):
            self._resync()
            self._evict_until(self.max_bytes)
            self._save_ledger()

    @property
    def total_bytes(self) -> int:
        """Bytes currently held (including space reserved by writes in progress)."""
        return self._total

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def path(self, key: str) -> str:
        """The file of a key (whether or not it is cached); a key that would leave the cache
        folder raises :class:`~databackend.safepath.UnsafePathError`."""
        return os.path.join(self.root, *check_key(key, "download cache key").split("/"))

    def size(self, key: str) -> int | None:
        """The size of a cached file, or None."""
        return self._entries.get(key)

    def get(self, key: str) -> bytes | None:
        """The cached bytes of ``key`` (marking it recently used), or None."""
        if key not in self._entries:
            return None
        try:
            with open(self.path(key), "rb") as fh:
                data = fh.read()
        except FileNotFoundError:  # evicted meanwhile, here or by another process
            self._forget(key)
            return None
        self._touch(key)
        return data

    def read_range(self, key: str, start: int, length: int) -> bytes | None:
        """``length`` bytes from ``start`` of a cached file (short at the end), or None."""
        if key not in self._entries:
            return None
        try:
            fd = os.open(self.path(key), os.O_RDONLY)
        except FileNotFoundError:
            self._forget(key)
            return None
        try:
            data = os.pread(fd, length, start)
        finally:
            os.close(fd)
        self._touch(key)
        return data

    def put(self, key: str, data: bytes) -> bool:
        """Store ``data`` atomically, evicting least recently used files to make room.

        Returns False (and stores nothing) when ``data`` alone is larger than the cache.
        """
        size = len(data)
        if size > self.max_bytes:
            logger.debug("csv cache: %s (%d bytes) is larger than the cache", key, size)
            return False
        # The thread lock first: threads of this process queue on it, so only one of them
        # polls the file lock, which only other processes contend.
        with self._lock, self._flock.acquire(poll_interval=_POLL):
            if key in self._entries and os.path.exists(self.path(key)):
                self._entries.move_to_end(key)
                return True
            if not self._reserve(key, size):
                self._save_ledger()  # evictions made room for nothing, but they happened
                return False
            try:
                self._write(key, data)
            except BaseException:
                if self._entries.pop(key, None) is not None:
                    self._total -= size
                raise
            finally:
                self._pending.pop(key, None)
                self._save_ledger()
        return True

    def close(self) -> None:
        """Close the ledger file (the cache stays usable; it is reopened when needed)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            if self._fd is not None:
                os.close(self._fd)

    def clear(self) -> None:
        """Delete every cached file."""
        with self._lock, self._flock.acquire(poll_interval=_POLL):
            self._resync()
            self._evict_until(0)
            self._save_ledger()

    # --- internals --------------------------------------------------------------------
    def _reserve(self, key: str, size: int) -> bool:
        """Make room for ``size`` bytes and reserve them (file lock and thread lock held)."""
        if self._ledger_token() != self._token or \
                time.monotonic() - self._synced > RESYNC_SECONDS:
            self._resync()  # another process wrote or evicted since our last look
        self._entries.pop(key, None)
        self._total = sum(self._entries.values())
        if not self._evict_until(self.max_bytes - size):
            return False  # the rest of the cache is being written by other threads
        self._entries[key] = size  # reserve the space before writing
        self._pending[key] = size
        self._total += size
        return True

    def _ledger_token(self) -> str:
        """The token of the cache that wrote the ledger last (locked)."""
        try:
            fields = os.pread(self._ledger_fd(), _LEDGER_SIZE, 0).decode().split()
        except (OSError, ValueError):
            return ""
        return fields[1] if len(fields) == 2 else ""

    def _save_ledger(self) -> None:
        """Record the bytes held and a fresh token saying this cache wrote last (locked); one
        fixed-size ``pwrite``, no truncation (that costs milliseconds on some filesystems)."""
        self._token = uuid.uuid4().hex
        with contextlib.suppress(OSError):
            os.pwrite(self._ledger_fd(), f"{self._total:20d} {self._token}\n".encode(), 0)

    def _ledger_fd(self) -> int:
        if self._fd is None:
            self._fd = os.open(f"{self.root.rstrip(os.sep)}.ledger", os.O_RDWR | os.O_CREAT,
                               0o644)
        return self._fd

    def _write(self, key: str, data: bytes) -> None:
        """Temporary file in the target folder, then ``os.replace`` (atomic)."""
        full = self.path(key)
        folder = os.path.dirname(full)
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=_TMP_SUFFIX)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, full)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _touch(self, key: str) -> None:
        """Mark a key most recently used, in memory and (as its mtime) on disk."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
        with contextlib.suppress(OSError):
            os.utime(self.path(key))

    def _forget(self, key: str) -> None:
        """Drop a key from the index (its file is gone or was never written)."""
        with self._lock:
            size = self._entries.pop(key, None)
            if size is not None:
                self._total -= size

    def _evict_until(self, budget: int) -> bool:
        """Delete least recently used files until at most ``budget`` bytes are held; files
        being written are kept. Returns whether the budget was reached (locked)."""
        kept: list[tuple[str, int]] = []
        while self._entries and self._total > budget:
            key, size = self._entries.popitem(last=False)
            if key in self._pending:
                kept.append((key, size))
                continue
            self._total -= size
            self.evictions += 1
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path(key))
            logger.debug("csv cache: evicted %s (%d bytes)", key, size)
        for key, size in reversed(kept):
            self._entries[key] = size
            self._entries.move_to_end(key, last=False)
        return self._total <= budget

    def _resync(self) -> None:
        """Rebuild the index from the folder, oldest mtime first, plus the writes in
        progress (locked)."""
        found = sorted(_scan(self.root))
        self._entries = OrderedDict((key, size) for _, key, size in found)
        for key, size in self._pending.items():
            self._entries.setdefault(key, size)
        self._total = sum(self._entries.values())
        self._synced = time.monotonic()
