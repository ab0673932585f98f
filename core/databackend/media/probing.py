"""Probing many media files: reuse unchanged results, probe the rest in threads, count them.

Local files (``storage.local_path``) are handed to the probe by path (two threads); other
storages through a
:class:`~databackend.media.reader.RangeFile` over ``storage.read_range``, so only what the
container needs is fetched. Failures become skip reasons: ``not_media``, ``corrupt``, or
``unreadable`` (a read failure; probed again by the next scan). A fatal storage error stops
the scan.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, BinaryIO

from databackend.errors import DatabackendError, StorageError
from databackend.media.probe import ProbeRegistry, ProbeSource, probe_local, probe_ranged
from databackend.media.record import CorruptMedia, MediaInfo, NotMedia
from databackend.metadata.scanner import default_workers

if TYPE_CHECKING:
    from databackend.media.index import ProbeTable
    from databackend.storage.base import StorageBackend

__all__ = ["Outcome", "probe_files", "probe_one"]

log = logging.getLogger(__name__)
#: (skip reason or "", info when probed fine)
Outcome = tuple[str, MediaInfo | None]


def _source(storage: StorageBackend, key: str, size: int) -> ProbeSource:
    local = storage.local_path(key)
    if local is not None:  # the listed size spares a stat per file
        return ProbeSource(key, size, _opener(local), local) if size >= 0 else \
            probe_local(local, key)
    if size <= 0:  # unknown to the listing (e.g. path cells of a table): ask the storage
        size = storage.stat(key).size
    if size < 0:  # the storage cannot say (e.g. csv URLs): read the file once, probe in memory
        data = storage.read(key)
        return probe_ranged(lambda at, n: data[at:at + n], key, len(data))

    def read_at(at: int, n: int) -> bytes:
        """One ranged read of the file."""
        return storage.read_range(key, at, n)

    return probe_ranged(read_at, key, size)


def _opener(path: str) -> Callable[[], BinaryIO]:
    return lambda: open(path, "rb")


def probe_one(storage: StorageBackend, registry: ProbeRegistry, kind: str, key: str,
              size: int) -> Outcome:
    """Probe one file as ``kind``; never raises for a bad file (see the module docstring)."""
    return _outcome(lambda: registry.probe(kind, _source(storage, key, size)), kind, key)


def _outcome(probe: Callable[[], MediaInfo], kind: str, key: str) -> Outcome:
    """The outcome of ``probe()``: its info, or the skip reason of its failure."""
    try:
        return "", probe()
    except NotMedia as exc:
        log.debug("%s is not %s: %s", key, kind, exc)
        return "not_media", None
    except CorruptMedia as exc:
        log.info("%s is a corrupt %s file: %s", key, kind, exc)
        return "corrupt", None
    except StorageError as exc:
        if exc.fatal:
            raise
        log.warning("cannot read %s: %s", key, exc)
        return "unreadable", None
    except DatabackendError:  # not about this file (a missing dependency): stop the scan
        raise
    except Exception as exc:  # a read failure (or a probe bug) costs this file only
        log.warning("cannot probe %s: %r", key, exc)
        return "unreadable", None


def probe_files(storage: StorageBackend, registry: ProbeRegistry, kind: str,
                files: Sequence[tuple[str, int, float]], known: ProbeTable | None, *,
                workers: int = 0, on_done: Callable[[int], None] | None = None
                ) -> tuple[list[Outcome], int]:
    """The outcome of every ``(key, size, mtime)``: stored ones for unchanged files (except
    ``unreadable``), fresh probes for the rest. Returns the outcomes and how many were probed."""
    out: list[Outcome | None] = [None] * len(files)
    todo = []
    for k, (key, size, mtime) in enumerate(files):
        stored = known.lookup(key, size, mtime, kind) if known is not None else None
        if stored is not None and stored[0] != "unreadable":
            out[k] = stored
        else:
            todo.append(k)
    local = bool(files) and storage.local_path(files[0][0]) is not None
    threads = workers or (min(2, default_workers()) if local else storage.io_concurrency)

    def run(chunk: list[int]) -> list[Outcome]:
        """Probe a chunk of files (one task per chunk: little pool overhead per file)."""
        return [probe_one(storage, registry, kind, files[k][0], files[k][1]) for k in chunk]

    threads = max(1, threads)
    size = max(1, min(64, -(-len(todo) // (threads * 4))))
    chunks = [todo[n:n + size] for n in range(0, len(todo), size)]
    with ThreadPoolExecutor(threads, thread_name_prefix="databackend-media") as pool:
        for chunk, found in zip(chunks, pool.map(run, chunks), strict=True):
            for k, outcome in zip(chunk, found, strict=True):
                out[k] = outcome
            if on_done is not None:
                on_done(len(chunk))
    return [o if o is not None else ("unreadable", None) for o in out], len(todo)
