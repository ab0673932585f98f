"""Helpers for the cache tests (no tests here): noisy images, a stand-in sample source, a
slow encoder for the kill-and-resume test.

:class:`FolderSource` is a *minimal stand-in* for a metadata backend, used by the cache unit
tests only: it builds a real :class:`DatasetIndex` with ``compute_geometry`` over a folder.
The round-trip tests use the real discovery metadata backend.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from databackend.caches.encoders import ReferenceVAE
from databackend.geometry import GeometryParams, compute_geometry
from databackend.metadata.index import DatasetIndex

IMAGE_SPECS = [("a/one.jpg", 96, 64), ("a/two.png", 64, 96), ("b/three.jpg", 80, 80),
               ("b/four.png", 128, 72), ("five.jpg", 64, 64), ("a/one.png", 100, 70)]


def write_noise(path: Path, width: int, height: int, seed: int) -> Path:
    """A textured RGB image (so that crops change the pixels); format from the suffix."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, height // 8), max(2, width // 8), 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def make_noise_images(root: Path, specs: list[tuple[str, int, int]] = IMAGE_SPECS) -> Path:
    """Write ``specs`` under ``root``; returns ``root``."""
    for n, (rel, w, h) in enumerate(specs):
        write_noise(root / rel, w, h, seed=n)
    return root


def params(**kw: Any) -> GeometryParams:
    """Small-resolution geometry settings for tests."""
    base: dict[str, Any] = {"resolution": 64, "resolution_type": "pixel", "alignment": 16}
    return GeometryParams.create(**{**base, **kw})


class FolderSource:
    """Stand-in for a metadata backend: index, load_image, sample_key (unit tests only)."""

    def __init__(self, root: Path, geometry: GeometryParams) -> None:
        self.root = root
        files = sorted(p for p in root.rglob("*") if p.suffix in (".jpg", ".png"))
        rows = []
        for p in files:
            with Image.open(p) as im:
                w, h = ImageOps.exif_transpose(im).size
            rel = p.relative_to(root).as_posix()
            rows.append((rel, p.stat(), compute_geometry(w, h, geometry, key=rel)))
        g = [r[2] for r in rows]
        self.index = DatasetIndex(
            [r[0] for r in rows], file_size=[r[1].st_size for r in rows],
            mtime=[r[1].st_mtime for r in rows], original=[x.original_size for x in g],
            target=[x.target_size for x in g], intermediary=[x.intermediary_size for x in g],
            crop=[x.crop_coordinates for x in g],
            downsample=[x.downsample_size or (-1, -1) for x in g],
            aspect=[x.aspect_bucket for x in g],
            captions=[(f"a photo of {Path(r[0]).stem}",) for r in rows],
            params_fingerprint=geometry.fingerprint())
        self.loads = 0

    def load_image(self, i: int) -> Image.Image:
        self.loads += 1
        with Image.open(self.root / self.index.paths[i]) as im:
            return ImageOps.exif_transpose(im).convert("RGB")

    def sample_key(self, i: int) -> str:
        idx = self.index
        return f"{idx.paths[i]}|{idx.file_size[i]}|{idx.mtime[i]}"


class SlowVAE(ReferenceVAE):
    """The reference VAE, slowed down so that a test can kill a precompute midway."""

    def __init__(self) -> None:
        super().__init__(4)
        self.identity = "slow-reference-vae:v1"

    def __call__(self, pixels: Any) -> Any:
        time.sleep(float(os.environ.get("SLOW_VAE_SECONDS", "0.15")))
        return super().__call__(pixels)
