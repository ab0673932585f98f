"""The ``mixture`` sampling policy: weights are long-run shares, as streaming mixers do.

Under the default policy (``exhaust``) every dataset is drawn until its epoch is used up, so the
weights only *order* an epoch: each dataset still supplies all of its batches, whatever its
``probability``. Under ``mixture`` each step draws a dataset with the normalised strategy
weights (``uniform``: the configured ``probability``), an epoch is a fixed number of steps, and
a dataset whose own epoch runs out starts its next one (reshuffled) at once. The share of steps
each dataset gets over a long run is therefore its weight.

Like the default policy, the draw of a step is a pure function of ``(seed, epoch, step)`` and of
state every rank keeps identically, so ranks agree without communicating, and the whole state
(including each dataset's own epoch number) is in :meth:`MixtureRuntime.state_dict`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from databackend.options import SAMPLING_POLICIES
from databackend.runtime.loop import DataRuntime, RuntimeDataset, StepPlan
from databackend.runtime.strategies import SamplingStrategy

__all__ = ["POLICIES", "MixtureRuntime", "make_runtime", "resolve_policy"]

log = logging.getLogger(__name__)

#: Sampling policies: ``exhaust`` (the reference's: draw until every dataset is used up) and
#: ``mixture`` (weights are long-run shares; datasets restart their own epochs).
POLICIES = SAMPLING_POLICIES


class MixtureRuntime(DataRuntime):
    """A :class:`DataRuntime` whose weights are the long-run shares of the steps.

    :param steps_per_epoch: steps in one (global) epoch; default the sum of the datasets'
        batches per epoch, i.e. as many steps as the default policy's epoch has.
    """

    def __init__(self, datasets: Sequence[RuntimeDataset], strategy: SamplingStrategy, *,
                 steps_per_epoch: int | None = None, **kwargs: Any) -> None:
        """Build the runtime; see :class:`DataRuntime` for the other arguments."""
        super().__init__(datasets, strategy, **kwargs)
        total = sum(s.num_batches for s in self.samplers)
        self.steps_per_epoch = int(steps_per_epoch or total)
        if self.steps_per_epoch < 1:
            raise ValueError(f"mixture steps_per_epoch must be >= 1; got {steps_per_epoch}")
        #: each dataset's own epoch (1 at the start; +1 each time it is used up)
        self.dataset_epochs = dict.fromkeys(self.ids, 1)
        self._empty = [s.num_batches == 0 for s in self.samplers]

    @property
    def policy(self) -> str:
        """``"mixture"``."""
        return "mixture"

    def plan_next(self) -> StepPlan | None:
        """Advance one step: draw a dataset by weight, restarting its epoch when used up."""
        while self.max_epochs is None or self.epoch <= self.max_epochs:
            if self.epoch_batches < self.steps_per_epoch:
                i, p = self.selector.draw(self.epoch, self.step, self._empty)
                if i is not None:
                    self._refill(i)
                    return self._take(i, p)
            if not self._end_epoch():
                return None
        return None

    def _refill(self, i: int) -> None:
        """Start dataset ``i``'s next own epoch when its current one is used up."""
        sampler = self.samplers[i]
        if sampler.exhausted:
            did = sampler.dataset_id
            self.dataset_epochs[did] += 1
            sampler.begin_epoch(self.dataset_epochs[did])
            log.debug("dataset %r starts its epoch %d at step %d", did,
                      self.dataset_epochs[did], self.step)

    def _end_epoch(self) -> bool:
        """Next global epoch; datasets keep their own epochs and positions."""
        own = {s.dataset_id: s.state_dict() for s in self.samplers}
        if not super()._end_epoch():
            return False
        for s in self.samplers:  # the base class restarted them at the global epoch
            s.load_state_dict(own[s.dataset_id])
        return True

    def reset(self) -> None:
        """Back to the first step of epoch 1; every dataset back to its own epoch 1."""
        super().reset()
        self.dataset_epochs = dict.fromkeys(self.ids, 1)

    def state_dict(self) -> dict[str, Any]:
        """The default runtime state plus the policy and each dataset's own epoch."""
        return {**super().state_dict(), "policy": "mixture",
                "dataset_epochs": dict(self.dataset_epochs)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue exactly where ``state`` (saved by a mixture runtime) was saved."""
        if state.get("policy", "exhaust") != "mixture":
            raise ValueError("runtime state was saved under the 'exhaust' sampling policy; "
                             "this runtime uses 'mixture'")
        own = {k: int(v) for k, v in state.get("dataset_epochs", {}).items()}
        saved: Mapping[str, Any] = state.get("datasets", {})
        # the base class restores samplers saved in the *global* epoch: present each
        # dataset's own state as such, then put the real epoch back
        shifted = {did: {**s, "epoch": state["epoch"]} for did, s in saved.items()}
        super().load_state_dict({**state, "datasets": shifted})
        for s in self.samplers:
            if s.dataset_id in saved:
                s.load_state_dict(saved[s.dataset_id])
        self.dataset_epochs = {i: own.get(i, 1) for i in self.ids}


def make_runtime(datasets: Sequence[RuntimeDataset], strategy: SamplingStrategy, *,
                 policy: str = "exhaust", steps_per_epoch: int | None = None,
                 **kwargs: Any) -> DataRuntime:
    """A runtime for ``policy`` (one of :data:`POLICIES`)."""
    if policy == "mixture":
        return MixtureRuntime(datasets, strategy, steps_per_epoch=steps_per_epoch, **kwargs)
    if policy != "exhaust":
        raise ValueError(f"sampling_policy must be one of {POLICIES}; got {policy!r}")
    return DataRuntime(datasets, strategy, **kwargs)


def resolve_policy(option: str, datasets: Sequence[Any]) -> str:
    """The policy of a config: the one its datasets set (``sampling_policy``; validation makes
    them agree), else the factory ``option``."""
    chosen = {getattr(d, "sampling_policy", None) for d in datasets} - {None}
    return str(chosen.pop()) if len(chosen) == 1 else option
