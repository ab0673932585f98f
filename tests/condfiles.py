"""Helpers for the conditioning tests: noise images, their known transforms, configs and
factories (a module of its own: ``conftest`` names clash across the test folders)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

import databackend_local
from databackend.caches import ReferenceTextEncoder, ReferenceVAE
from databackend.factory import DataBackendFactory
from databackend.plugins import make_plugin_manager


def noise_image(path: Path, width: int, height: int, seed: int) -> np.ndarray:
    """Write an RGB noise image (the format from the suffix); returns its decoded pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return np.asarray(Image.open(path).convert("RGB"))


def inverted(path: Path, pixels: np.ndarray) -> None:
    """Write ``255 - pixels`` losslessly (the known transform of the ControlNet tests)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(255 - pixels).save(path)


def make_pairs(root: Path, specs: Iterable[tuple[str, str, int, int]]) -> tuple[Path, Path]:
    """``(source path, conditioning path, W, H)`` specs -> ``(source root, cond root)``; each
    conditioning image is the inverted source image (an empty cond path writes none)."""
    src, cond = root / "src", root / "cond"
    for n, (s, c, w, h) in enumerate(specs):
        pixels = noise_image(src / s, w, h, seed=n)
        if c:
            inverted(cond / c, pixels)
    cond.mkdir(parents=True, exist_ok=True)
    return src, cond


def entries(src: Path, tmp: Path, *extra: dict[str, Any], **source_keys: Any
            ) -> list[dict[str, Any]]:
    """A text cache, a latent store, the source ``src`` and ``extra`` entries."""
    return [
        {"id": "text", "dataset_type": "text_embeds", "type": "local",
         "cache_dir": str(tmp / "cache/text")},
        {"id": "vae", "dataset_type": "image_embeds", "type": "local",
         "cache_dir": str(tmp / "cache/vae")},
        {"id": "src", "type": "local", "instance_data_dir": str(src), "image_embeds": "vae",
         "train_batch_size": 2, **source_keys},
        *extra]


def options(tmp: Path, **extra: Any) -> dict[str, Any]:
    """Small-resolution factory options writing under ``tmp``."""
    return {"output_dir": str(tmp / "out"), "resolution": 64, "resolution_type": "pixel_area",
            "aspect_bucket_alignment": 16, **extra}


def factory(config: Sequence[dict[str, Any]], tmp: Path, *, plugins: Sequence[Any] = (),
            opts: dict[str, Any] | None = None, **kw: Any) -> DataBackendFactory:
    """A factory with the local plugin and the CPU reference encoders."""
    pm = make_plugin_manager(entrypoints=False, extra=[databackend_local, *plugins])
    kw.setdefault("text_encoder", ReferenceTextEncoder(width=16, seq_len=8))
    kw.setdefault("image_encoder", ReferenceVAE())
    return DataBackendFactory(list(config), plugin_manager=pm, options=opts or options(tmp),
                              **kw)
