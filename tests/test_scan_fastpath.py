"""The cold scan's per-chunk fast paths give exactly what the per-file code gives: the worker's
probe loop (hostile files included), packed path strings and the sorted-listing check."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from databackend.metadata.indexfile import PackedStrings
from databackend.metadata.probing import probe_local_many, probe_local_stat
from databackend.metadata.scanner import path_order


def _files(tmp_path: Path) -> list[str]:
    """Good, large-header and rotated images, then a truncated, an empty and a non-image
    file, a folder and a missing file, in one chunk."""
    from PIL import Image

    Image.new("RGB", (64, 32)).save(tmp_path / "ok.png")
    Image.new("RGB", (321, 123)).save(tmp_path / "big.jpg", comment=b"c" * 40_000)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (50, 20)).save(tmp_path / "turned.jpg", exif=exif)
    data = (tmp_path / "big.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[:20_000])  # header cut before the frame
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_bytes(b"hello, not an image")
    (tmp_path / "folder.png").mkdir()
    names = ["ok.png", "big.jpg", "turned.jpg", "cut.jpg", "empty.png", "text.jpg",
             "folder.png", "missing.png"]
    return [str(tmp_path / n) for n in names]


def test_probe_loop_matches_the_per_file_probe(tmp_path: Path) -> None:
    """Sizes, skip reasons, byte sizes and mtimes equal :func:`probe_local_stat` per file."""
    paths = _files(tmp_path)
    found, sizes, mtimes = probe_local_many(paths)
    one = [probe_local_stat(p) for p in paths]
    assert found == [r[:3] for r in one]
    assert list(sizes) == [r[3] for r in one] and list(mtimes) == [r[4] for r in one]
    by_name = dict(zip((os.path.basename(p) for p in paths), found, strict=True))
    assert by_name["big.jpg"] == (None, 321, 123)  # grown past the first read
    assert by_name["turned.jpg"] == (None, 20, 50)  # EXIF orientation 6
    assert by_name["cut.jpg"][0] == "corrupt" and by_name["text.jpg"][0] == "not_an_image"
    assert by_name["missing.png"] == ("unreadable", -1, -1) and sizes[-1] == -1


@pytest.mark.parametrize("items", [[], [""], ["a", "", "bc"], ["é/x", None, "z\udcff"],
                                   ["a\0b", "c"], ["", ""]])
def test_packed_strings_from_one_encode(items: list[str | None]) -> None:
    """Packing by one join and encode keeps every item (NUL inside an item falls back)."""
    packed = PackedStrings.from_strings(items)
    assert list(packed) == [s or "" for s in items]
    assert packed.offsets[0] == 0 and len(packed.offsets) == len(items) + 1


def test_path_order_is_stable() -> None:
    """Sorted input (ties included) keeps its order; other input is sorted stably."""
    assert path_order(["a", "b", "b", "c"]).tolist() == [0, 1, 2, 3]
    assert path_order(["b", "a", "b", "a"]).tolist() == [1, 3, 0, 2]
    assert path_order([]).dtype == np.int64
