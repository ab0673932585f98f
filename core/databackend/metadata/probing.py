"""Header probes of one file: local (``pread`` of the open file) or remote (ranged reads),
each reading a little first and more only while the probe asks for it."""

from __future__ import annotations

import logging
import os
from array import array
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from databackend import imageprobe as probe
from databackend.errors import StorageError
from databackend.storage.base import StorageBackend

__all__ = ["LOCAL_FIRST_READ", "REMOTE_FIRST_READ", "probe_local", "probe_local_many",
           "probe_local_stat", "probe_remote", "probe_remote_many"]

log = logging.getLogger("databackend.metadata.scanner")


#: A local probe reads this much first: most headers end in it, and a page-cache copy of a
#: photo's first 64 KiB costs more than the parse (remote reads take HEADER_BYTES, one trip).
LOCAL_FIRST_READ = 8 * 1024
#: A remote probe's first ranged read unless the storage sets ``probe_first_read`` (S3 sets
#: 8 KiB: grown only when a header runs on, NeedMoreData naming the bytes needed).
REMOTE_FIRST_READ = probe.HEADER_BYTES


def _probe_read(read: Callable[[int, int], bytes], nbytes: int,
                first: int = probe.HEADER_BYTES) -> tuple[None, int, int]:
    """Probe through ``read(offset, length)``, ``first`` bytes first (then as the probe asks);
    ``nbytes`` (listed size, -1: unknown) spares the read that finds the end of small files."""
    want = min(nbytes, first) if nbytes >= 0 else first
    return _probe_grow(read(0, want), want, nbytes, read)


def _probe_grow(data: bytes, want: int, nbytes: int, read: Callable[[int, int], bytes]
                ) -> tuple[None, int, int]:
    """Parse ``data`` (the first bytes of a file, ``want`` of them asked for), reading more
    through ``read`` only while the probe asks for it."""
    while True:
        try:
            info = probe.probe_bytes(data, eof=len(data) < want or len(data) == nbytes)
            return None, info.width, info.height
        except probe.NeedMoreData as more:
            want = max(more.needed, 2 * len(data))
            data += read(len(data), want - len(data))


def _fatal(exc: Exception) -> bool:
    """Whether ``exc`` is a storage error that stops the scan (``StorageError.fatal``)."""
    return isinstance(exc, StorageError) and exc.fatal


def _reason(exc: Exception, name: str, read_errors: type[Exception]) -> tuple[str, int, int]:
    """The skip reason of a failed probe; ``read_errors`` are what counts as unreadable.

    A fatal :class:`~databackend.errors.StorageError` (missing bucket, access denied,
    unreachable endpoint...) is no reason to skip one file: it is raised again and stops the
    scan, so the backend's message reaches the user once instead of every file being
    recorded as ``unreadable``.
    """
    if _fatal(exc):
        raise exc
    if isinstance(exc, probe.NotAnImage):
        return "not_an_image", -1, -1
    if not isinstance(exc, probe.CorruptImage):
        log.debug("probing %s failed: %r", name, exc)  # a probe bug must not stop a scan
        if isinstance(exc, read_errors):
            return "unreadable", -1, -1
    return "corrupt", -1, -1


def probe_local(path: str, nbytes: int = -1) -> tuple[str | None, int, int]:
    """(failure reason or None, width, height) of a local file; never raises for bad files.
    ``nbytes`` is accepted for symmetry with :func:`probe_remote`; ``fstat`` knows better."""
    reason, width, height, _, _ = probe_local_stat(path)
    return reason, width, height


def probe_local_stat(path: str) -> tuple[str | None, int, int, int, float]:
    """:func:`probe_local` plus the file's byte size and mtime from ``fstat`` of the open file
    (-1 and 0.0 when it cannot be opened): a cold scan lists names only and stats here."""
    size, mtime = -1, 0.0
    found: tuple[str | None, int, int]
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            st = os.fstat(fd)
            size, mtime = st.st_size, st.st_mtime
            want = min(size, LOCAL_FIRST_READ)  # one pread; more only if the header runs on
            found = _probe_grow(os.pread(fd, want, 0), want, size,
                                lambda at, n: os.pread(fd, n, at))
        finally:
            os.close(fd)
    except Exception as exc:
        found = _reason(exc, path, OSError)
    return (*found, size, mtime)


def _reader(fd: int) -> Callable[[int, int], bytes]:
    """``read(offset, length)`` of an open file."""
    return lambda at, n: os.pread(fd, n, at)


def probe_local_many(paths: Sequence[str]
                     ) -> tuple[list[tuple[str | None, int, int]], array[int], array[float]]:
    """:func:`probe_local_stat` of every path in one loop (a scan worker's hot path): per file
    one ``open``, ``fstat``, ``pread`` of :data:`LOCAL_FIRST_READ` bytes (more only while the
    header runs on) and ``close``. Returns (reason, width, height) per path, and the byte
    sizes and mtimes (-1 and 0.0 where a file could not be opened)."""
    found: list[tuple[str | None, int, int]] = []
    sizes, mtimes = array("q", bytes(8 * len(paths))), array("d", bytes(8 * len(paths)))
    first, parse, more = LOCAL_FIRST_READ, probe.probe_bytes, probe.NeedMoreData
    for k, path in enumerate(paths):
        sizes[k] = -1
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                st = os.fstat(fd)
                size = st.st_size
                sizes[k], mtimes[k] = size, st.st_mtime
                want = first if size > first else size
                data = os.pread(fd, want, 0)
                try:
                    info = parse(data, eof=len(data) < want or len(data) == size)
                    found.append((None, info[0], info[1]))
                except more:
                    found.append(_probe_grow(data, want, size, _reader(fd)))
            finally:
                os.close(fd)
        except Exception as exc:
            found.append(_reason(exc, path, OSError))
    return found, sizes, mtimes


def probe_remote(storage: StorageBackend, key: str, nbytes: int = -1
                 ) -> tuple[str | None, int, int]:
    """Like :func:`probe_local` over ``storage.read_range``: a failed read is ``unreadable``,
    except a fatal storage error, which is raised (see :func:`_reason`)."""
    try:
        return _probe_read(lambda at, n: storage.read_range(key, at, n), nbytes,
                           storage.probe_first_read or REMOTE_FIRST_READ)
    except Exception as exc:
        return _reason(exc, key, Exception)


def probe_remote_many(store: StorageBackend, keys: list[str], nbytes: list[int],
                       threads: int) -> list[tuple[str | None, int, int]]:
    """:func:`probe_remote` of every key (with its listed size), on ``threads`` threads when
    more than one."""
    if threads <= 1 or len(keys) <= 1:
        return [probe_remote(store, k, n) for k, n in zip(keys, nbytes, strict=True)]
    with ThreadPoolExecutor(min(threads, len(keys)), thread_name_prefix="databackend-probe") as ex:
        return list(ex.map(lambda kn: probe_remote(store, *kn), zip(keys, nbytes, strict=True)))
