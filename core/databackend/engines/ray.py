"""Run the scan's listing and probes as Ray tasks (``pip install databackend[ray]``).

:class:`RayProbePool` is a :class:`concurrent.futures.Executor` the scan's
:class:`~databackend.metadata.scanner.Prober` dispatches its chunks to, in place of its own
process or thread pool: every chunk (a :class:`~databackend.metadata.scanner.Task` of up to
512 files) runs :func:`~databackend.metadata.scanner.run_task` on a Ray worker. A storage that
splits its listing (a local tree, S3) is listed in shares on Ray too
(:mod:`databackend.engines.raylisting`). The merge and the
index write stay the single-machine code on the driver, so the index is the one a local scan
writes. A task whose worker dies is retried by Ray (``max_retries``) and counted
(:meth:`RayProbePool.retries`, see :mod:`databackend.engines.rayretry`); the storage
(credentials included) travels once, through the object store (:func:`ray.put`), so task
arguments hold only the chunk and a reference, and nothing secret is logged.

:func:`use_ray` attaches a pool (and a lister) to a metadata backend; ``databackend scan
--engine ray [--address ADDR]`` does it for every dataset.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

__all__ = ["RayProbePool", "connect", "use_ray"]

log = logging.getLogger(__name__)


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("the ray engine needs Ray: pip install 'databackend[ray]'") from exc
    return ray


def connect(address: str | None = None) -> None:
    """Join the Ray cluster at ``address`` (None: the running one, else a local one)."""
    ray = _ray()
    if not ray.is_initialized():
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)


def _call(fn: Callable[..., Any], task: Any, storage: Any, counter: Any, key: str) -> Any:
    """Runs on a Ray worker: ``fn(task, storage)`` (``storage`` resolved from the store), its
    start registered with ``counter`` first (so a retry is counted)."""
    from databackend.engines.rayretry import started

    started(counter, key)
    return fn(task, storage)


class RayProbePool(Executor):
    """An executor whose ``submit(fn, task)`` runs ``fn(task, storage)`` as a Ray task."""

    def __init__(self, storage: Any, *, max_retries: int = 3, num_cpus: float = 1) -> None:
        """Put ``storage`` into the object store once; tasks get a reference to it."""
        ray = _ray()
        self._storage = ray.put(storage)
        from databackend.engines.rayretry import new_counter

        self._remote = ray.remote(_call).options(max_retries=max_retries, num_cpus=num_cpus)
        self.counter = new_counter()
        self.submitted = 0
        self.lister: Any = None  # the RayLister sharing the counter, if any

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run ``fn(args[0], storage)`` on the cluster; a future of its result."""
        self.submitted += 1
        future: Future[Any] = self._remote.remote(fn, args[0], self._storage, self.counter,
                                                  f"probe:{self.submitted}").future()
        return future

    def retries(self) -> int:
        """Probe chunks and listing shares Ray ran again after their worker died."""
        from databackend.engines.rayretry import retries

        return retries(self.counter)

    def stats(self) -> dict[str, int]:
        """``{"tasks": probe chunks, "list_tasks": listing shares, "retries": re-runs}``."""
        listed = self.lister.submitted if self.lister is not None else 0
        return {"tasks": self.submitted, "list_tasks": listed, "retries": self.retries()}

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Nothing to stop: the cluster outlives the scan."""


def use_ray(meta: Any, *, list_shares: int | None = None, **options: Any) -> RayProbePool:
    """Make ``meta`` (a discovery metadata backend) probe on Ray from its next scan on, and
    list the dataset in ``list_shares`` Ray tasks where its storage splits its listing (None:
    one per cluster CPU)."""
    from databackend.engines.raylisting import RayLister

    pool = RayProbePool(meta.storage, **options)
    meta.probe_executor = pool
    if hasattr(meta, "shard_lister"):
        pool.lister = meta.shard_lister = RayLister(pool.counter, list_shares)
    return pool
