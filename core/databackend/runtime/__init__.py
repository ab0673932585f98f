"""The runtime: bucket samplers, dataset selection, batch assembly, prefetch and distribution.

Names are imported lazily (PEP 562), so ``import databackend.runtime.strategies`` -- done by
the plugin manager at start-up -- does not import torch.

Public API::

    from databackend.runtime import (DataRuntime, RuntimeDataset, BucketSampler, DatasetSelector,
        Schedule, Batch, Sample, DatasetSource, BatchFetcher, BatchIterableDataset, CachedSource,
        SyntheticSource, SamplingStrategy, DatasetView, resolve_rank)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from databackend.runtime.batch import Batch, DatasetSource, Sample, collate
    from databackend.runtime.distributed import resolve_rank
    from databackend.runtime.fetcher import BatchFetcher
    from databackend.runtime.loop import DataRuntime, RuntimeDataset, StepPlan
    from databackend.runtime.sampler import BucketReport, BucketSampler
    from databackend.runtime.selector import DatasetSelector, Schedule
    from databackend.runtime.source import CachedSource
    from databackend.runtime.strategies import (
        AutoWeighting,
        DatasetView,
        SamplingStrategy,
        Uniform,
    )
    from databackend.runtime.synthetic import SyntheticSource
    from databackend.runtime.torchdata import BatchIterableDataset

_WHERE = {
    "Batch": "batch", "DatasetSource": "batch", "Sample": "batch", "collate": "batch",
    "resolve_rank": "distributed", "BatchFetcher": "fetcher", "DataRuntime": "loop",
    "RuntimeDataset": "loop", "StepPlan": "loop", "BucketReport": "sampler",
    "BucketSampler": "sampler", "DatasetSelector": "selector", "Schedule": "selector",
    "CachedSource": "source", "AutoWeighting": "strategies", "DatasetView": "strategies",
    "SamplingStrategy": "strategies", "Uniform": "strategies", "SyntheticSource": "synthetic",
    "BatchIterableDataset": "torchdata",
}

__all__ = [
    "AutoWeighting",
    "Batch",
    "BatchFetcher",
    "BatchIterableDataset",
    "BucketReport",
    "BucketSampler",
    "CachedSource",
    "DataRuntime",
    "DatasetSelector",
    "DatasetSource",
    "DatasetView",
    "RuntimeDataset",
    "Sample",
    "SamplingStrategy",
    "Schedule",
    "StepPlan",
    "SyntheticSource",
    "Uniform",
    "collate",
    "resolve_rank",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'databackend.runtime' has no attribute {name!r}")
    return getattr(importlib.import_module(f"databackend.runtime.{_WHERE[name]}"), name)
