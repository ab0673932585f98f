"""The display rotation of the video track of an MP4/MOV-family file, from its box headers.

PyAV exposes the display matrix only on decoded frames; this reads the video track's ``tkhd``
matrix instead (ISO/IEC 14496-12), seeking over the media data, so a probe stays decode-free.
Only box headers and the (small) ``moov`` box are read.
"""

from __future__ import annotations

import math
import struct
from typing import BinaryIO

__all__ = ["MP4_EXTENSIONS", "display_rotation"]

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


def _video_track_rotation(moov: bytes) -> int:
    for kind, trak in _boxes(moov):
        if kind != b"trak":
            continue
        parts = dict(_boxes(trak))
        handler = dict(_boxes(parts.get(b"mdia", b""))).get(b"hdlr", b"")
        if handler[8:12] == b"vide" and b"tkhd" in parts:
            return _matrix_rotation(parts[b"tkhd"])
    return 0


def display_rotation(fh: BinaryIO, size: int) -> int:
    """Counter-clockwise display rotation of the first video track (0 when none is set or the
    file is not an ISO media file); ``frame.rotation`` of a decoded frame agrees."""
    moov = _find_moov(fh, size)
    return 0 if moov is None else _video_track_rotation(moov)
