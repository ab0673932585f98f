"""What the factory and the runtime measure: per-stage wall time and memory, prefetch behaviour.

:class:`Metrics` belongs to one factory (never module-level). Each startup stage is timed with
:meth:`Metrics.stage`, which records wall seconds plus the process RSS when the stage ended and
the peak RSS so far (the larger of ``getrusage``'s high-water mark and every RSS sample taken),
and logs one INFO line on the ``databackend.metrics`` logger. :class:`FetchStats` holds the
consumer's wait per batch and the prefetch queue depth.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import attrs
import psutil

__all__ = ["FetchStats", "Metrics", "StageMetrics", "peak_rss", "rss"]

log = logging.getLogger("databackend.metrics")

_MB = 1024 * 1024


def rss() -> int:
    """This process's resident set size in bytes."""
    return int(psutil.Process().memory_info().rss)


def peak_rss() -> int:
    """This process's peak resident set size in bytes (0 where the platform cannot tell)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


@attrs.frozen(kw_only=True)
class StageMetrics:
    """One startup stage: wall seconds, RSS at its end and the peak RSS so far (bytes)."""

    name: str
    seconds: float
    rss: int
    peak_rss: int
    details: dict[str, Any] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (MB for memory)."""
        return {"name": self.name, "seconds": round(self.seconds, 4),
                "rss_mb": round(self.rss / _MB, 1), "peak_rss_mb": round(self.peak_rss / _MB, 1),
                **self.details}


@attrs.define(kw_only=True)
class FetchStats:
    """Consumer-side prefetch figures; batches after ``warmup`` count as steady state."""

    warmup: int = 5
    batches: int = 0
    wait_total: float = 0.0
    wait_max: float = 0.0
    steady_wait_total: float = 0.0
    depth_total: int = 0
    produce_total: float = 0.0
    produced: int = 0

    def record_wait(self, seconds: float, depth: int) -> None:
        """One ``next()`` by the consumer: how long it blocked and the queue depth before."""
        self.batches += 1
        self.wait_total += seconds
        self.wait_max = max(self.wait_max, seconds)
        self.depth_total += depth
        if self.batches > self.warmup:
            self.steady_wait_total += seconds

    def record_produce(self, seconds: float) -> None:
        """One batch built (by the fetch thread, or inline without prefetch)."""
        self.produced += 1
        self.produce_total += seconds

    @property
    def mean_wait(self) -> float:
        """Mean seconds the consumer waited per batch."""
        return self.wait_total / self.batches if self.batches else 0.0

    @property
    def steady_mean_wait(self) -> float:
        """Mean wait per batch after the warm-up batches."""
        n = self.batches - self.warmup
        return self.steady_wait_total / n if n > 0 else self.mean_wait

    @property
    def mean_depth(self) -> float:
        """Mean queue depth seen by the consumer."""
        return self.depth_total / self.batches if self.batches else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain values (milliseconds for times)."""
        return {"batches": self.batches, "mean_wait_ms": round(self.mean_wait * 1e3, 4),
                "steady_mean_wait_ms": round(self.steady_mean_wait * 1e3, 4),
                "max_wait_ms": round(self.wait_max * 1e3, 4),
                "mean_queue_depth": round(self.mean_depth, 2),
                "mean_produce_ms": round(self.produce_total / self.produced * 1e3, 4)
                if self.produced else 0.0}


@attrs.define
class Metrics:
    """Per-stage startup figures and free-form counters of one factory."""

    stages: list[StageMetrics] = attrs.field(factory=list)
    counters: dict[str, Any] = attrs.field(factory=dict)
    fetch: FetchStats = attrs.field(factory=FetchStats)
    _peak: int = 0

    def sample_rss(self) -> int:
        """Take an RSS sample, update the running peak, and return the sample."""
        now = rss()
        self._peak = max(self._peak, now, peak_rss())
        return now

    @property
    def peak_rss(self) -> int:
        """The highest RSS seen so far (bytes)."""
        self.sample_rss()
        return self._peak

    @contextmanager
    def stage(self, name: str) -> Iterator[dict[str, Any]]:
        """Time a stage; the yielded dict collects extra details to record with it."""
        details: dict[str, Any] = {}
        start = time.perf_counter()
        try:
            yield details
        finally:
            seconds = time.perf_counter() - start
            now = self.sample_rss()
            stage = StageMetrics(name=name, seconds=seconds, rss=now, peak_rss=self._peak,
                                 details=details)
            self.stages.append(stage)
            log.info("stage %-14s %8.3f s  rss %7.1f MB  peak %7.1f MB%s", name, seconds,
                     now / _MB, self._peak / _MB,
                     "".join(f"  {k}={v}" for k, v in details.items()))

    def stage_seconds(self) -> dict[str, float]:
        """Seconds per stage name (summed if a stage ran more than once)."""
        out: dict[str, float] = {}
        for s in self.stages:
            out[s.name] = out.get(s.name, 0.0) + s.seconds
        return out

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain values, for logs, JSON and trainers."""
        return {"stages": [s.to_dict() for s in self.stages],
                "total_seconds": round(sum(s.seconds for s in self.stages), 4),
                "peak_rss_mb": round(self.peak_rss / _MB, 1),
                "counters": dict(self.counters), "fetch": self.fetch.to_dict()}
