"""List a local tree in shares on Ray: one task per share of its top-level folders.

:class:`RayLister` is the scan's ``shard_lister`` (see
:class:`~databackend.metadata.indexed.IndexedMetadataBackend`): share ``k`` of ``n`` lists the
top-level folders ``[k::n]`` (share 0 also the top-level files) with
:func:`~databackend.metadata.joblisting.list_share`, the code the ranks of a job split a listing
with, and the driver yields the shares in order, so the listing is the one a split job listing
makes. The workers must see the tree at the same path (a shared file system). Entries a share
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
    from databackend.metadata.joblisting import list_share

    started(counter, key)
    storage.skipped = {}  # this copy's own counts (the driver adds them to its own)
    return list_share(storage, extensions, share, shares), dict(storage.skipped)


class RayLister:
    """Lists a plain local folder in ``shares`` Ray tasks (None: one per cluster CPU)."""

    def __init__(self, counter: Any, shares: int | None = None, *, max_retries: int = 3
                 ) -> None:
        """Register every task's start with ``counter`` (a retry counter actor)."""
        self.counter, self.shares, self.max_retries = counter, shares, max_retries
        self.submitted = 0

    def __call__(self, storage: Any, extensions: frozenset[str]) -> Iterator[Any]:
        """The files of ``storage``, share after share (each share in its listing order)."""
        import ray

        resources: Any = ray.cluster_resources  # (untyped)
        shares = self.shares or max(1, int(resources().get("CPU", 1)))
        ref = ray.put(storage)
        remote = ray.remote(_list_task).options(max_retries=self.max_retries, num_cpus=1)
        futures = [remote.remote(ref, extensions, k, shares, self.counter,
                                 f"list:{self.submitted + k}") for k in range(shares)]
        self.submitted += shares
        for future in futures:
            infos, skipped = ray.get(future)
            for reason, count in skipped.items():
                storage.skipped[reason] = storage.skipped.get(reason, 0) + count
            yield from infos
