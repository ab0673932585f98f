"""End to end: a DataBackendFactory over huggingface datasets (scan, caches, iterate), normal
and streaming, next to a local dataset."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hf_support import SIZES, basic_columns, composite, encode, make_dataset

import databackend_huggingface
import databackend_local
from databackend.caches import ReferenceTextEncoder, ReferenceVAE
from databackend.factory import DataBackendFactory
from databackend.plugins import make_plugin_manager
from databackend_huggingface import HuggingfaceBackend


def build(entries: list[dict[str, Any]], tmp_path: Path, **kw: Any) -> DataBackendFactory:
    pm = make_plugin_manager(entrypoints=False, extra=[databackend_local, databackend_huggingface])
    opts = {"output_dir": str(tmp_path / "out"), "resolution": 64,
            "resolution_type": "pixel_area", "aspect_bucket_alignment": 16, "seed": 3}
    return DataBackendFactory(entries, plugin_manager=pm, options=opts,
                              text_encoder=ReferenceTextEncoder(width=16, seq_len=8),
                              image_encoder=ReferenceVAE(), **kw)


def make_source(kind: str, write_parquet: Callable[..., Path], tmp_path: Path) -> Path:
    """12 rows of ``basic_columns`` as a parquet folder (2 shards) or a ``save_to_disk`` folder
    of a DatasetDict (whose ``train`` split is read; ``test`` holds other rows)."""
    import datasets

    if kind == "parquet":
        return write_parquet(basic_columns(12), shards=2)
    folder = tmp_path / "saved"
    ds = make_dataset(basic_columns(12))
    held_out = make_dataset({**basic_columns(3), "caption": ["held out"] * 3})
    datasets.DatasetDict({"train": ds, "test": held_out}).save_to_disk(
        str(folder), num_shards={"train": 2, "test": 1})
    assert (folder / "dataset_dict.json").is_file() and (folder / "train" / "state.json").is_file()
    return folder


@pytest.mark.parametrize("streaming", [False, True], ids=["normal", "streaming"])
@pytest.mark.parametrize("source", ["parquet", "save_to_disk"])
def test_factory_scans_caches_and_iterates(write_parquet: Callable[..., Path], tmp_path: Path,
                                           source: str, streaming: bool) -> None:
    import datasets

    folder = make_source(source, write_parquet, tmp_path)
    entries = [{"id": "hf", "type": "huggingface", "dataset_name": str(folder),
                "caption_column": "caption", "train_batch_size": 2,
                "huggingface": {"streaming": streaming, "cache_dir": str(tmp_path / "hfc")}}]
    f = build(entries, tmp_path, max_epochs=1).build()
    assert f.metrics.counters["scan"]["hf"]["kept"] == 12
    storage = f.storages["hf"]
    assert isinstance(storage, HuggingfaceBackend)
    assert storage.opened.kind == ("folder" if source == "parquet" else "saved")
    assert storage.streaming is streaming
    assert isinstance(storage.opened.dataset, datasets.IterableDataset) is streaming
    # streaming reads the source once, into the row store; normal mode reads it in place
    assert (storage.row_store is not None and len(storage.row_store) == 12) is streaming
    latents = [r for r in f.cache_runs if r.kind == "latents"]
    assert latents[0].report.encoded == 12
    batches = list(f.iterator())
    f.close()
    assert len(batches) == sum(f.runtime.batches_per_epoch.values()) > 0
    seen: dict[str, tuple[str, tuple[int, int]]] = {}
    for b in batches:
        w, h = b.bucket
        assert b.latents.shape[1:] == (4, h // 8, w // 8)
        for sid, caption, size in zip(b.sample_ids, b.captions, b.original_sizes.tolist(),
                                      strict=True):
            seen[sid] = (caption, (size[0], size[1]))
    # every row of the split, each with its own caption and size
    assert seen == {f"hf:{k}.jpg": (f"a photo number {k}", SIZES[k % len(SIZES)])
                    for k in range(12)}
    # a second factory reuses the index and every cache entry
    again = build(entries, tmp_path, max_epochs=1).build()
    assert [r.report.encoded for r in again.cache_runs if r.kind == "latents"] == [0]
    assert len(list(again.iterator())) == len(batches)
    again.close()


def test_factory_mixes_huggingface_composites_and_local_folders(
        write_parquet: Callable[..., Path], tmp_path: Path) -> None:
    pairs = write_parquet({"image": [composite([(255, 0, 0), (0, 0, 255)], (64, 64))] * 4,
                           "left": [f"left {k}" for k in range(4)],
                           "right": [f"right {k}" for k in range(4)]}, "pairs")
    local = tmp_path / "local"
    local.mkdir()
    for k in range(4):
        (local / f"img_{k}.png").write_bytes(encode(64, 64, (k, k, k)))
    entries: list[dict[str, Any]] = [
        {"id": "pairs", "type": "huggingface", "dataset_name": str(pairs),
         "split_composite_images": True, "caption_column": ["left", "right"],
         "huggingface": {"cache_dir": str(tmp_path / "hfc")}},
        {"id": "local", "type": "local", "instance_data_dir": str(local)},
    ]
    f = build(entries, tmp_path, max_epochs=1).build()
    assert f.metrics.counters["scan"]["pairs"]["kept"] == 8
    batches = list(f.iterator())
    f.close()
    assert {b.dataset_id for b in batches} == {"pairs", "local"}
    paths = {p for b in batches if b.dataset_id == "pairs" for p in b.sample_ids}
    assert len(paths) == 8
