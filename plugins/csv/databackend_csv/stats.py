"""Counters of one backend's downloads and the events progress displays listen to."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import attrs

__all__ = ["DownloadEvent", "DownloadStats"]


@attrs.frozen(slots=True)
class DownloadEvent:
    """One finished read: ``kind`` is ``download`` (a whole file came over the network),
    ``range`` (only the first bytes did), ``cache_hit`` or ``failure`` (``reason`` says why)."""

    kind: str
    path: str
    nbytes: int = 0
    reason: str | None = None


class DownloadStats:
    """Thread-safe counters since the backend was created."""

    FIELDS = ("requests", "downloads", "range_reads", "bytes_downloaded", "cache_hits",
              "refused_quarantined", "listed", "skipped_quarantined")

    def __init__(self) -> None:
        """All counters at zero."""
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._failures: Counter[str] = Counter()

    def add(self, field: str, n: int = 1) -> None:
        """Increase one counter (one of :attr:`FIELDS`)."""
        with self._lock:
            self._counts[field] += n

    def failure(self, reason: str) -> None:
        """Count one failed URL by reason."""
        with self._lock:
            self._failures[reason] += 1

    def __getitem__(self, field: str) -> int:
        return self._counts[field]

    def snapshot(self) -> dict[str, Any]:
        """Every counter, plus ``failures`` by reason (URLs that failed in this session)."""
        with self._lock:
            out: dict[str, Any] = {f: self._counts[f] for f in self.FIELDS}
            out["failures"] = dict(sorted(self._failures.items()))
        return out
