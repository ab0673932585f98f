"""The video track of an MP4/MOV-family file from its ``moov`` box (ISO/IEC 14496-12).

* :func:`display_rotation`: the ``tkhd`` display matrix (PyAV exposes it only on decoded
  frames), so a probe stays decode-free;
* :func:`read_video_track`: size (sample entry), frame count (``stsz``), frame rate and
  duration (``mdhd``, ``stts``) and rotation, the values FFmpeg's MOV demuxer reports, for the
  plain case only: anything unusual (fragments, several sample descriptions, compact sample
  sizes, no samples) returns None and the caller opens the file with PyAV instead.

Only box headers and the (small) ``moov`` box are read, seeking over the media data.
"""

from __future__ import annotations

import math
import struct
from typing import BinaryIO

import attrs

__all__ = ["MP4_EXTENSIONS", "Mp4Track", "display_rotation", "read_video_track"]

#: Extensions whose containers are ISO base media files.
MP4_EXTENSIONS = frozenset({"mp4", "mov", "m4v", "3gp", "m4a", "mp4a"})
_CONTAINERS = {b"trak", b"mdia"}
_MAX_MOOV = 64 * 1024 * 1024


def _boxes(data: bytes) -> list[tuple[bytes, bytes]]:
    """``(type, payload)`` of the boxes in ``data`` (stops at a malformed header)."""
    out, at = [], 0
    while at + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, at)
        head = 8
        if size == 1 and at + 16 <= len(data):
            size, head = struct.unpack_from(">Q", data, at + 8)[0], 16
        elif size == 0:
            size = len(data) - at
        if size < head:
            break
        out.append((kind, data[at + head:at + size]))
        at += size
    return out


def _find_moov(fh: BinaryIO, size: int) -> bytes | None:
    """The ``moov`` payload, walking the top-level boxes by their headers."""
    at = 0
    while at + 8 <= size:
        fh.seek(at)
        head = fh.read(16)
        if len(head) < 8:
            return None
        box, kind = struct.unpack_from(">I4s", head)
        skip = 8
        if box == 1 and len(head) >= 16:
            box, skip = struct.unpack_from(">Q", head, 8)[0], 16
        elif box == 0:
            box = size - at
        if box < skip:
            return None
        if kind == b"moov":
            if box > _MAX_MOOV:
                return None
            fh.seek(at + skip)
            return fh.read(box - skip)
        at += box
    return None


def _matrix_rotation(tkhd: bytes) -> int:
    """Counter-clockwise degrees (0, 90, 180, 270) of a ``tkhd`` payload's matrix."""
    offset = 4 + (32 if tkhd[:1] == b"\x01" else 20) + 16
    if len(tkhd) < offset + 36:
        return 0
    a, b, _, c, d = struct.unpack_from(">5i", tkhd, offset)
    if not (a or b or c or d):
        return 0
    # FFmpeg's av_display_rotation_get: the matrix rotates clockwise by atan2(b, a).
    degrees = -math.degrees(math.atan2(b / 65536, a / 65536))
    return round(degrees / 90.0) * 90 % 360


def _video_trak(moov: bytes) -> dict[bytes, bytes] | None:
    """The child boxes of the first video ``trak``."""
    for kind, trak in _boxes(moov):
        if kind != b"trak":
            continue
        parts = dict(_boxes(trak))
        handler = dict(_boxes(parts.get(b"mdia", b""))).get(b"hdlr", b"")
        if handler[8:12] == b"vide" and b"tkhd" in parts:
            return parts
    return None


def display_rotation(fh: BinaryIO, size: int) -> int:
    """Counter-clockwise display rotation of the first video track (0 when none is set or the
    file is not an ISO media file); ``frame.rotation`` of a decoded frame agrees."""
    moov = _find_moov(fh, size)
    trak = None if moov is None else _video_trak(moov)
    return 0 if trak is None else _matrix_rotation(trak[b"tkhd"])


@attrs.frozen
class Mp4Track:
    """The first video track: coded ``width``/``height``, ``frames``, ``fps``, ``duration``
    (seconds), ``rotation`` (counter-clockwise degrees) and the sample entry's ``codec``."""

    width: int
    height: int
    frames: int
    fps: float
    duration: float
    rotation: int
    codec: str


def _timing(mdhd: bytes) -> tuple[int, int] | None:
    """``(timescale, duration)`` of an ``mdhd`` payload."""
    if mdhd[:1] == b"\x01" and len(mdhd) >= 32:
        scale, duration = struct.unpack_from(">IQ", mdhd, 20)
    elif len(mdhd) >= 20:
        scale, duration = struct.unpack_from(">II", mdhd, 12)
    else:
        return None
    return (scale, duration) if scale else None


def _stts_total(stts: bytes) -> tuple[int, int] | None:
    """``(samples, summed durations)`` of an ``stts`` payload."""
    if len(stts) < 8:
        return None
    (count,) = struct.unpack_from(">I", stts, 4)
    if len(stts) < 8 + 8 * count:
        return None
    pairs = struct.unpack_from(f">{2 * count}I", stts, 8)
    return sum(pairs[::2]), int(sum(n * d for n, d in zip(pairs[::2], pairs[1::2], strict=True)))


def _sample_count(stsz: bytes, timed: int) -> int | None:
    """The ``stsz`` sample count when the tables agree (a count the ``stts`` does not time, or
    a size table shorter than the count, is a damaged or hostile file: PyAV decides)."""
    if len(stsz) < 12:
        return None
    size, frames = struct.unpack_from(">II", stsz, 4)
    if frames != timed or (size == 0 and len(stsz) < 12 + 4 * frames):
        return None
    return int(frames)


def _sample_entry(stsd: bytes) -> tuple[str, int, int] | None:
    """``(codec, width, height)`` of the only sample description."""
    if len(stsd) < 8 + 36 or struct.unpack_from(">I", stsd, 4)[0] != 1:
        return None
    codec = stsd[12:16].decode("latin-1")
    width, height = struct.unpack_from(">HH", stsd, 8 + 32)
    return codec, width, height


def read_video_track(fh: BinaryIO, size: int) -> Mp4Track | None:
    """The first video track of a plain (unfragmented) ISO media file, else None."""
    moov = _find_moov(fh, size)
    if moov is None or any(kind == b"mvex" for kind, _ in _boxes(moov)):
        return None
    trak = _video_trak(moov)
    if trak is None:
        return None
    mdia = dict(_boxes(trak.get(b"mdia", b"")))
    stbl = dict(_boxes(dict(_boxes(mdia.get(b"minf", b""))).get(b"stbl", b"")))
    timing, entry = _timing(mdia.get(b"mdhd", b"")), _sample_entry(stbl.get(b"stsd", b""))
    stts = _stts_total(stbl.get(b"stts", b""))
    if timing is None or entry is None or stts is None or not stts[1]:
        return None
    frames, total = _sample_count(stbl.get(b"stsz", b""), stts[0]), stts[1]
    codec, width, height = entry
    if frames is None or frames < 1 or width < 1 or height < 1:
        return None
    scale, duration = timing
    return Mp4Track(width=width, height=height, frames=frames, fps=scale * frames / total,
                    duration=duration / scale, rotation=_matrix_rotation(trak[b"tkhd"]),
                    codec=codec)
