"""List a dataset in shares on Ray: one task per share of its top-level folders or prefixes.

:class:`RayLister` is the scan's ``shard_lister`` (see
:class:`~databackend.metadata.indexed.IndexedMetadataBackend`): share ``k`` of ``n`` is the
storage's own :meth:`~databackend.storage.base.StorageBackend.list_share` (a local tree deals
out its top-level folders, S3 its top-level prefixes), the code the ranks of a job split a
listing with, and the driver yields the shares in order, so the listing is the one a split
job listing makes. A storage that lists only as a whole is listed by the driver as before.
Local workers must see the tree at the same path (a shared file system). Entries a share
skips (non-UTF-8 names, special files) are added to the driver's ``storage.skipped``. A share
whose worker dies is retried by Ray and counted (:mod:`databackend.engines.rayretry`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["RayLister"]


def _list_task(storage: Any, extensions: frozenset[str], share: int, shares: int,
               counter: Any, key: str) -> tuple[list[Any], dict[str, int]]:
    """Runs on a Ray worker: share ``share`` of the listing and what it skipped, by reason."""
    from databackend.engines.rayretry import started

    started(counter, key)
    storage.skipped = {}  # this copy's own counts (the driver adds them to its own)
    found = storage.list_share(share, shares, extensions=extensions)
    return list(found if found is not None else ()), dict(storage.skipped)


class RayLister:
    """Lists a dataset in ``shares`` Ray tasks (None: one per cluster CPU)."""

    def __init__(self, counter: Any, shares: int | None = None, *, max_retries: int = 3
                 ) -> None:
        """Register every task's start with ``counter`` (a retry counter actor)."""
        self.counter, self.shares, self.max_retries = counter, shares, max_retries
        self.submitted = 0

    def __call__(self, storage: Any, extensions: frozenset[str]) -> Iterator[Any] | None:
        """The files of ``storage``, share after share (each share in its listing order);
        None when the storage lists only as a whole."""
        import ray

        if storage.list_share(0, 1, extensions=extensions) is None:  # lazy: lists nothing
            return None
        resources: Any = ray.cluster_resources  # (untyped)
        shares = self.shares or max(1, int(resources().get("CPU", 1)))
        ref = ray.put(storage)
        remote = ray.remote(_list_task).options(max_retries=self.max_retries, num_cpus=1)
        futures = [remote.remote(ref, extensions, k, shares, self.counter,
                                 f"list:{self.submitted + k}") for k in range(shares)]
        self.submitted += shares
        return self._gather(storage, futures)

    @staticmethod
    def _gather(storage: Any, futures: list[Any]) -> Iterator[Any]:
        """Each share's files in order; its skipped entries added to the driver's counts."""
        import ray

        for future in futures:
            infos, skipped = ray.get(future)
            counts = getattr(storage, "skipped", None)
            if isinstance(counts, dict):
                for reason, count in skipped.items():
                    counts[reason] = counts.get(reason, 0) + count
            yield from infos
