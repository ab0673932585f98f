"""The storage side: virtual paths, raw bytes (no re-encode), captions, read-only behaviour."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hf_support import basic_columns

from databackend.testing import ReadOnlyStorageConformance
from databackend_huggingface import HuggingfaceBackend, HuggingfaceConfig, ReadOnlyError
from databackend_huggingface.paths import parse_path, virtual_path


def backend(folder: Path, tmp_path: Path, **keys: Any) -> HuggingfaceBackend:
    block = {"cache_dir": str(tmp_path / "hfc"), **keys.pop("huggingface", {})}
    return HuggingfaceBackend(HuggingfaceConfig(dataset_name=str(folder), huggingface=block,
                                                **keys), dataset_id="hf")


def test_paths_roundtrip() -> None:
    assert virtual_path(12, "jpg") == "12.jpg" and parse_path("12.jpg") == (12, None)
    assert virtual_path(3, "png", 1) == "3_1.png" and parse_path("3_1.png") == (3, 1)
    for bad in ("a/1.jpg", "x.jpg", "1_x.jpg", "-1.jpg", ".jpg"):
        assert parse_path(bad) is None


def test_list_read_and_ranges_return_the_stored_bytes(write_parquet: Callable[..., Path],
                                                      tmp_path: Path) -> None:
    columns = basic_columns(5)
    storage = backend(write_parquet(columns), tmp_path)
    listed = list(storage.list())
    assert [f.path for f in listed] == [f"{k}.jpg" for k in range(5)]
    assert [f.size for f in listed] == [len(b) for b in columns["image"]]
    assert list(storage.list(extensions=["png"])) == [] and list(storage.list("sub/")) == []
    assert storage.read("3.jpg") == columns["image"][3]  # exactly the stored encoding
    assert storage.read_range("3.jpg", 2, 10) == columns["image"][3][2:12]
    assert storage.stat("1.jpg").size == len(columns["image"][1])
    assert storage.exists("4.jpg") and not storage.exists("5.jpg")
    assert not storage.exists("readme.txt")
    with pytest.raises(FileNotFoundError):
        storage.read("9.jpg")
    assert storage.describe() == f"huggingface:{storage.settings.dataset_name}/train"


def test_captions_and_read_only(write_parquet: Callable[..., Path], tmp_path: Path) -> None:
    columns = basic_columns(3, tags=[["a", "b"], ["c"], []])
    storage = backend(write_parquet(columns), tmp_path)
    assert storage.caption("1.jpg") == "a photo number 1"
    tags = backend(write_parquet(columns, "tags"), tmp_path, caption_column="tags")
    assert tags.caption("0.jpg") == ["a", "b"] and tags.caption("2.jpg") is None
    with pytest.raises(ReadOnlyError, match="read-only"):
        storage.write("x.jpg", b"")
    with pytest.raises(ReadOnlyError):
        storage.delete("0.jpg")


def test_streaming_storage_needs_the_scan(write_parquet: Callable[..., Path],
                                          tmp_path: Path) -> None:
    storage = backend(write_parquet(basic_columns(2)), tmp_path, huggingface={"streaming": True})
    assert storage.num_rows() is None and storage.describe().endswith("streaming")
    with pytest.raises(FileNotFoundError, match="scan first"):
        storage.read("0.jpg")
    with pytest.raises(FileNotFoundError, match="metadata scan"):
        list(storage.list())
    assert not storage.exists("0.jpg") and storage.caption("0.jpg") is None


def test_invalid_config_refuses_to_build(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'hf'.*dataset_name"):
        HuggingfaceBackend(HuggingfaceConfig(), dataset_id="hf")


class TestHuggingfaceReadOnly(ReadOnlyStorageConformance):
    """The core's read-only conformance suite on a (non-streaming) Hugging Face dataset."""

    @pytest.fixture
    def columns(self) -> dict[str, list[Any]]:
        return basic_columns(3)

    @pytest.fixture
    def expected_files(self, columns: dict[str, list[Any]]) -> dict[str, bytes]:
        return {f"{k}.jpg": data for k, data in enumerate(columns["image"])}

    @pytest.fixture
    def backend(self, write_parquet: Callable[..., Path], tmp_path: Path,
                columns: dict[str, list[Any]]) -> HuggingfaceBackend:
        return backend(write_parquet(columns), tmp_path)
