"""Benchmark the HTML data report on a 1,000,000-entry synthetic index.

Usage::

    python benchmarks/report.py               # 1,000,000 samples, 20,000 metrics lines
    python benchmarks/report.py --n 200000

Builds a synthetic index in memory (no files: sizes from a few hundred shapes, captions of
varying length, 1% skipped files over three reasons) and a synthetic run of metrics lines, then
times the report from the index to the written HTML (aggregation, Vega-Lite specs, page) and
prints, each on one line as a ratio against its target:

* generation time against 10 s (target ratio < 1.00x), cold (Vega's JS bundle built by
  vl-convert) and warm (bundle read from its on-disk cache), each also against a baseline
  measured in the same run: a naive bucket count, ``np.unique`` over the rows of the target
  sizes;
* the HTML size against 5 MB (target ratio < 1.00x).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

TARGET_SECONDS, TARGET_BYTES = 10.0, 5 * 2**20


def synthetic_index(n: int) -> Any:
    """An ``n``-sample index with made-up sizes, buckets, captions and skipped files."""
    from databackend.metadata.index import DatasetIndex, SkippedFiles

    rng = np.random.default_rng(0)
    shapes = rng.integers(256, 4096, size=(400, 2), dtype=np.int32)
    sizes = shapes[rng.integers(0, len(shapes), n)]
    target = (sizes // 128 * 64).clip(64)
    words = np.array(["a", "photo", "of", "the", "red", "old", "city", "lake", "cat", "at",
                      "dusk", "in", "soft", "light"])
    lengths = rng.integers(0, 12, 1000)
    texts = [" ".join(words[: int(k)]) for k in lengths]
    m = max(1, n // 100)
    skipped = SkippedFiles([f"bad/{i:07d}.jpg" for i in range(m)], np.zeros(m), np.zeros(m),
                           np.full((m, 2), -1), rng.choice([2, 4, 6], m))
    return DatasetIndex([f"{i % 1000:03d}/image_{i:08d}.jpg" for i in range(n)],
                        file_size=np.full(n, 100_000), mtime=np.full(n, 1.7e9), original=sizes,
                        target=target, intermediary=target, crop=np.zeros((n, 2)),
                        downsample=np.full((n, 2), -1), aspect=target[:, 0] / target[:, 1],
                        captions=((texts[i % 1000],) if i % 50 else () for i in range(n)),
                        params_fingerprint="synthetic", skipped=skipped)


def synthetic_run(steps: int) -> list[dict[str, Any]]:
    """Metrics records of a two-dataset run."""
    rng = np.random.default_rng(1)
    draws = np.cumsum(rng.random(steps) < 0.7)
    records: list[dict[str, Any]] = [{"kind": "build", "stages": [], "policy": "mixture",
                                      "datasets": [{"id": "big", "epoch_share": 0.7},
                                                   {"id": "other", "epoch_share": 0.3}]}]
    for s in range(10, steps + 1, 10):
        a = float(draws[s - 1])
        records.append({"kind": "step", "step": s, "metrics": {
            "data/big/share": a / s, "data/other/share": 1 - a / s,
            "data/wait_ms_interval": float(rng.random())}})
    return records


def report_data(index: Any, records: list[dict[str, Any]]) -> dict[str, Any]:
    """What ``collect_report`` returns, for one synthetic dataset and run."""
    from databackend.monitor.indexfacts import index_facts
    from databackend.monitor.reportdata import run_series

    facts = index_facts(index, global_batch=32)
    nodes = [{"id": "big", "kind": "image", "x": 2, "y": 0},
             {"id": "vae", "kind": "latent cache", "x": 1, "y": 0}]
    edges = [{"from": "vae", "to": "big", "what": "latents", "x": 1, "y": 0, "x2": 2, "y2": 0}]
    return {"title": "synthetic 1M report", "policy": "mixture", "caches": [],
            "datasets": [{"id": "big", "storage": "synthetic", "global_batch": 32,
                          "sampled": True, **facts}],
            "graph": {"nodes": nodes, "edges": edges},
            "build": {"stages": [{"name": "metadata", "seconds": 1.0, "peak_rss_mb": 1.0}],
                      "total_seconds": 1.0, "peak_rss_mb": 1.0},
            "run": run_series(records)}


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="samples in the index")
    parser.add_argument("--steps", type=int, default=200_000, help="steps of the run")
    args = parser.parse_args()
    t = time.perf_counter()
    index = synthetic_index(args.n)
    records = synthetic_run(args.steps)
    print(f"synthetic index: {len(index):,} samples, {len(index.skipped):,} skipped, "
          f"{len(records) - 1:,} metrics lines (made in {time.perf_counter() - t:.1f} s)")
    t = time.perf_counter()
    np.unique(index.target, axis=0, return_counts=True)
    baseline = time.perf_counter() - t
    print(f"baseline, a naive bucket count (np.unique rows of the target sizes): "
          f"{baseline:.3f} s")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["XDG_CACHE_HOME"] = cache  # starts empty: the first report builds the JS
        for label in ("cold (JS bundle built)", "warm (JS bundle cached)"):
            seconds, size = _timed_report(index, records)
            print(f"report generation, {label}: {seconds:.2f} s, ratio "
                  f"{seconds / TARGET_SECONDS:.2f}x of the 10 s target (target < 1.00x); "
                  f"{seconds / baseline:.1f}x the baseline")
    print(f"report size: {size / 2**20:.2f} MB, ratio {size / TARGET_BYTES:.2f}x "
          f"of the 5 MB target (target < 1.00x)")


def _timed_report(index: Any, records: list[dict[str, Any]]) -> tuple[float, int]:
    """Seconds from the index to the written page, and its size in bytes."""
    from databackend.monitor.htmlpage import render_html, vega_bundle

    vega_bundle.cache_clear()  # only the on-disk bundle cache may help
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        page = render_html(report_data(index, records))
        out = Path(tmp) / "report.html"
        out.write_text(page, encoding="utf-8")
        seconds = time.perf_counter() - t
        return seconds, out.stat().st_size


if __name__ == "__main__":
    main()
