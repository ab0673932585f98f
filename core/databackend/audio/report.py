"""What an audio scan did: counts, skipped files by reason (with examples), duration buckets."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from databackend.audio.index import AudioIndex

__all__ = ["AudioScanReport"]


@attrs.define
class AudioScanReport:
    """Counts (``listed``, ``reused``, ``probed``, ``slow_probe``, ``kept``, ``skipped``),
    skipped files per reason, clips per bucket (``{"6s": n}``) and the scan's seconds."""

    dataset_id: str
    counts: Counter[str] = attrs.field(factory=Counter)
    skipped: dict[str, int] = attrs.field(factory=dict)
    examples: dict[str, list[str]] = attrs.field(factory=dict)
    buckets: dict[str, int] = attrs.field(factory=dict)
    elapsed: float = 0.0

    def finish(self, index: AudioIndex, elapsed: float) -> None:
        """Take the final figures from the new index."""
        self.counts["kept"] = len(index)
        self.skipped = index.skipped_counts()
        self.counts["skipped"] = sum(self.skipped.values())
        self.examples = {k: v[:5] for k, v in sorted(index.skipped.items())}
        self.buckets = index.bucket_counts()
        self.elapsed = elapsed

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {"dataset": self.dataset_id, "kind": "audio", "counts": dict(self.counts),
                "skipped": dict(self.skipped), "examples": dict(self.examples),
                "buckets": dict(self.buckets), "seconds": round(self.elapsed, 4)}

    def format_table(self) -> str:
        """A printable summary: counts, the bucket table and the skip reasons."""
        c = self.counts
        lines = [f"dataset {self.dataset_id!r} (audio): {c['kept']} clips kept of "
                 f"{c['listed']} listed ({c['probed']} probed, {c['reused']} unchanged), "
                 f"{c['skipped']} skipped, {self.elapsed:.2f} s"]
        if self.buckets:
            lines.append("  bucket   clips")
            lines += [f"  {name:>7}  {n:6d}" for name, n in self.buckets.items()]
        for reason, n in self.skipped.items():
            example = ", ".join(self.examples.get(reason, [])[:3])
            lines.append(f"  skipped {reason}: {n} (e.g. {example})")
        return "\n".join(lines)
