"""Benchmark ``databackend cache --engine ray`` (the Ray Data latent fill) against the local fill.

Usage::

    python benchmarks/ray_cache.py             # 400 images, a local 2-CPU Ray cluster
    python benchmarks/ray_cache.py --n 2000 --cpus 4

Both fills run in this process over the same generated tree (JPEG and PNG, 64-2048 px, the
images of ``benchmarks/scan.py``), with the CPU reference VAE, into fresh output folders:

* the local fill: ``databackend cache`` (scan, decoder processes, encoder, writer thread);
  imports (torch, Ray Data) are warmed up before anything is timed;
* the Ray fill: ``run_cache`` on a local cluster of ``--cpus`` CPUs (scan with its listing
  and probes as Ray tasks, then the decode -> encode -> write pipeline); the cluster's start
  is timed apart and not counted.

Prints the wall time and images/s of each, their ratio (Ray against local on the same
machine: what the pipeline costs where it cannot gain, target >= 0.5x on 2 cores), the
images/s the Ray fill itself reports, and whether both wrote the same files byte for byte.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scan import generate


def _files(out: Path) -> dict[str, bytes]:
    """Every cache file under ``out`` but the index (which carries a generation)."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and "metadata" not in p.parts}


def _config(root: Path, work: Path) -> Path:
    config = work / "config.json"
    config.write_text(json.dumps([{"id": "bench", "type": "local",
                                   "instance_data_dir": str(root), "resolution": 256,
                                   "resolution_type": "pixel_area"}]))
    return config


def _local(config: Path, out: Path) -> float:
    from databackend.cli import main

    start = time.perf_counter()
    if main(["cache", str(config), "--option", f"output_dir={out}", "--no-progress"]) != 0:
        raise SystemExit("the local fill failed")
    return time.perf_counter() - start


def _ray(config: Path, out: Path, decoder_cpus: float) -> tuple[float, float]:
    """Wall seconds of the Ray fill and the images/s its report gives."""
    from databackend.caches import ReferenceTextEncoder, ReferenceVAE
    from databackend.engines.raycache import run_cache
    from databackend.engines.raydata import RayFillOptions

    args = argparse.Namespace(config=str(config), var=[], option=[f"output_dir={out}"],
                              batch_size=8, text_batch_size=32, address=None, no_progress=True)
    start = time.perf_counter()
    runs = run_cache(args, (ReferenceTextEncoder(), ReferenceVAE()), shares=1,
                     options=RayFillOptions(decoder_cpus=decoder_cpus))
    seconds = time.perf_counter() - start
    latents = next(r.report for r in runs if r.kind == "latents")
    if latents.failed:
        raise SystemExit(f"the Ray fill failed: {latents.failed[:3]}")
    return seconds, latents.per_second


def main() -> None:
    """Run both fills and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=400, help="images")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    parser.add_argument("--decoder-cpus", type=float, default=1.0,
                        help="CPUs reserved per decode actor")
    opts = parser.parse_args()
    import ray
    import ray.data  # imports warmed up before anything is timed
    import torch  # noqa: F401

    import databackend.caches.latents
    import databackend.engines.raystages  # noqa: F401

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        generate(work / "images", opts.n)
        config = _config(work / "images", work)
        t_local = _local(config, work / "local")
        start = time.perf_counter()
        ray.init(num_cpus=opts.cpus, include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=False)
        t_start = time.perf_counter() - start
        try:
            t_ray, reported = _ray(config, work / "ray", opts.decoder_cpus)
        finally:
            ray.shutdown()
        same = _files(work / "local") == _files(work / "ray")
    print(f"images:              {opts.n:>10}")
    print(f"local fill:          {t_local:>10.2f} s   {opts.n / t_local:>8.1f} images/s")
    print(f"ray fill:            {t_ray:>10.2f} s   {opts.n / t_ray:>8.1f} images/s "
          f"(cluster start {t_start:.1f} s not counted)")
    print(f"ray pipeline report: {reported:>10.1f} images/s")
    print(f"ray vs local:        ratio {t_local / t_ray:.2f}x   (target >= 0.5x on 2 cores)")
    print(f"byte-identical:      {same}")


if __name__ == "__main__":
    main()
