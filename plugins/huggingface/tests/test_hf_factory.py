"""End to end: a DataBackendFactory over huggingface datasets (scan, caches, iterate), normal
and streaming, next to a local dataset."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import basic_columns, composite, encode

import databackend_huggingface
import databackend_local
from databackend.caches import ReferenceTextEncoder, ReferenceVAE
from databackend.factory import DataBackendFactory
from databackend.plugins import make_plugin_manager


def build(entries: list[dict[str, Any]], tmp_path: Path, **kw: Any) -> DataBackendFactory:
    pm = make_plugin_manager(entrypoints=False, extra=[databackend_local, databackend_huggingface])
    opts = {"output_dir": str(tmp_path / "out"), "resolution": 64,
            "resolution_type": "pixel_area", "aspect_bucket_alignment": 16, "seed": 3}
    return DataBackendFactory(entries, plugin_manager=pm, options=opts,
                              text_encoder=ReferenceTextEncoder(width=16, seq_len=8),
                              image_encoder=ReferenceVAE(), **kw)


@pytest.mark.parametrize("streaming", [False, True])
def test_factory_scans_caches_and_iterates(write_parquet: Callable[..., Path], tmp_path: Path,
                                           streaming: bool) -> None:
    folder = write_parquet(basic_columns(12), shards=2)
    entries = [{"id": "hf", "type": "huggingface", "dataset_name": str(folder),
                "caption_column": "caption", "train_batch_size": 2,
                "huggingface": {"streaming": streaming, "cache_dir": str(tmp_path / "hfc")}}]
    f = build(entries, tmp_path, max_epochs=1).build()
    assert f.metrics.counters["scan"]["hf"]["kept"] == 12
    latents = [r for r in f.cache_runs if r.kind == "latents"]
    assert latents[0].report.encoded == 12
    batches = list(f.iterator())
    f.close()
    assert len(batches) == sum(f.runtime.batches_per_epoch.values()) > 0
    seen = {s for b in batches for s in b.sample_ids}
    assert len(seen) == 12
    for b in batches:
        w, h = b.bucket
        assert b.latents.shape[1:] == (4, h // 8, w // 8)
        assert all(c.startswith("a photo number") for c in b.captions)
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
    entries = [
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
