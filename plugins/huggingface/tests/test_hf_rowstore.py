"""The streaming row store, and ranks sharing one scan."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hf_support import basic_columns

from databackend.errors import StorageError
from databackend_huggingface import RowStore
from databackend_huggingface.rowstore import RowStoreWriter


def test_row_store_shards_reads_and_replaces_old_tags(tmp_path: Path) -> None:
    old = RowStoreWriter(str(tmp_path), "old")
    old.add(0, b"zero")
    old.commit()
    writer = RowStoreWriter(str(tmp_path), "new", shard_bytes=10)
    payloads = {5: b"aaaaaa", 2: b"bbbbbbbb", 9: b"c" * 25, 11: b""}
    for row, data in payloads.items():
        writer.add(row, memoryview(data))
    store = writer.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "new-00000.bin", "new-00001.bin", "new-00002.bin", "new.map.npy"]
    assert not RowStore.exists(str(tmp_path), "old") and RowStore.exists(str(tmp_path), "new")
    for row, data in payloads.items():
        assert store.read(row) == data and store.size(row) == len(data) and store.has(row)
    assert store.read(9, 20, 100) == b"c" * 5 and store.read(9, 30) == b""
    assert not store.has(3)
    with pytest.raises(FileNotFoundError):
        store.read(3)
    assert RowStore(str(tmp_path), "new").read(2) == b"bbbbbbbb"
    store.close()


def test_aborted_pass_leaves_nothing(tmp_path: Path) -> None:
    writer = RowStoreWriter(str(tmp_path), "t")
    writer.add(1, b"x")
    writer.abort()
    assert list(tmp_path.iterdir()) == [] and not RowStore.exists(str(tmp_path), "t")


def test_interrupted_streaming_scan_is_redone(write_parquet: Callable[..., Path],
                                              open_hf: Callable[..., Any],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import databackend_huggingface.scan as scan_module

    folder = write_parquet(basic_columns(6))
    real = scan_module.ScanPass._batch

    def boom(self: Any, table: Any, start: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(scan_module.ScanPass, "_batch", boom)
    _, meta = open_hf(dataset_name=str(folder), huggingface={"streaming": True})
    with pytest.raises(KeyboardInterrupt):
        meta.scan(progress=False)
    assert not any(Path(meta.rows_folder).glob("*.bin*"))
    monkeypatch.setattr(scan_module.ScanPass, "_batch", real)
    _, again = open_hf(dataset_name=str(folder), huggingface={"streaming": True})
    assert again.scan(progress=False).counts["kept"] == 6


def test_other_ranks_wait_for_rank_zero(write_parquet: Callable[..., Path],
                                        open_hf: Callable[..., Any]) -> None:
    folder = write_parquet(basic_columns(6))
    _, rank1 = open_hf(dataset_name=str(folder), huggingface={"streaming": True})
    rank1.rank_poll_s = 0.01
    got: dict[str, Any] = {}
    waiter = threading.Thread(target=lambda: got.update(
        report=rank1.scan(progress=False, rank=1, world_size=2)))
    waiter.start()
    _, rank0 = open_hf(dataset_name=str(folder), huggingface={"streaming": True})
    first = rank0.scan(progress=False, rank=0, world_size=2)
    waiter.join(30)
    assert got["report"].source == "rank-merge" and got["report"].counts["kept"] == 6
    assert first.counts["kept"] == 6
    assert rank1.load_image(2).size == rank0.load_image(2).size


def test_a_rank_gives_up_when_rank_zero_never_comes(write_parquet: Callable[..., Path],
                                                    open_hf: Callable[..., Any]) -> None:
    _, rank1 = open_hf(dataset_name=str(write_parquet(basic_columns(2))))
    rank1.rank_timeout_s, rank1.rank_poll_s = 0.05, 0.01
    with pytest.raises(StorageError, match="gave up waiting"):
        rank1.scan(progress=False, rank=1, world_size=2)


def test_truncated_row_store_means_a_new_pass(write_parquet: Callable[..., Path],
                                              open_hf: Callable[..., Any]) -> None:
    folder = write_parquet(basic_columns(4))
    _, meta = open_hf(dataset_name=str(folder), huggingface={"streaming": True})
    meta.scan(progress=False)
    shard = next(Path(meta.rows_folder).glob("*.bin"))
    shard.write_bytes(shard.read_bytes()[:-10])  # as a crash before the data reached the disk
    _, again = open_hf(dataset_name=str(folder), huggingface={"streaming": True})
    report = again.scan(progress=False)
    assert report.counts["new"] == 4 and report.counts["kept"] == 4
    assert again.load_image(3).size == (128, 64)
