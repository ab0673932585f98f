"""Image dimensions from the first bytes of a file, after EXIF orientation, without decoding.

:func:`probe_bytes` parses only headers: JPEG markers up to the first SOFn (reading the
``Exif`` APP1 segment on the way), PNG ``IHDR`` plus the chunk headers before ``IDAT`` (for an
``eXIf`` chunk), WebP ``VP8 ``/``VP8L``/``VP8X`` (plus the ``EXIF`` chunk when the VP8X flag says
there is one), GIF and BMP headers, and TIFF IFD0. Orientations 5-8 swap width and height, as
``PIL.ImageOps.exif_transpose`` does.

It works on a prefix of the file, so the same code serves local files, S3 ranged GETs and HTTP
range requests: when the header runs past the given bytes it raises :class:`NeedMoreData` with
the byte count to fetch next; with ``eof=True`` (the bytes are the whole file) a short header is
a :class:`CorruptImage` instead. :func:`probe_file` runs that loop over a local file.
"""

from __future__ import annotations

import os
import struct
import sys
from collections.abc import Callable
from typing import NamedTuple, NoReturn

__all__ = [
    "HEADER_BYTES",
    "CorruptImage",
    "ImageInfo",
    "NeedMoreData",
    "NotAnImage",
    "probe_bytes",
    "probe_file",
]

HEADER_BYTES: int = 64 * 1024
"""A good size for the first read: covers the header of nearly every JPEG, PNG and WebP."""

_LOOKAHEAD = 4096  # added to NeedMoreData.needed so that one retry usually suffices
_MAX_READ = 16 * 1024 * 1024  # largest single os.read in probe_file
_NO_LIMIT = sys.maxsize

_U16_BE = struct.Struct(">H")
_U16_LE = struct.Struct("<H")
_U32_BE = struct.Struct(">I")
_U32_LE = struct.Struct("<I")
_HH_BE = struct.Struct(">HH")
_HH_LE = struct.Struct("<HH")
_II_BE = struct.Struct(">II")
_BMP_V3 = struct.Struct("<Iii")
_WEBP_CANVAS = struct.Struct("<HBHB")
_PNG_CHUNK = struct.Struct(">I4s")
_RIFF_CHUNK = struct.Struct("<4sI")
_IFD_ENTRY = {True: struct.Struct("<HHII"), False: struct.Struct(">HHII")}
_TIFF_ORDER = {b"II*\0": True, b"MM\0*": False}  # value: little-endian?

_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # not DHT, JPG, DAC
_JPEG_STANDALONE = frozenset((0x01, *range(0xD0, 0xD9)))  # TEM, RSTn, SOI
_BMP_DIB_SIZES = frozenset((16, 40, 52, 56, 64, 108, 124))
_EXIF_PREFIX = b"Exif\0\0"
_TAG_WIDTH, _TAG_HEIGHT, _TAG_ORIENTATION = 256, 257, 274
_TYPE_SHORT, _TYPE_LONG = 3, 4


class ImageInfo(NamedTuple):
    """Display size of an image: ``width``/``height`` are after applying EXIF orientation
    (a named tuple: one is made per probed file)."""

    width: int
    height: int
    format: str  # "jpeg" | "png" | "webp" | "gif" | "bmp" | "tiff"
    orientation: int  # EXIF orientation 1..8, 1 if absent or invalid


class NotAnImage(ValueError):
    """The bytes are not a supported image (empty, text, another file type)."""


class CorruptImage(ValueError):
    """The format was recognised but the header is broken, or truncated at end of file."""


class NeedMoreData(Exception):
    """The header runs past the given bytes; retry with the first ``needed`` bytes of the file.

    ``needed`` is always greater than the length of the bytes given, and includes a little
    look-ahead so that a single retry usually suffices.
    """

    needed: int

    def __init__(self, needed: int) -> None:
        super().__init__(needed)
        self.needed = needed

    def __str__(self) -> str:
        return f"image header needs the first {self.needed} bytes"


def _short(end: int, eof: bool) -> NoReturn:
    """Raise for a header that needs ``end`` bytes (``end`` > what we have)."""
    if eof:
        raise CorruptImage(f"image header truncated: needs {end} bytes, file is shorter")
    raise NeedMoreData(end + _LOOKAHEAD)


def _result(width: int, height: int, fmt: str, orientation: int) -> ImageInfo:
    """Validate the stored size and apply the orientation swap."""
    if width <= 0 or height <= 0:
        raise CorruptImage(f"{fmt} header gives a non-positive size {width}x{height}")
    if orientation >= 5:
        return ImageInfo(height, width, fmt, orientation)
    return ImageInfo(width, height, fmt, orientation)


# ---- TIFF / EXIF ---------------------------------------------------------------------------


def _ifd0(data: bytes, base: int, limit: int, eof: bool) -> tuple[int, int, int] | None:
    """(width, height, orientation) from IFD0 of the TIFF structure at ``base``.

    Absent tags read 0. Offsets are relative to ``base`` and must stay below ``limit`` (the end
    of the enclosing segment); returns None when the structure is malformed.
    """
    n = len(data)
    if base + 8 > limit:
        return None
    if base + 8 > n:
        _short(base + 8, eof)
    little = _TIFF_ORDER.get(data[base : base + 4])
    if little is None:
        return None
    ifd = base + (_U32_LE if little else _U32_BE).unpack_from(data, base + 4)[0] + 2
    if ifd > limit:
        return None
    if ifd > n:
        _short(ifd, eof)
    count = (_U16_LE if little else _U16_BE).unpack_from(data, ifd - 2)[0]
    end = ifd + 12 * count
    if end > limit:
        return None
    if end > n:
        _short(end, eof)
    return _scan_ifd(memoryview(data)[ifd:end], little)


def _scan_ifd(entries: memoryview, little: bool) -> tuple[int, int, int]:
    """Width, height and orientation tags (0 when absent) from packed 12-byte IFD entries."""
    found = {_TAG_WIDTH: 0, _TAG_HEIGHT: 0, _TAG_ORIENTATION: 0}
    for tag, kind, _count, raw in _IFD_ENTRY[little].iter_unpack(entries):
        if tag in found:
            if kind == _TYPE_SHORT:
                found[tag] = raw & 0xFFFF if little else raw >> 16
            elif kind == _TYPE_LONG:
                found[tag] = raw
    return found[_TAG_WIDTH], found[_TAG_HEIGHT], found[_TAG_ORIENTATION]


def _exif_orientation(data: bytes, base: int, limit: int, eof: bool) -> int:
    """Orientation 1..8 from an EXIF payload at ``base`` (optionally ``Exif\\0\\0``-prefixed)."""
    if base + 6 <= limit:
        if base + 6 > len(data):
            _short(base + 6, eof)
        if data[base : base + 6] == _EXIF_PREFIX:
            base += 6
    tags = _ifd0(data, base, limit, eof)
    orientation = tags[2] if tags else 1
    return orientation if 1 <= orientation <= 8 else 1


def _probe_tiff(data: bytes, eof: bool) -> ImageInfo:
    """TIFF: width, height and orientation from IFD0."""
    tags = _ifd0(data, 0, _NO_LIMIT, eof)
    if tags is None:
        raise CorruptImage("tiff: malformed IFD0")
    width, height, orientation = tags
    return _result(width, height, "tiff", orientation if 1 <= orientation <= 8 else 1)


# ---- JPEG ----------------------------------------------------------------------------------


def _jpeg_marker(data: bytes, pos: int, eof: bool) -> tuple[int, int]:
    """Find the next marker at or after ``pos``; returns (offset after marker, marker byte).

    Skips fill bytes (0xFF runs), stuffed 0xFF00 pairs and junk between segments, as Pillow does.
    """
    n = len(data)
    while True:
        if pos + 2 > n:
            _short(pos + 2, eof)
        if data[pos] != 0xFF:
            pos = data.find(b"\xff", pos)
            if pos < 0:
                _short(n + 1, eof)
            continue
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
        elif marker == 0x00:
            pos += 2
        else:
            return pos + 2, marker


def _probe_jpeg(data: bytes, eof: bool) -> ImageInfo:
    """JPEG: walk marker segments to the first SOFn, reading the first Exif APP1 on the way."""
    n = len(data)
    pos = 2
    orientation = 0  # 0 = no Exif segment seen yet
    while True:
        marker = data[pos + 1] if pos + 2 <= n and data[pos] == 0xFF else 0xFF
        if marker == 0xFF or marker == 0x00:  # fill bytes, junk or short: the slow path
            pos, marker = _jpeg_marker(data, pos, eof)
        else:
            pos += 2
        if marker in _JPEG_STANDALONE:
            continue
        if marker == 0xDA or marker == 0xD9:
            raise CorruptImage("jpeg: scan data or end of image before any SOF marker")
        if pos + 2 > n:
            _short(pos + 2, eof)
        length = _U16_BE.unpack_from(data, pos)[0]
        if length < 2:
            raise CorruptImage(f"jpeg: invalid segment length {length}")
        if marker in _JPEG_SOF:
            if pos + 7 > n:
                _short(pos + 7, eof)
            height, width = _HH_BE.unpack_from(data, pos + 3)
            return _result(width, height, "jpeg", orientation or 1)
        if marker == 0xE1 and not orientation and length >= 8:
            if pos + 8 > n:
                _short(pos + 8, eof)
            if data[pos + 2 : pos + 8] == _EXIF_PREFIX:
                orientation = _exif_orientation(data, pos + 8, pos + length, eof)
        pos += length


# ---- PNG -----------------------------------------------------------------------------------


def _probe_png(data: bytes, eof: bool) -> ImageInfo:
    """PNG: size from IHDR, orientation from an eXIf chunk before the first IDAT."""
    if len(data) < 24:
        _short(24, eof)
    ihdr_len, ctype = _PNG_CHUNK.unpack_from(data, 8)
    if ctype != b"IHDR":
        raise CorruptImage("png: first chunk is not IHDR")
    width, height = _II_BE.unpack_from(data, 16)
    return _result(width, height, "png", _png_orientation(data, 20 + ihdr_len, eof))


def _png_orientation(data: bytes, pos: int, eof: bool) -> int:
    """Walk chunk headers from ``pos`` (skipping data by length) until eXIf, IDAT or IEND."""
    n = len(data)
    while True:
        if pos + 8 > n:
            _short(pos + 8, eof)
        length, ctype = _PNG_CHUNK.unpack_from(data, pos)
        if ctype == b"eXIf":
            return _exif_orientation(data, pos + 8, pos + 8 + length, eof)
        if ctype == b"IDAT" or ctype == b"IEND":
            return 1
        pos += length + 12


# ---- WebP ----------------------------------------------------------------------------------


def _probe_webp(data: bytes, eof: bool) -> ImageInfo:
    """WebP: size from the first chunk (VP8, VP8L or VP8X)."""
    n = len(data)
    if n < 12 or data[8:12] != b"WEBP":
        if n >= 12 or eof:
            raise NotAnImage("RIFF file that is not WebP")
        _short(12, eof)
    if n < 21:
        _short(21, eof)
    fourcc = data[12:16]
    if fourcc == b"VP8L":
        if data[20] != 0x2F:
            raise CorruptImage("webp: missing VP8L signature")
        if n < 25:
            _short(25, eof)
        bits = _U32_LE.unpack_from(data, 21)[0]
        return _result((bits & 0x3FFF) + 1, (bits >> 14 & 0x3FFF) + 1, "webp", 1)
    if n < 30:
        _short(30, eof)
    if fourcc == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise CorruptImage("webp: missing VP8 start code")
        width, height = _HH_LE.unpack_from(data, 26)
        return _result(width & 0x3FFF, height & 0x3FFF, "webp", 1)
    if fourcc == b"VP8X":
        return _probe_webp_vp8x(data, eof)
    raise CorruptImage(f"webp: unknown first chunk {fourcc!r}")


def _probe_webp_vp8x(data: bytes, eof: bool) -> ImageInfo:
    """Extended WebP: canvas size from VP8X, orientation from the EXIF chunk if flagged."""
    w_lo, w_hi, h_lo, h_hi = _WEBP_CANVAS.unpack_from(data, 24)
    orientation = 1
    if data[20] & 0x08:  # EXIF flag
        chunk_size = _U32_LE.unpack_from(data, 16)[0]
        riff_end = 8 + _U32_LE.unpack_from(data, 4)[0]
        orientation = _webp_orientation(data, 20 + chunk_size + (chunk_size & 1), riff_end, eof)
    return _result((w_lo | w_hi << 16) + 1, (h_lo | h_hi << 16) + 1, "webp", orientation)


def _webp_orientation(data: bytes, pos: int, riff_end: int, eof: bool) -> int:
    """Walk RIFF chunk headers from ``pos`` to the EXIF chunk (it usually follows the image)."""
    n = len(data)
    while pos + 8 <= riff_end:
        if pos + 8 > n:
            _short(pos + 8, eof)
        fourcc, size = _RIFF_CHUNK.unpack_from(data, pos)
        if fourcc == b"EXIF":
            return _exif_orientation(data, pos + 8, pos + 8 + size, eof)
        pos += 8 + size + (size & 1)
    return 1


# ---- GIF, BMP ------------------------------------------------------------------------------


def _probe_gif(data: bytes, eof: bool) -> ImageInfo:
    """GIF: logical screen size."""
    if len(data) < 10:
        _short(10, eof)
    width, height = _HH_LE.unpack_from(data, 6)
    return _result(width, height, "gif", 1)


def _probe_bmp(data: bytes, eof: bool) -> ImageInfo:
    """BMP: size from the DIB header (a negative height means top-down rows)."""
    if len(data) < 18:
        _short(18, eof)
    dib_size = _U32_LE.unpack_from(data, 14)[0]
    if dib_size == 12:  # OS/2 BITMAPCOREHEADER: unsigned 16-bit fields
        if len(data) < 22:
            _short(22, eof)
        width, height = _HH_LE.unpack_from(data, 18)
        return _result(width, height, "bmp", 1)
    if dib_size not in _BMP_DIB_SIZES:
        raise NotAnImage(f"'BM' file with unknown DIB header size {dib_size}")
    if len(data) < 26:
        _short(26, eof)
    _, width, height = _BMP_V3.unpack_from(data, 14)
    return _result(width, abs(height), "bmp", 1)


# ---- entry points --------------------------------------------------------------------------

_Parser = Callable[[bytes, bool], ImageInfo]
_SIGNATURES: tuple[tuple[bytes, _Parser], ...] = (
    (b"\xff\xd8\xff", _probe_jpeg),
    (b"\x89PNG\r\n\x1a\n", _probe_png),
    (b"RIFF", _probe_webp),
    (b"GIF87a", _probe_gif),
    (b"GIF89a", _probe_gif),
    (b"BM", _probe_bmp),
    (b"II*\0", _probe_tiff),
    (b"MM\0*", _probe_tiff),
)


def probe_bytes(data: bytes, *, eof: bool = False) -> ImageInfo:
    """Size, format and orientation of the image whose first bytes are ``data``.

    ``eof=True`` says ``data`` is the whole file, so a header cut short is :class:`CorruptImage`;
    otherwise it raises :class:`NeedMoreData` asking for a longer prefix. Raises
    :class:`NotAnImage` for bytes that are not a supported image (including fewer bytes than a
    format signature when ``eof`` is true).
    """
    for signature, parser in _SIGNATURES:
        if data.startswith(signature):
            return parser(data, eof)
    if not eof:
        for signature, _ in _SIGNATURES:
            if len(data) < len(signature) and signature.startswith(data):
                _short(len(signature), eof)
    raise NotAnImage("not a JPEG, PNG, WebP, GIF, BMP or TIFF file")


def _read_upto(fd: int, data: bytes, size: int) -> bytes:
    """Extend ``data`` (the file's first bytes) by reading from ``fd`` to ``size`` bytes or EOF."""
    parts = [data]
    have = len(data)
    while have < size:
        chunk = os.read(fd, min(size - have, _MAX_READ))
        if not chunk:
            break
        parts.append(chunk)
        have += len(chunk)
    return b"".join(parts) if len(parts) > 1 else data


def probe_file(path: str | os.PathLike[str], *, initial: int = HEADER_BYTES) -> ImageInfo:
    """Probe a local file: read ``initial`` bytes, growing the read while the header runs on.

    Raises :class:`NotAnImage`, :class:`CorruptImage` or :class:`OSError`. The default
    ``initial`` suits remote reads, where a round trip costs far more than bytes; on local disk
    copying 64 KiB dominates the cost, and ``initial=4096`` is about 1.5x faster.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        want = max(initial, 1)
        data = _read_upto(fd, b"", want)
        while True:
            try:
                return probe_bytes(data, eof=len(data) < want)
            except NeedMoreData as more:
                want = max(more.needed, 2 * len(data))
                data = _read_upto(fd, data, want)
    finally:
        os.close(fd)
