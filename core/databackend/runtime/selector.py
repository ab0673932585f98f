"""Choosing the dataset of each step: strategy weights, schedule windows, exhaustion, seeded draw.

The draw for a step is a pure function of ``(seed, epoch, step)`` and the exhaustion flags, which
every rank tracks identically, so all ranks pick the same dataset without communicating.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs
import numpy as np

from databackend.runtime.seeding import KeyedUniform
from databackend.runtime.strategies import DatasetView, SamplingStrategy

__all__ = ["DatasetSelector", "Schedule"]


@attrs.frozen(kw_only=True)
class Schedule:
    """A dataset's activity window (SimpleTuner's ``start_epoch``/``start_step``/``end_*``).

    Active iff ``epoch >= start_epoch`` and ``step + 1 >= start_step`` and (``end_epoch`` is
    None or ``epoch <= end_epoch``) and (``end_step`` is None or ``step + 1 <= end_step``), where
    ``epoch`` counts from 1 and ``step`` is the 0-based global batch counter.
    """

    start_epoch: int = 1
    start_step: int = 0
    end_epoch: int | None = None
    end_step: int | None = None

    @property
    def bounds_steps(self) -> bool:
        """Whether the window depends on the step (``start_step`` > 1 or an ``end_step``)."""
        return self.start_step > 1 or self.end_step is not None

    def active(self, epoch: int, step: int) -> bool:
        """Whether the dataset may be drawn at ``(epoch, step)``."""
        return (epoch >= self.start_epoch and step + 1 >= self.start_step
                and (self.end_epoch is None or epoch <= self.end_epoch)
                and (self.end_step is None or step + 1 <= self.end_step))


class DatasetSelector:
    """Weights datasets with a strategy, masks inactive/exhausted ones, draws one per step."""

    def __init__(self, views: Sequence[DatasetView], schedules: Sequence[Schedule],
                 strategy: SamplingStrategy, *, seed: int = 0) -> None:
        """``views[i]`` and ``schedules[i]`` describe dataset ``i``."""
        if len(views) != len(schedules):
            raise ValueError("one schedule per dataset view is required")
        self.views = tuple(views)
        self.schedules = tuple(schedules)
        self.strategy = strategy
        self.seed = seed
        self._uniform = KeyedUniform(seed, "select")
        #: the schedules that can make a dataset inactive (None: always active)
        self._windows = [None if s == Schedule() else s for s in self.schedules]
        #: weights can be reused within an epoch: (epoch, *exhausted) -> draw weights
        self._steady = strategy.same_every_step(self.views) and not any(
            s.bounds_steps for s in self.schedules)
        self._reuse: dict[tuple[int, ...], tuple[tuple[float, ...], float]] = {}

    @property
    def ids(self) -> tuple[str, ...]:
        """Dataset ids, in selection order."""
        return tuple(v.id for v in self.views)

    def _weights(self, epoch: int, step: int, exhausted: Sequence[bool]) -> list[float]:
        raw = self.strategy.weights(self.views, epoch, step)
        if len(raw) != len(self.views):
            raise ValueError(f"strategy {self.strategy.name!r} returned {len(raw)} weights for "
                             f"{len(self.views)} datasets")
        return [float(value) if (value > 0 and not done and math.isfinite(value)
                                 and (sched is None or sched.active(epoch, step))) else 0.0
                for value, sched, done in zip(raw, self._windows, exhausted, strict=True)]

    def probabilities(self, epoch: int, step: int, exhausted: Sequence[bool]) -> np.ndarray:
        """Normalised draw probabilities at ``(epoch, step)`` (all zero: nothing can be drawn)."""
        w = np.asarray(self._weights(epoch, step, exhausted), dtype=np.float64)
        total = w.sum()
        return w / total if total > 0 else w

    def draw(self, epoch: int, step: int, exhausted: Sequence[bool]
             ) -> tuple[int | None, tuple[float, ...]]:
        """The dataset drawn for ``(epoch, step)`` (None when none is eligible) and the
        normalised probabilities it was drawn with."""
        p, total = self._normalised(epoch, step, exhausted)
        if total <= 0:
            return None, p
        u = self._uniform(epoch, step)
        acc, last = 0.0, 0
        for i, share in enumerate(p):
            if share > 0:
                acc, last = acc + share, i
                if u < acc:
                    return i, p
        return last, p  # u beyond a cumulative sum that rounded below 1

    def _normalised(self, epoch: int, step: int, exhausted: Sequence[bool]
                    ) -> tuple[tuple[float, ...], float]:
        """The draw probabilities (raw weights when they sum to 0) and the weights' sum;
        reused across the steps of an epoch when nothing in them depends on the step."""
        key = (epoch, *exhausted) if self._steady else None
        found = self._reuse.get(key) if key is not None else None
        if found is not None:
            return found
        w = self._weights(epoch, step, exhausted)
        total = math.fsum(w)
        found = tuple(x / total for x in w) if total > 0 else tuple(w), total
        if key is not None:
            if len(self._reuse) > 64:
                self._reuse.clear()
            self._reuse[key] = found
        return found

    def pick(self, epoch: int, step: int, exhausted: Sequence[bool]) -> int | None:
        """The dataset drawn for ``(epoch, step)``, or None when none is eligible."""
        return self.draw(epoch, step, exhausted)[0]

    def next_active_epoch(self, epoch: int, step: int, usable: Sequence[bool]) -> int | None:
        """The first epoch after ``epoch`` in which a usable dataset is active at ``step``."""
        found = [e for s, ok in zip(self.schedules, usable, strict=True) if ok
                 for e in [max(epoch + 1, s.start_epoch)] if s.active(e, step)]
        return min(found) if found else None
