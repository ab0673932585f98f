"""What both caches share: counters, precompute reports, the batched writer, small helpers."""

from __future__ import annotations

import logging
import sys
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from databackend.caches.format import EXTENSION, FormatError, pack, read_blobs, unpack
from databackend.errors import CacheError

if TYPE_CHECKING:
    import torch
    from tqdm import tqdm

    from databackend.storage.base import StorageBackend

__all__ = ["BatchWriter", "CacheBase", "CacheRun", "CacheStats", "Entry", "KeyMemo", "PrecomputeReport",
           "existing_paths", "progress_bar", "read_entries", "shard", "write_entries"]

log = logging.getLogger(__name__)

#: Below this many candidates, precompute asks ``exists`` per entry instead of listing.
_EXISTS_LIMIT = 64


@attrs.define
class CacheStats:
    """Counters of one cache object since it was created (or :meth:`reset`).

    ``hits``: entries read back intact; ``misses``: entries absent or bad at read time;
    ``repairs``: bad entries (corrupt, truncated, wrong key) replaced by a fresh encode;
    ``encoded``: samples or captions run through the encoder; ``writes``: entries written.
    """

    hits: int = 0
    misses: int = 0
    repairs: int = 0
    encoded: int = 0
    writes: int = 0

    def to_dict(self) -> dict[str, int]:
        """The counters as a plain dict."""
        return attrs.asdict(self)

    def reset(self) -> None:
        """Set every counter to 0."""
        self.hits = self.misses = self.repairs = self.encoded = self.writes = 0


@attrs.frozen(kw_only=True)
class PrecomputeReport:
    """What one ``precompute`` call did.

    ``total`` items on this rank; ``cached`` were already present; ``encoded`` were computed
    and written; ``failed`` lists ``(sample or caption, error)`` for items that could not be
    loaded. ``seconds`` is the wall time, ``encode_seconds`` the time inside the encoder.
    ``skipped`` names the flag that turned precompute off (``vae_cache_disable``), if any.
    ``wait_seconds``: time the encoder side waited for decoded images (latents);
    ``oom_retries``: out-of-memory errors that halved a batch.
    ``retries``: units of work an engine re-ran after a failure (``--engine ray``: batches
    Ray retried after their worker died).
    """

    total: int = 0
    cached: int = 0
    encoded: int = 0
    failed: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0
    encode_seconds: float = 0.0
    skipped: str | None = None
    wait_seconds: float = 0.0
    oom_retries: int = 0
    retries: int = 0

    @property
    def outside_share(self) -> float:
        """The share of wall time spent outside the encoder (0 when nothing ran)."""
        return 1.0 - self.encode_seconds / self.seconds if self.seconds > 0 else 0.0

    @property
    def busy_fraction(self) -> float:
        """The share of wall time spent inside the encoder (0 when nothing ran)."""
        return self.encode_seconds / self.seconds if self.seconds > 0 else 0.0

    @property
    def per_second(self) -> float:
        """Items encoded per second of wall time."""
        return self.encoded / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The report as a plain dict."""
        return attrs.asdict(self)


def shard(items: Sequence[Any], rank: int, world_size: int) -> list[Any]:
    """Rank ``rank``'s disjoint share of ``items`` (every ``world_size``-th, from ``rank``)."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
    return list(items[rank::world_size])


def existing_paths(storage: StorageBackend, paths: Sequence[str], prefix: str) -> set[str]:
    """Which of ``paths`` exist: ``exists`` per path for a few, one listing of ``prefix``
    otherwise. Presence is all that is checked here; contents are verified when read."""
    if len(paths) <= _EXISTS_LIMIT:
        return {p for p in paths if storage.exists(p)}
    wanted = set(paths)
    return {f.path for f in storage.list(prefix, extensions=[EXTENSION]) if f.path in wanted}


def progress_bar(total: int, desc: str, enabled: bool | None) -> tqdm[Any]:
    """A tqdm bar on stderr; ``enabled=None`` shows it only when stderr is a terminal."""
    from tqdm import tqdm

    show = sys.stderr.isatty() if enabled is None else enabled
    return tqdm(total=total, desc=desc, unit="item", disable=not show, leave=False)


Item = tuple[str, "dict[str, torch.Tensor]", "dict[str, Any]"]
#: A verified entry: its tensors and its metadata.
Entry = tuple["dict[str, torch.Tensor]", "dict[str, Any]"]


def _decode(key: str, blob: bytes | memoryview | BaseException) -> Entry | str | None:
    """One read result as an :data:`Entry`, ``None`` (absent) or why it is bad."""
    if isinstance(blob, BaseException):
        if isinstance(blob, FileNotFoundError):
            return None
        return f"unreadable ({type(blob).__name__}: {blob})"
    try:
        entry = unpack(blob)
    except FormatError as exc:
        return str(exc)
    stored = entry[1].get("key")
    return entry if stored == key else f"stored under another key ({str(stored)[:16]}...), stale"


def read_entries(storage: StorageBackend, paths: Sequence[str], keys: Sequence[str], *,
                 pool: ThreadPoolExecutor | None = None, workers: int = 1
                 ) -> list[Entry | str | None]:
    """Read and verify entries: an :data:`Entry` when intact and stored under the expected key,
    ``None`` when the file does not exist, else the reason it is bad (a string).

    With a ``pool`` of ``workers`` threads, the files are split into one chunk per thread and
    read and verified there (reads and checksums release the GIL); order is kept either way.
    """
    if pool is None or workers < 2 or len(paths) < 2 * workers:
        return [_decode(k, b) for k, b in zip(keys, read_blobs(storage, paths), strict=True)]

    def run(lo: int, hi: int) -> list[Entry | str | None]:
        """Read and decode ``paths[lo:hi]``."""
        blobs = read_blobs(storage, paths[lo:hi])
        return [_decode(k, b) for k, b in zip(keys[lo:hi], blobs, strict=True)]

    step = -(-len(paths) // workers)  # one chunk per thread: little per-task overhead
    starts = range(0, len(paths), step)
    return [e for part in pool.map(run, starts, [lo + step for lo in starts]) for e in part]


def write_entries(storage: StorageBackend, items: Iterable[Item], *, batch_size: int,
                  compress: bool) -> int:
    """Serialise and write entries now, ``batch_size`` per ``write_many``; returns the count."""
    items, step = list(items), max(1, batch_size)
    for n in range(0, len(items), step):
        storage.write_many([(path, pack(tensors, meta, compress=compress))
                            for path, tensors, meta in items[n:n + step]])
    return len(items)


class BatchWriter:
    """Serialises and writes entries in a background thread, ``batch_size`` per ``write_many``.

    At most two batches are in flight; :meth:`add` blocks beyond that (back-pressure). Errors
    from the writer thread are raised by the next :meth:`add` or by :meth:`close`. Use it as a
    context manager; leaving the block flushes and waits.
    """

    def __init__(self, storage: StorageBackend, *, batch_size: int, compress: bool) -> None:
        """Write to ``storage``; ``compress`` zlib-compresses payloads."""
        self.storage, self.batch_size, self.compress = storage, max(1, batch_size), compress
        self.written = 0
        self._buffer: list[Item] = []
        self._pending: deque[Future[int]] = deque()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="databackend-cache-writer")

    def _write(self, items: list[Item]) -> int:
        return write_entries(self.storage, items, batch_size=len(items), compress=self.compress)

    def _drain(self, keep: int) -> None:
        while len(self._pending) > keep:
            self.written += self._pending.popleft().result()

    def add(self, items: Iterable[Item]) -> None:
        """Queue entries ``(path, tensors, meta)``; full batches go to the writer thread."""
        self._buffer.extend(items)
        while len(self._buffer) >= self.batch_size:
            chunk, self._buffer = self._buffer[:self.batch_size], self._buffer[self.batch_size:]
            self._pending.append(self._pool.submit(self._write, chunk))
            self._drain(keep=2)

    def close(self) -> None:
        """Write what is buffered and wait for every batch; re-raise the first error."""
        try:
            if self._buffer:
                self._pending.append(self._pool.submit(self._write, self._buffer))
                self._buffer = []
            self._drain(keep=0)
        finally:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
            return
        self._buffer = []  # an error is propagating: finish in-flight writes, drop the rest
        try:
            self._drain(keep=0)
        except Exception:
            log.exception("cache write failed while handling another error")
        finally:
            self._pool.shutdown(wait=True)


class KeyMemo(OrderedDict[Any, Any]):
    """A bounded memo of computed cache keys and paths: ``memo[item]`` is ``compute(item)``,
    computed on first use; past ``maxsize`` values the oldest is dropped.

    Hashing a key costs about as much as reading a small entry from a warm page cache; the
    small datasets that fine-tuning repeats for many epochs hit it every step after the first
    epoch, and a large dataset only pays the dictionary lookups (a hit is a plain dict lookup,
    no Python call).
    """

    def __init__(self, compute: Callable[[Any], Any], maxsize: int = 1 << 17) -> None:
        """Memoise ``compute``, keeping at most ``maxsize`` values."""
        super().__init__()
        self.compute, self.maxsize = compute, maxsize

    def __missing__(self, item: Any) -> Any:
        value = self[item] = self.compute(item)
        if len(self) > self.maxsize:
            self.popitem(last=False)  # O(1); deleting the first key of a dict is O(deleted)
        return value


class CacheBase:
    """What the text and latent caches share: identity, flags, counters, the read pool.

    :param encoder: computes missing entries; None for a read-only cache, which then needs
        ``identity`` (the encoder identity the entries were written with).
    :param ondemand: no precompute at start-up; misses are encoded at batch time.
    :param disable: nothing is read or written (implies ``ondemand``).
    :param read_workers: threads that read and verify entries in ``get_many`` (1: the
        calling thread only).
    """

    kind: ClassVar[str] = "cache"

    def __init__(self, storage: StorageBackend, *, encoder: Any, identity: str | None,
                 prefix: str, compress: bool, write_batch_size: int, ondemand: bool,
                 disable: bool, read_workers: int, name: str) -> None:
        """Bind the cache; raises ``ValueError`` when neither encoder nor identity is given."""
        ident = encoder.identity if encoder is not None else identity
        if not ident:
            raise ValueError(f"{self.kind} cache {name!r} needs an encoder or an encoder "
                             "identity")
        self.storage, self.encoder, self.identity, self.prefix = storage, encoder, ident, prefix
        self.compress, self.write_batch_size, self.name = compress, write_batch_size, name
        self.disable, self.ondemand = disable, ondemand or disable
        self.read_workers = read_workers
        self.stats = CacheStats()
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._memo = KeyMemo(self._compute_location)

    def _compute_location(self, item: Any) -> Any:
        """What the memo holds for ``item`` (its key and path; subclasses define it)."""
        raise NotImplementedError

    @property
    def precompute_at_startup(self) -> bool:
        """Whether a trainer should call ``precompute`` before training."""
        return not self.ondemand

    def describe(self) -> str:
        """``name (storage/prefix)`` for messages."""
        where = self.storage.describe()
        return f"{self.name} ({where}/{self.prefix})" if self.prefix else f"{self.name} ({where})"

    def _read(self, paths: Sequence[str], keys: Sequence[str]) -> list[Entry | str | None]:
        if self.read_workers > 1 and self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(
                        self.read_workers, thread_name_prefix=f"databackend-{self.kind}-read")
        return read_entries(self.storage, paths, keys, pool=self._pool,
                            workers=self.read_workers)

    def _count_miss(self, label: str, item: str, path: str, reason: str | None,
                    encoder_name: str) -> None:
        """Count a miss at batch time (and a repair for a bad entry); without an encoder,
        raise :class:`CacheError` naming the cache (``label``), the sample (``item``), the entry
        and the missing ``encoder_name``."""
        self.stats.misses += 1
        what = "missing" if reason is None else f"bad: {reason}"
        if getattr(self, "encoder", None) is None:
            raise CacheError(f"{label} {self.describe()}: the entry {item} at {path!r} is "
                             f"{what}, and no {encoder_name} was given to recompute it")
        if reason is not None:
            self.stats.repairs += 1
            log.warning("%s %s: recomputing %s (%s)", label, self.name, path, what)

    def _store_fresh(self, put: Callable[[], None], count: int) -> None:
        """Write entries encoded at batch time; a failed write is logged, not raised: the
        batch already has its tensors, and the entries are misses again next time."""
        try:
            put()
        except Exception as exc:
            log.warning("%s cache %s: could not write %d fresh entries: %s: %s", self.kind,
                        self.describe(), count, type(exc).__name__, exc)

    def close(self) -> None:
        """Stop the read threads (a later read starts them again)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)


@attrs.frozen(kw_only=True)
class CacheRun:
    """One cache's precompute: ``kind`` (``latents`` or ``text``), its name and location."""

    kind: str
    name: str
    location: str
    report: PrecomputeReport
