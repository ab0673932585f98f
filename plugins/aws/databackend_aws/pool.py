"""A bounded thread pool for S3 requests, safe to use from its own worker threads."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["RequestPool"]

T = TypeVar("T")
R = TypeVar("R")

_LOCAL = threading.local()


def _mark_worker() -> None:
    _LOCAL.in_pool = True


class RequestPool:
    """``workers`` threads, created on first use; ``map`` keeps at most ``2 * workers``
    tasks queued, so a million-item batch does not become a million futures.

    A task that itself calls :meth:`map` or :meth:`submit` runs the work inline instead of
    queueing behind itself, which would deadlock a saturated pool.
    """

    def __init__(self, workers: int, name: str) -> None:
        """Remember the size; threads start on the first task."""
        self.workers = max(1, workers)
        self.name = name
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    @staticmethod
    def in_worker() -> bool:
        """Whether the calling thread is a worker of some :class:`RequestPool`."""
        return bool(getattr(_LOCAL, "in_pool", False))

    def _get(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix=self.name,
                                                    initializer=_mark_worker)
            return self._executor

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        """Run ``fn`` on the pool (inline, as a finished future, from a worker thread)."""
        if not self.in_worker():
            return self._get().submit(fn)
        fut: Future[T] = Future()
        try:
            fut.set_result(fn())
        except BaseException as exc:
            fut.set_exception(exc)
        return fut

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """``[fn(x) for x in items]`` run concurrently, results in order. ``fn`` should return
        its errors: one it raises propagates, and the tasks still queued are cancelled."""
        if len(items) <= 1 or self.in_worker():
            return [fn(x) for x in items]
        executor = self._get()
        results: list[R] = []
        running: deque[Future[R]] = deque()
        try:
            for item in items:
                if len(running) >= 2 * self.workers:
                    results.append(running.popleft().result())
                running.append(executor.submit(fn, item))
            while running:
                results.append(running.popleft().result())
        finally:
            for fut in running:
                fut.cancel()
        return results

    def close(self) -> None:
        """Stop the threads (queued tasks are cancelled); the pool restarts on next use."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
