"""The media scan's report: the image report plus frame buckets, windows and probe figures."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs
import numpy as np

from databackend.metadata.report import BucketRow, ScanReport, bucket_table

__all__ = ["MediaBucketRow", "MediaScanReport", "media_bucket_table"]


@attrs.frozen(kw_only=True)
class MediaBucketRow(BucketRow):
    """A bucket row with its printed ``label`` (``WxH@F``), the frames (or other units) of
    its windows and the shortest and longest source clip in it."""

    key: tuple[int, ...] = ()
    label: str = ""
    window_frames: tuple[int, int] = (0, 0)
    source_frames: tuple[int, int] = (0, 0)

    def to_dict(self) -> dict[str, Any]:
        """The image row's fields with the media ones; ``bucket`` is the label."""
        return {**super().to_dict(), "bucket": self.label, "key": list(self.key),
                "window_frames": list(self.window_frames),
                "source_frames": list(self.source_frames)}


def _span(values: np.ndarray) -> tuple[int, int]:
    return (int(values.min()), int(values.max())) if len(values) else (0, 0)


def media_bucket_table(buckets: Mapping[tuple[int, ...], np.ndarray], *,
                       label: Callable[[tuple[int, ...]], str], window_frames: np.ndarray,
                       source_frames: np.ndarray, batch_size: int, repeats: int = 0,
                       policy: str = "pad", world_size: int = 1, rounding: int = 2
                       ) -> list[MediaBucketRow]:
    """One row per bucket, with the image table's batch arithmetic (``bucket_table``)."""
    rows = []
    for key, members in sorted(buckets.items()):
        spatial = (key[0], key[1]) if len(key) > 1 else (1, 1)  # non-spatial kinds: no aspect
        (base,) = bucket_table({spatial: members}, batch_size=batch_size,
                               repeats=repeats, policy=policy, world_size=world_size,
                               rounding=rounding)
        rows.append(MediaBucketRow(**attrs.asdict(base), key=key, label=label(key),
                                   window_frames=_span(window_frames[members]),
                                   source_frames=_span(source_frames[members])))
    return rows


def _frames(span: tuple[int, int]) -> str:
    return str(span[0]) if span[0] == span[1] else f"{span[0]}-{span[1]}"


@attrs.define(kw_only=True)
class MediaScanReport(ScanReport):
    """A :class:`ScanReport` for media datasets: ``kind``, ``counted`` (files whose frame
    count was not in the container and was counted), and media bucket rows."""

    kind: str = "video"
    counted: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The image report's fields plus ``kind`` and ``counted``."""
        return {**super().to_dict(), "kind": self.kind, "counted": self.counted}

    def format_table(self) -> str:
        """Summary line, buckets with their window and source frame counts, skip reasons."""
        from databackend.metadata.report import _table

        head, *rest = super().format_table().split("\n")
        rest = [line for line in rest if line.startswith(("  skipped", "  deleted", "  warning",
                                                          "  max_num"))]
        rows = [[getattr(b, "label", f"{b.target[0]}x{b.target[1]}"), f"{b.aspect:g}",
                 _frames(getattr(b, "window_frames", (0, 0))),
                 _frames(getattr(b, "source_frames", (0, 0))), str(b.count), str(b.batches),
                 b.action + (" (short)" if b.short else "")] for b in self.buckets]
        table = _table(["bucket", "aspect", "frames", "clip frames", "count", "batches",
                        "policy"], rows) if rows else ["  (no buckets)"]
        extra = [f"  frame counts counted (not in the container): {self.counted}"] \
            if self.counted else []
        return "\n".join([f"{head} [{self.kind}]", *table, *extra, *rest])
