"""A ``torch.utils.data.IterableDataset`` over the runtime, for trainers built on DataLoader.

Use it with ``DataLoader(dataset, batch_size=None, num_workers=0)``: the items are already
batches, and prefetching happens in the :class:`BatchFetcher` thread, so worker processes add
nothing (each worker would hold its own copy of the runtime and its state would not come back).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch.utils.data

from databackend.runtime.batch import Batch

__all__ = ["BatchIterableDataset"]


class BatchIterableDataset(torch.utils.data.IterableDataset[Batch]):
    """Each ``iter()`` calls ``make_iterator()``; it refuses DataLoader worker processes."""

    def __init__(self, make_iterator: Callable[[], Iterator[Batch]]) -> None:
        """``make_iterator`` returns the batch iterator (e.g. a prefetching BatchFetcher)."""
        super().__init__()
        self._make_iterator = make_iterator

    def __iter__(self) -> Iterator[Batch]:
        if torch.utils.data.get_worker_info() is not None:
            raise RuntimeError("use DataLoader(..., num_workers=0): batches are prefetched by "
                               "the databackend fetch thread and the runtime state lives in "
                               "this process")
        return self._make_iterator()

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("BatchIterableDataset cannot be pickled; use num_workers=0")
