"""DatasetSelector and schedules: weights match targets, decay, windows, determinism."""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import pytest
import torch

from databackend.runtime.selector import DatasetSelector, Schedule
from databackend.runtime.strategies import AutoWeighting, DatasetView, Uniform

#: chi-square critical values at p = 0.001 by degrees of freedom
CHI2_999 = {1: 10.83, 2: 13.82, 3: 16.27}


def chi_square(observed: dict[int, int], expected: np.ndarray) -> float:
    n = sum(observed.values())
    return float(sum((observed.get(i, 0) - n * p) ** 2 / (n * p)
                     for i, p in enumerate(expected) if p > 0))


def _views(*probs: float, batches: tuple[int, ...] | None = None) -> list[DatasetView]:
    batches = batches or tuple(10 for _ in probs)
    return [DatasetView(id=f"d{i}", probability=p, num_batches=b)
            for i, (p, b) in enumerate(zip(probs, batches, strict=True))]


def _draw_counts(sel: DatasetSelector, steps: int, epoch: int = 1) -> dict[int, int]:
    counts: dict[int, int] = {}
    for step in range(steps):
        i = sel.pick(epoch, step, [False] * len(sel.views))
        assert i is not None
        counts[i] = counts.get(i, 0) + 1
    return counts


def test_uniform_draws_match_probabilities() -> None:
    sel = DatasetSelector(_views(0.5, 0.3, 0.2), [Schedule()] * 3, Uniform(), seed=11)
    counts = _draw_counts(sel, 20000)
    assert chi_square(counts, np.array([0.5, 0.3, 0.2])) < CHI2_999[2]


def test_auto_weighting_scales_by_dataset_size() -> None:
    views = _views(1.0, 1.0, 0.5, batches=(100, 300, 200))
    sel = DatasetSelector(views, [Schedule()] * 3, AutoWeighting(), seed=2)
    p = sel.probabilities(1, 0, [False] * 3)
    np.testing.assert_allclose(p, np.array([100, 300, 100]) / 500)
    assert chi_square(_draw_counts(sel, 20000), p) < CHI2_999[2]


def test_auto_weighting_decay_reaches_zero() -> None:
    views = [DatasetView(id="a", num_batches=10, disable_after_epoch_step=100),
             DatasetView(id="b", num_batches=10)]
    sel = DatasetSelector(views, [Schedule()] * 2, AutoWeighting())
    p0, p50, p100 = (sel.probabilities(1, s, [False, False]) for s in (0, 50, 100))
    assert p0[0] == pytest.approx(0.5)
    assert p50[0] == pytest.approx(0.25 / 0.75)
    assert p100[0] == 0.0
    assert all(sel.pick(1, s, [False, False]) == 1 for s in range(100, 300))


@pytest.mark.parametrize(("schedule", "epoch", "step", "active"), [
    (Schedule(), 1, 0, True),
    (Schedule(start_epoch=2), 1, 50, False),
    (Schedule(start_epoch=2), 2, 0, True),
    (Schedule(start_step=10), 1, 8, False),
    (Schedule(start_step=10), 1, 9, True),  # step + 1 >= start_step
    (Schedule(end_step=10), 1, 9, True),
    (Schedule(end_step=10), 1, 10, False),  # step + 1 <= end_step
    (Schedule(end_epoch=2), 2, 99, True),
    (Schedule(end_epoch=2), 3, 0, False),
])
def test_schedule_window_semantics(schedule: Schedule, epoch: int, step: int,
                                   active: bool) -> None:
    assert schedule.active(epoch, step) is active


def test_inactive_and_exhausted_datasets_are_never_drawn() -> None:
    scheds = [Schedule(start_step=50), Schedule(), Schedule(end_step=20)]
    sel = DatasetSelector(_views(1, 1, 1), scheds, Uniform(), seed=4)
    for step in range(100):
        i = sel.pick(1, step, [False, True, False])
        assert i != 1
        assert i != 0 or step + 1 >= 50
        assert i != 2 or step + 1 <= 20
    assert sel.pick(1, 30, [False, True, False]) is None  # gap between windows


def test_pick_is_independent_of_global_rng_and_instance() -> None:
    a = DatasetSelector(_views(1, 2, 3), [Schedule()] * 3, Uniform(), seed=9)
    b = DatasetSelector(_views(1, 2, 3), [Schedule()] * 3, Uniform(), seed=9)
    first = [a.pick(1, s, [False] * 3) for s in range(200)]
    random.seed(123)
    np.random.seed(123)
    torch.manual_seed(123)
    assert [b.pick(1, s, [False] * 3) for s in range(200)] == first
    c = DatasetSelector(_views(1, 2, 3), [Schedule()] * 3, Uniform(), seed=10)
    assert [c.pick(1, s, [False] * 3) for s in range(200)] != first


def test_bad_strategy_output_is_reported() -> None:
    class Broken(Uniform):
        name = "broken"

        def weights(self, datasets, epoch, step):  # type: ignore[no-untyped-def]
            return [1.0]

    sel = DatasetSelector(_views(1, 1), [Schedule()] * 2, Broken())
    with pytest.raises(ValueError, match="returned 1 weights for 2"):
        sel.pick(1, 0, [False, False])


def test_next_active_epoch() -> None:
    sel = DatasetSelector(_views(1, 1), [Schedule(end_epoch=1), Schedule(start_epoch=4)],
                          Uniform())
    assert sel.next_active_epoch(2, 10, [True, True]) == 4
    assert sel.next_active_epoch(4, 10, [True, False]) is None


class _AskedEveryStep(Uniform):
    """Uniform weights, but the selector may not reuse them; counts the calls."""

    calls = 0

    def weights(self, datasets: Sequence[DatasetView], epoch: int, step: int) -> list[float]:
        self.calls += 1
        return super().weights(datasets, epoch, step)

    def same_every_step(self, datasets: Sequence[DatasetView]) -> bool:
        return False


def test_reused_weights_draw_exactly_what_per_step_weights_draw() -> None:
    views, windows = _views(0.5, 0.3, 0.2), [Schedule(), Schedule(end_epoch=2), Schedule()]
    steady = DatasetSelector(views, windows, Uniform(), seed=5)
    asked = _AskedEveryStep()
    fresh = DatasetSelector(views, windows, asked, seed=5)
    rng = random.Random(0)
    for n in range(3000):
        epoch, exhausted = 1 + n // 1000, [rng.random() < 0.3 for _ in views]
        assert steady.draw(epoch, n, exhausted) == fresh.draw(epoch, n, exhausted)
    assert asked.calls == 3000


def test_step_dependent_weights_are_never_reused() -> None:
    decaying = [DatasetView(id="a", num_batches=10, disable_after_epoch_step=100),
                DatasetView(id="b", num_batches=10)]
    sel = DatasetSelector(decaying, [Schedule()] * 2, AutoWeighting(), seed=1)
    assert sel.draw(1, 0, [False, False])[1] == pytest.approx((0.5, 0.5))
    assert sel.draw(1, 50, [False, False])[1] == pytest.approx((1 / 3, 2 / 3))
    windowed = DatasetSelector(_views(0.5, 0.5), [Schedule(), Schedule(end_step=10)], Uniform())
    assert windowed.draw(1, 5, [False, False])[1] == (0.5, 0.5)
    assert windowed.draw(1, 20, [False, False])[1] == (1.0, 0.0)
