"""DataRuntime: weights over a long run, exact exhaustion and repeats, schedules, resume."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
import torch

from databackend.runtime.batch import Sample, collate
from databackend.runtime.loop import DataRuntime, RuntimeDataset, StepPlan
from databackend.runtime.selector import Schedule
from databackend.runtime.strategies import AutoWeighting, Uniform
from databackend.runtime.synthetic import SyntheticSource
from databackend.runtime.torchdata import BatchIterableDataset

BUCKETS = {(512, 512): 24, (768, 512): 12, (512, 768): 5}


def make(specs: Mapping[str, Mapping[str, Any]], *, seed: int = 0, rank: int = 0,
         world_size: int = 1, strategy: Any = None, **kw: Any) -> DataRuntime:
    """``specs``: id -> RuntimeDataset keywords (``counts`` for the synthetic buckets)."""
    datasets = []
    for did, spec in specs.items():
        spec = dict(spec)
        source = SyntheticSource(did, spec.pop("counts", BUCKETS))
        datasets.append(RuntimeDataset(id=did, source=source, **spec))
    return DataRuntime(datasets, strategy or Uniform(), seed=seed, rank=rank,
                       world_size=world_size, **kw)


def key(p: StepPlan) -> tuple[object, ...]:
    return (p.epoch, p.step, p.dataset_id, p.bucket, p.global_indices.tolist())


def test_long_run_draws_match_target_weights() -> None:
    big = {(512, 512): 200_000}
    rt = make({"a": {"counts": big, "probability": 0.7}, "b": {"counts": big,
                                                               "probability": 0.3}}, seed=5)
    plans = rt.plans(5000)
    counts = Counter(p.dataset_id for p in plans)
    expected = {"a": 0.7 * 5000, "b": 0.3 * 5000}
    chi2 = sum((counts[k] - e) ** 2 / e for k, e in expected.items())
    assert chi2 < 10.83  # df = 1, p = 0.001
    assert rt.draws == dict(counts)
    assert rt.expected["a"] == pytest.approx(3500)


def test_exhaustion_counts_are_exact_and_end_the_epoch() -> None:
    rt = make({"a": {"batch_size": 4, "repeats": 2}, "b": {"batch_size": 2}},
              strategy=AutoWeighting(), max_epochs=2)
    per_epoch = rt.batches_per_epoch
    assert per_epoch == {"a": (6 + 3 + 2) * 3, "b": (12 + 6 + 3)}
    plans = rt.plans(10_000)
    assert len(plans) == 2 * sum(per_epoch.values())
    for epoch in (1, 2):
        counts = Counter(p.dataset_id for p in plans if p.epoch == epoch)
        assert counts == per_epoch
    first_b_done = max(i for i, p in enumerate(plans) if p.epoch == 1 and p.dataset_id == "b")
    assert all(p.dataset_id == "a" for p in plans[first_b_done + 1:per_epoch["a"] + 21])
    assert rt.plan_next() is None


def test_repeats_cover_each_sample_exactly() -> None:
    counts = {(512, 512): 16, (576, 512): 8}
    rt = make({"a": {"counts": counts, "batch_size": 4, "repeats": 3}}, max_epochs=1)
    seen = Counter(i for p in rt.plans(1000) for i in p.global_indices.tolist())
    assert set(seen.values()) == {4} and len(seen) == 24


def test_schedule_windows_are_respected() -> None:
    rt = make({"early": {"schedule": Schedule(end_step=10)},
               "late": {"schedule": Schedule(start_step=20)},
               "second": {"schedule": Schedule(start_epoch=2)},
               "always": {}}, max_epochs=2)
    plans = rt.plans(100_000)
    for p in plans:
        assert p.dataset_id != "early" or p.step + 1 <= 10
        assert p.dataset_id != "late" or p.step + 1 >= 20
        assert p.dataset_id != "second" or p.epoch >= 2
    assert {p.dataset_id for p in plans} == {"early", "late", "second", "always"}


def test_schedule_gap_skips_empty_epochs_and_data_can_finish() -> None:
    rt = make({"a": {"schedule": Schedule(end_epoch=1)},
               "b": {"schedule": Schedule(start_epoch=3, end_epoch=3)}})
    plans = rt.plans(100_000)
    assert {p.epoch for p in plans} == {1, 3}
    assert rt.plan_next() is None


def test_every_rank_gets_the_same_steps_and_disjoint_slices() -> None:
    specs = {"a": {"batch_size": 2}, "b": {"batch_size": 3, "repeats": 1}}
    runs = [make(specs, seed=3, rank=r, world_size=3, max_epochs=1).plans(10_000)
            for r in range(3)]
    assert len({len(r) for r in runs}) == 1
    for steps in zip(*runs, strict=True):
        assert len({(p.dataset_id, p.bucket, p.step) for p in steps}) == 1
        slices = [p.indices.tolist() for p in steps]
        assert [i for sl in slices for i in sl] == steps[0].global_indices.tolist()


def test_resume_yields_exactly_the_uninterrupted_batches() -> None:
    specs = {"a": {"batch_size": 2, "repeats": 1}, "b": {"batch_size": 4}}
    full = [key(p) for p in make(specs, seed=7).plans(200)]
    first = make(specs, seed=7)
    first.plans(73)
    state = json.loads(json.dumps(first.state_dict()))
    resumed = make(specs, seed=7)
    resumed.load_state_dict(state)
    assert [key(p) for p in resumed.plans(127)] == full[73:]


def test_resume_with_another_world_size_keeps_the_global_order() -> None:
    specs1 = {"a": {"batch_size": 4}, "b": {"batch_size": 2, "repeats": 1}}
    specs2 = {"a": {"batch_size": 2}, "b": {"batch_size": 1, "repeats": 1}}
    full = [key(p) for p in make(specs1, seed=2).plans(60)]
    first = make(specs1, seed=2)
    first.plans(17)
    ranks = [make(specs2, seed=2, rank=r, world_size=2) for r in range(2)]
    for rt in ranks:
        rt.load_state_dict(first.state_dict())
    for want, steps in zip(full[17:], zip(*(rt.plans(43) for rt in ranks), strict=True),
                           strict=True):
        assert key(steps[0]) == want
        assert [i for p in steps for i in p.indices.tolist()] == want[-1]


def test_resume_rejects_another_seed() -> None:
    rt = make({"a": {}}, seed=1)
    with pytest.raises(ValueError, match="seed"):
        make({"a": {}}, seed=2).load_state_dict(rt.state_dict())


def test_batches_are_stacked_tensors() -> None:
    rt = make({"a": {"batch_size": 3}}, seed=1)
    batch = next(iter(rt))
    w, h = batch.bucket
    assert batch.latents.shape == (3, 4, h // 8, w // 8)
    assert batch.text_embeds["prompt_embeds"].shape == (3, 4, 8)
    assert batch.original_sizes.tolist() == [[w, h]] * 3
    assert batch.crop_coords.dtype == torch.int64
    assert batch.sample_ids == [f"a:{i:06d}.png" for i in batch.indices]
    assert [int(batch.latents[k, 0, 0, 0]) for k in range(3)] == batch.indices
    assert len(batch) == 3 and batch.to("cpu").dataset_id == "a"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_collate_keeps_values_and_dtype(dtype: torch.dtype) -> None:
    """Stacking copies each sample's tensor exactly, whatever its dtype (bfloat16 has no
    numpy twin), and non-contiguous tensors too."""
    gen = torch.Generator().manual_seed(0)
    lat = [torch.randn(4, 6, 5, generator=gen).to(dtype) for _ in range(3)]
    emb = [torch.randn(5, 7, generator=gen).to(dtype).t() for _ in range(3)]  # non-contiguous
    samples = [Sample(latents=la, text_embeds={"e": e}, original_size=(1, 1),
                      crop_coordinates=(0, 0), target_size=(1, 1), caption="", path=str(i))
               for i, (la, e) in enumerate(zip(lat, emb, strict=True))]
    batch = collate(samples, dataset_id="d", bucket=(8, 8), indices=[0, 1, 2], epoch=1, step=0)
    assert batch.latents.dtype == dtype and batch.text_embeds["e"].dtype == dtype
    assert torch.equal(batch.latents, torch.stack(lat))
    assert torch.equal(batch.text_embeds["e"], torch.stack(emb))


def test_collate_rejects_mixed_shapes() -> None:
    def sample(n: int) -> Sample:
        return Sample(latents=torch.zeros(4, n, n), text_embeds={}, original_size=(1, 1),
                      crop_coordinates=(0, 0), target_size=(1, 1), caption="", path="x")
    with pytest.raises(ValueError, match="shapes differ"):
        collate([sample(2), sample(3)], dataset_id="d", bucket=(8, 8), indices=[0, 1],
                epoch=1, step=0)


def test_torch_dataset_adapter_with_dataloader() -> None:
    rt = make({"a": {"batch_size": 2}}, max_epochs=1)
    loader = torch.utils.data.DataLoader(BatchIterableDataset(lambda: iter(rt)),
                                         batch_size=None, num_workers=0)
    batches = list(loader)
    assert len(batches) == rt.batches_per_epoch["a"]
    assert all(b.latents.shape[0] == 2 for b in batches)


def test_no_dataset_with_batches_is_an_error() -> None:
    with pytest.raises(ValueError, match="no dataset yields"):
        make({"a": {"counts": {(512, 512): 1}, "batch_size": 4,
                    "short_bucket_policy": "drop"}})


def test_sample_order_differs_between_epochs() -> None:
    rt = make({"a": {"batch_size": 4}}, max_epochs=2)
    plans = rt.plans(1000)
    e1 = [p.global_indices.tolist() for p in plans if p.epoch == 1]
    e2 = [p.global_indices.tolist() for p in plans if p.epoch == 2]
    assert e1 != e2
    assert set(np.concatenate(e1).tolist()) == set(np.concatenate(e2).tolist())  # padding varies


def test_resume_with_a_larger_global_batch_keeps_each_buckets_order() -> None:
    specs = {"a": {"batch_size": 2}, "b": {"batch_size": 2, "repeats": 1}}
    full = make(specs, seed=4, max_epochs=1).plans(10_000)
    first = make(specs, seed=4, max_epochs=1)
    first.plans(15)
    ranks = [make(specs, seed=4, rank=r, world_size=2, max_epochs=1) for r in range(2)]
    for rt in ranks:
        rt.load_state_dict(first.state_dict())
    rest = list(zip(*(rt.plans(10_000) for rt in ranks), strict=True))
    for did in ("a", "b"):
        for bucket in BUCKETS:
            want = [i for p in full[15:] if (p.dataset_id, p.bucket) == (did, bucket)
                    for i in p.global_indices.tolist()]
            got = [i for steps in rest if (steps[0].dataset_id, steps[0].bucket) == (did, bucket)
                   for p in steps for i in p.indices.tolist()]
            assert got[:len(want)] == want  # then padding by repetition, if any
            assert set(got) == set(want)
    assert all(len(s[0].global_indices) == 4 for s in rest)
