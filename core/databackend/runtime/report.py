"""Per-dataset runtime figures: draws against target weights, epoch sizes, short buckets."""

from __future__ import annotations

from typing import Any

from databackend.runtime.loop import DataRuntime

__all__ = ["runtime_summary"]


def runtime_summary(runtime: DataRuntime) -> list[dict[str, Any]]:
    """One row per dataset.

    ``target`` is the draw probability at the first step with nothing exhausted (the
    configured weight); ``expected`` is the probability averaged over the steps actually run
    (it moves as datasets are exhausted, leave their schedule window or decay); ``share`` is the
    observed fraction of draws.
    """
    target = runtime.selector.probabilities(1, 0, [False] * len(runtime.ids))
    steps = sum(runtime.draws.values())
    rows = []
    for i, sampler in enumerate(runtime.samplers):
        did = sampler.dataset_id
        rows.append({
            "id": did, "samples": sampler.num_samples, "buckets": len(sampler.bucket_keys),
            "batch_size": sampler.batch_size, "repeats": sampler.repeats,
            "batches_per_epoch": sampler.num_batches, "draws": runtime.draws[did],
            "share": runtime.draws[did] / steps if steps else 0.0,
            "expected": runtime.expected[did] / steps if steps else 0.0,
            "target": float(target[i]),
            "short_buckets": [r.describe() for r in sampler.report],
        })
    return rows
