"""Decoding only a window of frames: seek to the keyframe before it, decode up to its end.

Frame ``k`` of a stream is the one whose presentation time is ``k / fps`` after the stream's
start (constant frame rate, as the probe's frame count assumes); decoding starts at the
keyframe at or before the window's first frame (``container.seek``) and stops after its last,
so a short window of a long clip costs a fraction of a full decode. Frames are returned as
displayed: the display rotation is applied.
"""

from __future__ import annotations

import logging
from typing import Any, BinaryIO

import numpy as np

from databackend.media.windows import Window

__all__ = ["DecodeStats", "decode_window"]

log = logging.getLogger(__name__)


class DecodeStats:
    """Frames decoded (including those before the window, after the seek) and returned."""

    def __init__(self) -> None:
        """Zero counters."""
        self.decoded = 0
        self.returned = 0


def _rotate(array: np.ndarray, rotation: int) -> np.ndarray:
    """Turn a decoded frame as displayed (``rotation``: counter-clockwise degrees)."""
    turns = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(array, k=turns)) if turns else array


def _frame_index(frame: Any, start: float, fps: float) -> int:
    return round((float(frame.pts * frame.time_base) - start) * fps) if frame.pts is not None \
        else -1


def decode_window(source: str | BinaryIO, window: Window, *, fps: float,
                  stats: DecodeStats | None = None) -> np.ndarray:
    """RGB ``uint8`` frames ``[window.length, H, W, 3]`` of the first video stream of
    ``source`` (a path or a seekable binary file); raises ``ValueError`` when the stream ends
    before the window does."""
    import av

    wanted = {k: n for n, k in enumerate(window.positions())}
    out: list[np.ndarray | None] = [None] * window.length
    with av.open(source, mode="r") as container:
        stream: Any = container.streams.video[0]
        stream.thread_type = "AUTO"
        start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
        if window.start > 0 and fps > 0:
            target = int((start + window.start / fps) / stream.time_base)
            container.seek(target, stream=stream, backward=True, any_frame=False)
        counter = -1
        for frame in container.decode(stream):
            if stats is not None:
                stats.decoded += 1
            k = _frame_index(frame, start, fps) if fps > 0 else counter + 1
            counter = k
            if k in wanted:
                out[wanted[k]] = _rotate(frame.to_ndarray(format="rgb24"), frame.rotation)
            if k >= window.stop - 1:
                break
    missing = [window.start + n * window.stride for n, f in enumerate(out) if f is None]
    if missing:
        raise ValueError(f"the stream ends or skips before frame(s) {missing[:5]} of the "
                         f"window {window.start}..{window.stop - 1}")
    if stats is not None:
        stats.returned += len(out)
    return np.stack([f for f in out if f is not None])
