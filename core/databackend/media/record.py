"""What a media probe returns, and the errors that make a file a skip rather than a crash."""

from __future__ import annotations

import attrs

__all__ = ["CorruptMedia", "MediaInfo", "NotMedia"]


class NotMedia(Exception):
    """The file is not of the probed kind (wrong format, no such stream, empty)."""


class CorruptMedia(Exception):
    """The file is of the probed kind but its metadata is broken or truncated."""


@attrs.frozen(kw_only=True)
class MediaInfo:
    """Probed stream metadata of one media file.

    Video fills ``width``/``height`` (as displayed: after the rotation metadata), ``frames``,
    ``fps``, ``duration`` (seconds) and ``rotation`` (degrees, counter-clockwise, as stored);
    audio fills ``sample_rate``, ``channels``, ``samples`` and ``duration``. ``counted`` says
    the frame (or sample) count was not in the metadata and was counted by reading the stream.
    """

    kind: str
    width: int = 0
    height: int = 0
    frames: int = 0
    fps: float = 0.0
    duration: float = 0.0
    rotation: int = 0
    sample_rate: int = 0
    channels: int = 0
    samples: int = 0
    counted: bool = False
    codec: str = attrs.field(default="", eq=False)  #: informative only; not stored
