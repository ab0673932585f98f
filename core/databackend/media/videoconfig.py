"""The ``video`` block of a dataset: keys, defaults and validation (REFERENCE-MEDIA §3.1).

Reference keys and defaults: ``num_frames`` (``framerate * 5`` with a warning when unset; the
``framerate`` factory option is 30 by default), ``min_frames`` (= ``num_frames``),
``max_frames`` (none), ``is_i2v`` (false), ``bucket_strategy`` (``aspect_ratio`` or
``resolution_frames``), ``frame_interval`` (none; ``resolution_frames`` only). Ours on top:
``window`` (``start``: the reference's first frames, ``center``, ``random``) and
``frame_stride`` (1: every frame).

Differences from the reference (docs/video.md): every invalid value is an error, reported
with all others (the reference ignores a bad ``frame_interval`` and checks integer types only
when both are wrong); with ``resolution_frames`` ``num_frames`` may be left unset, and then
each clip trains on its own frame bucket (``F`` frames) instead of being trimmed to one length.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import attrs

from databackend.media.windows import WINDOW_MODES

__all__ = ["BUCKET_STRATEGIES", "VIDEO_KEYS", "VideoSettings", "video_problems"]

log = logging.getLogger(__name__)
BUCKET_STRATEGIES = ("aspect_ratio", "resolution_frames")
VIDEO_KEYS = ("num_frames", "min_frames", "max_frames", "is_i2v", "bucket_strategy",
              "frame_interval", "window", "frame_stride")
_INT_KEYS = ("num_frames", "min_frames", "max_frames", "frame_interval", "frame_stride")
DEFAULT_SECONDS = 5  # the reference's num_frames default: framerate * 5
#: The most frames one window may hold (decoded at once): a larger ``num_frames`` is a config
#: error, and a clip whose window would be longer (``resolution_frames`` without
#: ``num_frames``, a container declaring billions of frames) is ``too_many_frames``.
MAX_WINDOW_FRAMES = 100_000
_MAX_FRAME_KEY = 10**9  # any frame count or step above this is a mistake


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _type_problems(block: Mapping[str, Any]) -> list[str]:
    out = []
    for key in _INT_KEYS:
        value = block.get(key)
        if value is not None and (not _is_int(value) or value < 1):
            out.append(f"`video.{key}` must be a whole number >= 1; got {value!r}")
        elif value is not None and value > (MAX_WINDOW_FRAMES if key == "num_frames"
                                            else _MAX_FRAME_KEY):
            out.append(f"`video.{key}` is out of range: {value} (at most "
                       f"{MAX_WINDOW_FRAMES if key == 'num_frames' else _MAX_FRAME_KEY})")
    if "is_i2v" in block and not isinstance(block["is_i2v"], bool):
        out.append(f"`video.is_i2v` must be true or false; got {block['is_i2v']!r}")
    for key, choices in (("bucket_strategy", BUCKET_STRATEGIES), ("window", WINDOW_MODES)):
        value = block.get(key)
        if value is not None and value not in choices:
            from databackend.config.suggest import suggest

            hint = suggest(value, choices) if isinstance(value, str) else ""
            out.append(f"`video.{key}` must be one of {', '.join(choices)}; got {value!r}{hint}")
    return out


def _relation_problems(block: Mapping[str, Any], framerate: int) -> list[str]:
    def num(key: str) -> int | None:
        """The key's value when it is a valid whole number."""
        value = block.get(key)
        return value if isinstance(value, int) and _is_int(value) and value >= 1 else None

    out = []
    strategy = block.get("bucket_strategy") or "aspect_ratio"
    frames = num("num_frames") or (None if strategy == "resolution_frames" else framerate * 5)
    low, high = num("min_frames"), num("max_frames")
    if low is not None and frames is not None and low < frames:
        out.append(f"`video.min_frames` ({low}) must be greater than or equal to "
                   f"`video.num_frames` ({frames}): shorter clips cannot fill a window")
    shortest = max(low or 1, frames or 1)
    if high is not None and high < shortest:
        out.append(f"`video.max_frames` ({high}) is below the shortest clip that can be kept "
                   f"({shortest}): every clip would be left out")
    if block.get("frame_interval") is not None and strategy != "resolution_frames":
        out.append("`video.frame_interval` applies only with bucket_strategy resolution_frames")
    return out


def video_problems(block: Any, *, framerate: int = 30) -> list[str]:
    """Every problem of a ``video`` block, as ``key: ...`` lines (none when it is valid)."""
    if block is None:
        return []
    if not isinstance(block, Mapping):
        return [f"`video` must be an object; got {type(block).__name__}"]
    from databackend.config.suggest import suggest

    out = [f"`video.{k}` is not a video key{suggest(str(k), VIDEO_KEYS)}"
           for k in block if k not in VIDEO_KEYS]
    return out + _type_problems(block) + _relation_problems(block, framerate)


@attrs.frozen(kw_only=True)
class VideoSettings:
    """A validated ``video`` block with defaults filled in (``num_frames`` None: each clip's
    frame bucket sets its length, ``resolution_frames`` only)."""

    num_frames: int | None
    min_frames: int
    max_frames: int | None = None
    is_i2v: bool = False
    bucket_strategy: str = "aspect_ratio"
    frame_interval: int | None = None
    window: str = "start"
    frame_stride: int = 1

    @classmethod
    def from_block(cls, block: Mapping[str, Any] | None, *, framerate: int = 30,
                   dataset_id: str = "") -> VideoSettings:
        """Fill the defaults of a block that :func:`video_problems` accepted."""
        block = dict(block or {})
        strategy = block.get("bucket_strategy") or "aspect_ratio"
        frames = block.get("num_frames")
        if frames is None and strategy != "resolution_frames":
            frames = framerate * DEFAULT_SECONDS
            log.warning("dataset %r: video.num_frames is not set; using framerate * %d = %d",
                        dataset_id, DEFAULT_SECONDS, frames)
        return cls(num_frames=frames, min_frames=block.get("min_frames") or frames or 1,
                   max_frames=block.get("max_frames"), is_i2v=bool(block.get("is_i2v", False)),
                   bucket_strategy=strategy, frame_interval=block.get("frame_interval"),
                   window=block.get("window") or "start",
                   frame_stride=block.get("frame_stride") or 1)

    def fingerprint_doc(self) -> dict[str, Any]:
        """What changes the stored frame buckets and windows."""
        return attrs.asdict(self)
