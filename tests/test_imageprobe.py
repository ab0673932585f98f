"""Tests for databackend.imageprobe: header-only image size probing with EXIF orientation."""

from __future__ import annotations

import io
import pickle
import random
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import imagesize
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from databackend.imageprobe import (
    HEADER_BYTES,
    CorruptImage,
    ImageInfo,
    NeedMoreData,
    NotAnImage,
    probe_bytes,
    probe_file,
)

ORIENTATIONS = range(1, 9)
SIZE = (37, 23)  # not square, so a swap shows


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def _tiff_exif(orientation: int, byteorder: str) -> bytes:
    """A minimal EXIF payload (TIFF header + IFD0 with one Orientation entry), hand-built."""
    head = b"Exif\0\0II*\0" if byteorder == "<" else b"Exif\0\0MM\0*"
    entry = struct.pack(byteorder + "HHIH2x", 0x0112, 3, 1, orientation)
    return head + struct.pack(byteorder + "IH", 8, 1) + entry + b"\0\0\0\0"


def _encode(fmt: str, size: tuple[int, int] = SIZE, mode: str = "RGB", **kw: Any) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, "#c81e3c").save(buf, fmt, **kw)
    return buf.getvalue()


def _expected(data: bytes) -> tuple[int, int]:
    return ImageOps.exif_transpose(Image.open(io.BytesIO(data))).size


# Pillow-written samples: (id, encoder) -> bytes. Used by several tests.
SAMPLES: dict[str, Callable[[], bytes]] = {
    "jpeg": lambda: _encode("JPEG"),
    "jpeg-progressive": lambda: _encode("JPEG", progressive=True),
    "jpeg-gray": lambda: _encode("JPEG", mode="L"),
    "jpeg-exif6": lambda: _encode("JPEG", exif=_exif(6)),
    "png": lambda: _encode("PNG"),
    "png-rgba": lambda: _encode("PNG", mode="RGBA"),
    "png-exif5": lambda: _encode("PNG", exif=_exif(5)),
    "webp-lossy": lambda: _encode("WEBP"),
    "webp-lossless": lambda: _encode("WEBP", lossless=True),
    "webp-alpha": lambda: _encode("WEBP", mode="RGBA"),
    "webp-exif8": lambda: _encode("WEBP", exif=_exif(8)),
    "gif": lambda: _encode("GIF"),
    "bmp": lambda: _encode("BMP"),
    "tiff": lambda: _encode("TIFF"),
    "tiff-exif7": lambda: _encode("TIFF", exif=_exif(7)),
}
SAMPLE_BYTES = {name: make() for name, make in SAMPLES.items()}


# ---- every format, with and without orientation ------------------------------------------


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_samples_match_pillow(name: str, tmp_path: Path) -> None:
    data = SAMPLE_BYTES[name]
    path = tmp_path / f"img.{name.split('-')[0]}"
    path.write_bytes(data)
    expected = _expected(data)
    for info in (probe_bytes(data), probe_bytes(data, eof=True), probe_file(path)):
        assert (info.width, info.height) == expected
        assert info.format == name.split("-")[0]
        assert info.orientation == Image.open(path).getexif().get(0x0112, 1)


@pytest.mark.parametrize("orientation", ORIENTATIONS)
@pytest.mark.parametrize(
    ("fmt", "kw"),
    [("JPEG", {}), ("PNG", {}), ("WEBP", {}), ("WEBP", {"lossless": True}), ("TIFF", {})],
    ids=["jpeg", "png", "webp-lossy", "webp-lossless", "tiff"],
)
def test_exif_orientation(fmt: str, kw: dict[str, Any], orientation: int, tmp_path: Path) -> None:
    path = tmp_path / f"o{orientation}.{fmt.lower()}"
    Image.new("RGB", SIZE, "red").save(path, fmt, exif=_exif(orientation), **kw)
    info = probe_file(path)
    assert (info.width, info.height) == ImageOps.exif_transpose(Image.open(path)).size
    assert info.orientation == orientation
    assert info == probe_bytes(path.read_bytes(), eof=True)


@pytest.mark.parametrize("byteorder", ["<", ">"])
@pytest.mark.parametrize("orientation", ORIENTATIONS)
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_exif_both_byte_orders(fmt: str, orientation: int, byteorder: str) -> None:
    data = _encode(fmt, exif=_tiff_exif(orientation, byteorder))
    info = probe_bytes(data)
    assert (info.width, info.height) == _expected(data)
    assert info.orientation == orientation


def _png_insert_chunk(png: bytes, ctype: bytes, payload: bytes) -> bytes:
    """Insert a chunk (with a valid CRC) right before the first IDAT."""
    chunk = struct.pack(">I", len(payload)) + ctype + payload
    chunk += struct.pack(">I", zlib.crc32(ctype + payload))
    at = png.index(b"IDAT") - 4
    return png[:at] + chunk + png[at:]


@pytest.mark.parametrize("prefix", [b"", b"Exif\0\0"])
def test_png_exif_chunk_with_and_without_prefix(prefix: bytes) -> None:
    payload = prefix + _tiff_exif(6, ">")[6:]
    data = _png_insert_chunk(_encode("PNG"), b"eXIf", payload)
    assert Image.open(io.BytesIO(data)).getexif()[0x0112] == 6
    assert probe_bytes(data) == ImageInfo(23, 37, "png", 6)


@pytest.mark.parametrize("bad", [0, 9, 300])
def test_out_of_range_orientation_reads_as_1(bad: int) -> None:
    data = _encode("JPEG", exif=_tiff_exif(bad, "<"))
    assert probe_bytes(data) == ImageInfo(*SIZE, "jpeg", 1)


def test_exif_without_orientation_tag() -> None:
    exif = Image.Exif()
    exif[0x010F] = "camera maker"
    assert probe_bytes(_encode("JPEG", exif=exif)) == ImageInfo(*SIZE, "jpeg", 1)


def test_malformed_exif_is_ignored() -> None:
    data = _encode("JPEG", exif=b"Exif\0\0II*\0\xff\xff\xff\x7f")  # IFD offset past the segment
    assert probe_bytes(data) == ImageInfo(*SIZE, "jpeg", 1)


def test_bmp_top_down() -> None:
    data = bytearray(_encode("BMP"))
    height = struct.unpack_from("<i", data, 22)[0]
    struct.pack_into("<i", data, 22, -height)
    assert probe_bytes(bytes(data)) == ImageInfo(*SIZE, "bmp", 1)


def test_bmp_os2_core_header() -> None:
    header = b"BM" + struct.pack("<IHHI", 0, 0, 0, 26) + struct.pack("<IHHHH", 12, 640, 480, 1, 24)
    assert probe_bytes(header) == ImageInfo(640, 480, "bmp", 1)


def test_tiff_big_endian() -> None:
    entries = [(256, 3, 1, 50 << 16), (257, 4, 1, 70000), (274, 3, 1, 6 << 16)]
    ifd = struct.pack(">H", len(entries)) + b"".join(struct.pack(">HHII", *e) for e in entries)
    assert probe_bytes(b"MM\0*" + struct.pack(">I", 8) + ifd + b"\0" * 4) == ImageInfo(
        70000, 50, "tiff", 6
    )


# ---- large headers and NeedMoreData ---------------------------------------------------------


def _with_app_segments(jpeg: bytes, total: int) -> bytes:
    """Insert APP15 segments of ``total`` payload bytes right after SOI (before EXIF and SOF)."""
    segments = b""
    while total > 0:
        part = min(total, 50_000)
        segments += b"\xff\xef" + struct.pack(">H", part + 2) + random.randbytes(part)
        total -= part
    return jpeg[:2] + segments + jpeg[2:]


def test_big_app_segment_before_sof(tmp_path: Path) -> None:
    data = _with_app_segments(_encode("JPEG", exif=_exif(6)), 100_000)
    with pytest.raises(NeedMoreData) as exc:
        probe_bytes(data[:HEADER_BYTES])
    needed = exc.value.needed
    assert HEADER_BYTES < needed <= len(data) + 8192
    assert probe_bytes(data[:needed]) == ImageInfo(23, 37, "jpeg", 6)
    path = tmp_path / "big.jpg"
    path.write_bytes(data)
    assert probe_file(path) == ImageInfo(23, 37, "jpeg", 6)
    assert probe_file(path, initial=16) == ImageInfo(23, 37, "jpeg", 6)


def test_big_icc_profile_and_exif(tmp_path: Path) -> None:
    data = _encode("JPEG", exif=_exif(8), icc_profile=random.randbytes(150_000))
    path = tmp_path / "icc.jpg"
    path.write_bytes(data)
    assert (probe_file(path).width, probe_file(path).height) == _expected(data)


def test_png_with_big_text_chunk_before_exif(tmp_path: Path) -> None:
    from PIL import PngImagePlugin

    meta = PngImagePlugin.PngInfo()
    meta.add_text("comment", "x" * 200_000)
    data = _encode("PNG", exif=_exif(6), pnginfo=meta)
    path = tmp_path / "text.png"
    path.write_bytes(data)
    assert probe_file(path) == probe_bytes(data, eof=True)
    assert (probe_file(path).width, probe_file(path).height) == _expected(data)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_retry_loop_converges(name: str) -> None:
    data = SAMPLE_BYTES[name]
    length, rounds = 1, 0
    while True:
        try:
            info = probe_bytes(data[:length], eof=length >= len(data))
            break
        except NeedMoreData as more:
            assert more.needed > length
            length, rounds = more.needed, rounds + 1
    assert info == probe_bytes(data, eof=True)
    assert rounds <= 3


def test_need_more_data_pickles() -> None:
    err = pickle.loads(pickle.dumps(NeedMoreData(123)))
    assert err.needed == 123
    assert "123" in str(err)


# ---- bad inputs ------------------------------------------------------------------------------


def test_zero_bytes(tmp_path: Path) -> None:
    with pytest.raises(NotAnImage):
        probe_bytes(b"", eof=True)
    with pytest.raises(NeedMoreData):
        probe_bytes(b"")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(NotAnImage):
        probe_file(tmp_path / "empty.jpg")


def test_truncated_jpeg(tmp_path: Path) -> None:
    head = SAMPLE_BYTES["jpeg"][:20]
    with pytest.raises(CorruptImage):
        probe_bytes(head, eof=True)
    with pytest.raises(NeedMoreData) as exc:
        probe_bytes(head)
    assert exc.value.needed > 20
    (tmp_path / "cut.jpg").write_bytes(head)
    with pytest.raises(CorruptImage):
        probe_file(tmp_path / "cut.jpg")


@pytest.mark.parametrize(
    ("name", "cut"), [("png", 20), ("webp-exif8", 16), ("gif", 8), ("bmp", 16), ("tiff", 9)]
)
def test_truncated_other_formats(name: str, cut: int) -> None:
    with pytest.raises(CorruptImage):
        probe_bytes(SAMPLE_BYTES[name][:cut], eof=True)


@pytest.mark.parametrize(
    "content",
    [b"hello, I am a text file\n" * 10, b"BMW is a car maker\n" * 4, b"RIFF\x10\0\0\0WAVEfmt "],
)
def test_not_an_image(content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "fake.png"
    path.write_bytes(content)
    with pytest.raises(NotAnImage):
        probe_file(path)
    with pytest.raises(NotAnImage):
        probe_bytes(content)


def test_jpeg_scan_before_frame_is_corrupt() -> None:
    with pytest.raises(CorruptImage):
        probe_bytes(b"\xff\xd8\xff\xda\x00\x08" + b"\0" * 64)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        probe_file(tmp_path / "nope.jpg")


# ---- property tests ----------------------------------------------------------------------

PROBE_ERRORS = (NotAnImage, CorruptImage, NeedMoreData)
SIGNATURES = [b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"RIFF\0\0\0\0WEBP", b"GIF89a", b"BM"]
SIGNATURES += [b"II*\0", b"MM\0*", b"\xff\xd8\xff\xe1\x00\x40Exif\0\0II*\0"]


def _check_robust(data: bytes, eof: bool) -> None:
    try:
        info = probe_bytes(data, eof=eof)
    except NeedMoreData as more:
        assert not eof
        assert more.needed > len(data)
    except (NotAnImage, CorruptImage):
        pass
    else:
        assert info.width > 0 and info.height > 0 and 1 <= info.orientation <= 8


@settings(max_examples=400)
@given(data=st.binary(max_size=300), eof=st.booleans())
def test_random_bytes_only_raise_probe_errors(data: bytes, eof: bool) -> None:
    _check_robust(data, eof)


@settings(max_examples=600)
@given(sig=st.sampled_from(SIGNATURES), tail=st.binary(max_size=300), eof=st.booleans())
def test_random_bytes_after_signature(sig: bytes, tail: bytes, eof: bool) -> None:
    _check_robust(sig + tail, eof)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(SAMPLES)),
    edits=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=4),
    cut=st.integers(0, 2000),
    eof=st.booleans(),
)
def test_mutated_headers(name: str, edits: list[tuple[int, int]], cut: int, eof: bool) -> None:
    data = bytearray(SAMPLE_BYTES[name][: cut or None])
    for pos, value in edits:
        if pos < len(data):
            data[pos] = value
    _check_robust(bytes(data), eof)


@settings(max_examples=300)
@given(name=st.sampled_from(sorted(SAMPLES)), cut=st.integers(0, 400))
def test_prefix_gives_full_answer_or_asks_for_more(name: str, cut: int) -> None:
    data = SAMPLE_BYTES[name]
    full = probe_bytes(data, eof=True)
    prefix = data[:cut]
    try:
        assert probe_bytes(prefix) == full
    except NeedMoreData as more:
        assert more.needed > len(prefix)
    try:
        assert probe_bytes(prefix, eof=True) == full
    except CorruptImage:
        pass
    except NotAnImage:
        assert cut < 12  # shorter than the format signature


# ---- agreement with imagesize -------------------------------------------------------------


def test_agreement_with_imagesize(tmp_path: Path) -> None:
    rng = random.Random(1234)
    formats = [("JPEG", "jpg"), ("PNG", "png"), ("GIF", "gif"), ("BMP", "bmp")]
    formats += [("WEBP", "webp"), ("TIFF", "tif")]
    checked = 0
    for i in range(300):
        fmt, ext = formats[i % len(formats)]
        size = (rng.choice([1, 2, 7]) if i % 17 == 0 else rng.randint(1, 900), rng.randint(1, 900))
        kw = {"lossless": True} if fmt == "WEBP" and i % 2 else {}
        path = tmp_path / f"{i}.{ext}"
        Image.new("RGB", size, (i % 256, 0, 0)).save(path, fmt, **kw)
        info = probe_file(path)
        assert (info.width, info.height) == imagesize.get(str(path)) == size, path
        checked += 1
    assert checked == 300
