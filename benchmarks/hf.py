#!/usr/bin/env python3
"""Scan rate of the huggingface plugin over a parquet dataset, against bare ``datasets`` loops.

Builds a parquet dataset of ``--rows`` rows (JPEG images of varied sizes in an ``Image``
feature, a caption, width and height columns) in a temp folder, lets ``datasets`` prepare it
once (its Arrow cache), then times on the same prepared dataset:

* the metadata scan **with** ``width_column``/``height_column`` (no image is read), against a
  bare ``for row in ds`` over the columns the scan reads (width, height, caption);
* the scan **without** them (sizes from image headers), against a bare ``for row in ds`` that
  reads the image column: ``decode=False`` (bytes only, the cheapest possible loop) and the
  default decoding ``Image`` feature (what a naive size lookup does);
* the same two scans in streaming mode (one pass, image bytes copied to the row store).

Each scan starts from an empty index folder; every figure is the median of ``--repeat`` runs
(the decoding loop, ~100x slower than the rest, runs once).
Usage: ``python benchmarks/hf.py [--rows 10000] [--repeat 3]``. Never touches the network.
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")


def make_pool(count: int, seed: int = 0) -> list[tuple[bytes, int, int]]:
    """``count`` distinct JPEGs (noisy, 192-768 px edges) with their sizes."""
    import numpy as np
    from PIL import Image

    rng = random.Random(seed)
    pool = []
    for _ in range(count):
        w, h = rng.randrange(192, 769, 8), rng.randrange(192, 769, 8)
        noise = np.random.default_rng(rng.randrange(1 << 30)).integers(0, 255, (h // 8, w // 8, 3))
        img = Image.fromarray(noise.astype("uint8")).resize((w, h))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=85)
        pool.append((buf.getvalue(), w, h))
    return pool


def build_parquet(folder: Path, rows: int, pool_size: int) -> int:
    """Write ``train-*.parquet`` (4 shards); returns the total image bytes."""
    import datasets

    pool = make_pool(pool_size)
    rng = random.Random(1)
    picks = [pool[rng.randrange(len(pool))] for _ in range(rows)]
    ds = datasets.Dataset.from_dict({
        "image": [{"bytes": b, "path": None} for b, _, _ in picks],
        "caption": [f"caption of row {k}" for k in range(rows)],
        "width": [w for _, w, _ in picks], "height": [h for _, _, h in picks],
    }).cast_column("image", datasets.Image())
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(4):
        ds.shard(4, k, contiguous=True).to_parquet(str(folder / f"train-{k:05d}-of-00004.parquet"))
    return sum(len(b) for b, _, _ in picks)


def open_meta(data: Path, work: Path, name: str, **keys: Any) -> Any:
    """A fresh (storage, metadata backend) pair for one configuration."""
    import databackend_huggingface
    from databackend.build import build_metadata, build_storage
    from databackend.config.loader import parse_entries
    from databackend.context import BuildContext
    from databackend.options import FactoryOptions
    from databackend.plugins import make_plugin_manager
    from databackend.registry import PluginRegistry

    registry = PluginRegistry.collect(make_plugin_manager(
        entrypoints=False, extra=[databackend_huggingface]))
    options = FactoryOptions(output_dir=str(work / "out" / name), resolution=1024,
                             resolution_type="pixel_area")
    block = {"cache_dir": str(work / "hf-cache"), **keys.pop("huggingface", {})}
    entry = {"id": name, "type": "huggingface", "dataset_name": str(data),
             "huggingface": block, **keys}
    dataset = parse_entries([entry], registry, options).datasets[0]
    context = BuildContext(options=options, registry=registry)
    storage = build_storage(dataset, context)
    return storage, build_metadata(dataset, storage, context)


def time_scan(data: Path, work: Path, name: str, repeat: int, **keys: Any) -> tuple[float, Any]:
    """Median seconds of a fresh scan (dataset already opened, index folder emptied)."""
    times, report = [], None
    for k in range(repeat):
        storage, meta = open_meta(data, work, f"{name}{k}", **keys)
        storage.opened  # noqa: B018 (open outside the timing: datasets' own load time)
        gc.collect()
        start = time.perf_counter()
        report = meta.scan(progress=False)
        times.append(time.perf_counter() - start)
        storage.close()
        shutil.rmtree(work / "out" / f"{name}{k}", ignore_errors=True)
    return statistics.median(times), report


def time_loop(fn: Callable[[], int], repeat: int) -> float:
    """Median seconds of ``fn`` (which returns the rows it visited)."""
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bare_loops(dataset: Any, stream: Any) -> dict[str, Callable[[], int]]:
    """The baselines: plain ``for row in ds`` loops over the same rows (``stream``: the same
    files as an ``IterableDataset``)."""
    import datasets

    columns = dataset.select_columns(["width", "height", "caption"])
    raw = dataset.cast_column("image", datasets.Image(decode=False))
    s_columns = stream.select_columns(["width", "height", "caption"])
    s_raw = stream.cast_column("image", datasets.Image(decode=False))

    def sizes() -> int:
        return sum(1 for row in columns if row["width"] and row["height"] and row["caption"])

    def image_bytes() -> int:
        return sum(1 for row in raw if row["image"]["bytes"])

    def decoded() -> int:
        return sum(1 for row in dataset if row["image"].size)

    def s_sizes() -> int:
        return sum(1 for row in s_columns if row["width"] and row["height"] and row["caption"])

    def s_bytes() -> int:
        return sum(1 for row in s_raw if row["image"]["bytes"])

    return {"columns": sizes, "bytes": image_bytes, "decode": decoded,
            "stream_columns": s_sizes, "stream_bytes": s_bytes}


def report_line(label: str, rows: int, seconds: float, base: float | None = None) -> str:
    rate = rows / seconds if seconds > 0 else float("inf")
    ratio = f"  x{base / seconds:6.2f} vs bare" if base else ""
    return f"  {label:<58} {seconds * 1000:9.1f} ms  {rate:11,.0f} rows/s{ratio}"


def run(rows: int, repeat: int, pool: int, keep: str | None) -> None:
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="hf-bench-"))
    data = work / "data"
    t0 = time.perf_counter()
    total = build_parquet(data, rows, pool)
    print(f"dataset: {rows} rows, {total / 2**20:.0f} MiB of JPEG in 4 parquet shards "
          f"({time.perf_counter() - t0:.1f}s to build)")
    storage, _ = open_meta(data, work, "prepare")
    t0 = time.perf_counter()
    dataset = storage.opened.dataset
    print(f"datasets.load_dataset (prepare, once): {time.perf_counter() - t0:.1f}s")
    import datasets

    stream = datasets.load_dataset(str(data), split="train", streaming=True)
    loops = bare_loops(dataset, stream)
    # the decoding loop takes ~100x longer than the others: once is precise enough
    bare = {k: time_loop(fn, 1 if k == "decode" else repeat) for k, fn in loops.items()}
    cols, _ = time_scan(data, work, "cols", repeat, width_column="width", height_column="height")
    head, rep = time_scan(data, work, "head", repeat)
    assert rep is not None and rep.counts["probed"] == rows, rep.counts
    s_cols, _ = time_scan(data, work, "scols", repeat, width_column="width",
                          height_column="height", huggingface={"streaming": True})
    s_head, _ = time_scan(data, work, "shead", repeat, huggingface={"streaming": True})
    print(f"\nscan rates over {rows} rows (median of {repeat}; python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs):")
    print(report_line("bare: for row in ds (width, height, caption)", rows, bare["columns"]))
    print(report_line("scan with width/height columns", rows, cols, bare["columns"]))
    print(report_line("bare: for row in ds (image bytes, decode=False)", rows, bare["bytes"]))
    print(report_line("bare: for row in ds (decoded Image feature)", rows, bare["decode"]))
    print(report_line("scan with header reads  [vs bytes loop]", rows, head, bare["bytes"]))
    print(report_line("scan with header reads  [vs decoding loop]", rows, head, bare["decode"]))
    print(report_line("bare streaming: for row in ds (width, height, caption)", rows,
                      bare["stream_columns"]))
    print(report_line("bare streaming: for row in ds (image bytes)", rows, bare["stream_bytes"]))
    print(report_line("streaming scan, width/height columns (+row store)  [vs bytes]", rows,
                      s_cols, bare["stream_bytes"]))
    print(report_line("streaming scan, header reads (+row store)  [vs bytes]", rows, s_head,
                      bare["stream_bytes"]))
    if not keep:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pool", type=int, default=64, help="distinct images reused by rows")
    parser.add_argument("--keep", help="work folder to keep (default: a temp folder, removed)")
    args = parser.parse_args()
    run(args.rows, args.repeat, args.pool, args.keep)


if __name__ == "__main__":
    main()
