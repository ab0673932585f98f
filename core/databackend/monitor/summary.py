""":class:`Summary`: what ``factory.summary()`` returns.

Typed rows for the stages, datasets and the run, with the same data as the plain dict the
factory returned before (:meth:`Summary.to_dict`, and ``summary["datasets"]`` still works).
``str(summary)`` is the CLI's tables (:func:`databackend.monitor.summarytext.summary_lines`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import attrs

__all__ = ["DatasetRow", "RunFigures", "StageRow", "Summary"]


@attrs.define(kw_only=True)
class StageRow:
    """One startup stage: wall seconds, RSS at its end and peak RSS so far (MB)."""

    name: str
    seconds: float
    rss_mb: float
    peak_rss_mb: float
    details: dict[str, Any] = attrs.field(factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StageRow:
        """From ``StageMetrics.to_dict()``."""
        known = ("name", "seconds", "rss_mb", "peak_rss_mb")
        return cls(**{k: d[k] for k in known},
                   details={k: v for k, v in d.items() if k not in known})

    def to_dict(self) -> dict[str, Any]:
        """The stage's plain dict (details inline, as before)."""
        return {"name": self.name, "seconds": self.seconds, "rss_mb": self.rss_mb,
                "peak_rss_mb": self.peak_rss_mb, **self.details}


@attrs.define(kw_only=True)
class DatasetRow:
    """One sampled dataset's figures (see docs/runtime.md, "Reading the summary").

    ``share``: observed fraction of the steps so far; ``expected``: the draw probability
    averaged over those steps; ``epoch_share``: the share of a whole epoch the policy gives it
    (``exhaust``: its batches over all batches; ``mixture``: its weight); ``weight_now``: its
    draw probability at the current step (0 once used up for the epoch); ``target``: the
    configured weight, normalised (probability at step 0 with nothing used up).
    """

    id: str
    samples: int
    buckets: int
    batch_size: int
    repeats: int
    batches_per_epoch: int
    draws: int
    share: float
    expected: float
    target: float
    epoch_share: float = 0.0
    weight_now: float = 0.0
    short_buckets: list[str] = attrs.field(factory=list)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DatasetRow:
        """From a ``runtime_summary`` row."""
        names = {f.name for f in attrs.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@attrs.define(kw_only=True)
class RunFigures:
    """What ``databackend run`` adds: steps consumed, wall time, rate, where it stopped."""

    steps: int
    seconds: float
    batches_per_s: float
    epoch: int
    step: int


def _plain(value: Any) -> Any:
    if isinstance(value, (StageRow,)):
        return value.to_dict()
    if attrs.has(type(value)):
        return attrs.asdict(value)
    return value


@attrs.define(kw_only=True)
class Summary(Mapping[str, Any]):
    """Startup stages, memory, datasets, caches, prefetch and (after a run) run figures.

    A read-only mapping over :meth:`to_dict`'s keys, so code written for the old dict keeps
    working; ``str()`` gives the CLI's tables.
    """

    stages: list[StageRow]
    total_seconds: float
    peak_rss_mb: float
    counters: dict[str, Any]
    fetch: dict[str, Any]
    datasets: list[DatasetRow]
    precompute: list[dict[str, Any]]
    cache_stats: dict[str, dict[str, int]]
    excluded: dict[str, list[str]]
    rank: int = 0
    world_size: int = 1
    policy: str = "exhaust"
    conditioning: dict[str, Any] = attrs.field(factory=dict)
    run: RunFigures | None = None

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain values (JSON-ready; ``run`` only after a run)."""
        out = {f.name: getattr(self, f.name) for f in attrs.fields(type(self))}
        out["stages"] = [s.to_dict() for s in self.stages]
        out["datasets"] = [attrs.asdict(d) for d in self.datasets]
        out["run"] = _plain(self.run)
        if self.run is None:
            del out["run"]
        return out

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

    def __str__(self) -> str:
        from databackend.monitor.summarytext import summary_lines

        return "\n".join(summary_lines(self.to_dict()))

    @classmethod
    def from_parts(cls, metrics: Mapping[str, Any], **rest: Any) -> Summary:
        """From ``Metrics.to_dict()`` plus the other fields (datasets as plain rows)."""
        return cls(stages=[StageRow.from_dict(s) for s in metrics["stages"]],
                   total_seconds=metrics["total_seconds"], peak_rss_mb=metrics["peak_rss_mb"],
                   counters=dict(metrics["counters"]), fetch=dict(metrics["fetch"]),
                   **{**rest, "datasets": [DatasetRow.from_dict(d) for d in rest["datasets"]]})
