"""Eval datasets: never drawn for training, read in a fixed order on demand.

:func:`eval_batches` walks each eval dataset's buckets in ascending ``(W, H)`` order and each
bucket's samples in index order, ``batch_size`` at a time (default: the dataset's
``train_batch_size``, else 1; the last batch of a bucket may be smaller). Batches have the
training fields (conditioning included), ``epoch`` 0 and ``step`` counting from 0 within the
pass, so caption choice is fixed too. Every rank gets every batch unless ``shard`` is set (then
rank ``r`` gets every ``world_size``-th batch), which avoids the reference's bug of sharding
eval sets across ranks and then evaluating on rank 0 only. Nothing of the training runtime is
touched: its state, its prefetcher and its resume point stay as they are.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from databackend.runtime.batch import Batch

__all__ = ["eval_batches"]


def eval_batches(factory: Any, dataset_id: str | None = None, *,
                 batch_size: int | None = None, shard: bool = False) -> Iterator[Batch]:
    """The eval batches of ``factory`` (see the module doc); ``dataset_id`` names one eval
    dataset (ValueError listing them when it is not one)."""
    factory.build()
    assert factory.plan is not None
    evals = [d for d in factory.plan.datasets if d.dataset_type == "eval" and not d.disabled]
    if dataset_id is not None:
        evals = [d for d in evals if d.id == dataset_id]
        if not evals:
            names = [d.id for d in factory.plan.datasets if d.dataset_type == "eval"]
            raise ValueError(f"{dataset_id!r} is not an eval dataset; eval datasets: "
                             f"{', '.join(map(repr, names)) or 'none'}")
    return _walk(factory, evals, batch_size, shard)


def _walk(factory: Any, evals: list[Any], batch_size: int | None, shard: bool
          ) -> Iterator[Batch]:
    rank, world = factory.rank, factory.world_size
    for dataset in evals:
        source = factory.dataset_source(dataset, fresh_text_cache=True)
        size = max(1, batch_size or dataset.train_batch_size or 1)
        step = 0
        for bucket, rows in sorted(source.buckets().items()):
            ordered = sorted(int(r) for r in rows)
            for start in range(0, len(ordered), size):
                if not shard or step % world == rank:
                    yield source.batch(ordered[start:start + size], epoch=0, step=step,
                                       bucket=bucket)
                step += 1
