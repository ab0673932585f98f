"""The PyAV video probe: size after rotation, frame count, fps and duration from metadata.

Nothing is decoded. MP4-family files (mp4, mov, m4v, 3gp) are read from their ``moov`` box
(:func:`databackend.media.mp4meta.read_video_track`: the values FFmpeg's MOV demuxer reports,
plus the ``tkhd`` display rotation), which costs a fraction of opening the container; any file
that box walk does not fully understand, and every other container, is opened by PyAV (a
local path, or a :class:`RangeFile` over ranged reads), which reads the first video stream's
parameters (and, for MP4-family files, the rotation from the box walk). When the container has
no frame
count (Matroska and WebM store none), the frames are *counted* by demuxing the stream's
packets (no decoding, but the whole file is read): slower, logged, and flagged ``counted``.
"""

from __future__ import annotations

import logging
from typing import Any

from databackend.errors import DatabackendError
from databackend.media.kinds import extension_of
from databackend.media.mp4meta import MP4_EXTENSIONS, display_rotation, read_video_track
from databackend.media.probe import ProbeSource, classify_failure
from databackend.media.record import CorruptMedia, MediaInfo, NotMedia

__all__ = ["count_frames", "probe_video"]

log = logging.getLogger(__name__)
_IO_BUFFER = 4096  # PyAV's read size on file objects (its 32 KiB default over-reads headers)


def _open(source: ProbeSource) -> tuple[Any, Any]:
    """``(container, file or None)``; PyAV errors become NotMedia/CorruptMedia."""
    try:
        import av
    except ImportError as exc:  # not a property of this file: stop the scan, say how to fix
        raise DatabackendError("video datasets need PyAV: pip install 'databackend[video]' "
                               f"(or av>=12); {exc}") from None

    fh = None if source.local else source.open()
    try:
        if source.local:
            return av.open(source.local, mode="r"), None
        return av.open(fh, mode="r", buffer_size=_IO_BUFFER), fh  # small reads: fewer ranges
    except Exception as exc:
        if fh is not None:
            fh.close()
        raise classify_failure(exc, source) from None


def _fps(stream: Any) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def _duration(stream: Any, container: Any) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return container.duration / 1_000_000 if container.duration else 0.0


def count_frames(container: Any, stream: Any) -> int:
    """Frames of ``stream`` counted by demuxing its packets (no decoding)."""
    return sum(1 for packet in container.demux(stream) if packet.size)


def _rotation(source: ProbeSource) -> int:
    if extension_of(source.name) not in MP4_EXTENSIONS:
        return 0
    try:
        with source.open() as fh:
            return display_rotation(fh, source.size)
    except Exception as exc:  # a broken box tree: PyAV read the file, so keep it unrotated
        log.debug("%s: no display rotation (%s)", source.name, exc)
        return 0


def _fast_mp4(source: ProbeSource) -> MediaInfo | None:
    """The ``moov`` box walk of an MP4-family file, or None (then PyAV opens it)."""
    if extension_of(source.name) not in MP4_EXTENSIONS:
        return None
    try:
        with source.open() as fh:
            track = read_video_track(fh, source.size)
    except Exception as exc:  # a broken box tree: PyAV decides what the file is
        log.debug("%s: box walk failed (%s)", source.name, exc)
        return None
    if track is None:
        return None
    width, height = (track.height, track.width) if track.rotation % 180 else \
        (track.width, track.height)
    return MediaInfo(kind="video", width=width, height=height, frames=track.frames,
                     fps=track.fps, duration=track.duration, rotation=track.rotation,
                     codec=track.codec)


def probe_video(source: ProbeSource) -> MediaInfo:
    """Width and height as displayed, frames, fps, duration of the first video stream."""
    fast = _fast_mp4(source)
    if fast is not None:
        return fast
    container, fh = _open(source)
    try:
        if not container.streams.video:
            raise NotMedia(f"{source.name}: no video stream")
        stream = container.streams.video[0]
        width, height = int(stream.width or 0), int(stream.height or 0)
        if width < 1 or height < 1:
            raise CorruptMedia(f"{source.name}: the video stream has no frame size")
        fps, duration = _fps(stream), _duration(stream, container)
        frames, counted = int(stream.frames or 0), False
        if frames <= 0:
            log.info("%s: no frame count in the container; counting packets", source.name)
            frames, counted = count_frames(container, stream), True
        if frames <= 0:
            raise CorruptMedia(f"{source.name}: the video stream holds no frames")
        codec = stream.codec_context.name if stream.codec_context else ""
    except (NotMedia, CorruptMedia):
        raise
    except Exception as exc:
        raise classify_failure(exc, source) from None
    finally:
        container.close()
        if fh is not None:
            fh.close()
    rotation = _rotation(source)
    if rotation % 180:
        width, height = height, width
    if not duration and fps:
        duration = frames / fps
    return MediaInfo(kind="video", width=width, height=height, frames=frames, fps=fps,
                     duration=duration, rotation=rotation, counted=counted, codec=codec)
