"""The runtime: per-step dataset and bucket choice, rank slicing, batch assembly, and resume.

Each step the :class:`DatasetSelector` draws a dataset from ``(seed, epoch, step)``; that
dataset's :class:`BucketSampler` gives the step's *global* batch (``train_batch_size x
world_size`` samples of one bucket) and each rank keeps its own contiguous slice. Every rank runs
the same state machine, so all agree on the dataset, the bucket and the number of batches per
epoch without communicating. The epoch ends when no dataset is eligible any more (all exhausted
or outside their schedule window).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from databackend.runtime.batch import Batch, DatasetSource, collate
from databackend.runtime.sampler import Bucket, BucketReport, BucketSampler
from databackend.runtime.selector import DatasetSelector, Schedule
from databackend.runtime.strategies import DatasetView, SamplingStrategy

__all__ = ["STATE_VERSION", "DataRuntime", "RuntimeDataset", "StepPlan"]

log = logging.getLogger(__name__)

STATE_VERSION = 1


@attrs.frozen(kw_only=True)
class RuntimeDataset:
    """One dataset as the runtime sees it: its source and its sampling settings."""

    id: str
    source: DatasetSource
    batch_size: int = 1
    repeats: int = 0
    probability: float = 1.0
    schedule: Schedule = attrs.field(factory=Schedule)
    disable_after_epoch_step: int | None = None
    short_bucket_policy: str = "pad"


@attrs.frozen(kw_only=True)
class StepPlan:
    """What one step reads: the global batch's indices and this rank's slice of them."""

    epoch: int
    step: int
    dataset_id: str
    bucket: Bucket
    global_indices: np.ndarray
    indices: np.ndarray


class DataRuntime:
    """Turns datasets into an endless, resumable, rank-consistent stream of :class:`Batch`."""

    def __init__(self, datasets: Sequence[RuntimeDataset], strategy: SamplingStrategy, *,
                 seed: int = 0, rank: int = 0, world_size: int = 1,
                 max_epochs: int | None = None) -> None:
        """Build a sampler per dataset (ordered by id) and the selector over them."""
        if not datasets:
            raise ValueError("the runtime needs at least one dataset")
        self.datasets = tuple(sorted(datasets, key=lambda d: d.id))
        self._ids = tuple(d.id for d in self.datasets)
        self._sources = {d.id: d.source for d in self.datasets}
        self._batchers: dict[str, Callable[..., Batch] | None] = {
            d.id: getattr(d.source, "batch", None) for d in self.datasets}
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.max_epochs = max_epochs
        self.samplers = tuple(BucketSampler(
            d.id, d.source.buckets(), batch_size=d.batch_size, world_size=world_size,
            repeats=d.repeats, seed=seed, policy=d.short_bucket_policy) for d in self.datasets)
        views = [DatasetView(id=d.id, probability=d.probability, num_batches=s.num_batches,
                             num_samples=s.num_samples,
                             disable_after_epoch_step=d.disable_after_epoch_step)
                 for d, s in zip(self.datasets, self.samplers, strict=True)]
        self.selector = DatasetSelector(views, [d.schedule for d in self.datasets], strategy,
                                        seed=seed)
        if not any(s.num_batches for s in self.samplers):
            raise ValueError("no dataset yields a batch (empty datasets, or every bucket "
                             "dropped by short_bucket_policy='drop')")
        self.epoch, self.step, self.epoch_batches = 1, 0, 0
        self.draws = dict.fromkeys(self.ids, 0)
        self.expected = dict.fromkeys(self.ids, 0.0)
        #: called with the new epoch number whenever an epoch begins (after the first)
        self.on_epoch: list[Callable[[int], None]] = []

    @property
    def ids(self) -> tuple[str, ...]:
        """Dataset ids in selection order (sorted)."""
        return self._ids

    @property
    def reports(self) -> dict[str, tuple[BucketReport, ...]]:
        """Per dataset, the buckets padded or trimmed by the short-bucket policy."""
        return {s.dataset_id: s.report for s in self.samplers if s.report}

    @property
    def batches_per_epoch(self) -> dict[str, int]:
        """Per dataset, the batches in one full epoch (all passes)."""
        return {s.dataset_id: s.num_batches for s in self.samplers}

    # --- stepping ------------------------------------------------------------------------------
    def plan_next(self) -> StepPlan | None:
        """Advance one step and say what it reads; None once no dataset can ever be drawn."""
        while self.max_epochs is None or self.epoch <= self.max_epochs:
            exhausted = [s.exhausted for s in self.samplers]
            i, p = self.selector.draw(self.epoch, self.step, exhausted)
            if i is not None:
                return self._take(i, p)
            if not self._end_epoch():
                return None
        return None

    def _take(self, i: int, p: Sequence[float]) -> StepPlan:
        sampler = self.samplers[i]
        bucket, glob = sampler.take()
        lo = self.rank * sampler.batch_size
        plan = StepPlan(epoch=self.epoch, step=self.step, dataset_id=sampler.dataset_id,
                        bucket=bucket, global_indices=glob,
                        indices=glob[lo:lo + sampler.batch_size])
        expected = self.expected
        for did, share in zip(self._ids, p, strict=True):
            expected[did] += share
        self.draws[sampler.dataset_id] += 1
        self.step += 1
        self.epoch_batches += 1
        return plan

    def _end_epoch(self) -> bool:
        """Move to the next epoch that can yield batches; False when none can."""
        nxt = self.epoch + 1
        if self.epoch_batches == 0:
            usable = [s.num_batches > 0 for s in self.samplers]
            found = self.selector.next_active_epoch(self.epoch, self.step, usable)
            if found is None:
                log.info("no dataset can be active after epoch %d step %d; data finished",
                         self.epoch, self.step)
                return False
            nxt = found
            log.info("epoch %d had no active dataset; continuing at epoch %d", self.epoch, nxt)
        else:
            log.info("epoch %d ended after %d batches (step %d)", self.epoch,
                     self.epoch_batches, self.step)
        self.epoch, self.epoch_batches = nxt, 0
        for s in self.samplers:
            s.begin_epoch(self.epoch)
        for hook in self.on_epoch:
            hook(self.epoch)
        return True

    def assemble(self, plan: StepPlan) -> Batch:
        """Read and stack this rank's samples of ``plan``."""
        indices: list[int] = plan.indices.tolist()
        whole = self._batchers[plan.dataset_id]
        if whole is not None:
            return whole(indices, epoch=plan.epoch, step=plan.step, bucket=plan.bucket)
        samples = self._sources[plan.dataset_id].samples(indices, epoch=plan.epoch,
                                                          step=plan.step)
        return collate(samples, dataset_id=plan.dataset_id, bucket=plan.bucket, indices=indices,
                       epoch=plan.epoch, step=plan.step)

    def produce(self) -> tuple[Batch, dict[str, Any]] | None:
        """The next batch with the state right after it (what a prefetcher hands over)."""
        plan = self.plan_next()
        if plan is None:
            return None
        return self.assemble(plan), self.state_dict()

    def __iter__(self) -> Iterator[Batch]:
        """Batches until the data ends (endless unless schedules or ``max_epochs`` end it)."""
        while (plan := self.plan_next()) is not None:
            yield self.assemble(plan)

    def plans(self, steps: int) -> list[StepPlan]:
        """Advance up to ``steps`` steps without reading any sample (tests, dry runs)."""
        out: list[StepPlan] = []
        while len(out) < steps and (plan := self.plan_next()) is not None:
            out.append(plan)
        return out

    # --- state ---------------------------------------------------------------------------------
    def reset(self) -> None:
        """Go back to the first step of epoch 1 (counters cleared)."""
        self.epoch, self.step, self.epoch_batches = 1, 0, 0
        for s in self.samplers:
            s.begin_epoch(1)
        self.draws = dict.fromkeys(self.ids, 0)
        self.expected = dict.fromkeys(self.ids, 0.0)

    def state_dict(self) -> dict[str, Any]:
        """Counters that reproduce the runtime exactly (JSON-serialisable)."""
        return {"version": STATE_VERSION, "seed": self.seed, "epoch": self.epoch,
                "step": self.step, "epoch_batches": self.epoch_batches,
                "world_size": self.world_size,
                "datasets": {s.dataset_id: s.state_dict() for s in self.samplers},
                "draws": dict(self.draws), "expected": dict(self.expected)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue exactly where ``state`` was saved (a different world size is allowed)."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"runtime state version {state.get('version')!r} is not "
                             f"{STATE_VERSION}")
        if int(state["seed"]) != self.seed:
            raise ValueError(f"runtime state was saved with seed {state['seed']}, "
                             f"this runtime uses {self.seed}")
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.epoch_batches = int(state["epoch_batches"])
        saved: Mapping[str, Any] = state.get("datasets", {})
        for s in self.samplers:
            if s.dataset_id in saved and int(saved[s.dataset_id]["epoch"]) == self.epoch:
                s.load_state_dict(saved[s.dataset_id])
            else:
                log.warning("dataset %r is not in the saved state; it starts epoch %d afresh",
                            s.dataset_id, self.epoch)
                s.begin_epoch(self.epoch)
        for extra in sorted(set(saved) - set(self.ids)):
            log.warning("saved state has dataset %r, which is not configured; ignored", extra)
        self.draws = {i: int(state.get("draws", {}).get(i, 0)) for i in self.ids}
        self.expected = {i: float(state.get("expected", {}).get(i, 0.0)) for i in self.ids}
