"""Scanning real parquet and save_to_disk datasets, normal and streaming, and loading samples."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hf_support import SIZES, basic_columns, encode, make_dataset

import databackend_huggingface.scan as scan_module
from databackend.metadata.index import DatasetIndex
from databackend_huggingface import HuggingfaceBackend
from databackend_huggingface.metadata import HuggingfaceMetadataBackend

Opener = Callable[..., tuple[Any, Any]]


def _summary(index: DatasetIndex) -> list[tuple[str, tuple[int, int], tuple[int, int], tuple[str, ...]]]:
    return [(index.paths[i], tuple(index.original[i]), tuple(index.target[i]),
             index.captions_of(i)) for i in range(len(index))]


def test_parquet_scan_reads_headers_and_loads_images(write_parquet: Callable[..., Path],
                                                     open_hf: Opener) -> None:
    folder = write_parquet(basic_columns(12))
    storage, meta = open_hf(dataset_name=str(folder))
    assert isinstance(storage, HuggingfaceBackend)
    assert isinstance(meta, HuggingfaceMetadataBackend)
    report = meta.scan(progress=False)
    index = meta.index
    assert report.counts["kept"] == 12 and report.counts["listed"] == 12
    assert report.counts["probed"] == 12
    assert index.paths[:3] == ["0.jpg", "1.jpg", "2.jpg"]
    for i in range(12):
        assert tuple(index.original[i]) == SIZES[i % len(SIZES)]
        assert index.captions_of(i) == (f"a photo number {i}",)
    image = meta.load_image(3)
    assert image.mode == "RGB" and image.size == SIZES[3]
    assert meta.sample_key(0).startswith("0.jpg|")
    assert (meta.index_storage.root.endswith("metadata/hf")
            and Path(meta.index_storage.root, "index.dbi").is_file())


def test_save_to_disk_dataset(tmp_path: Path, open_hf: Opener) -> None:
    import datasets

    ds = make_dataset(basic_columns(6))
    datasets.DatasetDict({"train": ds, "test": ds.select(range(2))}).save_to_disk(
        str(tmp_path / "saved"))
    _, meta = open_hf(dataset_name=str(tmp_path / "saved"), split="test")
    report = meta.scan(progress=False)
    assert report.counts["kept"] == 2
    assert meta.load_image(1).size == SIZES[1]
    single = tmp_path / "single"
    ds.save_to_disk(str(single))
    _, meta2 = open_hf(id="single", dataset_name=str(single))
    assert meta2.scan(progress=False).counts["kept"] == 6


def test_streaming_matches_normal_mode_and_persists(write_parquet: Callable[..., Path],
                                                    open_hf: Opener, tmp_path: Path) -> None:
    folder = write_parquet(basic_columns(10), shards=3)
    _, normal = open_hf(id="normal", dataset_name=str(folder))
    normal.scan(progress=False)
    storage, streamed = open_hf(id="streamed", dataset_name=str(folder),
                                huggingface={"streaming": True})
    report = streamed.scan(progress=False)
    assert report.counts["kept"] == 10
    assert _summary(streamed.index) == _summary(normal.index)
    assert storage.row_store is not None and len(storage.row_store) == 10
    for i in (0, 7):
        assert streamed.load_image(i).tobytes() == normal.load_image(i).tobytes()
    assert storage.read("4.jpg") == storage.row_store.read(4)
    # a new process: the persisted index and row store are used, no pass over the stream
    storage2, again = open_hf(id="streamed", dataset_name=str(folder),
                              huggingface={"streaming": True})
    second = again.scan(progress=False)
    assert second.counts["unchanged"] == 10 and second.counts["new"] == 0
    assert again.load_image(5).size == SIZES[5]
    assert [f.path for f in storage2.list()] == [f"{k}.jpg" for k in range(10)]


def test_streaming_never_materialises_the_dataset(write_parquet: Callable[..., Path],
                                                  open_hf: Opener,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    folder = write_parquet(basic_columns(8))
    monkeypatch.setattr(datasets.IterableDataset, "__len__", lambda self: pytest.fail("len()"),
                        raising=False)
    calls: list[int] = []
    real = datasets.IterableDataset.iter

    def spy(self: Any, batch_size: int, **kw: Any) -> Any:
        calls.append(batch_size)
        return real(self, batch_size, **kw)

    monkeypatch.setattr(datasets.IterableDataset, "iter", spy)
    _, meta = open_hf(dataset_name=str(folder), huggingface={"streaming": True})
    assert meta.scan(progress=False).counts["kept"] == 8
    assert calls == [scan_module.ScanPass.stream_batch_rows]


def test_size_columns_mean_no_image_reads(write_parquet: Callable[..., Path], open_hf: Opener,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    columns = basic_columns(8)
    columns["image"] = [b"\xff\xd8 definitely not a decodable image"] * 8
    folder = write_parquet(columns, image_feature=False)
    probes: list[int] = []
    monkeypatch.setattr(scan_module, "probe_bytes", lambda *a, **k: probes.append(1))
    _, meta = open_hf(dataset_name=str(folder), width_column="width", height_column="height")
    report = meta.scan(progress=False)
    assert report.counts["kept"] == 8 and report.counts["probed"] == 0 and probes == []
    assert [tuple(o) for o in meta.index.original] == [SIZES[k % 6] for k in range(8)]
    # the same bytes without size columns: every row is read and reported as broken
    _, meta2 = open_hf(id="probe", dataset_name=str(folder))
    monkeypatch.undo()
    report2 = meta2.scan(progress=False)
    assert report2.counts["kept"] == 0 and report2.counts["probed"] == 8
    assert sum(report2.skipped.values()) == 8
    assert set(report2.skipped) <= {"corrupt", "not_an_image"}


def test_null_size_cells_fall_back_to_headers(write_parquet: Callable[..., Path],
                                              open_hf: Opener) -> None:
    columns = basic_columns(4)
    columns["width"] = [96, None, 80, 0]
    folder = write_parquet(columns)
    _, meta = open_hf(dataset_name=str(folder), huggingface={"width_column": "width",
                                                             "height_column": "height"})
    report = meta.scan(progress=False)
    assert report.counts["probed"] == 2 and report.counts["kept"] == 4
    assert [tuple(o) for o in meta.index.original] == SIZES[:4]


def test_broken_and_missing_images_are_skipped_by_reason(write_parquet: Callable[..., Path],
                                                         open_hf: Opener) -> None:
    columns = basic_columns(5)
    columns["image"][1] = b"plain text, no image"
    columns["image"][2] = encode(64, 64)[:30]
    columns["image"][3] = None
    folder = write_parquet(columns)
    _, meta = open_hf(dataset_name=str(folder))
    report = meta.scan(progress=False)
    assert report.counts["kept"] == 2
    assert report.skipped == {"not_an_image": 1, "corrupt": 1, "unreadable": 1}
    assert meta.index.paths == ["0.jpg", "4.jpg"]


def test_exif_orientation_is_applied(write_parquet: Callable[..., Path], open_hf: Opener) -> None:
    columns = {"image": [encode(96, 64, fmt="JPEG", orientation=6)], "caption": ["rotated"]}
    _, meta = open_hf(dataset_name=str(write_parquet(columns)))
    meta.scan(progress=False)
    assert tuple(meta.index.original[0]) == (64, 96)
    assert meta.load_image(0).size == (64, 96)


def test_raw_bytes_and_path_columns(write_parquet: Callable[..., Path], open_hf: Opener,
                                    tmp_path: Path) -> None:
    raw = write_parquet(basic_columns(3), "raw", image_feature=False)
    _, meta = open_hf(id="raw", dataset_name=str(raw))
    assert meta.scan(progress=False).counts["kept"] == 3
    files = tmp_path / "files"
    files.mkdir()
    for k in range(3):
        (files / f"{k}.png").write_bytes(encode(*SIZES[k]))
    import datasets

    datasets.Dataset.from_dict({"file": [f"{k}.png" for k in range(3)],
                                "caption": ["x", "y", "z"]}).to_json(str(files / "rows.jsonl"))
    _, meta2 = open_hf(id="paths", dataset_name=str(files / "rows.jsonl"), image_column="file")
    report = meta2.scan(progress=False)
    assert report.counts["kept"] == 3
    assert meta2.load_image(2).size == SIZES[2]


def test_rescan_reuses_the_index_and_a_changed_dataset_invalidates_it(
        write_parquet: Callable[..., Path], open_hf: Opener) -> None:
    folder = write_parquet(basic_columns(6))
    _, meta = open_hf(dataset_name=str(folder))
    meta.scan(progress=False)
    key = meta.sample_key(0)
    _, again = open_hf(dataset_name=str(folder))
    report = again.scan(progress=False)
    assert report.counts["unchanged"] == 6 and report.counts["probed"] == 0
    assert again.sample_key(0) == key
    write_parquet(basic_columns(4))  # rewrite the data: new files, new fingerprint
    _, changed = open_hf(dataset_name=str(folder))
    report = changed.scan(progress=False)
    assert report.counts["probed"] == 4 and report.counts["kept"] == 4
    assert changed.sample_key(0) != key
    stored = np.asarray(changed.index.original)
    assert stored.shape == (4, 2)


def test_max_num_samples(write_parquet: Callable[..., Path], open_hf: Opener) -> None:
    folder = write_parquet(basic_columns(12))
    _, meta = open_hf(dataset_name=str(folder), max_num_samples=5)
    report = meta.scan(progress=False)
    assert report.counts["kept"] == 5 and report.counts["not_selected"] == 7
    _, same = open_hf(id="other-cache", cache_file_suffix="x", dataset_name=str(folder),
                      max_num_samples=5)
    same.scan(progress=False)
    assert same.index.paths != [] and len(same.index) == 5
    _, streamed = open_hf(id="s", dataset_name=str(folder), max_num_samples=5,
                          huggingface={"streaming": True})
    streamed.scan(progress=False)
    assert streamed.index.paths == [f"{k}.jpg" for k in range(5)]


def test_headers_beyond_the_first_read_are_followed(write_parquet: Callable[..., Path],
                                                    open_hf: Opener) -> None:
    import io

    from PIL import Image as PILImage

    buf = io.BytesIO()
    PILImage.new("RGB", (72, 48), (1, 2, 3)).save(buf, "JPEG", icc_profile=b"\0" * 30000)
    assert len(buf.getvalue()) > 30000
    columns = {"image": [buf.getvalue()], "caption": ["big header"]}
    _, meta = open_hf(dataset_name=str(write_parquet(columns)))
    report = meta.scan(progress=False)
    assert report.counts["kept"] == 1 and tuple(meta.index.original[0]) == (72, 48)
