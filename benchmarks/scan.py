"""Benchmark the discovery scan against bare loops over the same files.

Usage::

    python benchmarks/scan.py                 # 20,000 images in a temporary folder
    python benchmarks/scan.py --n 5000 --dir /tmp/scanbench   # reuse a folder between runs

Prints, measured in the same run (best of ``--repeat`` runs each, contenders alternating):

* our cold scan rate (no index yet) and a bare single-process ``imagesize.get`` loop over the
  same files, and their ratio (target >= 1.0 on 2 cores);
* a warm (unchanged) rescan against a bare ``os.walk`` + ``os.stat`` of the tree (target <= 2x);
* peak RSS of this process and of the scan workers;
* the RSS growth of a 1,000,000-entry synthetic index built without files, saved and loaded
  (target < 300 MB), measured in a fresh subprocess.

Images: JPEG and PNG, sizes drawn from a few hundred distinct shapes between 64 and 2048 px, some
JPEGs with EXIF orientation 6; each distinct (shape, format) is encoded once and copied.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

SHAPES = 400


def _encode(spec: tuple[int, int, str, int]) -> bytes:
    """One template image as bytes."""
    import io

    from PIL import Image

    width, height, fmt, orientation = spec
    img = Image.new("RGB", (width, height), ((width * 7) % 256, (height * 3) % 256, 90))
    buf = io.BytesIO()
    kwargs: dict[str, Any] = {}
    if orientation != 1:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def generate(root: Path, n: int, seed: int = 0) -> None:
    """Write ``n`` images under ``root`` (50 sub-folders); skipped when they already exist."""
    marker = root / f".generated-{n}-{seed}"
    if marker.exists():
        return
    rng = random.Random(seed)
    shapes = [(rng.randrange(64, 2048), rng.randrange(64, 2048)) for _ in range(SHAPES)]
    specs = sorted({(w, h, fmt, 6 if fmt == "JPEG" and (w + h) % 5 == 0 else 1)
                    for w, h in shapes for fmt in ("JPEG", "PNG")})
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor() as pool:
        templates = dict(zip(specs, pool.map(_encode, specs, chunksize=8), strict=True))
    keys = list(templates)
    for i in range(n):
        spec = keys[rng.randrange(len(keys))]
        folder = root / f"{i % 50:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        ext = "jpg" if spec[2] == "JPEG" else "png"
        (folder / f"img_{i:07d}.{ext}").write_bytes(templates[spec])
    marker.touch()


def all_files(root: Path) -> list[str]:
    """Every image path under ``root`` (not timed)."""
    out = [os.path.join(d, f) for d, _, files in os.walk(root) for f in files
           if not f.startswith(".")]
    return sorted(out)


def best_pair(first: Callable[[], Any], second: Callable[[], Any], repeat: int
              ) -> tuple[float, float, Any]:
    """Best wall times of ``first`` and ``second`` run alternately ``repeat`` times (fair under
    a varying machine load), and the last result of ``second``. A result with an ``elapsed``
    attribute (a ScanReport) gives its own time, so setup outside the scan is not counted."""
    times: tuple[list[float], list[float]] = ([], [])
    result = None
    for _ in range(repeat):
        for k, fn in enumerate((first, second)):
            start = time.perf_counter()
            out = fn()
            times[k].append(getattr(out, "elapsed", time.perf_counter() - start))
            result = out if k else result
    return min(times[0]), min(times[1]), result


def cpu_seconds(fn: Callable[[], Any]) -> float:
    """CPU time (user + system) of ``fn``, its finished child processes included: unlike wall
    time, barely affected by other load on the machine."""
    def now() -> float:
        me, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF,
                                                       resource.RUSAGE_CHILDREN))
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    start = now()
    fn()
    return now() - start


def bare_imagesize(files: list[str]) -> None:
    """The baseline: one process, ``imagesize.get`` per file."""
    import imagesize

    for path in files:
        imagesize.get(path)


def _sizes_of(chunk: list[str]) -> int:
    import imagesize

    return sum(1 for path in chunk if imagesize.get(path)[0] >= 0)


def bare_imagesize_parallel(files: list[str], procs: int) -> None:
    """The bare loop on ``procs`` processes (fork pool started inside, as the scan's is)."""
    import multiprocessing

    step = max(1, -(-len(files) // (procs * 8)))
    with multiprocessing.get_context("fork").Pool(procs) as pool:
        pool.map(_sizes_of, [files[k:k + step] for k in range(0, len(files), step)])


#: The bare loop as a whole process: walk the tree, ``imagesize.get`` on a fork pool of one
#: process per core, nothing else imported (the fairest start-up for the baseline).
BARE_SCRIPT = """
import os, sys, multiprocessing, imagesize
def sizes(chunk):
    return sum(1 for p in chunk if imagesize.get(p)[0] >= 0)
if __name__ == "__main__":
    files = sorted(os.path.join(d, f) for d, _, names in os.walk(sys.argv[1]) for f in names
                   if not f.startswith("."))
    procs = len(os.sched_getaffinity(0))
    step = max(1, -(-len(files) // (procs * 8)))
    with multiprocessing.get_context("fork").Pool(procs) as pool:
        pool.map(sizes, [files[k:k + step] for k in range(0, len(files), step)])
"""


def _process_env() -> dict[str, str]:
    """The environment of both whole processes: byte-code cached (in a folder of its own), as
    an installed package has it, even where ``PYTHONDONTWRITEBYTECODE`` is set."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), "scanbench-pycache")
    return env


def bare_process(root: Path) -> float:
    """Wall time of :data:`BARE_SCRIPT` over ``root`` as a fresh interpreter."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", BARE_SCRIPT, str(root)], check=True,
                   capture_output=True, env=_process_env())
    return time.perf_counter() - start


def cli_scan(root: Path, workers: int) -> float:
    """Wall time of ``databackend scan CONFIG`` over ``root`` as a fresh process, start-up,
    imports, listing, probes and the index write included (the config and an empty output
    folder are made first, not timed)."""
    folder = Path(tempfile.mkdtemp(prefix="scanbench-cli-"))
    try:
        config = folder / "databackend.json"
        config.write_text(json.dumps([{"id": "bench", "type": "local",
                                       "instance_data_dir": str(root)}]))
        cmd = [sys.executable, "-m", "databackend", "scan", str(config), "--no-progress",
               "--option", f"output_dir={folder / 'out'}", "--option", f"scan_workers={workers}"]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=_process_env())
        return time.perf_counter() - start
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def best_processes(repeat: int, root: Path, workers: int) -> tuple[float, float]:
    """Best wall times of the bare loop script and the ``databackend scan`` CLI, each as a
    whole process, run alternately."""
    bare, cli = [], []
    bare_process(root), cli_scan(root, workers)  # fill the byte-code cache (not timed)
    for _ in range(repeat):
        bare.append(bare_process(root))
        cli.append(cli_scan(root, workers))
    return min(bare), min(cli)


def bare_walk(root: Path) -> int:
    """The baseline of a warm rescan: walk the tree and stat every file."""
    count = 0
    for folder, _, files in os.walk(root):
        for name in files:
            os.stat(os.path.join(folder, name))
            count += 1
    return count


def make_backend(root: Path, cache: Path, workers: int) -> Any:
    """A discovery backend for ``root`` with its index under ``cache``."""
    import databackend_local
    from databackend.build import build_metadata, build_storage
    from databackend.config.loader import load_config
    from databackend.context import BuildContext
    from databackend.options import FactoryOptions
    from databackend.plugins import make_plugin_manager
    from databackend.registry import PluginRegistry

    registry = PluginRegistry.collect(make_plugin_manager(entrypoints=False,
                                                          extra=[databackend_local]))
    options = FactoryOptions(output_dir=str(cache), scan_workers=workers)
    plan = load_config([{"id": "bench", "type": "local", "instance_data_dir": str(root)}],
                       registry, options)
    context = BuildContext(options=options, registry=registry)
    dataset = plan.datasets[0]
    return build_metadata(dataset, build_storage(dataset, context), context)


def cold_scan(root: Path, workers: int) -> Any:
    """One scan with an empty index folder (building the backend is not timed)."""
    cache = Path(tempfile.mkdtemp(prefix="scanbench-cache-"))
    try:
        backend = make_backend(root, cache, workers)
        start = time.perf_counter()
        report = backend.scan(progress=False)
        report.elapsed = time.perf_counter() - start
        return report
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def _rss_meter() -> Callable[[], float]:
    """Returns a function giving the peak RSS growth (MB) since the meter was made."""
    import psutil

    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = [base]

    def growth() -> float:
        peak[0] = max(peak[0], proc.memory_info().rss)
        return (peak[0] - base) / 1e6
    return growth


def synthetic_build(n: int, path: str) -> dict[str, float]:
    """Build an ``n``-entry index from arrays (no files) and save it; RSS growth in MB."""
    from databackend.metadata.index import DatasetIndex
    from databackend.storage.localdir import LocalDirectory

    growth = _rss_meter()
    rng = np.random.default_rng(0)
    sizes = rng.integers(256, 4096, size=(n, 2), dtype=np.int32)
    target = (sizes // 64 * 64).clip(64)
    index = DatasetIndex([f"{i % 1000:03d}/image_{i:08d}.jpg" for i in range(n)],
                         file_size=rng.integers(10_000, 9_000_000, n), mtime=np.full(n, 1.7e9),
                         original=sizes, target=target, intermediary=target,
                         crop=np.zeros((n, 2)), downsample=np.full((n, 2), -1),
                         aspect=target[:, 0] / target[:, 1],
                         captions=((f"a photo of subject number {i}",) for i in range(n)),
                         params_fingerprint="synthetic")
    del sizes, target
    built = growth()
    folder, key = os.path.split(path)
    index.save(LocalDirectory(root=folder), key)
    return {"entries": float(len(index)), "build_mb": built, "save_peak_mb": growth(),
            "bytes_mb": os.path.getsize(path) / 1e6}


def synthetic_load(path: str) -> dict[str, float]:
    """Load a saved index and group its buckets; RSS growth in MB."""
    from databackend.metadata.index import DatasetIndex
    from databackend.storage.localdir import LocalDirectory

    growth = _rss_meter()
    start = time.perf_counter()
    folder, key = os.path.split(path)
    index = DatasetIndex.load(LocalDirectory(root=folder), key)
    assert index is not None
    buckets = index.buckets()
    return {"load_mb": growth(), "load_s": time.perf_counter() - start,
            "buckets": float(len(buckets))}


def synthetic(n: int) -> dict[str, float]:
    """Both phases, each in a fresh interpreter so their RSS is not mixed with the rest."""
    folder = tempfile.mkdtemp(prefix="scanbench-synthetic-")
    path = os.path.join(folder, "index.dbi")
    out: dict[str, float] = {}
    try:
        for phase in (["--synthetic-build", str(n)], ["--synthetic-load", "0"]):
            cmd = [sys.executable, __file__, *phase, "--synthetic-path", path]
            done = subprocess.run(cmd, check=True, capture_output=True, text=True)
            out.update(json.loads(done.stdout.splitlines()[-1]))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    out["rss_growth_mb"] = max(out["build_mb"], out["save_peak_mb"], out["load_mb"])
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement; returns the numbers."""
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="scanbench-"))
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    generate(root, args.n)
    print(f"images: {args.n} in {root} (ready in {time.perf_counter() - started:.1f}s)")
    files = all_files(root)
    bare_imagesize(files)  # warm the page cache for both contenders
    t_bare, t_cold, report = best_pair(lambda: bare_imagesize(files),
                                       lambda: cold_scan(root, args.workers), args.repeat)
    cpu_bare = cpu_seconds(lambda: bare_imagesize(files))
    procs = len(os.sched_getaffinity(0))
    t_par, t_cold2, _ = best_pair(lambda: bare_imagesize_parallel(files, procs),
                                  lambda: cold_scan(root, args.workers), args.repeat)
    t_par_proc, t_cold_proc = best_processes(max(1, args.repeat // 2), root, args.workers)
    cold_cache = Path(tempfile.mkdtemp(prefix="scanbench-cpu-"))
    cold = make_backend(root, cold_cache, args.workers)
    cpu_cold = cpu_seconds(lambda: cold.scan(progress=False))
    shutil.rmtree(cold_cache, ignore_errors=True)
    cache = Path(tempfile.mkdtemp(prefix="scanbench-warm-"))
    backend = make_backend(root, cache, args.workers)
    backend.scan(progress=False)
    t_walk, t_warm, warm = best_pair(lambda: bare_walk(root),
                                     lambda: backend.scan(progress=False), args.repeat)
    shutil.rmtree(cache, ignore_errors=True)
    if not args.dir:
        shutil.rmtree(root, ignore_errors=True)
    out = {"n": len(files), "cpus": len(os.sched_getaffinity(0)),
           "cold_scan_per_s": len(files) / t_cold, "bare_imagesize_per_s": len(files) / t_bare,
           "cold_ratio": t_bare / t_cold, "procs": procs, "par_ratio": t_par / t_cold2,
           "bare_parallel_per_s": len(files) / t_par,
           "proc_ratio": t_par_proc / t_cold_proc, "proc_bare_s": t_par_proc,
           "proc_scan_s": t_cold_proc, "cold_cpu_us_per_file": cpu_cold / len(files) * 1e6,
           "bare_cpu_us_per_file": cpu_bare / len(files) * 1e6,
           "warm_rescan_s": t_warm, "bare_walk_stat_s": t_walk,
           "warm_ratio": t_warm / t_walk, "kept": report.counts["kept"],
           "warm_probed": warm.counts["probed"],
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "peak_rss_workers_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}
    if args.synthetic:
        out["synthetic"] = synthetic(args.synthetic)
    return out


def show(r: dict[str, Any]) -> None:
    """Print the numbers."""
    print(f"cpus: {r['cpus']}, files: {r['n']}, kept: {r['kept']}")
    print(f"cold scan:        {r['cold_scan_per_s']:>10,.0f} files/s")
    print(f"bare imagesize:   {r['bare_imagesize_per_s']:>10,.0f} files/s")
    print(f"cold ratio:       {r['cold_ratio']:>10.2f}x   (target >= 1.0)")
    print(f"bare on {r['procs']} procs:  {r['bare_parallel_per_s']:>10,.0f} files/s")
    print(f"cold ratio vs bare loop on {r['procs']} processes, in-process: "
          f"ratio {r['par_ratio']:.2f}x   (target >= 1.0)")
    print(f"cold ratio vs bare loop on {r['procs']} processes, whole processes (CLI) "
          f"({r['proc_scan_s']:.2f}s vs {r['proc_bare_s']:.2f}s): ratio {r['proc_ratio']:.2f}x   "
          "(target >= 1.0)")
    print(f"CPU per file:     {r['cold_cpu_us_per_file']:>10.1f} us scan (all processes), "
          f"{r['bare_cpu_us_per_file']:.1f} us imagesize")
    print(f"warm rescan:      {r['warm_rescan_s'] * 1000:>10.1f} ms  ({r['warm_probed']} probed)")
    print(f"bare walk+stat:   {r['bare_walk_stat_s'] * 1000:>10.1f} ms")
    print(f"warm ratio:       {r['warm_ratio']:>10.2f}x   (target <= 2.0)")
    print(f"peak RSS:         {r['peak_rss_mb']:>10.1f} MB (workers {r['peak_rss_workers_mb']:.1f})")
    syn = r.get("synthetic")
    if syn:
        print(f"synthetic index:  {syn['entries']:>10,.0f} entries, {syn['buckets']:.0f} buckets, "
              f"{syn['bytes_mb']:.1f} MB on disk, loaded in {syn['load_s']:.2f}s")
        print(f"  RSS growth:     build {syn['build_mb']:.1f} MB, save peak "
              f"{syn['save_peak_mb']:.1f} MB, load+buckets {syn['load_mb']:.1f} MB "
              "(target < 300)")


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="images to generate")
    parser.add_argument("--dir", help="folder to generate into and reuse (default: temporary)")
    parser.add_argument("--workers", type=int, default=0, help="scan_workers (0 = per CPU)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per timing (best is kept)")
    parser.add_argument("--synthetic", type=int, default=1_000_000,
                        help="entries of the synthetic index (0 = skip)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--synthetic-build", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--synthetic-load", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--synthetic-path", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.synthetic_build:
        print(json.dumps(synthetic_build(args.synthetic_build, args.synthetic_path)))
        return 0
    if args.synthetic_load is not None:
        print(json.dumps(synthetic_load(args.synthetic_path)))
        return 0
    result = run(args)
    print(json.dumps(result, indent=2)) if args.json else show(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
