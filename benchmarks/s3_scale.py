#!/usr/bin/env python3
"""S3 scans at scale, with the link model of ``benchmarks/s3.py``: header bytes per object and
objects/s with probe processes against today's threads.

The bucket is the mixed-image dataset of ``benchmarks/s3.py`` (``--n`` JPEG/PNG objects of about
200 KB, 1 in 10 a PNG) on a local moto server, reached through the latency/bandwidth proxy.
Measured in the same run, on each ``--links`` profile:

* **header bytes per object**: the real metadata scan with the remote probe starting at
  ``S3Backend.probe_first_read`` (8 KiB, growing on demand) against the previous first read of
  ``HEADER_BYTES`` (64 KiB). Target: under 16 KiB per object.
* **objects/s**: the same scan with ``scan_remote_processes`` = CPUs (each process probing with
  the backend's ``io_concurrency`` threads) against one process of threads (the default).

Usage: ``python benchmarks/s3_scale.py [--n 2000] [--links 20:100] [--processes N]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from s3 import BUCKET, KEYS, _label, link, moto_server, upload

import databackend_aws
from databackend.build import build_metadata, build_storage
from databackend.config.loader import load_config
from databackend.context import BuildContext
from databackend.imageprobe import HEADER_BYTES
from databackend.options import FactoryOptions
from databackend.plugins import make_plugin_manager
from databackend.registry import PluginRegistry
from databackend_aws import S3Backend

TARGET_BYTES = 16 * 1024
FIRST_READ = S3Backend.probe_first_read or 0  # the current default (the runs change it)


def scan(endpoint: str, *, first: int, processes: int) -> dict[str, float]:
    """One full metadata scan; objects/s and bytes per object (bytes: threads only)."""
    S3Backend.probe_first_read = first  # (probe processes import the class default, 8 KiB)
    registry = PluginRegistry.collect(make_plugin_manager(entrypoints=False,
                                                          extra=[databackend_aws]))
    with tempfile.TemporaryDirectory() as out:
        options = FactoryOptions(output_dir=out, resolution=512, resolution_type="pixel_area",
                                 scan_remote_processes=processes)
        plan = load_config([{"id": "bench", "type": "aws", "aws_bucket_name": BUCKET,
                             "aws_endpoint_url": endpoint, "aws_data_prefix": "img", **KEYS}],
                           registry, options)
        context = BuildContext(options=options, registry=registry)
        dataset = plan.datasets[0]
        storage = build_storage(dataset, context)
        start = time.perf_counter()
        report = build_metadata(dataset, storage, context).scan(progress=False)
        seconds = time.perf_counter() - start
        stats = storage.metrics.snapshot()
        storage.close()
    n = max(1, report.counts["listed"])
    return {"rate": n / seconds, "bytes": stats.get("bytes_read", 0) / n, "kept": float(
        report.counts["kept"]), "gets": stats.get("requests.GetObject", 0) / n}


def measure(endpoint: str, profile: str, processes: int) -> dict[str, Any]:
    """Every figure over one link profile."""
    label, latency_ms, mbit = _label(profile)
    with link(endpoint, latency_ms, mbit) as url:
        old = scan(url, first=HEADER_BYTES, processes=1)
        new = scan(url, first=FIRST_READ, processes=1)
        procs = scan(url, first=FIRST_READ, processes=processes)
    return {"label": label, "old": old, "new": new, "procs": procs}


def show(r: dict[str, Any], processes: int) -> None:
    """Print one profile's figures, each with its ratio and target."""
    label, old, new, procs = r["label"], r["old"], r["new"], r["procs"]
    print(f"[{label}] header bytes/object: {new['bytes'] / 1024:7.2f} KiB vs "
          f"{old['bytes'] / 1024:7.2f} KiB with a 64 KiB first read  ratio "
          f"{new['bytes'] / old['bytes']:.2f}x  (target < {TARGET_BYTES // 1024} KiB: "
          f"{'met' if new['bytes'] < TARGET_BYTES else 'missed'}); GETs/object "
          f"{new['gets']:.2f} vs {old['gets']:.2f}")
    print(f"[{label}] objects/s, {processes} processes x threads: {procs['rate']:8.1f} vs "
          f"threads only {new['rate']:8.1f}  ratio {procs['rate'] / new['rate']:.2f}x "
          f"(target >= 1.0x); 64 KiB first read, threads: {old['rate']:.1f}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="objects in the bucket")
    parser.add_argument("--distinct", type=int, default=60, help="distinct rendered images")
    parser.add_argument("--links", default="20:100", help="LATENCY_MS:MBIT link profiles")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 2,
                        help="probe processes for the processes run")
    args = parser.parse_args(argv)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, moto server process")
    with moto_server() as endpoint:
        nbytes, seconds = upload(endpoint, args.n, args.distinct)
        print(f"uploaded {args.n} objects, {nbytes / 1e6:.1f} MB in {seconds:.1f} s")
        for profile in filter(None, args.links.split(",")):
            show(measure(endpoint, profile, args.processes), args.processes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
