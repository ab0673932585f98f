"""ControlNet round trip: conditioning images are the inverted source images, so every
conditioning tensor of every batch must equal the inversion of that batch's source crop (random
crops, several aspect buckets, subfolders and another file extension included)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from condfiles import entries, factory, make_pairs

from databackend.caches import ReferenceVAE
from databackend.caches.imaging import load_pixels

SIZES = [(96, 64), (64, 96), (80, 80), (128, 72), (72, 112)]
CROP = {"crop": True, "crop_style": "random", "crop_aspect": "closest",
        "crop_aspect_buckets": [1.0, 1.5, 0.67]}


@pytest.fixture
def pairs(tmp_path: Path) -> tuple[Path, Path]:
    specs = []
    for n in range(14):
        w, h = SIZES[n % len(SIZES)]
        sub = f"set{n % 2}/" if n % 3 else ""
        src = f"{sub}img_{n:02d}.{'jpg' if n % 4 == 0 else 'png'}"
        specs.append((src, f"{sub}img_{n:02d}.png", w, h))
    return make_pairs(tmp_path, specs)


def hint(cond: Path, **keys: Any) -> dict[str, Any]:
    return {"id": "hint", "type": "local", "instance_data_dir": str(cond),
            "dataset_type": "conditioning", "conditioning_type": "controlnet", **keys}


def test_every_conditioning_latent_matches_its_source_crop(pairs: tuple[Path, Path],
                                                           tmp_path: Path) -> None:
    src, cond = pairs
    config = entries(src, tmp_path, hint(cond), conditioning_data="hint", **CROP)
    f = factory(config, tmp_path, max_epochs=2).build()
    batches = list(f.iterator(prefetch=False))
    f.close()
    assert len({b.bucket for b in batches}) >= 2
    vae, source_meta = ReferenceVAE(), f.metadata["src"]
    crops = {tuple(source_meta.index.crop[i]) for i in range(len(source_meta.index))}
    assert len(crops) > 3  # real random crops, not all at the origin
    seen = set()
    for b in batches:
        (entry,) = b.conditioning
        assert entry.dataset_id == "hint" and entry.conditioning_type == "controlnet"
        assert entry.rows.tolist() == list(range(len(b)))
        assert isinstance(entry.latents, torch.Tensor)
        assert entry.latents.shape == b.latents.shape
        pixels = torch.stack([load_pixels(source_meta, i) for i in b.indices])
        expected = vae(-pixels)  # inversion of 0..255 is negation in [-1, 1]
        torch.testing.assert_close(entry.latents.float(), expected.float(), atol=2e-2, rtol=0)
        wrong = vae(-pixels.flip(-1))  # a misaligned crop would be far off
        assert (entry.latents.float() - wrong.float()).abs().max() > 0.1
        seen.update(b.indices)
        moved = b.pin_memory() if torch.cuda.is_available() else b.to("cpu")
        assert torch.equal(moved.conditioning[0].latents, entry.latents)
    assert len(seen) == len(source_meta.index)


def test_pixels_output_equals_inverted_source_crop(pairs: tuple[Path, Path],
                                                   tmp_path: Path) -> None:
    src, cond = pairs
    config = entries(src, tmp_path, hint(cond, conditioning_output="pixels"),
                     conditioning_data=["hint"], **CROP)
    f = factory(config, tmp_path, max_epochs=1).build()
    for b in f.iterator(prefetch=False):
        (entry,) = b.conditioning
        assert entry.latents is None and entry.pixels is not None
        w, h = b.bucket
        assert entry.pixels.shape == (len(b), 3, h, w) and entry.pixels.dtype == torch.float32
        pixels = torch.stack([load_pixels(f.metadata["src"], i) for i in b.indices])
        assert (entry.pixels + pixels).abs().max() <= 2 / 127.5 + 1e-6
        assert b.conditioning_pixel_values[0] is entry.pixels
    f.close()
