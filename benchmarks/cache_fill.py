"""Benchmark the latent fill's CPU side against a bare multi-process decode loop.

Usage::

    python benchmarks/cache_fill.py                    # mixed set and large photos
    python benchmarks/cache_fill.py --mixed 96 --large 16 --repeat 3

The encoder returns zeros (so the figures measure the pipeline, not a model) and takes uint8
pixels, as the bare loop ends with uint8 tensors (``--float32``: float32 pixels the fill
normalises on the CPU, as for a CPU encoder). Prints, measured
in the same run (best of ``--repeat``, contenders alternating), for a mixed dataset (JPEG and
PNG, 0.3-4 MP, some with EXIF rotation) and for large photos (12-24 MP JPEGs), both to about
1 MP buckets:

* the bare loop: a process pool of one process per core doing PIL open, EXIF transpose, RGB,
  resize, crop and to-tensor (uint8), the tensors sent back to the parent (its pool started
  before the clock: its best case; the fill's time includes starting its decoders);
* ``LatentCache.precompute`` with draft decoding off and on: images/s and the ratio against
  the bare loop (target >= 0.95x), the share of wall time the encoder waited for pixels
  (target < 10%), and peak RSS (this process; worker processes).

Measured on 2 cores (``--mixed 96 --large 16 --repeat 3``, docs/caches.md run F), against the
tensor loop: mixed set 1.13x (draft off) and 1.22x (draft on), 12-24 MP photos 1.06x and
3.04x; encoder wait after the first batch 0.0% on both; with ``--float32`` (run G) 0.96x and
1.00x on the mixed set (the CPU normalisation, 6-9 ms per 1 MP image), 1.08x and 2.99x on the
photos.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from databackend.caches import LatentCache
from databackend.caches.loaders import core_count
from databackend.geometry import GeometryParams, apply_geometry, compute_geometry
from databackend.metadata.index import DatasetIndex
from databackend.storage.localdir import LocalDirectory

PARAMS = GeometryParams.create(resolution=1.0, resolution_type="area", alignment=64)


def _photo(width: int, height: int, rng: random.Random) -> Image.Image:
    """A photo-like texture: smooth colour fields plus fine grain."""
    small = np.random.default_rng(rng.randrange(1 << 30)).integers(
        0, 256, (max(2, height // 64), max(2, width // 64), 3), dtype=np.uint8)
    base = Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)
    grain = np.random.default_rng(1).integers(-12, 12, (height, width, 1), dtype=np.int16)
    return Image.fromarray(np.clip(np.asarray(base, dtype=np.int16) + grain, 0, 255)
                           .astype(np.uint8))


def make_images(root: Path, n: int, large: bool, seed: int) -> None:
    """``n`` images under ``root``: large 12-24 MP JPEGs, or a mixed JPEG/PNG set."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        if large:
            w, h = rng.choice([(4000, 3000), (4896, 3264), (6000, 4000), (3000, 4000)])
        else:
            w, h = rng.choice([(640, 480), (1024, 1024), (1600, 1200), (2048, 1536), (900, 1400)])
        image = _photo(w, h, rng)
        ext = "png" if not large and k % 4 == 3 else "jpg"
        exif = Image.Exif()
        if ext == "jpg" and k % 5 == 2:
            exif[0x0112] = 6
        image.save(root / f"{k:04d}.{ext}", quality=90, exif=exif)


class Source:
    """A minimal sample source over a folder that lets the fill open its files."""

    def __init__(self, root: Path) -> None:
        """Index the folder with the scan's geometry."""
        self.root = root
        files = sorted(root.iterdir())
        geos = []
        for p in files:
            with Image.open(p) as im:
                w, h = ImageOps.exif_transpose(im).size
            geos.append(compute_geometry(w, h, PARAMS, key=p.name))
        stats = [p.stat() for p in files]
        self.index = DatasetIndex(
            [p.name for p in files], file_size=[s.st_size for s in stats],
            mtime=[s.st_mtime for s in stats], original=[g.original_size for g in geos],
            target=[g.target_size for g in geos], intermediary=[g.intermediary_size for g in geos],
            crop=[g.crop_coordinates for g in geos],
            downsample=[g.downsample_size or (-1, -1) for g in geos],
            aspect=[g.aspect_bucket for g in geos], captions=[("",) for _ in files],
            params_fingerprint=PARAMS.fingerprint())

    def load_image(self, i: int) -> Image.Image:
        """Full decode."""
        with Image.open(self.root / self.index.paths[i]) as im:
            return ImageOps.exif_transpose(im).convert("RGB")

    def raw_image(self, i: int) -> tuple[str | None, Any]:
        """The local file."""
        return str(self.root / self.index.paths[i]), None

    def sample_key(self, i: int) -> str:
        """path|size|mtime."""
        idx = self.index
        return f"{idx.paths[i]}|{idx.file_size[i]}|{idx.mtime[i]}"


class ZeroVAE:
    """An encoder that returns zeros of a VAE's output shape. It takes its pixels as uint8
    (``input_dtype = torch.uint8``), as the bare loop's tensors are: normalising them is the
    encoder's device's work (a GPU's), which this machine's CPU would not do; ``--float32``
    makes it a float32 CPU encoder instead, whose normalisation the fill does on the CPU."""

    identity = "zeros:v1"

    def __init__(self, float32: bool = False) -> None:
        """uint8 pixels, or ``float32`` ones normalised by the fill."""
        self.float32 = float32

    @property
    def input_dtype(self) -> Any:
        """uint8 (normalised by the encoder's device), or float32 with ``--float32``."""
        import torch

        return torch.float32 if self.float32 else torch.uint8

    def __call__(self, pixels: Any) -> Any:
        """Zeros ``[B, 4, H/8, W/8]`` (fp16)."""
        import torch

        b, _, h, w = pixels.shape
        return torch.zeros(b, 4, h // 8, w // 8, dtype=torch.float16)


class SleepVAE(ZeroVAE):
    """Zeros after sleeping ``seconds`` per image: an encoder that, like a GPU, takes time
    without taking this machine's CPU."""

    def __init__(self, seconds: float, float32: bool = False) -> None:
        """Sleep ``seconds`` per image."""
        super().__init__(float32)
        self.seconds = seconds

    def __call__(self, pixels: Any) -> Any:
        """Sleep, then zeros."""
        time.sleep(self.seconds * pixels.shape[0])
        return super().__call__(pixels)


def _bare_one(job: tuple[str, Any, bool]) -> Any:
    import torch

    path, geometry, tensor = job
    with Image.open(path) as im:
        image = ImageOps.exif_transpose(im).convert("RGB")
    image = apply_geometry(image, geometry)
    array = np.array(image)
    return torch.from_numpy(array).permute(2, 0, 1) if tensor else array


def _warm(_: int) -> int:
    import torch

    return int(torch.zeros(1).sum())


def bare(source: Source, tensor: bool) -> float:
    """Seconds for the bare process-pool loop over every sample (its pool started and torch
    imported in its workers before the clock starts: the bare loop's best case, while the
    fill's time includes starting its decoders); ``tensor``: the workers return uint8 tensors
    (sent through torch's shared-memory pickling), else arrays. The pool uses ``spawn``, so
    the fill's decoders start from their own forkserver (preloading only the decode module) as
    in a trainer, not from one this loop started with this script as its preload."""
    jobs = [(str(source.root / p), source.index.geometry(i), tensor)
            for i, p in enumerate(source.index.paths)]
    with multiprocessing.get_context("spawn").Pool(core_count()) as pool:
        pool.map(_warm, range(core_count()))
        start = time.perf_counter()
        for _ in pool.imap(_bare_one, jobs, chunksize=1):
            pass
        return time.perf_counter() - start


class PeakRSS:
    """Polls the RSS of this process's descendants (the decoder processes) in a thread."""

    def __init__(self) -> None:
        """Start polling."""
        import threading

        self.peak, self._stop = 0.0, threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.wait(0.05):
            for child in me.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    self.peak = max(self.peak, child.memory_info().rss / 2**20)

    def stop(self) -> float:
        """Stop; the largest descendant RSS seen, in MB."""
        self._stop.set()
        self._thread.join()
        return self.peak


def ours(source: Source, cache_dir: Path, draft: bool, encoder: Any) -> Any:
    """The precompute report of a fresh fill (decoder processes started inside), with the
    first batch's wait as ``first_wait``."""
    shutil.rmtree(cache_dir, ignore_errors=True)
    cache = LatentCache(LocalDirectory(root=str(cache_dir)), source,
                        encoder=encoder, draft=draft, workers=core_count(),
                        batch_size=8)
    return cache.precompute(progress=False), cache.last_fill.first_wait_seconds or 0.0


def normalise_ms(source: Source) -> float:
    """Milliseconds per image of the fill's float32 normalisation on this CPU (what a float32
    CPU encoder adds to the fill's process; a GPU does it on the device)."""
    import torch

    from databackend.caches.fill import normalise

    width, height = source.index.geometry(0).target_size
    u8 = torch.zeros((8, height, width, 3), dtype=torch.uint8)
    normalise(u8)
    start = time.perf_counter()
    for _ in range(3):
        normalise(u8)
    return (time.perf_counter() - start) / 24 * 1000


def measure(name: str, source: Source, tmp: Path, repeat: int, float32: bool) -> None:
    """Print one dataset's figures."""
    n = len(source.index)
    t_bare, t_arrays, best, rss = float("inf"), float("inf"), {}, 0.0
    for _ in range(repeat):
        t_bare = min(t_bare, bare(source, tensor=True))
        t_arrays = min(t_arrays, bare(source, tensor=False))
        for draft in (False, True):
            poll = PeakRSS()
            report, _ = ours(source, tmp / "cache", draft, ZeroVAE(float32))
            rss = max(rss, poll.stop())
            if draft not in best or report.seconds < best[draft].seconds:
                best[draft] = report
    print(f"{name}: {n} images, {core_count()} cores")
    print(f"  bare loop:          {n / t_bare:8.2f} images/s (to tensor; arrays instead: "
          f"{n / t_arrays:.2f} images/s)")
    for draft in (False, True):
        r = best[draft]
        print(f"  fill, draft {'on ' if draft else 'off'}:    {n / r.seconds:8.2f} images/s  "
              f"ratio {t_bare / r.seconds:.2f}x (target >= 0.95x); against the array loop "
              f"ratio {t_arrays / r.seconds:.2f}x")
        slow, first = ours(source, tmp / "cache", draft, SleepVAE(1.25 * r.seconds / n, float32))
        steady = slow.wait_seconds - first
        print(f"    encoder at 0.8x the fill's rate: wait "
              f"{100 * slow.wait_seconds / slow.seconds:5.1f}% of wall, "
              f"{100 * steady / slow.seconds:.1f}% after the first batch (target < 10%), busy "
              f"{100 * slow.busy_fraction:.1f}%; zero encoder: wait "
              f"{100 * r.wait_seconds / r.seconds:.0f}%")
    print(f"  peak RSS of a decoder process: {rss:.0f} MB; float32 normalisation on this CPU "
          f"(a float32 CPU encoder, --float32): {normalise_ms(source):.1f} ms/image")


def main() -> None:
    """Build the images and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mixed", type=int, default=48, help="images in the mixed set")
    parser.add_argument("--large", type=int, default=12, help="12-24 MP photos")
    parser.add_argument("--repeat", type=int, default=2, help="best of this many runs")
    parser.add_argument("--dir", help="keep the images here between runs")
    parser.add_argument("--float32", action="store_true",
                        help="the zero encoder takes float32 pixels normalised by the fill on "
                             "the CPU (a CPU encoder) instead of uint8 ones")
    args = parser.parse_args()

    tmp = Path(args.dir or tempfile.mkdtemp(prefix="fillbench-"))
    for name, n, large in (("mixed", args.mixed, False), ("large photos", args.large, True)):
        if n < 1:
            continue
        folder = tmp / name.replace(" ", "_")
        if not folder.is_dir() or len(list(folder.iterdir())) != n:
            shutil.rmtree(folder, ignore_errors=True)
            maker = multiprocessing.get_context("spawn").Process(  # keeps our RSS clean
                target=make_images, args=(folder, n, large, n))
            maker.start()
            maker.join()
        measure(name, Source(folder), tmp, args.repeat, args.float32)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process (torch, the encoder side, batches): {own:.0f} MB")
    if not args.dir:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(__file__))
    main()
