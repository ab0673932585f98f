"""The persisted index: round trips, damage detection, buckets, compact captions."""

from __future__ import annotations

import pickle
import zlib
from pathlib import Path

import numpy as np
import pytest

from databackend.geometry import SampleGeometry
from databackend.metadata.index import CaptionTable, DatasetIndex, IndexFormatError, SkippedFiles
from databackend.storage.localdir import LocalDirectory


def sample_index(n: int = 5) -> DatasetIndex:
    rng = np.random.default_rng(1)
    original = rng.integers(64, 2048, size=(n, 2))
    target = np.array([[512, 512], [768, 512], [512, 512], [512, 768], [768, 512]])[:n]
    skipped = SkippedFiles(["bad.jpg", "tiny.png"], [10, 20], [1.5, 2.5], [[-1, -1], [8, 8]],
                           [4, 1], etags=["e1", None], caption_stamp=[[4, 9.5], [-1, -1]])
    return DatasetIndex([f"d/{i}.jpg" for i in range(n)], file_size=np.arange(n) * 100,
                        mtime=np.linspace(1.0, 2.0, n), original=original, target=target,
                        intermediary=target + 8, crop=np.ones((n, 2)),
                        downsample=[[-1, -1]] * (n - 1) + [[900, 600]],
                        aspect=target[:, 0] / target[:, 1],
                        captions=[("one",), ("two", "deux"), (), ("ünï\ncode",), ("x",)][:n],
                        params_fingerprint="fp", etags=["a", None, "c", None, "e"][:n],
                        caption_stamp=[[1, 2]] * n, skipped=skipped,
                        meta={"aspect_rounding": 2, "dataset_id": "d"})


def assert_same(a: DatasetIndex, b: DatasetIndex) -> None:
    assert a.paths == b.paths and a.params_fingerprint == b.params_fingerprint
    for name in ("file_size", "mtime", "original", "target", "intermediary", "crop",
                 "downsample", "aspect", "caption_stamp"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert list(a.captions) == list(b.captions) and a.etags == b.etags and a.meta == b.meta
    sa, sb = a.skipped, b.skipped
    assert sa.paths == sb.paths and sa.etags == sb.etags
    for name in ("file_size", "mtime", "original", "reason", "caption_stamp"):
        assert np.array_equal(getattr(sa, name), getattr(sb, name)), name


def test_round_trip() -> None:
    idx = sample_index()
    again = DatasetIndex.from_bytes(idx.to_bytes())
    assert_same(idx, again)
    assert again.skipped.reason_of(0) == "corrupt" and again.skipped.counts() == {
        "too_small": 1, "corrupt": 1}
    assert again.etag(1) is None and again.etag(2) == "c"


def test_empty_round_trip() -> None:
    empty = DatasetIndex.from_bytes(DatasetIndex.empty("fp").to_bytes())
    assert len(empty) == 0 and empty.buckets() == {} and len(empty.skipped) == 0


def test_geometry_row() -> None:
    idx = sample_index()
    geo = idx.geometry(4)
    assert isinstance(geo, SampleGeometry)
    assert geo.target_size == (768, 512) and geo.downsample_size == (900, 600)
    assert geo.aspect_bucket == 1.5 and idx.geometry(0).downsample_size is None
    assert geo.crop_coordinates == (1, 1) and geo.intermediary_size == (776, 520)


def test_buckets_are_sorted_groups() -> None:
    buckets = sample_index().buckets()
    assert list(buckets) == [(512, 512), (512, 768), (768, 512)]
    assert [list(v) for v in buckets.values()] == [[0, 2], [3], [1, 4]]
    with pytest.raises(ValueError):
        buckets[(512, 512)][0] = 7  # shared with the cache: read-only


def test_save_and_load(tmp_path: Path) -> None:
    store = LocalDirectory(root=str(tmp_path))
    idx = sample_index()
    idx.save(store, "x/index.dbi")
    loaded = DatasetIndex.load(store, "x/index.dbi")
    assert loaded is not None
    assert_same(idx, loaded)
    assert DatasetIndex.load(store, "absent.dbi") is None


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage", "empty"])
def test_damaged_files_are_rejected(tmp_path: Path, damage: str,
                                    caplog: pytest.LogCaptureFixture) -> None:
    data = bytearray(sample_index().to_bytes())
    if damage == "flip":
        data[-10] ^= 0xFF
    elif damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "garbage":
        data = bytearray(b"not an index at all")
    else:
        data = bytearray()
    with pytest.raises(IndexFormatError):
        DatasetIndex.from_bytes(bytes(data))
    store = LocalDirectory(root=str(tmp_path))
    store.write("index.dbi", bytes(data))
    assert DatasetIndex.load(store, "index.dbi") is None
    assert "damaged index" in caplog.text


def test_columns_cost_their_width() -> None:
    n = 20_000
    idx = DatasetIndex([f"folder/image_{i:06d}.jpg" for i in range(n)], file_size=np.zeros(n),
                       mtime=np.full(n, 3.0), original=np.full((n, 2), 512),
                       target=np.full((n, 2), 512), intermediary=np.full((n, 2), 512),
                       crop=np.zeros((n, 2)), downsample=np.full((n, 2), -1),
                       aspect=np.ones(n), captions=[("a cat",)] * n, params_fingerprint="fp")
    data = idx.to_bytes()
    # 60 bytes of columns, 23 + 4 of path, 5 + 16 of caption, 8 of bucket rows per sample
    assert len(data) < 125 * n
    assert not DatasetIndex.from_bytes(data).caption_stamp.strides[0]  # no caption files


def test_caption_table() -> None:
    rows = [("a",), (), ("b", "c"), ("ünï", "multi\nline")]
    table = CaptionTable.from_tuples(rows)
    assert len(table) == 4 and list(table) == rows
    assert table[-1] == rows[-1] and table[1:3] == rows[1:3]
    with pytest.raises(IndexError):
        _ = table[4]
    assert list(pickle.loads(pickle.dumps(table))) == rows


def test_columns_must_agree() -> None:
    with pytest.raises(ValueError):
        DatasetIndex(["a.jpg"], file_size=[1], mtime=[1.0], original=[[1, 1]],
                     target=[[1, 1]], intermediary=[[1, 1]], crop=[[0, 0]],
                     downsample=[[-1, -1]], aspect=[1.0], captions=[], params_fingerprint="")


def test_header_is_json_with_version() -> None:
    import json
    import struct

    data = sample_index().to_bytes()
    (length, crc) = struct.unpack_from("<QI", data, 8)
    header = json.loads(data[20:20 + length])
    assert header["format"] == "databackend-index" and header["version"] == 2
    assert header["count"] == 5 and header["skipped"] == 2
    assert crc == zlib.crc32(data[20:20 + length])
    assert {"paths.blob", "paths.offsets", "target", "buckets.rows"} <= {
        s["name"] for s in header["sections"]}


@pytest.mark.parametrize("rows", [
    [], [()], [("",)], [("", "")], [("x",)] * 5,
    [("a",), ("", "b\x00c"), (), ("ü",), ("\udcff odd name",)],  # NUL inside; surrogates
])
def test_caption_table_packs_any_captions(rows: list[tuple[str, ...]]) -> None:
    table = CaptionTable.from_tuples(iter(rows))
    assert list(table) == rows and len(table) == len(rows)
    assert list(CaptionTable.from_sections(**table.sections())) == rows


def test_caption_table_packs_in_slices_without_mixing_samples(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from databackend.metadata import captiontable

    rows = [(f"caption {i}",) if i % 3 else (f"a{i}", f"b{i}") for i in range(2500)]
    monkeypatch.setattr(captiontable, "_PACK_SLICE", 1000)  # three slices, the last partial
    table = CaptionTable.from_tuples(rows)
    assert list(table) == rows and table[1999] == rows[1999]
