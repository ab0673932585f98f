#!/usr/bin/env python3
"""S3 backend figures against a local moto server: header-only vs full-GET scans, and
concurrent vs sequential reads.

A moto server runs in its own process (so client and server do not share a GIL) and holds
``--n`` JPEG/PNG objects of about 200 KB (``--distinct`` images rendered with PIL, each
object made unique by a trailer after the image data; uploaded with ``write_many``). Then:

* **scan**: the real metadata scan (``DiscoveryMetadataBackend.scan`` over an ``aws`` config)
  twice: with :class:`~databackend_aws.S3Backend` (ranged GETs of the header, growing only
  when a header needs more) and with a subclass whose ``read_range`` downloads the whole
  object (a full-GET scan). Prints files/s, MB moved and the ratio.
* **reads**: ``--reads`` whole objects read sequentially (``for key: backend.read(key)``) and
  with ``backend.read_many`` on the default pool (``aws_max_pool_connections`` = 64). Target:
  concurrent at least 3x sequential (exit status 1 if no read profile meets it).

Link profiles ``LATENCY_MS:MBIT``: ``0:0`` is raw loopback to the server; otherwise a proxy in
another process delays every response by the latency (the round trip to a real endpoint,
typically 20-50 ms to first byte) and shares the bandwidth among all downloads. On loopback
moto's ~10 ms of CPU per request is the limit whatever the size, so both scans run at the same
rate there and only the bytes differ; the rate ratio shows where the link is the limit (scans
default to loopback and 20 ms at 100 Mbit/s). Concurrency pays off against latency (reads
default to loopback and 20 ms without a bandwidth cap).

Usage: ``python benchmarks/s3.py [--n 5000] [--reads 1000] [--scan-links 0:0,20:100]
[--read-links 0:0,20:0]``. With the defaults it takes about 6-7 minutes on 2 cores;
``--n 1000`` about 2 minutes.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3

import databackend_aws
from databackend.build import build_metadata, build_storage
from databackend.config.loader import load_config
from databackend.context import BuildContext
from databackend.options import FactoryOptions
from databackend.plugins import make_plugin_manager
from databackend.registry import PluginRegistry
from databackend_aws import AwsConfig, S3Backend
from databackend_aws.faultproxy import FaultPlan, FaultProxy

TARGET_RATIO = 3.0
BUCKET = "bench"
SIZES = ((832, 576), (576, 832), (704, 704), (896, 512), (512, 896), (768, 640))
KEYS: dict[str, Any] = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench-secret",
        "aws_region_name": "us-east-1"}


class FullGetS3Backend(S3Backend):
    """An S3 backend whose ranged reads download the whole object (a full-GET scan)."""

    def read_range(self, path: str, start: int, length: int) -> bytes:
        """GET everything, keep the slice (what a scanner without range reads costs)."""
        return self.read(path)[start:start + length]


# --- servers ---------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError as exc:
            if getattr(exc, "code", None):  # an HTTP error status: the server is up
                return
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@contextmanager
def moto_server() -> Iterator[str]:
    """``moto_server`` in a child process; yields its URL."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_http(url)
        yield url
    finally:
        proc.terminate()
        proc.wait()


def _serve_proxy(upstream: str, plan: FaultPlan, port: int) -> None:
    FaultProxy(upstream, plan, port=port).start()
    while True:
        time.sleep(3600)


@contextmanager
def link(upstream: str, latency_ms: float, mbit: float) -> Iterator[str]:
    """A proxy in a child process that models a link: ``latency_ms`` per response and
    ``mbit`` Mbit/s shared by all downloads (both 0: the server itself, loopback)."""
    if latency_ms <= 0 and mbit <= 0:
        yield upstream
        return
    port = _free_port()
    plan = FaultPlan(latency=latency_ms / 1000, bandwidth=mbit * 1e6 / 8)
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_serve_proxy, daemon=True,
                       args=(upstream.removeprefix("http://"), plan, port))
    proc.start()
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_http(url)
        yield url
    finally:
        proc.terminate()
        proc.join()


# --- data ------------------------------------------------------------------------------------
def render(width: int, height: int, seed: int, fmt: str) -> bytes:
    """Smoothed noise: compresses about like a photo (JPEG ~200 KB at 0.5 MP)."""
    from PIL import Image

    rng = random.Random(seed)
    small = Image.frombytes("RGB", (width // 4, height // 4),
                            rng.randbytes((width // 4) * (height // 4) * 3))
    out = io.BytesIO()
    small.resize((width, height), Image.Resampling.BICUBIC).save(
        out, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return out.getvalue()


def objects(n: int, distinct: int) -> Iterator[tuple[str, bytes]]:
    """``n`` unique image objects built from ``distinct`` rendered images."""
    bases = []
    for i in range(distinct):
        w, h = SIZES[i % len(SIZES)]
        fmt, ext = ("PNG", "png") if i % 10 == 9 else ("JPEG", "jpg")
        scale = 2 if fmt == "PNG" else 1  # PNGs are lossless: smaller images, similar bytes
        bases.append((render(w // scale, h // scale, i, fmt), ext))
    for i in range(n):
        data, ext = bases[i % distinct]
        yield f"img/{i % 50:02d}/{i:06d}.{ext}", data + f"#{i:08d}".encode()


def upload(endpoint: str, n: int, distinct: int) -> tuple[int, float]:
    """Create the bucket and upload the objects; returns (bytes, seconds)."""
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                 aws_access_key_id="bench", aws_secret_access_key="bench-secret"
                 ).create_bucket(Bucket=BUCKET)
    backend = S3Backend(AwsConfig(aws_bucket_name=BUCKET, aws_endpoint_url=endpoint, **KEYS),
                        dataset_id="upload")
    start, total, batch = time.perf_counter(), 0, []
    for item in objects(n, distinct):
        batch.append(item)
        total += len(item[1])
        if len(batch) == 500:
            backend.write_many(batch)
            batch = []
    backend.write_many(batch)
    backend.close()
    return total, time.perf_counter() - start


# --- measurements ----------------------------------------------------------------------------
def scan(endpoint: str, backend_cls: type[S3Backend]) -> dict[str, float]:
    """One full metadata scan of the bucket through ``backend_cls``; files/s and bytes."""
    pm = make_plugin_manager(entrypoints=False, extra=[databackend_aws])
    registry = PluginRegistry.collect(pm)
    with tempfile.TemporaryDirectory() as out:
        options = FactoryOptions(output_dir=out, resolution=512, resolution_type="pixel_area")
        plan = load_config([{"id": "bench", "type": "aws", "aws_bucket_name": BUCKET,
                             "aws_endpoint_url": endpoint, "aws_data_prefix": "img", **KEYS}],
                           registry, options)
        context = BuildContext(options=options, registry=registry)
        dataset = plan.datasets[0]
        storage = build_storage(dataset, context)
        storage = backend_cls(storage.config, dataset_id=dataset.id)
        start, cpu = time.perf_counter(), time.process_time()
        report = build_metadata(dataset, storage, context).scan(progress=False)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        stats = storage.metrics.snapshot()
        storage.close()
    return {"files": report.counts["kept"], "seconds": seconds,
            "rate": report.counts["listed"] / seconds, "mb": stats.get("bytes_read", 0) / 1e6,
            "gets": stats.get("requests.GetObject", 0),
            "cpu_ms": cpu * 1000 / max(1, report.counts["listed"])}


def reads(endpoint: str, keys: list[str]) -> dict[str, float]:
    """Sequential ``read`` vs ``read_many`` with the default pool: objects/s and MB/s."""
    backend = S3Backend(AwsConfig(aws_bucket_name=BUCKET, aws_endpoint_url=endpoint, **KEYS),
                        dataset_id="reads")
    backend.read(keys[0])  # client and connection set up outside the timings

    def timed(run: Callable[[], list[Any]]) -> tuple[float, int]:
        start = time.perf_counter()
        got = run()
        bad = [g for g in got if not isinstance(g, bytes)]
        if bad:
            sys.exit(f"{len(bad)} reads failed, first: {bad[0]!r}")
        return time.perf_counter() - start, sum(len(g) for g in got)

    seq_s, nbytes = timed(lambda: [backend.read(k) for k in keys])
    con_s, _ = timed(lambda: backend.read_many(keys))
    backend.close()
    return {"seq_rate": len(keys) / seq_s, "con_rate": len(keys) / con_s,
            "seq_mbs": nbytes / seq_s / 1e6, "con_mbs": nbytes / con_s / 1e6,
            "ratio": seq_s / con_s, "pool": backend.io_concurrency}


def _keys(endpoint: str, n: int) -> list[str]:
    backend = S3Backend(AwsConfig(aws_bucket_name=BUCKET, aws_endpoint_url=endpoint, **KEYS),
                        dataset_id="keys")
    keys = [info.path for info in backend.list("img")]
    backend.close()
    random.Random(0).shuffle(keys)
    return keys[:n]


def _print_scans(label: str, head: dict[str, float], full: dict[str, float]) -> None:
    for name, r in (("header-only", head), ("full GET", full)):
        print(f"[{label}] scan, {name:11s}: {r['rate']:7.1f} files/s  {r['mb']:8.1f} MB  "
              f"{r['gets']:6.0f} GETs  client CPU {r['cpu_ms']:.2f} ms/file  "
              f"({r['seconds']:.1f} s)")
    print(f"[{label}] scan ratio header-only / full GET: {head['rate'] / full['rate']:.2f}x "
          f"files/s, {full['mb'] / max(head['mb'], 1e-9):.1f}x fewer bytes, "
          f"{full['cpu_ms'] / max(head['cpu_ms'], 1e-9):.1f}x less client CPU")


def _label(profile: str) -> tuple[str, float, float]:
    latency_ms, mbit = (float(x) for x in profile.split(":"))
    if latency_ms <= 0 and mbit <= 0:
        return "loopback", latency_ms, mbit
    return (f"{latency_ms:.0f} ms" + (f", {mbit:.0f} Mbit/s" if mbit > 0 else "")), \
        latency_ms, mbit


def measure_scans(endpoint: str, profile: str) -> None:
    """Header-only vs full-GET metadata scans of the whole bucket over one link profile."""
    label, latency_ms, mbit = _label(profile)
    with link(endpoint, latency_ms, mbit) as url:
        _print_scans(label, scan(url, S3Backend), scan(url, FullGetS3Backend))


def measure_reads(endpoint: str, profile: str, n_reads: int) -> bool:
    """Sequential vs concurrent whole-object reads; True when the ratio meets the target."""
    label, latency_ms, mbit = _label(profile)
    with link(endpoint, latency_ms, mbit) as url:
        r = reads(url, _keys(url, n_reads))
    print(f"[{label}] reads, sequential: {r['seq_rate']:7.1f} obj/s  {r['seq_mbs']:6.1f} MB/s")
    print(f"[{label}] reads, read_many:  {r['con_rate']:7.1f} obj/s  {r['con_mbs']:6.1f} MB/s"
          f"  (pool {r['pool']})")
    ok = r["ratio"] >= TARGET_RATIO
    print(f"[{label}] read ratio concurrent / sequential: {r['ratio']:.2f}x "
          f"(target >= {TARGET_RATIO:.0f}x: {'met' if ok else 'missed'})")
    return ok


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 when the read ratio misses the target on every link."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="objects in the bucket")
    parser.add_argument("--distinct", type=int, default=60, help="distinct rendered images")
    parser.add_argument("--reads", type=int, default=1000, help="objects read per read test")
    parser.add_argument("--scan-links", default="0:0,20:100",
                        help="LATENCY_MS:MBIT link profiles for the scans (0:0 = loopback)")
    parser.add_argument("--read-links", default="0:0,20:0",
                        help="LATENCY_MS:MBIT link profiles for the reads (0 Mbit: no limit)")
    args = parser.parse_args(argv)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, moto server process")
    with moto_server() as endpoint:
        nbytes, seconds = upload(endpoint, args.n, args.distinct)
        print(f"uploaded {args.n} objects, {nbytes / 1e6:.1f} MB "
              f"(mean {nbytes / args.n / 1e3:.0f} KB) in {seconds:.1f} s "
              f"({args.n / seconds:.0f} PUT/s with write_many)")
        for profile in filter(None, args.scan_links.split(",")):
            measure_scans(endpoint, profile)
        results = [measure_reads(endpoint, profile, min(args.reads, args.n))
                   for profile in filter(None, args.read_links.split(","))]
    return 0 if any(results) else 1


if __name__ == "__main__":
    sys.exit(main())
