"""Conditioning benchmark: iteration with one ControlNet dataset, and the scan's pairing cost.

1. **Iteration.** Batches/s of pure iteration (no training step, no prefetch) of a runtime
   whose source has one pixel-aligned conditioning dataset, against the same runtime without
   it (a second factory over the same cached samples, the same batches). Target ratio
   >= 0.6x: pairing itself costs little beyond the second cache read. The two alternate in
   blocks of ``--block`` batches and each block counts with its best of ``--repeats`` passes.
2. **Pairing cost.** Pairing ``--listing`` synthetic source paths (subfolders, the
   conditioning files with another extension) in microseconds per sample, and pairing the
   real dataset against a warm rescan of its two datasets (target <= 0.5x: pairing adds at
   most half of what an unchanged rescan costs).
3. **Conditioning image embeddings.** With ``--image-embeds``, also the batches/s of the
   conditioning runtime whose source and hint datasets both set ``conditioning_image_embeds``
   (two more small cache reads per sample) against the same conditioning runtime without them
   (figure 1's, over the same batches; target >= 0.6x).

    python benchmarks/conditioning.py [--images 160] [--batch 4] [--repeats 5] [--block 10]
        [--listing 100000] [--image-embeds]
"""

from __future__ import annotations

import argparse
import logging
import random
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from databackend.caches import ReferenceTextEncoder, ReferenceVAE
from databackend.conditioning.image_embeds import ReferenceImageEmbedder
from databackend.conditioning.pairing import compute_pairing
from databackend.factory import DataBackendFactory
from databackend.metadata.index import SkippedFiles
from databackend.plugins import make_plugin_manager
from databackend.registry import PluginRegistry

SIZES = ((512, 512), (640, 384), (384, 640))


def make_dataset(root: Path, n: int) -> None:
    """``n`` JPEG sources with captions and a PNG ControlNet hint for each (in subfolders)."""
    from PIL import Image, ImageOps

    rng = random.Random(0)
    for i in range(n):
        w, h = SIZES[i % len(SIZES)]
        sub = f"part{i % 4}"
        image = Image.effect_noise((w, h), 40).convert("RGB")
        image = Image.blend(image, Image.new("RGB", (w, h), tuple(rng.randrange(256)
                                                                   for _ in range(3))), 0.5)
        (root / "src" / sub).mkdir(parents=True, exist_ok=True)
        (root / "hint" / sub).mkdir(parents=True, exist_ok=True)
        image.save(root / "src" / sub / f"{i:05d}.jpg", quality=85)
        (root / "src" / sub / f"{i:05d}.txt").write_text(f"sample {i}\n")
        ImageOps.invert(image).save(root / "hint" / sub / f"{i:05d}.png")


def entries(root: Path, conditioning: bool, embeds: bool = False) -> list[dict[str, Any]]:
    """The config; with ``conditioning`` the source names the hint dataset; with ``embeds``
    both have conditioning image embeddings."""
    cache = root / "cache"
    src: dict[str, Any] = {"id": "src", "type": "local", "instance_data_dir": str(root / "src"),
                           "caption_strategy": "textfile", "image_embeds": "vae", "repeats": 3}
    out = [{"id": "text", "dataset_type": "text_embeds", "type": "local",
            "cache_dir": str(cache / "text")},
           {"id": "vae", "dataset_type": "image_embeds", "type": "local",
            "cache_dir": str(cache / "vae")}, src]
    if conditioning:
        src["conditioning_data"] = "hint"
        out.append({"id": "hint", "type": "local", "instance_data_dir": str(root / "hint"),
                    "conditioning_type": "controlnet", "image_embeds": "vae"})
    if embeds:
        out.insert(2, {"id": "clip", "dataset_type": "conditioning_image_embeds",
                       "type": "local", "cache_dir": str(cache / "clip")})
        for d in out[3:]:
            d["conditioning_image_embeds"] = "clip"
    return out


def build(root: Path, batch: int, conditioning: bool, embeds: bool = False
          ) -> DataBackendFactory:
    """A built factory (caches filled on the first call)."""
    pm = make_plugin_manager()
    if "local" not in PluginRegistry.collect(pm).backends:  # not pip-installed: use the source
        import databackend_local

        pm.register(databackend_local, name="local")
    return DataBackendFactory(
        entries(root, conditioning, embeds), text_encoder=ReferenceTextEncoder(),
        image_encoder=ReferenceVAE(), plugin_manager=pm,
        conditioning_image_encoder=ReferenceImageEmbedder() if embeds else None,
        options={"output_dir": str(root / "out"), "resolution": 512, "seed": 1,
                 "resolution_type": "pixel_area", "train_batch_size": batch}).build()


def paired_rates(ours: DataBackendFactory, base: DataBackendFactory, steps: int, *,
                 block: int, repeats: int) -> tuple[float, float]:
    """Batches/s of ``ours`` and ``base`` over the same batches, alternating in blocks."""
    starts = range(0, steps, block)
    best = {"ours": [float("inf")] * len(starts), "base": [float("inf")] * len(starts)}
    for _ in range(repeats):
        its = {}
        for name, f in (("ours", ours), ("base", base)):
            f.stop()
            f.runtime.reset()
            its[name] = f.iterator(prefetch=False)
        for k, lo in enumerate(starts):
            n = min(block, steps - lo)
            for name in ("ours", "base"):
                t0 = time.perf_counter()
                for _ in range(n):
                    next(its[name])
                best[name][k] = min(best[name][k], time.perf_counter() - t0)
    return steps / sum(best["ours"]), steps / sum(best["base"])


def listing_cost(n: int) -> float:
    """Microseconds per sample to pair ``n`` synthetic paths (other extension, subfolders)."""
    src = [f"set{i % 50}/img_{i:07d}.jpg" for i in range(n)]
    cond = SimpleNamespace(paths=[p[:-4] + ".png" for p in src], skipped=SkippedFiles.empty())
    t0 = time.perf_counter()
    pairing = compute_pairing("src", "hint", SimpleNamespace(paths=src), cond)
    seconds = time.perf_counter() - t0
    assert pairing.paired == n
    return seconds / n * 1e6


def rescan_vs_pairing(root: Path, factory: DataBackendFactory) -> tuple[float, float]:
    """Seconds of a warm rescan of both datasets, and of pairing them (best of 3)."""
    scan, pair = float("inf"), float("inf")
    src, hint = factory.metadata["src"], factory.metadata["hint"]
    for _ in range(3):
        t0 = time.perf_counter()
        src.scan(progress=False)
        hint.scan(progress=False)
        t1 = time.perf_counter()
        compute_pairing("src", "hint", src.index, hint.index)
        t2 = time.perf_counter()
        scan, pair = min(scan, t1 - t0), min(pair, t2 - t1)
    return scan, pair


def embeds_rate(root: Path, args: argparse.Namespace, base: DataBackendFactory, steps: int
                ) -> tuple[float, float]:
    """Batches/s with one conditioning dataset and image embeddings on both datasets, and of
    ``base`` (the same without embeddings) over the same batches."""
    embedded = build(root, args.batch, conditioning=True, embeds=True)
    assert sum(embedded.runtime.batches_per_epoch.values()) == steps
    try:
        return paired_rates(embedded, base, steps, block=args.block, repeats=args.repeats)
    finally:
        embedded.close()


def main() -> None:
    """Run the benchmark and print one line per target figure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=160)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--block", type=int, default=10)
    parser.add_argument("--listing", type=int, default=100_000)
    parser.add_argument("--image-embeds", action="store_true",
                        help="also measure conditioning image embeddings (figure 3)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="databackend-bench-") as tmp:
        root = Path(tmp)
        make_dataset(root, args.images)
        t0 = time.perf_counter()
        ours = build(root, args.batch, conditioning=True)
        base = build(root, args.batch, conditioning=False)
        setup = time.perf_counter() - t0
        steps = sum(ours.runtime.batches_per_epoch.values())
        assert steps == sum(base.runtime.batches_per_epoch.values())
        with_c, without = paired_rates(ours, base, steps, block=args.block,
                                       repeats=args.repeats)
        scan, pair = rescan_vs_pairing(root, ours)
        embedded = embeds_rate(root, args, ours, steps) if args.image_embeds else None
        ours.close()
        base.close()
    per_sample = listing_cost(args.listing)
    print(f"setup (scan + precompute, {args.images} images and hints): {setup:.2f} s")
    print(f"iteration over {steps} batches of {args.batch}: with one conditioning dataset "
          f"{with_c:.1f} batches/s, without {without:.1f} batches/s, ratio "
          f"{with_c / without:.2f}x (target >= 0.6x)")
    print(f"pairing {args.images} samples {pair * 1e3:.3f} ms against a warm rescan of both "
          f"datasets {scan * 1e3:.3f} ms, ratio {pair / scan:.2f}x (target <= 0.5x)")
    print(f"pairing cost at {args.listing} samples (subfolders, other extension): "
          f"{per_sample:.2f} us per sample")
    if embedded is not None:
        print(f"iteration with conditioning image embeddings on source and hint "
              f"{embedded[0]:.1f} batches/s, without them {embedded[1]:.1f} batches/s, "
              f"ratio {embedded[0] / embedded[1]:.2f}x (target >= 0.6x)")


if __name__ == "__main__":
    main()
