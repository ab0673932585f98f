"""Cache benchmark: reading cached latents, and the precompute step's encode throughput.

Reads: N latents of 4x128x128 fp16 (1024 px SDXL) stored by the latent cache are read back in
batches with ``LatentCache.get_many`` (+ ``torch.stack``), against a bare ``torch.load`` +
``torch.stack`` loop over the same tensors ``torch.save``d one per file, and against a raw
``open().read()`` of our files. All files are read once before timing (warm page cache, as in
training after the first epoch); each figure is the best of ``--repeats`` passes.

Precompute: a local dataset of 1280x1280 JPEGs (bucketed to 1024x1024, so every sample is
decoded, resized and cropped) is scanned with the real metadata backend and its latent and
text caches are filled with the reference encoders. Prints samples/s and the share of wall
time spent outside the encoder.

    python benchmarks/cache_read.py [--n 2000] [--batch 32] [--encode-n 48]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from databackend.caches import LatentCache, ReferenceTextEncoder, ReferenceVAE
from databackend.caches.stores import open_latent_cache, open_text_cache
from databackend.metadata.index import DatasetIndex
from databackend.storage.localdir import LocalDirectory

SIZE = 1024


class SyntheticSource:
    """``n`` samples of 1024x1024, all in one bucket (reads never load images)."""

    def __init__(self, n: int) -> None:
        pairs = np.tile([SIZE, SIZE], (n, 1))
        self.index = DatasetIndex(
            [f"s{i // 1000:03d}/{i:07d}.jpg" for i in range(n)], file_size=np.full(n, 123456),
            mtime=np.full(n, 1.7e9), original=pairs, target=pairs, intermediary=pairs,
            crop=np.zeros((n, 2)), downsample=np.full((n, 2), -1), aspect=np.ones(n),
            captions=[("",)] * n, params_fingerprint="bench")

    def load_image(self, i: int) -> Image.Image:
        raise NotImplementedError("the read benchmark never encodes")

    def sample_key(self, i: int) -> str:
        idx = self.index
        return f"{idx.paths[i]}|{idx.file_size[i]}|{idx.mtime[i]}"


def best_rate(n: int, repeats: int, fn: Callable[[], Any]) -> float:
    """Items per second of the fastest of ``repeats`` runs of ``fn`` (after one warm-up)."""
    fn()
    best = min(_timed(fn) for _ in range(repeats))
    return n / best


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[k:k + size] for k in range(0, len(items), size)]


def bench_reads(work: Path, n: int, batch: int, repeats: int, read_workers: list[int]) -> None:
    """Write ``n`` latents both ways, then time the readers (ours with each read_workers)."""
    source = SyntheticSource(n)
    storage = LocalDirectory(root=str(work / "ours"))
    writer = LatentCache(storage, source, identity="bench-vae", write_batch_size=256)
    gen = torch.Generator().manual_seed(0)
    pt_paths = []
    (work / "pt").mkdir(parents=True)
    for chunk in _chunks(range(n), 256):
        latents = torch.randn(len(chunk), 4, SIZE // 8, SIZE // 8, generator=gen).half()
        writer.put_many(list(chunk), list(latents))
        for i, lat in zip(chunk, latents, strict=True):
            pt_paths.append(str(work / "pt" / f"{i}.pt"))
            torch.save(lat.clone(), pt_paths[-1])
    ours_paths = [storage.full(writer.path(i)) for i in range(n)]
    batches = _chunks(list(range(n)), batch)

    def ours(cache: LatentCache) -> Callable[[], None]:
        def run() -> None:
            for b in batches:
                torch.stack([e.latents for e in cache.get_many(b)])
        return run

    def bare_torch() -> None:
        for b in _chunks(pt_paths, batch):
            torch.stack([torch.load(p) for p in b])

    def raw() -> None:
        for p in ours_paths:
            with open(p, "rb") as fh:
                fh.read()

    assert torch.equal(writer.get_many([n - 1])[0].latents, torch.load(pt_paths[-1]))
    caches = {w: LatentCache(storage, source, identity="bench-vae", read_workers=w)
              for w in read_workers}
    r_torch = best_rate(n, repeats, bare_torch)
    rates = {w: best_rate(n, repeats, ours(c)) for w, c in caches.items()}
    r_raw = best_rate(n, repeats, raw)
    size = Path(ours_paths[0]).stat().st_size
    print(f"read {n} latents 4x{SIZE // 8}x{SIZE // 8} fp16 ({size} B/file), batches of {batch}, "
          f"best of {repeats}:")
    print(f"  torch.load + stack loop          : {r_torch:8.0f} samples/s")
    for w, rate in rates.items():
        print(f"  LatentCache.get_many + stack, {w:>2} read thread(s): {rate:8.0f} samples/s   "
              f"{rate / r_torch:.2f}x torch.load (target >= 2x), {rate / r_raw:.2f}x raw read")
    print(f"  raw open().read() of our files   : {r_raw:8.0f} files/s")
    for c in caches.values():
        assert c.stats.misses == 0
        c.close()


def _images(root: Path, n: int, edge: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        small = rng.integers(0, 256, (edge // 16, edge // 16, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((edge, edge), Image.Resampling.BILINEAR)
        path = root / f"d{i % 4}" / f"img{i:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, quality=90)


def bench_precompute(work: Path, n: int, batch: int) -> None:
    """Scan a generated dataset and fill its caches with the reference encoders."""
    from databackend.build import build_metadata, build_storage
    from databackend.config.loader import load_config
    from databackend.context import BuildContext
    from databackend.options import FactoryOptions
    from databackend.plugins import make_plugin_manager
    from databackend.registry import PluginRegistry

    try:  # work from a source checkout too (no installed entry points)
        import databackend_local
        extra = [databackend_local]
    except ImportError:
        extra = []

    _images(work / "images", n, 1280)
    entry = {"id": "bench", "type": "local", "dataset_type": "image", "crop": True,
             "crop_style": "center", "instance_data_dir": str(work / "images"),
             "resolution": SIZE, "resolution_type": "pixel"}
    options = FactoryOptions(output_dir=str(work / "out"))
    registry = PluginRegistry.collect(make_plugin_manager(entrypoints=not extra, extra=extra))
    plan = load_config([entry], registry, options)
    context = BuildContext(options=options, registry=registry)
    dataset = plan.datasets[0]
    meta = build_metadata(dataset, build_storage(dataset, context), context)
    meta.scan(progress=False)
    vae = ReferenceVAE()
    cache = open_latent_cache(plan, dataset, meta, context, vae, batch_size=batch)
    report = cache.precompute(progress=False)
    per = report.encode_seconds / max(1, report.encoded) * 1e3
    print(f"precompute latents: {report.encoded} images 1280x1280 -> 4x{SIZE // 8}x{SIZE // 8}, "
          f"batch {batch}, {cache.workers} loader threads, {torch.get_num_threads()} torch threads")
    print(f"  {report.encoded / report.seconds:7.2f} samples/s; encoder {per:.0f} ms/sample; "
          f"outside the encoder {report.outside_share:.0%} of wall time (target < 30%)")
    text = open_text_cache(plan, dataset, context, ReferenceTextEncoder(pooled=1280))
    captions = [f"a photo of subject {i}, detailed, high quality" for i in range(n * 20)]
    t_report = text.precompute(captions, progress=False)
    print(f"precompute text: {t_report.encoded} captions -> 77x768 + pooled 1280 fp16")
    print(f"  {t_report.encoded / t_report.seconds:7.0f} captions/s; outside the encoder "
          f"{t_report.outside_share:.0%} of wall time")


def main() -> None:
    """Parse arguments and run both benchmarks in a temporary folder."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="latents to read")
    parser.add_argument("--batch", type=int, default=32, help="read batch size")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per reader")
    parser.add_argument("--read-workers", default="1,4",
                        help="comma-separated read_workers settings to time")
    parser.add_argument("--encode-n", type=int, default=48, help="images to precompute")
    parser.add_argument("--encode-batch", type=int, default=8, help="VAE batch size")
    parser.add_argument("--dir", help="work folder (default: a temporary one, removed)")
    args = parser.parse_args()
    work = Path(args.dir or tempfile.mkdtemp(prefix="databackend-bench-"))
    try:
        bench_reads(work / "reads", args.n, args.batch, args.repeats,
                    [int(w) for w in args.read_workers.split(",")])
        if args.encode_n:
            bench_precompute(work / "encode", args.encode_n, args.encode_batch)
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
