"""The quarantine: URLs that failed (404, timeout, not an image, too large), with reason and time.

Kept in a small JSON file (``{csv_cache_dir}/quarantine.json``), written atomically. A
quarantined URL is skipped by listings and refused by reads, without a request, for
``delay`` seconds after its last failure; after that it is tried again and a success removes it.
Writes are coalesced (at most one per :data:`FLUSH_SECONDS`, and on :meth:`Quarantine.flush`),
and merged with the file on disk so processes sharing the folder keep each other's entries.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import tempfile
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable
from typing import Any

import attrs

__all__ = ["FLUSH_SECONDS", "Quarantine", "QuarantineEntry"]

logger = logging.getLogger(__name__)

#: Longest time a new quarantine entry stays unwritten.
FLUSH_SECONDS = 1.0
_VERSION = 1


@attrs.frozen(slots=True)
class QuarantineEntry:
    """Why and when a URL failed: ``reason`` (see ``errors.REASONS``), a detail line, the time
    of the last failure (epoch seconds), how many times it failed, and the redacted URL."""

    reason: str
    detail: str
    time: float
    failures: int = 1
    url: str = ""


def _load(path: str) -> dict[str, QuarantineEntry]:
    """The entries stored in ``path``; a missing or damaged file is an empty quarantine."""
    try:
        with open(path, encoding="utf-8") as fh:
            raw = json.load(fh)
        return {k: QuarantineEntry(**v) for k, v in raw.get("entries", {}).items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        logger.warning("csv: ignoring unreadable quarantine file %s (%s)", path, exc)
        return {}


def _dump(path: str, entries: dict[str, QuarantineEntry]) -> None:
    """Write the entries atomically (temporary file, then ``os.replace``)."""
    payload: dict[str, Any] = {"version": _VERSION,
                               "entries": {k: attrs.asdict(v) for k, v in entries.items()}}
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".quarantine.", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=0, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _flush_at_exit(ref: weakref.ReferenceType[Quarantine]) -> None:
    """Write what a still-living quarantine has not written yet."""
    quarantine = ref()
    if quarantine is not None:
        quarantine.flush()


class Quarantine:
    """Failed URLs by virtual key; thread-safe, persisted in one JSON file."""

    def __init__(self, path: str, delay: float, *,
                 clock: Callable[[], float] = time.time) -> None:
        """Load ``path`` (if it exists); entries block reads for ``delay`` seconds."""
        self.path = path
        self.delay = delay
        self._clock = clock
        self._lock = threading.Lock()
        self._entries = _load(path)
        self._changed: set[str] = set()  # keys added or removed since the last write
        self._last_write = 0.0
        self._timer: threading.Timer | None = None
        atexit.register(_flush_at_exit, weakref.ref(self))  # the timer thread is a daemon

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> QuarantineEntry | None:
        """The entry of ``key``, blocked or due for a retry, or None."""
        return self._entries.get(key)

    def blocked(self, key: str) -> QuarantineEntry | None:
        """The entry of ``key`` if it failed less than ``delay`` seconds ago, else None."""
        entry = self._entries.get(key)
        if entry is None or self._clock() - entry.time >= self.delay:
            return None
        return entry

    def add(self, key: str, reason: str, detail: str, url: str = "") -> QuarantineEntry:
        """Record a failure of ``key`` now (counting repeated failures)."""
        with self._lock:
            old = self._entries.get(key)
            entry = QuarantineEntry(reason, detail, self._clock(),
                                    old.failures + 1 if old else 1, url)
            self._entries[key] = entry
            self._changed.add(key)
        self._schedule()
        return entry

    def clear(self, key: str) -> None:
        """Forget ``key`` (it was read successfully)."""
        with self._lock:
            if self._entries.pop(key, None) is None:
                return
            self._changed.add(key)
        self._schedule()

    def counts(self) -> dict[str, int]:
        """Blocked entries (failed within ``delay``) by reason."""
        now = self._clock()
        with self._lock:
            found = Counter(e.reason for e in self._entries.values()
                            if now - e.time < self.delay)
        return dict(sorted(found.items()))

    def entries(self) -> dict[str, QuarantineEntry]:
        """A copy of every entry, blocked or due for a retry."""
        with self._lock:
            return dict(self._entries)

    def flush(self) -> None:
        """Write pending changes now, merged with what other processes wrote meanwhile."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if not self._changed:
                return
            merged = _load(self.path)
            for key in self._changed:
                if key in self._entries:
                    merged[key] = self._entries[key]
                else:
                    merged.pop(key, None)
            try:
                _dump(self.path, merged)
            except OSError as exc:  # a full or read-only disk must not stop a run
                logger.warning("csv: cannot write the quarantine file %s: %s", self.path, exc)
                return
            self._entries = merged
            self._changed.clear()
            self._last_write = time.monotonic()

    def _schedule(self) -> None:
        """Write now if the last write is old enough, else once the interval has passed."""
        wait = FLUSH_SECONDS - (time.monotonic() - self._last_write)
        if wait <= 0:
            self.flush()
            return
        with self._lock:
            if self._timer is None:
                self._timer = threading.Timer(wait, self.flush)
                self._timer.daemon = True
                self._timer.start()
