"""BucketSampler: one bucket per batch, exact passes, policies, pure order, regrouping."""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import pytest

from databackend.runtime.sampler import BucketSampler


def _buckets(**sizes: int) -> dict[tuple[int, int], np.ndarray]:
    """``_buckets(a=5, b=3)`` -> two buckets with consecutive sample indices."""
    out, start = {}, 0
    for n, size in enumerate(sizes.values()):
        out[(512 + 64 * n, 512)] = np.arange(start, start + size)
        start += size
    return out


def _drain(s: BucketSampler) -> list[tuple[tuple[int, int], list[int]]]:
    out = []
    while not s.exhausted:
        bucket, idx = s.take()
        out.append((bucket, idx.tolist()))
    return out


def test_every_batch_comes_from_one_bucket() -> None:
    buckets = _buckets(a=12, b=8, c=4)
    s = BucketSampler("d", buckets, batch_size=4, seed=1)
    owner = {int(i): k for k, v in buckets.items() for i in v}
    for bucket, idx in _drain(s):
        assert {owner[i] for i in idx} == {bucket}


@pytest.mark.parametrize("repeats", [0, 1, 3])
def test_repeats_are_exact_extra_passes(repeats: int) -> None:
    s = BucketSampler("d", _buckets(a=12, b=8), batch_size=2, world_size=2, repeats=repeats)
    batches = _drain(s)
    assert len(batches) == s.num_batches == (3 + 2) * (repeats + 1)
    counts = Counter(i for _, idx in batches for i in idx)
    assert set(counts) == set(range(20))
    assert set(counts.values()) == {repeats + 1}


def test_exhaustion_after_exactly_num_batches() -> None:
    s = BucketSampler("d", _buckets(a=10), batch_size=3, policy="drop")
    assert s.num_batches == 3
    assert len(_drain(s)) == 3
    assert s.exhausted and s.remaining == 0
    with pytest.raises(IndexError, match="exhausted"):
        s.take()


def test_order_is_a_pure_function_of_seed_id_and_epoch() -> None:
    def run(seed: int, did: str, epoch: int) -> list[tuple[tuple[int, int], list[int]]]:
        s = BucketSampler(did, _buckets(a=16, b=8), batch_size=4, seed=seed)
        s.begin_epoch(epoch)
        return _drain(s)

    assert run(1, "x", 1) == run(1, "x", 1)
    assert run(1, "x", 1) != run(1, "x", 2)
    assert run(1, "x", 1) != run(2, "x", 1)
    assert run(1, "x", 1) != run(1, "y", 1)


def test_pad_policy_repeats_samples_and_reports() -> None:
    s = BucketSampler("d", _buckets(a=3, b=9), batch_size=4, policy="pad")
    batches = _drain(s)
    assert s.num_batches == len(batches) == 1 + 3
    counts = Counter(i for _, idx in batches for i in idx)
    assert set(counts) == set(range(12))  # nothing lost
    assert sum(counts.values()) == 16
    reports = {r.bucket: r for r in s.report}
    short, rem = reports[(512, 512)], reports[(576, 512)]
    assert short.short and short.padded == 1 and short.dropped == 0
    assert not rem.short and rem.padded == 3
    assert "padded +1" in short.describe() and "< global batch 4" in short.describe()


def test_drop_policy_warns_with_counts(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        s = BucketSampler("d", _buckets(a=3, b=9), batch_size=4, policy="drop")
    batches = _drain(s)
    assert len(batches) == s.num_batches == 2
    assert all(len(idx) == 4 for _, idx in batches)
    assert {r.bucket: r.dropped for r in s.report} == {(512, 512): 3, (576, 512): 1}
    assert "2 bucket(s)" in caplog.text and "4 sample(s) per pass dropped" in caplog.text


def test_all_dropped_dataset_is_empty_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        s = BucketSampler("d", _buckets(a=2), batch_size=4, policy="drop")
    assert s.num_batches == 0 and s.exhausted
    assert "yields no batches" in caplog.text


def test_invalid_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="short_bucket_policy"):
        BucketSampler("d", _buckets(a=2), batch_size=1, policy="skip")
    with pytest.raises(ValueError, match="batch_size"):
        BucketSampler("d", _buckets(a=2), batch_size=0)


def test_state_roundtrip_continues_identically() -> None:
    full = BucketSampler("d", _buckets(a=20, b=12), batch_size=4, seed=3, repeats=1)
    expected = _drain(full)
    first = BucketSampler("d", _buckets(a=20, b=12), batch_size=4, seed=3, repeats=1)
    head = [first.take() for _ in range(5)]
    resumed = BucketSampler("d", _buckets(a=20, b=12), batch_size=4, seed=3, repeats=1)
    resumed.load_state_dict(first.state_dict())
    got = [(b, i.tolist()) for b, i in head] + _drain(resumed)
    assert got == expected


def test_regroup_keeps_per_bucket_order_when_global_batch_changes() -> None:
    buckets = _buckets(a=24, b=13)
    old = BucketSampler("d", buckets, batch_size=2, seed=5)
    full = _drain(BucketSampler("d", buckets, batch_size=2, seed=5))
    for _ in range(4):
        old.take()
    new = BucketSampler("d", buckets, batch_size=2, world_size=3, seed=5)  # global 2 -> 6
    new.load_state_dict(old.state_dict())
    rest = _drain(new)
    assert all(len(idx) == 6 for _, idx in rest)
    for bucket in buckets:
        want = [i for b, idx in full[4:] if b == bucket for i in idx]
        got = [i for b, idx in rest if b == bucket for i in idx]
        assert got[:len(want)] == want  # same order; the tail is padding by repetition
        assert set(got) == set(want)
    # resuming the regrouped sampler again reproduces its plan
    again = BucketSampler("d", buckets, batch_size=2, world_size=3, seed=5)
    again.load_state_dict(old.state_dict())
    again.take()
    third = BucketSampler("d", buckets, batch_size=2, world_size=3, seed=5)
    third.load_state_dict(again.state_dict())
    assert _drain(third) == rest[1:]


def test_next_epoch_uses_the_new_global_batch_natively() -> None:
    old = BucketSampler("d", _buckets(a=8), batch_size=2)
    old.take()
    new = BucketSampler("d", _buckets(a=8), batch_size=4)
    new.load_state_dict(old.state_dict())
    _drain(new)
    new.begin_epoch(2)
    assert new.state_dict()["regroups"] == []
    assert [len(i) for _, i in _drain(new)] == [4, 4]
