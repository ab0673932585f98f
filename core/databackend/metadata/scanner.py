"""Header probing and bucket placement for many files, in parallel, plus the scan's work table.

* **local files** (``storage.local_path(p)`` is not None): ``imageprobe.probe_file`` in a
  process pool (the probe is CPU-bound Python: threads would contend for the GIL), in large
  chunks; workers also place each image (geometry), so both steps scale. Small jobs and
  ``scan_workers=1`` run in-process.
* **other storages**: ``storage.read_range(path, 0, storage.probe_first_read)`` in ``io_concurrency``
  threads (optionally in ``remote_processes`` processes), growing the read while the probe
  raises ``NeedMoreData`` (see :mod:`databackend.metadata.probing`).

Each file becomes a *row* (code, original size, geometry, aspect); results reach a callback
chunk by chunk while the listing is still running (progress bars and checkpoints hang off it).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import queue
import sys
import threading
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from itertools import repeat
from typing import Any

import attrs
import numpy as np

from databackend.geometry import GeometryParams
from databackend.metadata.captionpaths import caption_file_of
from databackend.metadata.index import DatasetIndex
from databackend.metadata.placement import failed_row, place
from databackend.metadata.probing import (
    LOCAL_FIRST_READ,
    REMOTE_FIRST_READ,
    probe_local,
    probe_local_many,
    probe_local_stat,
    probe_remote,
    probe_remote_many,
)
from databackend.storage.base import FileInfo, StorageBackend

__all__ = ["LOCAL_FIRST_READ", "REMOTE_FIRST_READ", "ROW_WIDTH", "Chunk", "Known", "Listing",
           "Prober", "Task", "assemble", "path_order", "place", "probe_local", "probe_local_stat",
           "probe_remote", "run_task", "stored_listing"]

log = logging.getLogger(__name__)

#: Columns of a row: code, orig W, H, target W, H, intermediary W, H, crop top, left, down W, H.
ROW_WIDTH = 11
MIN_POOL_FILES = 1024  # below this many files a process pool costs more than it saves
_HOOK_EVERY = 128  # listed files handed to the listing hook at a time
#: (row ids, int32 (k, ROW_WIDTH), aspects, (size, mtime) per row of local probes)
Chunk = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]


@attrs.frozen
class Task:
    """One chunk of work: row ids, and per row a local path, a key or a known size."""

    rows: np.ndarray
    keys: list[str]
    local: bool = False  # probe through storage.local_path, else read_range
    nbytes: list[int] | None = None  # listed sizes of the files to probe (-1: unknown)
    sizes: np.ndarray | None = None  # known (W, H): only place them
    params: GeometryParams | None = None
    seed: int = 0
    memo: str | None = None
    threads: int = 1  # remote keys probed concurrently within the task (in a worker process)


_WORKER_STORAGE: list[StorageBackend] = []  # set in pool workers by their initializer


def _init_worker(storage: StorageBackend) -> None:
    _WORKER_STORAGE.append(storage)


def run_task(task: Task, storage: StorageBackend | None = None) -> Chunk:
    """Probe (or only place) one chunk; runs in a worker process, a thread or in-process."""
    found: list[tuple[str | None, int, int]]
    store, stats = storage or _WORKER_STORAGE[0], None
    if task.sizes is not None:
        found = [(None, int(w), int(h)) for w, h in task.sizes]
    elif task.local:  # fstat of the open file: free, and all a names-only listing lacks
        found, sizes, mtimes = probe_local_many([store.local_path(k) or k for k in task.keys])
        stats = np.empty((len(found), 2))
        stats[:, 0], stats[:, 1] = np.frombuffer(sizes, np.int64), np.frombuffer(mtimes)
    else:
        found = probe_remote_many(store, task.keys, task.nbytes or [], task.threads)
    params, seed, memo = task.params, task.seed, task.memo
    assert params is not None
    out = [failed_row(r) if r else place(w, h, k, params, seed, memo=memo)
           for (r, w, h), k in zip(found, task.keys, strict=True)]
    ints = np.array([r for r, _ in out], dtype=np.int32).reshape(len(out), ROW_WIDTH)
    return task.rows, ints, np.array([a for _, a in out], dtype=np.float64), stats


def default_workers() -> int:
    """CPUs this process may use, at most 16."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(count or 1, 16))


def _start_method() -> str:
    """``fork`` when it is safe and cheap (Linux, no other threads), else forkserver/spawn."""
    if sys.platform.startswith("linux"):
        return "fork" if threading.active_count() == 1 else "forkserver"
    return "spawn"


class Prober:
    """Probes and places files of one storage, streaming: see :meth:`add` and :meth:`finish`.

    Rows are buffered into chunks; local files go to a process pool once enough are waiting
    (small jobs run in-process), other storages to ``io_concurrency`` threads. Results reach
    ``on_chunk`` in the calling thread, from :meth:`poll` and :meth:`finish`.
    """

    def __init__(self, storage: StorageBackend, params: GeometryParams, seed: int,
                 on_chunk: Callable[[Chunk], None], *, workers: int = 0,
                 start_method: str | None = None, remote_processes: int = 1,
                 executor: Executor | None = None) -> None:
        """``workers``: processes for local files (0 = one per CPU, 1 = in-process);
        ``remote_processes``: processes for other storages, each probing with
        ``storage.io_concurrency`` threads (1 = threads of this process only); ``executor``:
        run every chunk there instead (``submit(run_task, task)``; e.g. on Ray)."""
        self.storage, self.params, self.seed = storage, params, seed
        self.on_chunk = on_chunk
        self.workers = workers if workers > 0 else default_workers()
        self.start_method = start_method
        self.memo = params.fingerprint()
        self.remote_processes = max(1, remote_processes)
        self.executor = executor
        self._threads = 1  # per task: > 1 when remote tasks run in worker processes
        self._pending: list[tuple[int, str, Any]] = []
        self._pool: Executor | None = None
        self._local: bool | None = None
        self._step = 256  # files per task (set by the first add: 32 remote, 512 local pool)
        self._done: queue.SimpleQueue[Future[Chunk]] = queue.SimpleQueue()
        self._inflight = 0

    def __enter__(self) -> Prober:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, row: int, key: str, size: tuple[int, int] | int = -1) -> None:
        """Queue one file: ``size`` (W, H) given: only place it, no read; an int: probe it,
        its listed byte size (-1: unknown)."""
        self.add_many([(row, key, size)])

    def add_many(self, items: Sequence[tuple[int, str, tuple[int, int] | int]]) -> None:
        """:meth:`add` for several ``(row, key, size)`` items."""
        if not items:
            return
        if self._local is None:
            self._local = self.storage.local_path(items[0][1]) is not None
            self._step = 32 if not self._local else 512 if self.workers > 1 else 256
        self._pending.extend(items)
        if len(self._pending) >= self._step:
            self._submit()
            self.poll()

    def _task(self, items: Sequence[tuple[int, str, Any]]) -> Task:
        rows = np.fromiter((r for r, _, _ in items), np.int64, len(items))
        keys = [k for _, k, _ in items]
        if isinstance(items[0][2], tuple):
            sizes = np.array([s for _, _, s in items], np.int32).reshape(len(items), 2)
            return Task(rows, keys, sizes=sizes, params=self.params, seed=self.seed,
                        memo=self.memo)
        nbytes = None if self._local else [n for _, _, n in items]  # local probes fstat
        return Task(rows, keys, bool(self._local), nbytes, params=self.params, seed=self.seed,
                    memo=self.memo, threads=self._threads)

    def _tasks(self, pending: Sequence[tuple[int, str, Any]]) -> Iterator[Task]:
        step = self._step
        for start in range(0, len(pending), step):
            yield from map(self._task, _by_kind(pending[start:start + step]))

    def _submit(self, force: bool = False) -> None:
        if self._pending and (self._pool is not None or self._start(force)):
            pending, self._pending = self._pending, []
            for task in self._tasks(pending):
                self._dispatch(task)

    def _start(self, force: bool) -> bool:
        """Start the pool once enough work is waiting; False: nothing to dispatch (yet)."""
        if self.executor is not None:
            self._pool = self.executor
            return True
        if not self._local:
            if self.remote_processes > 1 and _picklable(self.storage):
                self._threads = max(1, self.storage.io_concurrency)
                self._step = 2 * self._threads
                self._pool = ProcessPoolExecutor(
                    self.remote_processes, initializer=_init_worker, initargs=(self.storage,),
                    mp_context=multiprocessing.get_context(self.start_method or "spawn"))
                return True
            self._pool = ThreadPoolExecutor(max(1, self.storage.io_concurrency),
                                            thread_name_prefix="databackend-scan")
            return True
        if self.workers > 1 and len(self._pending) >= MIN_POOL_FILES:
            context = multiprocessing.get_context(self.start_method or _start_method())
            if context.get_start_method() == "forkserver":
                context.set_forkserver_preload([__name__])
            if context.get_start_method() == "fork" or _picklable(self.storage):
                self._pool = ProcessPoolExecutor(self.workers, mp_context=context,
                                                 initializer=_init_worker, initargs=(self.storage,))
                return True
            self.workers = 1
        if force or self.workers <= 1:  # a small job, or no pool wanted: run it here
            pending, self._pending = self._pending, []
            for task in self._tasks(pending):
                self.on_chunk(run_task(task, self.storage))
        return False

    def _dispatch(self, task: Task) -> None:
        assert self._pool is not None
        if isinstance(self._pool, ThreadPoolExecutor):
            fut = self._pool.submit(run_task, task, self.storage)
        else:  # a process pool or an engine: the storage is already there
            fut = self._pool.submit(run_task, task)
        self._inflight += 1
        fut.add_done_callback(self._done.put)

    def poll(self, block: bool = False) -> None:
        """Deliver finished chunks (``block``: wait for at least one if any are running)."""
        while self._inflight:
            try:
                fut = self._done.get(block=block)
            except queue.Empty:
                return
            block = False
            self._inflight -= 1
            self.on_chunk(fut.result())

    def finish(self) -> None:
        """Run everything queued and deliver every result."""
        self._submit(force=True)
        while self._inflight:
            self.poll(block=True)

    def close(self) -> None:
        """Stop the workers (pending work is cancelled)."""
        if self._pool is not None:
            if self._pool is not self.executor:  # an executor passed in is the caller's
                self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _picklable(obj: object) -> bool:
    """Whether ``obj`` can travel to a spawned worker (else the scan runs in-process)."""
    try:
        pickle.dumps(obj)
    except Exception as exc:
        log.info("storage %r cannot be sent to worker processes (%s); probing in-process", obj, exc)
        return False
    return True


def _by_kind(items: Sequence[tuple[int, str, Any]]) -> list[list[tuple[int, str, Any]]]:
    """Split items into runs that are all probes or all placements."""
    if not any(isinstance(i[2], tuple) for i in items):  # the usual case: one pass
        return [list(items)] if items else []
    probes = [i for i in items if not isinstance(i[2], tuple)]
    places = [i for i in items if isinstance(i[2], tuple)]
    return [g for g in (probes, places) if g]


# --- the work table of a scan ---------------------------------------------------------------


@attrs.define
class Listing:
    """Listed image files as columns."""

    paths: list[str]
    size: np.ndarray
    mtime: np.ndarray
    etags: list[str | None] | None

    @classmethod
    def collect(cls, infos: Iterable[FileInfo], side: Callable[[str], bool] | None,
                hook: Callable[[int, list[FileInfo]], None] | None = None
                ) -> tuple[Listing, dict[str, FileInfo]]:
        """Columns of the listed files, in listing order; files for which ``side(path)``
        holds go to the dict. ``hook(first_row, infos)`` sees the files as they are listed,
        ``_HOOK_EVERY`` at a time."""
        paths: list[str] = []
        sizes, mtimes = array("q"), array("d")
        etags: list[str | None] = []
        others: dict[str, FileInfo] = {}
        fresh: list[FileInfo] = []
        for info in infos:
            path, size, mtime, etag = info
            if side is not None and side(path):
                others[path] = info
                continue
            paths.append(path)
            sizes.append(size)
            mtimes.append(mtime)
            etags.append(etag)
            if hook is not None:
                fresh.append(info)
                if len(fresh) >= _HOOK_EVERY:
                    hook(len(paths) - len(fresh), fresh)
                    fresh = []
        if hook is not None and fresh:
            hook(len(paths) - len(fresh), fresh)
        return cls(paths, np.frombuffer(sizes, np.int64).copy(),
                   np.frombuffer(mtimes, np.float64).copy(),
                   etags if any(e is not None for e in etags) else None), others

    def __len__(self) -> int:
        return len(self.paths)

    def take(self, rows: np.ndarray) -> Listing:
        """The listing restricted to ``rows`` (in that order)."""
        if len(rows) == len(self) and (rows == np.arange(len(rows))).all():
            return Listing(self.paths, self.size.copy(), self.mtime.copy(),
                           None if self.etags is None else self.etags)
        at = rows.tolist()
        return Listing([self.paths[r] for r in at], self.size[rows], self.mtime[rows],
                       None if self.etags is None else [self.etags[r] for r in at])


def path_order(paths: Sequence[str]) -> np.ndarray:
    """Row numbers that sort ``paths`` stably (one C-level pass when they are sorted already)."""
    items = paths if isinstance(paths, list) else list(paths)
    if sorted(items) == items:
        return np.arange(len(items), dtype=np.int64)
    return np.asarray(sorted(range(len(items)), key=items.__getitem__), dtype=np.int64)


class Known:
    """Rows that earlier runs stored (index, checkpoint, rank partials), looked up by path.

    Each source comes with two flags: ``fresh`` (its geometry was computed with the current
    settings and seed) and ``captions_ok`` (its captions were found with the current caption
    settings and table). Later sources win when a path is in several.
    """

    def __init__(self, sources: Sequence[tuple[DatasetIndex, bool, bool]]) -> None:
        """Concatenate the sources' kept and skipped rows."""
        parts = [_source_rows(idx, k, fresh, ok)
                 for k, (idx, fresh, ok) in enumerate(sources)]
        self.tables = [idx.captions for idx, _, _ in sources]
        self.paths: list[str] = [p for part in parts for p in part["paths"]]
        cols = {name: np.concatenate([part[name] for part in parts]) if parts else
                np.zeros((0,) + _SHAPES[name][0], _SHAPES[name][1]) for name in _SHAPES}
        self.size, self.mtime, self.ints = cols["size"], cols["mtime"], cols["ints"]
        self.aspect, self.capstamp, self.fresh = cols["aspect"], cols["capstamp"], cols["fresh"]
        self.captions_ok, self.cap_src, self.cap_row = (cols["captions_ok"], cols["cap_src"],
                                                        cols["cap_row"])
        etags = [e for part in parts for e in part["etags"] or [None] * len(part["paths"])]
        self.etags = etags if any(etags) else None
        self.pos = dict(zip(self.paths, range(len(self.paths)), strict=True))

    def __len__(self) -> int:
        return len(self.paths)

    def match(self, listing: Listing) -> tuple[np.ndarray, np.ndarray]:
        """Per listed file: its known row by path (-1: new), and that row again only when
        size, mtime (and ETag) are unchanged (else -1)."""
        if not len(self):  # a cold scan: nothing known
            pos = np.full(len(listing), -1, np.int64)
            return pos, pos
        pos = np.fromiter(map(self.pos.get, listing.paths, repeat(-1)), np.int64, len(listing))
        found = pos >= 0
        safe = np.where(found, pos, 0)
        same = found & (self.size[safe] == listing.size) & (self.mtime[safe] == listing.mtime)
        if self.etags is not None and listing.etags is not None:
            for k in np.flatnonzero(same):
                old, new = self.etags[int(pos[k])], listing.etags[int(k)]
                same[k] = old is None or new is None or old == new
        return pos, np.where(same, pos, -1)

    def caption_of(self, row: int) -> tuple[str, ...]:
        """The stored captions of known row ``row`` (kept rows only)."""
        return self.tables[int(self.cap_src[row])][int(self.cap_row[row])]


_SHAPES: dict[str, tuple[tuple[int, ...], Any]] = {
    "size": ((), np.int64), "mtime": ((), np.float64), "ints": ((ROW_WIDTH,), np.int32),
    "aspect": ((), np.float64), "capstamp": ((2,), np.float64), "fresh": ((), np.bool_),
    "captions_ok": ((), np.bool_), "cap_src": ((), np.int16), "cap_row": ((), np.int64),
}


def _source_rows(idx: DatasetIndex, src: int, fresh: bool, ok: bool) -> dict[str, Any]:
    """One source's kept rows followed by its skipped rows, as work-table columns."""
    n, s = len(idx), len(idx.skipped)
    ints = np.zeros((n + s, ROW_WIDTH), np.int32)
    ints[:n, 1:3], ints[:n, 3:5], ints[:n, 5:7] = idx.original, idx.target, idx.intermediary
    ints[:n, 7:9], ints[:n, 9:11] = idx.crop, idx.downsample
    ints[n:, 0], ints[n:, 1:3], ints[n:, 9:11] = idx.skipped.reason, idx.skipped.original, -1
    etags = None
    if idx.etags is not None or idx.skipped.etags is not None:
        etags = [*(idx.etags or [None] * n), *(idx.skipped.etags or [None] * s)]
    return {"paths": [*idx.paths, *idx.skipped.paths], "etags": etags, "ints": ints,
            "size": np.concatenate([idx.file_size, idx.skipped.file_size]),
            "mtime": np.concatenate([idx.mtime, idx.skipped.mtime]),
            "aspect": np.concatenate([idx.aspect, np.zeros(s)]).astype(np.float64),
            "capstamp": np.concatenate([idx.caption_stamp, idx.skipped.caption_stamp]),
            "fresh": np.full(n + s, fresh), "captions_ok": np.full(n + s, ok),
            "cap_src": np.full(n + s, src, np.int16),
            "cap_row": np.concatenate([np.arange(n), np.full(s, -1)]).astype(np.int64)}


def assemble(listing: Listing, ints: np.ndarray, aspect: np.ndarray, capstamp: np.ndarray,
             captions: Iterable[tuple[str, ...]], *, fingerprint: str,
             meta: dict[str, Any]) -> DatasetIndex:
    """Build the index from work rows: code 0 is kept (``captions`` lists theirs, in order),
    the rest goes to its skipped table."""
    return DatasetIndex.from_rows(listing.paths, listing.size, listing.mtime, listing.etags, ints,
                                  aspect, capstamp, captions, fingerprint=fingerprint, meta=meta)


def stored_listing(known: Known) -> tuple[Listing, dict[str, FileInfo]]:
    """``preserve_data_backend_cache``: the files (and caption files) earlier runs stored."""
    texts: dict[str, FileInfo] = {}
    for k in np.flatnonzero(known.capstamp[:, 0] >= 0):
        size, mtime = known.capstamp[k]
        key = caption_file_of(known.paths[int(k)])
        texts[key] = FileInfo(key, int(size), float(mtime))
    return Listing(known.paths, known.size, known.mtime, known.etags), texts
