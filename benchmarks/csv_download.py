#!/usr/bin/env python3
"""Download throughput of the csv backend: default concurrency vs a sequential loop.

A local :class:`~databackend_csv.testing.ImageServer` adds ``--latency`` seconds to every
request (a model of a real network round trip). The same N image URLs are downloaded twice,
each time into a fresh cache folder:

* sequential: ``for key in keys: backend.read(key)``;
* concurrent: ``backend.read_many(keys)`` with the default ``csv_concurrency`` and
  ``csv_per_host_limit`` (all URLs are on one host, so the per-host limit is the cap).

Prints images/s and MB/s of both, and their ratio (target: at least 4x).
Usage: ``python benchmarks/csv_download.py [--n 400] [--latency 0.02] [--size 256]``.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

from databackend_csv import CsvBackend, CsvConfig
from databackend_csv.testing import ImageServer, make_image

TARGET_RATIO = 4.0


def _backend(folder: Path, csv_file: Path, **extra: int) -> CsvBackend:
    """A csv backend with default network settings and an empty cache in ``folder``."""
    config = CsvConfig(csv_file=str(csv_file), csv_cache_dir=str(folder / "cache"),
                       csv_caption_column="caption", csv_allow_private_addresses=True,
                       **extra)  # type: ignore[arg-type]
    return CsvBackend(config, dataset_id="bench")


def _run(label: str, backend: CsvBackend, concurrent: bool) -> tuple[float, int]:
    """Download every listed image; returns (seconds, bytes)."""
    keys = [info.path for info in backend.list()]
    start = time.perf_counter()
    results: list[bytes | BaseException] = (
        backend.read_many(keys) if concurrent else [backend.read(k) for k in keys])
    seconds = time.perf_counter() - start
    failed = [r for r in results if not isinstance(r, bytes)]
    if failed:
        sys.exit(f"{label}: {len(failed)} downloads failed, first: {failed[0]!r}")
    return seconds, sum(len(r) for r in results if isinstance(r, bytes))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures; exit 1 when the ratio misses the target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="number of image URLs")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per request")
    parser.add_argument("--size", type=int, default=256, help="image edge in pixels (JPEG)")
    parser.add_argument("--per-host", type=int, default=0,
                        help="override csv_per_host_limit (0: the default)")
    args = parser.parse_args(argv)
    defaults = CsvConfig(csv_file="x", csv_cache_dir="x")
    blobs = [make_image(args.size, args.size, "JPEG", seed=k) for k in range(16)]
    extra = {"csv_per_host_limit": args.per_host} if args.per_host else {}
    with tempfile.TemporaryDirectory() as tmp, ImageServer(latency=args.latency) as server:
        root = Path(tmp)
        csv_file = root / "list.csv"
        with open(csv_file, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["url", "caption"])
            for n in range(args.n):
                writer.writerow([server.add(f"img{n}.jpg", blobs[n % len(blobs)]), f"c{n}"])
        seq_s, nbytes = _run("sequential", _backend(root / "seq", csv_file, **extra), False)
        server.reset_counts()
        conc = _backend(root / "conc", csv_file, **extra)
        conc_s, _ = _run("concurrent", conc, True)
        in_flight = server.max_in_flight
    ratio = seq_s / conc_s
    mb = nbytes / 1e6
    print(f"csv download: {args.n} images, {mb:.1f} MB, {args.latency * 1000:.0f} ms latency "
          f"per request, one host (CPUs: {os.cpu_count()})")
    print(f"  sequential loop        {seq_s:7.2f} s  {args.n / seq_s:8.1f} img/s  "
          f"{mb / seq_s:7.2f} MB/s")
    print(f"  read_many (concurrency {conc.io_concurrency}, per host "
          f"{conc.config.csv_per_host_limit}; max in flight {in_flight})")
    print(f"                         {conc_s:7.2f} s  {args.n / conc_s:8.1f} img/s  "
          f"{mb / conc_s:7.2f} MB/s")
    print(f"  ratio {ratio:.2f}x (target >= {TARGET_RATIO:.0f}x): "
          f"{'PASS' if ratio >= TARGET_RATIO else 'FAIL'}"
          f"  [defaults: csv_concurrency={defaults.csv_concurrency}, "
          f"csv_per_host_limit={defaults.csv_per_host_limit}]")
    return 0 if ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    raise SystemExit(main())
