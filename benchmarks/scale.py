"""Benchmark the index and the sampler at 10M entries: the mapped format against the previous one.

Usage::

    python benchmarks/scale.py                    # 10,000,000 entries (and 1,000,000 for the fit)
    python benchmarks/scale.py --n 2000000 --small 200000 --dir /big/disk

Builds a synthetic index of ``--n`` entries from arrays (no files: 21-byte paths, a 34-byte
caption each, 40 buckets), saves it in the current format (2, memory-mapped) and in the
previous one (1, zlib'ed sections read into Python lists), then, each in a fresh interpreter so
the RSS figures are its own:

* open time (``DatasetIndex.load``; target under 1 s at 10M) and the RSS growth it causes
  (target under 200 MB at 10M);
* RSS after one epoch of sampling as rank 0 of 8 (every global batch drawn, rank 0's slice of
  each batch looked up in the ``target`` and ``file_size`` columns; target under 500 MB at
  10M). The previous release's sampler materialised each epoch's plan; the baseline does the
  same (``BucketSampler.native_plan``), the current one draws batches with ``take()``;
* index bytes per entry.

RSS is VmRSS from /proc: it counts the file pages of the mapping a process touched (RssFile),
which the page cache shares between the ranks of a node, and its private memory (RssAnon),
which each rank pays for itself; both are printed. 100M entries are extrapolated, not built
(building needs several times the index in memory): every figure is fitted as ``a + b * n``
through the ``--small`` and ``--n`` measurements and evaluated at 100M; the method is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

BUCKETS = [(w, h) for w in range(512, 1536, 128) for h in (512, 640, 768, 896, 1024)]
RANKS, BATCH = 8, 32


def _status() -> dict[str, float]:
    """VmRSS, RssAnon and RssFile of this process in MB."""
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                out[key] = int(rest.split()[0]) / 1024
    return out


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """ASCII decimal digits of ``values`` as an (n, width) uint8 array."""
    out = np.empty((len(values), width), np.uint8)
    v = values.astype(np.int64)
    for col in range(width - 1, -1, -1):
        out[:, col] = 48 + v % 10
        v //= 10
    return out


def _fixed(prefix: bytes, values: np.ndarray, width: int, suffix: bytes) -> np.ndarray:
    """Rows ``prefix + digits + suffix`` as an (n, len) uint8 array."""
    n = len(values)
    head = np.broadcast_to(np.frombuffer(prefix, np.uint8), (n, len(prefix)))
    tail = np.broadcast_to(np.frombuffer(suffix, np.uint8), (n, len(suffix)))
    return np.concatenate([head, _digits(values, width), tail], axis=1)


def build(n: int, folder: str) -> dict[str, float]:
    """Save an ``n``-entry index in both formats; their sizes in bytes."""
    from databackend.metadata import indexv1
    from databackend.metadata.captiontable import CaptionTable
    from databackend.metadata.index import DatasetIndex, PackedStrings

    rows = np.arange(n, dtype=np.int64)
    paths = np.concatenate([_digits(rows // 10_000, 4), _fixed(b"/img_", rows, 8, b".jpg")], 1)
    caps = _fixed(b"a photo of subject number ", rows, 8, b"")
    rng = np.random.default_rng(0)
    target = np.asarray(BUCKETS, np.int32)[rng.integers(0, len(BUCKETS), n)]
    width = paths.shape[1]
    index = DatasetIndex(
        PackedStrings(paths.reshape(-1), np.arange(n + 1, dtype=np.int64) * width),
        file_size=rng.integers(10_000, 9_000_000, n), mtime=np.full(n, 1.7e9),
        original=target * 2, target=target, intermediary=target + 8, crop=np.zeros((n, 2)),
        downsample=np.full((n, 2), -1), aspect=target[:, 0] / target[:, 1],
        captions=CaptionTable(caps.reshape(-1), np.arange(n + 1) * caps.shape[1],
                              np.arange(n + 1)),
        params_fingerprint="synthetic", meta={"dataset_id": "synthetic"})
    del paths, caps
    with open(os.path.join(folder, "v2.dbi"), "wb") as fh:
        fh.write(index.to_bytes())
    arrays, texts = index._file_sections("")
    arrays.update(target=index.target, intermediary=index.intermediary, crop=index.crop,
                  downsample=index.downsample, aspect=index.aspect)
    arrays.update({f"captions.{k}": v for k, v in index.captions.sections().items()})
    s_arrays, s_texts = index.skipped._file_sections("skipped.")
    arrays.update(s_arrays, **{"skipped.reason": index.skipped.reason})
    header = {"format": "databackend-index", "version": 1, "count": n, "skipped": 0,
              "params_fingerprint": "synthetic", "meta": index.meta}
    with open(os.path.join(folder, "v1.dbi"), "wb") as fh:
        fh.write(indexv1.pack(header, arrays, {**texts, **s_texts}))
    return {name: float(os.path.getsize(os.path.join(folder, f"{name}.dbi")))
            for name in ("v1", "v2")}


def measure(path: str, materialise: bool) -> dict[str, Any]:
    """Open ``path``, then one epoch of sampling as rank 0 of RANKS; times and RSS."""
    from databackend.metadata.index import DatasetIndex
    from databackend.runtime.sampler import BucketSampler
    from databackend.storage.localdir import LocalDirectory

    before = _status()
    start = time.perf_counter()
    folder, key = os.path.split(path)
    index = DatasetIndex.load(LocalDirectory(root=folder), key)
    assert index is not None
    buckets = index.buckets()
    opened = time.perf_counter() - start
    after_open = _status()
    sampler = BucketSampler("synthetic", buckets, batch_size=BATCH, world_size=RANKS, seed=1)
    start, seen = time.perf_counter(), 0
    if materialise:  # what the previous sampler kept for every epoch
        plan = sampler.native_plan(1)
        batches = (plan.batch(i) for i in range(len(plan)))
    else:
        batches = (sampler.take()[1] for _ in range(sampler.num_batches))
    for batch in batches:
        mine = np.sort(batch[:BATCH])
        seen += int(index.target[mine, 0].max() > 0) + int(index.file_size[mine].sum() > 0)
    epoch_s = time.perf_counter() - start
    after_epoch = _status()
    return {"open_s": opened, "open_mb": after_open["VmRSS"] - before["VmRSS"],
            "open_anon_mb": after_open["RssAnon"] - before["RssAnon"],
            "epoch_mb": after_epoch["VmRSS"] - before["VmRSS"],
            "epoch_anon_mb": after_epoch["RssAnon"] - before["RssAnon"],
            "epoch_file_mb": after_epoch["RssFile"] - before["RssFile"],
            "epoch_s": epoch_s, "batches": sampler.num_batches, "checked": seen}


def _child(*args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True,
                          text=True)
    return dict(json.loads(done.stdout.splitlines()[-1]))


def at_size(n: int, root: str) -> dict[str, Any]:
    """Build and measure both formats at ``n`` entries (files removed afterwards)."""
    folder = tempfile.mkdtemp(prefix=f"scalebench-{n}-", dir=root)
    try:
        sizes = _child("--build", str(n), "--folder", folder)
        out = {"n": n, "bytes_v1": sizes["v1"] / n, "bytes_v2": sizes["v2"] / n}
        out["v1"] = _child("--measure", os.path.join(folder, "v1.dbi"), "--materialise")
        out["v2"] = _child("--measure", os.path.join(folder, "v2.dbi"))
        return out
    finally:
        shutil.rmtree(folder, ignore_errors=True)


FIGURES = [("open_s", "open time", "s", 1.0), ("open_mb", "RSS growth after open", "MB", 200.0),
           ("epoch_mb", "RSS after one epoch", "MB", 500.0)]


def _line(label: str, new: float, old: float, unit: str, target: float | None) -> str:
    goal = f"  (target < {target:g} {unit})" if target is not None else ""
    return (f"{label:<28} {new:>10.2f} {unit:<3} vs format 1 {old:>10.2f} {unit:<3} "
            f"ratio {new / old if old else float('inf'):.2f}x{goal}")


def show(big: dict[str, Any], small: dict[str, Any] | None) -> None:
    """Print the figures at ``--n`` and the extrapolation to 100M."""
    n = big["n"]
    print(f"entries: {n:,}  ({len(BUCKETS)} buckets, rank 0 of {RANKS}, batch {BATCH})")
    for key, label, unit, target in FIGURES:
        print(_line(label, big["v2"][key], big["v1"][key], unit,
                    target if n >= 10_000_000 else None))
    print(_line("index bytes per entry", big["bytes_v2"], big["bytes_v1"], "B", None))
    v2 = big["v2"]
    print(f"  format 2 private (RssAnon): open {v2['open_anon_mb']:.1f} MB, epoch "
          f"{v2['epoch_anon_mb']:.1f} MB; shared file pages (RssFile) {v2['epoch_file_mb']:.1f}"
          f" MB; epoch {v2['epoch_s']:.1f}s for {v2['batches']:,} global batches")
    if small is None:
        return
    m = small["n"]
    print(f"100M extrapolated: each figure fitted as a + b*n through n={m:,} and n={n:,}")
    for key, label, unit, _ in FIGURES:
        for fmt in ("v2", "v1"):
            b = (big[fmt][key] - small[fmt][key]) / (n - m)
            a = big[fmt][key] - b * n
            print(f"  {label:<26} format {fmt[1]}: {a + b * 1e8:>10.2f} {unit}")


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000_000, help="entries")
    parser.add_argument("--small", type=int, default=1_000_000,
                        help="entries of the second size for the 100M fit (0 = skip)")
    parser.add_argument("--dir", default=None, help="folder for the index files")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--build", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--materialise", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.build:
        print(json.dumps(build(args.build, args.folder)))
        return 0
    if args.measure:
        print(json.dumps(measure(args.measure, args.materialise)))
        return 0
    big = at_size(args.n, args.dir)
    small = at_size(args.small, args.dir) if args.small else None
    print(json.dumps({"big": big, "small": small}, indent=2)) if args.json else show(big, small)
    return 0


if __name__ == "__main__":
    sys.exit(main())
