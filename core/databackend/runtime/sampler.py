"""Per-dataset bucket sampling: every batch from one bucket, order a pure function of the seed.

For each epoch, in every pass (``repeats + 1`` of them) each bucket's samples are permuted and
cut into global batches of ``train_batch_size x world_size``; then all (pass, bucket, chunk)
batches are permuted together. Both permutations are seeded Feistel permutations
(:mod:`databackend.runtime.permutation`) evaluated on the fly: batch ``t`` of an epoch is
computed from ``t`` alone, so nothing proportional to the dataset is built or kept; the memory
is O(buckets) on top of the bucket index arrays (views of the mapped index). The order depends
only on ``(seed, dataset id, epoch)`` and the bucket contents, so the sampler's state is two
counters (epoch, position) plus the record of global-batch-size changes made by resuming with a
different world size (see :meth:`BucketSampler.load_state_dict` and docs/runtime.md; the rest
of an epoch regrouped that way is materialised, once, for that epoch only).

A bucket whose size is not a multiple of the global batch is completed by the
``short_bucket_policy``: ``pad`` repeats the bucket's own samples (from the start of that pass's
permutation) to fill the last batch; ``drop`` leaves the remainder out, with a counted warning.
:attr:`BucketSampler.report` lists every affected bucket.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, cast

import attrs
import numpy as np

from databackend.options import SHORT_BUCKET_POLICIES
from databackend.runtime.permutation import Permutation, derive_key

__all__ = ["ORDER_VERSION", "Bucket", "BucketReport", "BucketSampler", "EpochPlan"]

log = logging.getLogger(__name__)

Bucket = tuple[int, int]
_SMALL, _BUDGET = 1 << 16, 1 << 20  # whole permutations kept for small buckets (<= 8 MB)
#: Version of the sample order; 2 = on-the-fly Feistel permutations (1 = materialised plans).
ORDER_VERSION = 2


@attrs.frozen(kw_only=True)
class BucketReport:
    """One bucket whose size is not a multiple of the global batch, per pass of the dataset.

    ``short`` means the whole bucket is smaller than one global batch; ``padded`` counts the
    repeated slots added and ``dropped`` the samples left out, each per pass.
    """

    bucket: Bucket
    size: int
    global_batch: int
    policy: str
    padded: int
    dropped: int

    @property
    def short(self) -> bool:
        """The bucket holds fewer samples than one global batch."""
        return self.size < self.global_batch

    def describe(self) -> str:
        """``"512x768: 3 samples < global batch 8, padded +5"``-style text (per pass)."""
        head = f"{self.bucket[0]}x{self.bucket[1]}: {self.size} samples"
        what = f"padded +{self.padded}" if self.padded else f"dropped {self.dropped}"
        if self.short:
            return f"{head} < global batch {self.global_batch}, {what}"
        return f"{head}, last batch of {self.global_batch} {what}"


@attrs.frozen
class EpochPlan:
    """The batches of one epoch: batch ``i`` is ``samples[offsets[i]:offsets[i+1]]``."""

    samples: np.ndarray
    offsets: np.ndarray
    buckets: np.ndarray

    def __len__(self) -> int:
        return len(self.buckets)

    def batch(self, i: int) -> np.ndarray:
        """The global sample indices of batch ``i``."""
        return self.samples[self.offsets[i]:self.offsets[i + 1]]

    def head(self, stop: int) -> EpochPlan:
        """The plan's first ``stop`` batches."""
        return EpochPlan(self.samples[:self.offsets[stop]], self.offsets[:stop + 1],
                         self.buckets[:stop])

    def tail(self, start: int) -> EpochPlan:
        """The plan from batch ``start`` on."""
        lo = self.offsets[start]
        return EpochPlan(self.samples[lo:], self.offsets[start:] - lo, self.buckets[start:])


def _chunk(seq: np.ndarray, size: int, policy: str) -> np.ndarray:
    """Cut ``seq`` into rows of ``size``; the partial last row is padded cyclically or dropped."""
    full, rem = divmod(len(seq), size)
    if rem and policy == "pad":
        return np.resize(seq, (full + 1) * size).reshape(-1, size)
    return seq[:full * size].reshape(-1, size)


def _join(rows: Sequence[np.ndarray], bucket_ids: Sequence[int], order: np.ndarray | None,
          size_of: Sequence[int]) -> EpochPlan:
    """Assemble batches (``rows[k]`` of bucket ``bucket_ids[k]``) in ``order`` into a plan."""
    idx = [int(k) for k in (order if order is not None else range(len(rows)))]
    samples = [rows[k] for k in idx]
    lengths = np.array([size_of[k] for k in idx], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    flat = np.concatenate(samples).astype(np.int64) if samples else np.zeros(0, np.int64)
    return EpochPlan(flat, offsets, np.asarray([bucket_ids[k] for k in idx], dtype=np.int64))


def _regroup(tail: EpochPlan, size: int, policy: str) -> EpochPlan:
    """Re-cut the rest of an epoch into batches of a new global size, keeping sample order.

    Each bucket's remaining samples keep their order and are cut into batches of ``size``
    (completed by ``policy``); the new batches run in the order of their first sample.
    """
    lengths = np.diff(tail.offsets)
    owner = np.repeat(tail.buckets, lengths)
    rows: list[np.ndarray] = []
    bucket_ids: list[int] = []
    firsts: list[int] = []
    for b in np.unique(owner):
        where = np.flatnonzero(owner == b)
        for r, row in enumerate(_chunk(tail.samples[where], size, policy)):
            rows.append(row)
            bucket_ids.append(int(b))
            firsts.append(int(where[r * size]))
    order = np.argsort(np.asarray(firsts, dtype=np.int64), kind="stable")
    return _join(rows, bucket_ids, order, [size] * len(rows))


class BucketSampler:
    """Chooses the samples of each batch of one dataset; see the module docstring."""

    def __init__(self, dataset_id: str, buckets: Mapping[Bucket, Sequence[int] | np.ndarray], *,
                 batch_size: int, world_size: int = 1, repeats: int = 0, seed: int = 0,
                 policy: str = "pad") -> None:
        """Sample ``buckets`` (``(W, H) -> sample indices``) in global batches of
        ``batch_size * world_size``; ``repeats`` extra passes per epoch."""
        if policy not in SHORT_BUCKET_POLICIES:
            raise ValueError(f"dataset {dataset_id!r}: short_bucket_policy must be one of "
                             f"{SHORT_BUCKET_POLICIES}; got {policy!r}")
        if batch_size < 1 or world_size < 1 or repeats < 0:
            raise ValueError(f"dataset {dataset_id!r}: batch_size and world_size must be >= 1 "
                             "and repeats >= 0")
        self.dataset_id = dataset_id
        self.batch_size, self.world_size = batch_size, world_size
        self.repeats, self.seed, self.policy = repeats, seed, policy
        self.bucket_keys: tuple[Bucket, ...] = tuple(sorted(  # (W, H), or (W, H, F) for video
            cast(Bucket, tuple(int(x) for x in k)) for k, v in buckets.items() if len(v)))
        self._indices = [np.asarray(buckets[k], dtype=np.int64) for k in self.bucket_keys]
        self.report: tuple[BucketReport, ...] = self._make_report()
        self.num_samples = int(sum(len(v) for v in self._indices))
        self.num_batches = self._count_batches()
        self.epoch, self.position = 1, 0
        self._base = self.global_batch
        self._regroups: list[tuple[int, int]] = []
        self._plan: EpochPlan | None = None
        self._offsets: list[int] = []
        self._keys: list[Bucket] = []
        self._layouts: dict[tuple[int, int], tuple[np.ndarray, int, Permutation]] = {}
        self._small: dict[tuple[int, int, int], np.ndarray] = {}
        self._warn()

    @property
    def global_batch(self) -> int:
        """Samples per step across all ranks: ``batch_size * world_size``."""
        return self.batch_size * self.world_size

    def _make_report(self) -> tuple[BucketReport, ...]:
        out = []
        g = self.global_batch
        for key, idx in zip(self.bucket_keys, self._indices, strict=True):
            rem = len(idx) % g
            if rem:
                pad = self.policy == "pad"
                out.append(BucketReport(bucket=key, size=len(idx), global_batch=g,
                                        policy=self.policy, padded=(g - rem) if pad else 0,
                                        dropped=0 if pad else rem))
        return tuple(out)

    def _count_batches(self) -> int:
        g, pad = self.global_batch, self.policy == "pad"
        per_pass = sum(-(-len(i) // g) if pad else len(i) // g for i in self._indices)
        return per_pass * (self.repeats + 1)

    def _warn(self) -> None:
        dropped = [r for r in self.report if r.dropped]
        padded = [r for r in self.report if r.padded]
        if dropped:
            log.warning("dataset %r: %d bucket(s) not a multiple of the global batch %d; "
                        "%d sample(s) per pass dropped: %s", self.dataset_id, len(dropped),
                        self.global_batch, sum(r.dropped for r in dropped),
                        "; ".join(r.describe() for r in dropped))
        if padded:
            log.info("dataset %r: %d bucket(s) padded by repetition to the global batch %d "
                     "(%d slot(s) per pass): %s", self.dataset_id, len(padded),
                     self.global_batch, sum(r.padded for r in padded),
                     "; ".join(r.describe() for r in padded))
        if self.num_samples and not self.num_batches:
            log.warning("dataset %r: every bucket is smaller than the global batch %d and the "
                        "policy is 'drop'; the dataset yields no batches", self.dataset_id,
                        self.global_batch)

    # --- plans ---------------------------------------------------------------------------------
    def _layout(self, g: int) -> tuple[np.ndarray, int]:
        """Cumulative batches per bucket in one pass (B + 1) and the batches per pass."""
        pad = self.policy == "pad"
        chunks = [-(-len(i) // g) if pad else len(i) // g for i in self._indices]
        cum = np.zeros(len(chunks) + 1, np.int64)
        np.cumsum(chunks, out=cum[1:])
        return cum, int(cum[-1])

    def _batch(self, epoch: int, g: int, t: int) -> tuple[int, np.ndarray]:
        """Bucket number and global sample indices of batch ``t`` of ``epoch`` (native order)."""
        if (epoch, g) not in self._layouts:
            cum, per_pass = self._layout(g)
            self._layouts = {(epoch, g): (cum, per_pass, Permutation(
                per_pass * (self.repeats + 1),
                derive_key(self.seed, "sampler", self.dataset_id, epoch)))}
        cum, per_pass, order = self._layouts[epoch, g]
        k = order.at(t)
        p, r = divmod(k, per_pass)
        b = int(np.searchsorted(cum, r, side="right")) - 1
        idx = self._indices[b]
        pos = ((r - int(cum[b])) * g + np.arange(g, dtype=np.int64)) % len(idx)
        return b, idx[self._order(epoch, p, b)[pos]]

    def _order(self, epoch: int, p: int, b: int) -> Permutation | np.ndarray:
        """Bucket ``b``'s permutation in pass ``p``: computed per position, or for a bucket of
        at most ``_SMALL`` samples kept whole in an LRU of at most ``_BUDGET`` entries in all)."""
        key = (epoch, p, b)
        found = self._small.pop(key, None)
        if found is None:
            perm = Permutation(len(self._indices[b]), derive_key(self.seed, "sampler",
                                                                 self.dataset_id, epoch, p, b))
            if perm.n > _SMALL:
                return perm
            found = perm[np.arange(perm.n, dtype=np.int64)]
        self._small[key] = found  # most recent last
        total = sum(len(v) for v in self._small.values())
        while total > _BUDGET:
            total -= len(self._small.pop(next(iter(self._small))))
        return found

    def native_plan(self, epoch: int, global_batch: int | None = None) -> EpochPlan:
        """The epoch's batches as built for ``global_batch`` (default: the current one),
        materialised (O(samples); :meth:`take` computes the same batches one at a time)."""
        g = global_batch or self.global_batch
        cum, per_pass = self._layout(g)
        total = per_pass * (self.repeats + 1)
        rows: list[np.ndarray] = []
        for p in range(self.repeats + 1):
            for b, idx in enumerate(self._indices):
                count = int(cum[b + 1] - cum[b])
                perm = Permutation(len(idx), derive_key(self.seed, "sampler", self.dataset_id,
                                                        epoch, p, b))
                pos = np.arange(count * g, dtype=np.int64)
                rows.extend(idx[perm[pos % max(1, len(idx))]].reshape(count, g))
        bucket_ids = [b for _ in range(self.repeats + 1) for b in range(len(self._indices))
                      for _ in range(int(cum[b + 1] - cum[b]))]
        order = Permutation(total, derive_key(self.seed, "sampler", self.dataset_id, epoch))[
            np.arange(total, dtype=np.int64)]
        return _join(rows, bucket_ids, order, [g] * len(rows))

    def plan(self) -> EpochPlan:
        """The current epoch's plan, including any regrouping after a world-size change."""
        if self._plan is not None:
            return self._plan
        plan = self.native_plan(self.epoch, self._base)
        for pos, g in self._regroups:
            plan = _concat(plan.head(pos), _regroup(plan.tail(pos), g, self.policy))
        self._plan = plan
        # per-batch lookups as Python lists: take() runs every step, between tensor copies
        self._offsets = plan.offsets.tolist()
        self._keys = [self.bucket_keys[b] for b in plan.buckets.tolist()]
        return plan

    # --- iteration -----------------------------------------------------------------------------
    def begin_epoch(self, epoch: int) -> None:
        """Start ``epoch`` from its first batch (a no-op when already there)."""
        if epoch == self.epoch and self.position == 0 and not self._regroups:
            return
        self.epoch, self.position = epoch, 0
        self._base, self._regroups, self._plan = self.global_batch, [], None

    @property
    def remaining(self) -> int:
        """Batches left in the current epoch."""
        return max(0, self._epoch_batches() - self.position)

    def _epoch_batches(self) -> int:
        if self._regroups:
            return len(self.plan().buckets)
        return self.num_batches

    @property
    def exhausted(self) -> bool:
        """No batch is left in the current epoch."""
        return self.position >= self._epoch_batches()

    def take(self) -> tuple[Bucket, np.ndarray]:
        """The next batch's bucket and global sample indices; advances the position."""
        i = self.position
        if i >= self._epoch_batches():
            raise IndexError(f"dataset {self.dataset_id!r} is exhausted for epoch {self.epoch}")
        self.position = i + 1
        if not self._regroups:  # the common case: computed on the fly, nothing stored
            b, samples = self._batch(self.epoch, self._base, i)
            return self.bucket_keys[b], samples
        plan = self.plan()
        return self._keys[i], plan.samples[self._offsets[i]:self._offsets[i + 1]]

    # --- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Counters that reproduce the sampler: epoch, position and global-batch history."""
        return {"epoch": self.epoch, "position": self.position, "base_global_batch": self._base,
                "regroups": [list(r) for r in self._regroups], "order_version": ORDER_VERSION}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore counters; a different global batch regroups the rest of the epoch."""
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        if int(state.get("order_version", 1)) != ORDER_VERSION and self.position:
            log.warning("dataset %r: the checkpoint was made with sample order version %s; "
                        "this version orders epochs differently, so the rest of epoch %d is "
                        "drawn in the new order (some samples may repeat or be skipped once; "
                        "see docs/runtime.md)", self.dataset_id,
                        state.get("order_version", 1), self.epoch)
        self._base = int(state.get("base_global_batch", self.global_batch))
        self._regroups = [(int(p), int(g)) for p, g in state.get("regroups", [])]
        self._plan = None
        current = self._regroups[-1][1] if self._regroups else self._base
        if current != self.global_batch:
            log.info("dataset %r: global batch changed %d -> %d; regrouping the rest of epoch "
                     "%d from batch %d", self.dataset_id, current, self.global_batch,
                     self.epoch, self.position)
            self._regroups.append((self.position, self.global_batch))


def _concat(a: EpochPlan, b: EpochPlan) -> EpochPlan:
    """``a`` followed by ``b``."""
    offsets = np.concatenate([a.offsets[:-1], b.offsets + a.offsets[-1]])
    return EpochPlan(np.concatenate([a.samples, b.samples]), offsets,
                     np.concatenate([a.buckets, b.buckets]))
