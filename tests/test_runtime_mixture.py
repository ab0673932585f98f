"""The ``mixture`` sampling policy: weights are long-run shares; resumable, rank-consistent."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

import pytest

from databackend.runtime.loop import DataRuntime, RuntimeDataset, StepPlan
from databackend.runtime.mixture import MixtureRuntime, make_runtime
from databackend.runtime.strategies import Uniform
from databackend.runtime.synthetic import SyntheticSource

SMALL = {(512, 512): 6, (768, 512): 4}  # 5 batches of 2 per epoch
LARGE = {(512, 512): 60, (512, 768): 40}  # 50 batches of 2 per epoch


def make(policy: str = "mixture", *, rank: int = 0, world_size: int = 1, seed: int = 3,
         **kw: Any) -> DataRuntime:
    """A small dataset weighted 0.3 and a large one weighted 0.7, batch 2."""
    specs: Mapping[str, Mapping[str, Any]] = {
        "small": {"counts": SMALL, "probability": 0.3},
        "large": {"counts": LARGE, "probability": 0.7}}
    datasets = [RuntimeDataset(id=did, source=SyntheticSource(did, s["counts"]), batch_size=2,
                               probability=s["probability"]) for did, s in specs.items()]
    return make_runtime(datasets, Uniform(), policy=policy, seed=seed, rank=rank,
                        world_size=world_size, **kw)


def key(p: StepPlan) -> tuple[object, ...]:
    return (p.epoch, p.step, p.dataset_id, p.bucket, p.global_indices.tolist())


def test_long_run_shares_match_weights_chi_square() -> None:
    rt = make()
    plans = rt.plans(20_000)
    counts = Counter(p.dataset_id for p in plans)
    expected = {"small": 0.3 * 20_000, "large": 0.7 * 20_000}
    chi2 = sum((counts[k] - e) ** 2 / e for k, e in expected.items())
    assert chi2 < 10.83  # df = 1, p = 0.001
    # the small dataset (5 batches per epoch) went through many of its own epochs
    assert isinstance(rt, MixtureRuntime)
    assert rt.dataset_epochs["small"] > 1000


def test_exhaust_policy_gives_each_dataset_its_whole_epoch() -> None:
    """What `mixture` fixes: under `exhaust`, 0.3 of the weight still gets all its batches."""
    plans = make("exhaust", max_epochs=1).plans(10_000)
    assert Counter(p.dataset_id for p in plans) == {"small": 5, "large": 50}


def test_each_dataset_epoch_covers_its_samples_before_repeating() -> None:
    rt = make(steps_per_epoch=1000)
    small = [p.global_indices.tolist() for p in rt.plans(1000) if p.dataset_id == "small"]
    first = sorted(i for batch in small[:5] for i in batch)
    assert first == list(range(10))
    assert rt.epoch == 1 and rt.epoch_batches == 1000
    rt.plans(1)
    assert rt.epoch == 2  # a global epoch is steps_per_epoch steps


def test_deterministic_and_rank_consistent() -> None:
    a = [key(p) for p in make().plans(300)]
    b = [key(p) for p in make().plans(300)]
    assert a == b
    r0, r1 = make(rank=0, world_size=2).plans(300), make(rank=1, world_size=2).plans(300)
    assert [(p.dataset_id, p.bucket) for p in r0] == [(p.dataset_id, p.bucket) for p in r1]
    for p0, p1 in zip(r0, r1, strict=True):
        assert set(p0.indices.tolist()).isdisjoint(p1.indices.tolist())
    assert [key(p) for p in make(seed=4).plans(300)] != a


def test_resume_matches_uninterrupted_run_across_epochs() -> None:
    whole = [key(p) for p in make(steps_per_epoch=40).plans(200)]
    first = make(steps_per_epoch=40)
    head = [key(p) for p in first.plans(87)]
    state = json.loads(json.dumps(first.state_dict()))
    assert state["policy"] == "mixture" and state["dataset_epochs"]["small"] > 1
    second = make(steps_per_epoch=40)
    second.load_state_dict(state)
    assert head + [key(p) for p in second.plans(113)] == whole


def test_state_of_the_other_policy_is_refused() -> None:
    state = make("exhaust").state_dict()
    with pytest.raises(ValueError, match="exhaust"):
        make().load_state_dict(state)


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="sampling_policy"):
        make("shuffle")
