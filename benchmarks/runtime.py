"""Runtime benchmark: consumer wait with and without the BatchFetcher, and iteration overhead.

A local dataset (two folders of JPEGs of a few sizes) is scanned and its caches are filled with
the reference encoders (SDXL-like shapes: latents 4 x h/8 x w/8 fp16, text 77 x 768 fp16 plus
a mask). Then:

1. **Consumer wait.** A training step is simulated with ``time.sleep(step_ms)``; the time the
   loop spends in ``next()`` is measured per step after ``--warmup`` batches, with the
   prefetching fetcher and without it (batches built inline). Target: < 1 ms with it.
2. **Iteration overhead.** Batches/s of pure iteration (no training step, no prefetch) against a
   bare loop that reads the *same* cache files for the same batches (paths resolved beforehand)
   and only unpacks and stacks them (with the same single-threaded copy the runtime uses).
   Target ratio >= 0.8. Both read from a warm page cache. They alternate in blocks of
   ``--block`` batches over the same batches (so a burst of load on a shared machine hits both
   alike), and each block counts with its best of ``--repeats`` passes.

    python benchmarks/runtime.py [--images 240] [--steps 150] [--batch 4] [--step-ms 50]
        [--repeats 5] [--block 10]
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from databackend.caches import ReferenceTextEncoder, ReferenceVAE
from databackend.caches.format import read_blobs, unpack
from databackend.factory import DataBackendFactory
from databackend.plugins import make_plugin_manager
from databackend.registry import PluginRegistry

SIZES = ((512, 512), (640, 384), (384, 640), (576, 448))


def make_dataset(root: Path, n: int) -> list[dict[str, Any]]:
    """``n`` JPEGs with captions in two folders; returns the config entries."""
    from PIL import Image

    rng = random.Random(0)
    for i in range(n):
        folder = root / ("a" if i % 3 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        w, h = SIZES[i % len(SIZES)]
        colour = tuple(rng.randrange(256) for _ in range(3))
        Image.new("RGB", (w, h), colour).save(folder / f"{i:05d}.jpg", quality=80)
        (folder / f"{i:05d}.txt").write_text(f"sample {i} in colour {colour}\n")
    cache = root / "cache"
    return [
        {"id": "text", "dataset_type": "text_embeds", "type": "local",
         "cache_dir": str(cache / "text")},
        {"id": "vae", "dataset_type": "image_embeds", "type": "local",
         "cache_dir": str(cache / "vae")},
        {"id": "a", "type": "local", "instance_data_dir": str(root / "a"),
         "caption_strategy": "textfile", "image_embeds": "vae", "repeats": 2},
        {"id": "b", "type": "local", "instance_data_dir": str(root / "b"),
         "caption_strategy": "textfile", "image_embeds": "vae", "repeats": 4},
    ]


def build(entries: list[dict[str, Any]], root: Path, batch: int, queue: int
          ) -> DataBackendFactory:
    """A built factory over ``entries`` (caches filled on the first call)."""
    pm = make_plugin_manager()
    if "local" not in PluginRegistry.collect(pm).backends:  # not pip-installed: use the source
        import databackend_local

        pm.register(databackend_local, name="local")
    return DataBackendFactory(
        entries, text_encoder=ReferenceTextEncoder(), image_encoder=ReferenceVAE(),
        plugin_manager=pm,
        options={"output_dir": str(root / "out"), "resolution": 512,
                 "resolution_type": "pixel_area", "train_batch_size": batch, "seed": 1},
        queue_size=queue).build()


def consumer_wait(factory: DataBackendFactory, *, prefetch: bool, steps: int, warmup: int,
                  step_s: float) -> float:
    """Mean seconds per step spent waiting in ``next()`` after ``warmup`` steps."""
    factory.stop()
    factory.runtime.reset()
    it = factory.iterator(prefetch=prefetch)
    waits = []
    for n in range(warmup + steps):
        start = time.perf_counter()
        next(it)
        if n >= warmup:
            waits.append(time.perf_counter() - start)
        time.sleep(step_s)
    factory.stop()
    return sum(waits) / len(waits)


def bare_jobs(factory: DataBackendFactory, steps: int) -> list[tuple[Any, list[str], Any,
                                                                      list[str]]]:
    """Per batch: (latent storage, latent paths, text storage, text paths), resolved up front."""
    factory.stop()
    factory.runtime.reset()
    jobs = []
    for plan in factory.runtime.plans(steps):
        source = factory.runtime.datasets[factory.runtime.ids.index(plan.dataset_id)].source
        idx = [int(i) for i in plan.indices]
        lat = factory.latent_caches[plan.dataset_id]
        text = source.texts  # type: ignore[attr-defined]
        captions = [source.caption(i, epoch=plan.epoch, step=plan.step)  # type: ignore[attr-defined]
                    for i in idx]
        jobs.append((lat.storage, [lat.path(i) for i in idx], text.storage,
                     [text.path(c) for c in captions]))
    return jobs


def memcpy_stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Stack by one single-threaded ``np.stack``, as the runtime does (``torch.stack`` uses the
    intra-op pool, whose timing swings by 100x on a busy CPU and would decide the comparison)."""
    return torch.from_numpy(np.stack([t.numpy() for t in tensors]))


def bare_pass(jobs: list[tuple[Any, list[str], Any, list[str]]]) -> None:
    """Read, unpack and stack the files of ``jobs`` with no runtime at all."""
    for lat_storage, lat_paths, text_storage, text_paths in jobs:
        latents = [unpack(b)[0]["latents"] for b in read_blobs(lat_storage, lat_paths)]  # type: ignore[arg-type]
        embeds = [unpack(b)[0] for b in read_blobs(text_storage, text_paths)]  # type: ignore[arg-type]
        memcpy_stack(latents)
        {k: memcpy_stack([e[k] for e in embeds]) for k in embeds[0]}


def paired_rates(factory: DataBackendFactory, jobs: list[tuple[Any, list[str], Any, list[str]]],
                 *, block: int, repeats: int) -> tuple[float, float]:
    """Batches/s of pure iteration (no prefetch) and of the bare loop over the same batches.

    The two alternate in blocks of ``block`` batches (the runtime's next ``block`` batches,
    then the bare loop over those same batches), so both see the same machine load; each
    block's time is its best of ``repeats`` passes.
    """
    starts = range(0, len(jobs), block)
    ours, bare = [float("inf")] * len(starts), [float("inf")] * len(starts)
    for _ in range(repeats):
        factory.stop()
        factory.runtime.reset()
        it = factory.iterator(prefetch=False)
        for k, lo in enumerate(starts):
            chunk = jobs[lo:lo + block]
            t0 = time.perf_counter()
            for _ in chunk:
                next(it)
            t1 = time.perf_counter()
            bare_pass(chunk)
            t2 = time.perf_counter()
            ours[k], bare[k] = min(ours[k], t1 - t0), min(bare[k], t2 - t1)
        factory.stop()
    return len(jobs) / sum(ours), len(jobs) / sum(bare)


def main() -> None:
    """Run the benchmark and print the figures (and JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--step-ms", type=float, default=50.0)
    parser.add_argument("--queue", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--block", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="databackend-bench-") as tmp:
        root = Path(tmp)
        entries = make_dataset(root, args.images)
        t0 = time.perf_counter()
        factory = build(entries, root, args.batch, args.queue)
        setup = time.perf_counter() - t0
        step_s = args.step_ms / 1e3
        with_fetch = consumer_wait(factory, prefetch=True, steps=args.steps,
                                   warmup=args.warmup, step_s=step_s)
        without = consumer_wait(factory, prefetch=False, steps=args.steps,
                                warmup=args.warmup, step_s=step_s)
        n = min(args.steps * 4, sum(factory.runtime.batches_per_epoch.values()))
        jobs = bare_jobs(factory, n)
        ours, bare = paired_rates(factory, jobs, block=args.block, repeats=args.repeats)
    result = {"images": args.images, "batch": args.batch, "step_ms": args.step_ms,
              "setup_s": round(setup, 2), "wait_ms_with_fetcher": round(with_fetch * 1e3, 4),
              "wait_ms_without_fetcher": round(without * 1e3, 4), "iter_batches": n,
              "runtime_batches_per_s": round(ours, 1), "bare_batches_per_s": round(bare, 1),
              "ratio": round(ours / bare, 3)}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"setup (scan + precompute, {args.images} images): {setup:.2f} s")
    print(f"mean consumer wait per {args.step_ms:.0f} ms step after {args.warmup} warm-up "
          f"batches: {with_fetch * 1e3:.3f} ms with the fetcher (target < 1 ms), "
          f"{without * 1e3:.3f} ms without")
    print(f"pure iteration over {n} batches of {args.batch}: runtime {ours:.1f} batches/s, "
          f"bare loop over the same cached files {bare:.1f} batches/s, ratio {ours / bare:.2f}x "
          f"(target >= 0.8x)")


if __name__ == "__main__":
    main()
