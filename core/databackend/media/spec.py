"""How one media kind turns probed metadata into filters, bucket keys and windows.

A :class:`MediaKindSpec` is all the media scan and the media latent cache need to know about
a kind: its ``kind`` name (the probe it uses and the extensions it lists), ``plan`` (skip
reason, the bucket key parts after the spatial ``(W, H)``, and the window) and how a bucket
key prints. :class:`VideoSpec` is the video one; audio adds its own beside it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol

import attrs

from databackend.media.kinds import extensions_for
from databackend.media.record import MediaInfo
from databackend.media.videoconfig import MAX_WINDOW_FRAMES, VideoSettings
from databackend.media.windows import Window, choose_window

__all__ = ["MediaKindSpec", "MediaPlan", "VideoSpec", "frame_bucket"]


@attrs.frozen
class MediaPlan:
    """What a kind decides for one probed file: a skip ``reason`` (None: kept), the bucket key
    parts that follow ``(W, H)`` (e.g. ``(F,)``), and the ``window`` it trains on."""

    reason: str | None
    bucket: tuple[int, ...] = ()
    window: Window | None = None
    #: kinds that are not ``spatial``: the whole bucket key is ``bucket``, and these
    #: ``(original, target)`` size pairs stand in the index where images keep pixel sizes
    sizes: tuple[tuple[int, int], tuple[int, int]] | None = None


class MediaKindSpec(Protocol):
    """The kind-specific part of the media scan and cache (see the module docstring)."""

    @property
    def kind(self) -> str:
        """The media kind (``video``, ``audio``): its probe and its extensions."""

    @property
    def spatial(self) -> bool:
        """True: ``(W, H)`` lead the bucket keys and the image geometry applies."""

    def extensions(self) -> frozenset[str]:
        """The file extensions the dataset lists."""

    def fingerprint(self) -> str:
        """A hash of every setting that changes a plan."""

    def plan(self, info: MediaInfo, key: str, seed: int) -> MediaPlan:
        """Filter, bucket and place the window of one file (``key``: its relative path)."""

    def bucket_label(self, bucket: tuple[int, ...]) -> str:
        """How a full bucket key prints."""


def frame_bucket(frames: int, interval: int | None) -> int:
    """The reference's ``resolution_frames`` frame count: ``frames`` rounded down to a multiple
    of ``interval``, or ``frames`` itself when that gives 0 (or there is no interval)."""
    if not interval:
        return frames
    floored = frames // interval * interval
    return floored if floored > 0 else frames


@attrs.frozen
class VideoSpec:
    """The video kind (see :class:`~databackend.media.videoconfig.VideoSettings`).

    A clip is ``too_few_frames`` below ``min_frames`` or when the window does not fit,
    ``too_many_frames`` above ``max_frames``. The window has ``num_frames`` positions
    ``frame_stride`` apart; with ``resolution_frames`` and no ``num_frames`` it has the clip's
    frame bucket (``frame_bucket`` of the positions available at that stride). Keys are
    ``(W, H)`` for ``aspect_ratio`` and ``(W, H, F)`` (printed ``WxH@F``, ``F`` = frames in the
    window) for ``resolution_frames``.
    """

    settings: VideoSettings
    kind: str = "video"
    spatial: bool = True

    def extensions(self) -> frozenset[str]:
        """The reference's video extensions."""
        return extensions_for("video")

    def fingerprint(self) -> str:
        """A hash of the video settings."""
        doc: dict[str, Any] = {"kind": self.kind, **self.settings.fingerprint_doc()}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]

    def _length(self, frames: int) -> int:
        s = self.settings
        if s.num_frames is not None:
            return s.num_frames
        available = (frames - 1) // s.frame_stride + 1
        return frame_bucket(available, s.frame_interval)

    def plan(self, info: MediaInfo, key: str, seed: int) -> MediaPlan:
        """Filter by frame counts, place the window, give the frame part of the bucket key."""
        s = self.settings
        if info.frames < s.min_frames:
            return MediaPlan("too_few_frames")
        if s.max_frames is not None and info.frames > s.max_frames:
            return MediaPlan("too_many_frames")
        length = self._length(info.frames)
        if length > MAX_WINDOW_FRAMES:  # one window is decoded at once: bound its memory
            return MediaPlan("too_many_frames")
        window = choose_window(info.frames, length, stride=s.frame_stride, mode=s.window,
                               seed=seed, key=key)
        if window is None:
            return MediaPlan("too_few_frames")
        extra = (length,) if s.bucket_strategy == "resolution_frames" else ()
        return MediaPlan(None, extra, window)

    def bucket_label(self, bucket: tuple[int, ...]) -> str:
        """``WxH`` or ``WxH@F``."""
        head = f"{bucket[0]}x{bucket[1]}"
        return f"{head}@{bucket[2]}" if len(bucket) > 2 else head
