"""Benchmark the latent fill with an SDXL-sized VAE on a CUDA device.

Usage::

    python benchmarks/gpu_cache_fill.py                 # 96 photos, batch 8, bf16 on cuda
    python benchmarks/gpu_cache_fill.py --n 192 --batch 16
    python benchmarks/gpu_cache_fill.py --cpu-smoke     # the same code path, tiny VAE, CPU

Builds ``AutoencoderKL`` from SDXL's VAE config (random weights: the speed is the same) in
bfloat16 on ``cuda``, wraps it in :class:`~databackend.adapters.diffusers_vae.DiffusersVAE` and
prints, measured in the same run:

* the encoder alone on ready-made batches already on the device (its ceiling, images/s);
* ``LatentCache.precompute`` over photos of about 1 MP (decode processes, uint8 batches pinned
  and copied ``non_blocking``, normalised on the device, background writes): images/s, the
  ratio to the ceiling, the encoder's busy fraction and its wait for pixels, OOM retries.

Without a CUDA device it prints one line saying so and exits 0 (unless ``--cpu-smoke``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SDXL_VAE = {"in_channels": 3, "out_channels": 3, "latent_channels": 4,
            "down_block_types": ["DownEncoderBlock2D"] * 4,
            "up_block_types": ["UpDecoderBlock2D"] * 4,
            "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2,
            "sample_size": 1024, "scaling_factor": 0.13025, "force_upcast": False}
TINY_VAE = {**SDXL_VAE, "block_out_channels": [8, 8, 8, 8], "layers_per_block": 1,
            "norm_num_groups": 4}


def ceiling(adapter: Any, batch: int, size: tuple[int, int], rounds: int) -> float:
    """Images/s of the encoder alone on batches already on its device."""
    import torch

    pixels = torch.rand(batch, 3, size[1], size[0], device=adapter.device,
                        dtype=adapter.input_dtype) * 2 - 1
    adapter(pixels)  # warm-up (kernels, allocator)
    sync = torch.cuda.synchronize if adapter.device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(rounds):
        adapter(pixels)
    sync()
    return batch * rounds / (time.perf_counter() - start)


def main() -> None:
    """Build the VAE and the photos; print the figures."""
    import torch
    from cache_fill import Source, make_images
    from diffusers import AutoencoderKL

    from databackend.adapters.diffusers_vae import DiffusersVAE
    from databackend.caches import LatentCache
    from databackend.storage.localdir import LocalDirectory

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=96, help="photos to encode")
    parser.add_argument("--batch", type=int, default=8, help="images per encoder call")
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny VAE on the CPU")
    args = parser.parse_args()
    if not torch.cuda.is_available() and not args.cpu_smoke:
        print("skipped: no CUDA device (figures are measured on a GPU host only)")
        return
    device, dtype = ("cpu", torch.float32) if args.cpu_smoke else ("cuda", torch.bfloat16)
    config = TINY_VAE if args.cpu_smoke else SDXL_VAE
    adapter = DiffusersVAE(AutoencoderKL(**config), dtype=dtype, device=device)
    tmp = Path(tempfile.mkdtemp(prefix="gpufill-"))
    try:
        make_images(tmp / "photos", args.n, large=False, seed=1)
        source = Source(tmp / "photos")
        top = ceiling(adapter, args.batch, (1024, 1024), 2 if args.cpu_smoke else 10)
        cache = LatentCache(LocalDirectory(root=str(tmp / "cache")), source, encoder=adapter,
                            batch_size=args.batch)
        r = cache.precompute(progress=False)
        print(f"device {device} ({torch.cuda.get_device_name() if device == 'cuda' else 'cpu'}), "
              f"{dtype}, batch {args.batch}, {args.n} photos, {os.cpu_count()} CPUs")
        print(f"encoder alone (1024x1024):  {top:8.2f} images/s")
        print(f"fill:                       {r.per_second:8.2f} images/s  ratio "
              f"{r.per_second / top:.2f}x of the encoder alone (target >= 0.9x)")
        print(f"encoder busy {100 * r.busy_fraction:.1f}%, waited for pixels "
              f"{100 * r.wait_seconds / r.seconds:.1f}% (target < 10%), "
              f"{r.oom_retries} OOM retries, {len(r.failed)} failed")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(__file__))
    main()
