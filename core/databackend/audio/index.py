"""The persisted index of an audio dataset: one row per kept clip, plus the skipped files.

Columns per clip: path, byte size, mtime, frames (per channel), sample rate, channels, bucket
duration (ms), captions and lyrics. The index is JSON (gzip), written atomically to
``{cache_root}/metadata/{id}/audio-index.json.gz`` with the fingerprint of the settings it was
made with; a rescan reuses the rows of unchanged files (same size and mtime).
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from databackend.audio.buckets import bucket_key, bucket_name

if TYPE_CHECKING:
    from databackend.storage.base import StorageBackend

__all__ = ["AUDIO_INDEX_KEY", "AudioIndex", "AudioRow"]

log = logging.getLogger(__name__)
AUDIO_INDEX_KEY = "audio-index.json.gz"
_FORMAT = 1


@attrs.frozen(kw_only=True)
class AudioRow:
    """One kept clip."""

    path: str
    size: int
    mtime: float
    frames: int
    sample_rate: int
    channels: int
    bucket_ms: int
    captions: tuple[str, ...] = ()
    lyrics: str | None = None

    @property
    def duration(self) -> float:
        """Seconds."""
        return self.frames / self.sample_rate

    @property
    def bucket_seconds(self) -> float:
        """The bucket duration in seconds."""
        return self.bucket_ms / 1000


class AudioIndex:
    """Kept clips in path order, skipped files by reason, and the settings fingerprint.

    Exposes what the runtime and caches read of an index: ``paths``, ``file_size``,
    ``mtime``, :meth:`buckets`, :meth:`captions_of`, :meth:`position`.
    """

    def __init__(self, rows: Iterable[AudioRow], *, fingerprint: str = "",
                 skipped: Mapping[str, list[str]] | None = None) -> None:
        """Sort rows by path."""
        self.rows: list[AudioRow] = sorted(rows, key=lambda r: r.path)
        self.fingerprint = fingerprint
        self.skipped: dict[str, list[str]] = {k: sorted(v) for k, v in (skipped or {}).items()
                                              if v}
        self.paths = [r.path for r in self.rows]
        self.file_size = [r.size for r in self.rows]
        self.mtime = [r.mtime for r in self.rows]
        self.captions = [r.captions for r in self.rows]
        self._where = {p: i for i, p in enumerate(self.paths)}

    def __len__(self) -> int:
        return len(self.rows)

    def row(self, i: int) -> AudioRow:
        """Clip ``i``."""
        return self.rows[i]

    def captions_of(self, i: int) -> tuple[str, ...]:
        """The captions of clip ``i``."""
        return self.rows[i].captions

    def position(self, path: str) -> int | None:
        """The row of ``path``, or None."""
        return self._where.get(path)

    def buckets(self) -> dict[tuple[int, int], np.ndarray]:
        """``(bucket ms, 0) -> sorted clip indices``."""
        out: dict[tuple[int, int], list[int]] = {}
        for i, r in enumerate(self.rows):
            out.setdefault(bucket_key(r.bucket_seconds), []).append(i)
        return {k: np.asarray(v, dtype=np.int64) for k, v in sorted(out.items())}

    def bucket_counts(self) -> dict[str, int]:
        """``{"75s": n, ...}`` in bucket order (SimpleTuner's keys)."""
        return {bucket_name(k[0] / 1000): len(v) for k, v in self.buckets().items()}

    def skipped_counts(self) -> dict[str, int]:
        """Skipped files per reason."""
        return {k: len(v) for k, v in sorted(self.skipped.items())}

    # --- persistence ---------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The gzip JSON document."""
        doc = {"format": _FORMAT, "fingerprint": self.fingerprint, "skipped": self.skipped,
               "rows": [[r.path, r.size, r.mtime, r.frames, r.sample_rate, r.channels,
                         r.bucket_ms, list(r.captions), r.lyrics] for r in self.rows]}
        return gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), mtime=0)

    @classmethod
    def from_bytes(cls, data: bytes) -> AudioIndex:
        """Parse :meth:`to_bytes` output; ``ValueError`` when it is damaged."""
        try:
            doc = json.loads(gzip.decompress(data))
            if doc.get("format") != _FORMAT:
                raise ValueError(f"format {doc.get('format')!r}")
            rows = [AudioRow(path=p, size=int(s), mtime=float(m), frames=int(f),
                             sample_rate=int(sr), channels=int(c), bucket_ms=int(b),
                             captions=tuple(caps), lyrics=ly)
                    for p, s, m, f, sr, c, b, caps, ly in doc["rows"]]
        except (OSError, EOFError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"damaged audio index: {exc}") from None
        return cls(rows, fingerprint=str(doc.get("fingerprint", "")),
                   skipped=doc.get("skipped") or {})

    def save(self, storage: StorageBackend, key: str = AUDIO_INDEX_KEY) -> None:
        """Write atomically (the storage's ``write``)."""
        storage.write(key, self.to_bytes())

    @classmethod
    def load(cls, storage: StorageBackend, key: str = AUDIO_INDEX_KEY) -> AudioIndex | None:
        """The stored index, or None when absent or damaged (a damaged one is logged)."""
        try:
            data = storage.read(key)
        except FileNotFoundError:
            return None
        try:
            return cls.from_bytes(data)
        except ValueError as exc:
            log.warning("ignoring %s in %s: %s", key, storage.describe(), exc)
            return None

    def to_dict(self) -> dict[str, Any]:
        """Counts for reports: clips, buckets, skipped by reason, total seconds."""
        return {"clips": len(self), "buckets": self.bucket_counts(),
                "skipped": self.skipped_counts(),
                "seconds": round(sum(r.duration for r in self.rows), 3)}
