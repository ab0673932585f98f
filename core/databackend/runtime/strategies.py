"""Sampling strategies: how likely each dataset is to supply the next batch.

A strategy returns one non-negative weight per dataset; the selector zeroes datasets that are
exhausted or outside their schedule window, then draws with a generator seeded by
``(seed, epoch, step)`` so every rank agrees. Register new strategies with the
``databackend_register_strategies`` hook and select them by ``name``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import attrs

__all__ = ["AutoWeighting", "DatasetView", "SamplingStrategy", "Uniform"]


@attrs.frozen(kw_only=True)
class DatasetView:
    """What a strategy may look at for one dataset."""

    id: str
    probability: float = 1.0
    num_batches: int = 0
    num_samples: int = 0
    disable_after_epoch_step: int | None = None


class SamplingStrategy(ABC):
    """Chooses dataset weights; subclasses set ``name`` and implement :meth:`weights`."""

    name: ClassVar[str]

    @abstractmethod
    def weights(self, datasets: Sequence[DatasetView], epoch: int, step: int) -> list[float]:
        """One weight per dataset (>= 0) for the given epoch and global step."""

    def same_every_step(self, datasets: Sequence[DatasetView]) -> bool:
        """Whether :meth:`weights` is the same for every step of an epoch, so the selector may
        reuse it until the epoch or the set of exhausted datasets changes (default: False,
        asked every step)."""
        return False


class Uniform(SamplingStrategy):
    """Weight = the dataset's ``probability`` (SimpleTuner's ``uniform``)."""

    name = "uniform"

    def weights(self, datasets: Sequence[DatasetView], epoch: int, step: int) -> list[float]:
        """``probability`` per dataset."""
        return [max(0.0, d.probability) for d in datasets]

    def same_every_step(self, datasets: Sequence[DatasetView]) -> bool:
        """Always: probabilities are fixed."""
        return True


class AutoWeighting(SamplingStrategy):
    """``probability`` scaled by dataset size in batches, decaying linearly to zero at
    ``disable_after_epoch_step`` when that key is set (SimpleTuner's ``auto-weighting``)."""

    name = "auto-weighting"

    def weights(self, datasets: Sequence[DatasetView], epoch: int, step: int) -> list[float]:
        """``probability * num_batches / total`` times the optional decay."""
        total = sum(d.num_batches for d in datasets) or 1
        out = []
        for d in datasets:
            w = max(0.0, d.probability) * d.num_batches / total
            if d.disable_after_epoch_step:
                w *= max(0.0, 1.0 - step / d.disable_after_epoch_step)
            out.append(w)
        return out

    def same_every_step(self, datasets: Sequence[DatasetView]) -> bool:
        """Unless a dataset decays with ``disable_after_epoch_step``."""
        return not any(d.disable_after_epoch_step for d in datasets)
