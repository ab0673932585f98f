"""BatchFetcher: build batches in a background thread while the trainer computes.

Unlike SimpleTuner's fetcher, the consumer blocks on ``queue.get`` (no busy-spin), an exception
in the fetch thread is re-raised in the consumer with its original traceback (instead of leaving
the consumer waiting forever), and :meth:`BatchFetcher.close` stops the thread within a fraction
of a second. Each item carries the runtime state right after that batch, so
:meth:`BatchFetcher.state_dict` describes what the *consumer* has seen, not how far the thread
ran ahead.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from databackend.metrics import FetchStats

__all__ = ["BatchFetcher"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_ITEM, _END, _ERROR = "item", "end", "error"
_PUT_POLL = 0.05  # how often a producer blocked on a full queue checks for close()


class BatchFetcher(Generic[T]):
    """Iterate over ``produce()`` results, prefetched into a bounded queue by a thread.

    ``produce`` returns ``(item, state)`` or None at the end of the data (for example
    :meth:`DataRuntime.produce`). ``queue_size=0`` disables the thread: items are built inline
    in ``next()`` and the wait recorded is the build time.
    """

    def __init__(self, produce: Callable[[], tuple[T, dict[str, Any]] | None], *,
                 queue_size: int = 10, stats: FetchStats | None = None,
                 initial_state: dict[str, Any] | None = None,
                 name: str = "databackend-fetch") -> None:
        """Start fetching at once (unless ``queue_size`` is 0)."""
        if queue_size < 0:
            raise ValueError("queue_size must be >= 0")
        self._produce = produce
        self.queue_size = queue_size
        self.stats = stats if stats is not None else FetchStats()
        self._state = initial_state
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=max(1, queue_size))
        self._stop = threading.Event()
        self._done = False
        self._thread: threading.Thread | None = None
        if queue_size:
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()

    # --- producer side -------------------------------------------------------------------------
    def _timed_produce(self) -> tuple[T, dict[str, Any]] | None:
        start = time.perf_counter()
        item = self._produce()
        if item is not None:
            self.stats.record_produce(time.perf_counter() - start)
        return item

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                item = self._timed_produce()
                if item is None:
                    self._put((_END, None))
                    return
                if not self._put((_ITEM, item)):
                    return
        except BaseException as exc:
            log.debug("fetch thread failed: %r", exc)
            self._put((_ERROR, exc))

    def _put(self, entry: tuple[str, Any]) -> bool:
        """Block until ``entry`` is queued; False if closed meanwhile."""
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=_PUT_POLL)
                return True
            except queue.Full:
                continue
        return False

    # --- consumer side -------------------------------------------------------------------------
    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        depth = 0 if self._thread is None else self._queue.qsize()
        start = time.perf_counter()
        if self._thread is None:
            produced = self._timed_produce()
            entry: tuple[str, Any] = (_END, None) if produced is None else (_ITEM, produced)
        else:
            entry = self._queue.get()
        if entry[0] == _ITEM:
            self.stats.record_wait(time.perf_counter() - start, depth)
        return self._unpack(entry)

    def _unpack(self, entry: tuple[str, Any]) -> T:
        kind, payload = entry
        if kind == _ITEM and not self._done:
            item, self._state = payload
            return item  # type: ignore[no-any-return]
        self._done = True
        if kind == _ERROR:
            raise payload  # the exception object keeps the fetch thread's traceback
        raise StopIteration

    def state_dict(self) -> dict[str, Any] | None:
        """The producer state right after the last item the consumer received."""
        return self._state

    @property
    def depth(self) -> int:
        """Items waiting in the queue now."""
        return self._queue.qsize()

    def close(self, timeout: float = 0.5) -> None:
        """Stop the thread and wake a blocked consumer; returns within about ``timeout``."""
        self._stop.set()
        self._done = True
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait((_END, None))
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("fetch thread still busy building a batch after close(); it exits "
                            "when that batch is done")

    def join(self, timeout: float | None = None) -> None:
        """Wait for the fetch thread to finish (after :meth:`close`)."""
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def __enter__(self) -> BatchFetcher[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
