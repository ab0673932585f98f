"""Mask and reference types, several conditioning datasets per source (combined and random),
and resume: the conditioning of a resumed run is the conditioning of an uninterrupted one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from condfiles import entries, factory, inverted, noise_image, options
from PIL import Image

from databackend.caches import ReferenceVAE
from databackend.caches.imaging import load_pixels, to_pixels
from databackend.geometry import apply_geometry
from databackend.runtime.seeding import uniform

SIZES = [(96, 64), (64, 96), (80, 80)]
CROP = {"crop": True, "crop_style": "random", "crop_aspect": "closest",
        "crop_aspect_buckets": [1.0, 1.5, 0.67]}


def cond(cid: str, root: Path, ctype: str, **keys: Any) -> dict[str, Any]:
    return {"id": cid, "type": "local", "instance_data_dir": str(root),
            "conditioning_type": ctype, "source_dataset_id": "src", **keys}


@pytest.fixture
def data(tmp_path: Path) -> dict[str, Path]:
    """src: 9 noise images; inv: their inversions; copy: copies except img_8; masks: half-size
    binary masks; ref: square or wide references of their own size."""
    roots = {k: tmp_path / k for k in ("src", "inv", "copy", "masks", "ref")}
    rng = np.random.default_rng(0)
    for n in range(9):
        w, h = SIZES[n % 3]
        name = f"img_{n}.png"
        pixels = noise_image(roots["src"] / name, w, h, seed=n)
        inverted(roots["inv"] / name, pixels)
        if n != 8:
            inverted(roots["copy"] / name, 255 - pixels)
        mask = (rng.random((h // 2, w // 2)) > 0.5).astype(np.uint8) * 255
        roots["masks"].mkdir(exist_ok=True)
        Image.fromarray(mask).convert("RGB").save(roots["masks"] / name)
        noise_image(roots["ref"] / name, 64 if n % 2 else 96, 64, seed=100 + n)
    return roots


def test_mask_pixels_follow_the_source_geometry(data: dict[str, Path], tmp_path: Path) -> None:
    config = entries(data["src"], tmp_path, cond("masks", data["masks"], "mask"), **CROP)
    f = factory(config, tmp_path, max_epochs=1).build()
    meta, masks = f.metadata["src"], f.metadata["masks"]
    for b in f.iterator(prefetch=False):
        (entry,) = b.conditioning
        assert entry.conditioning_type == "mask" and entry.latents is None
        for p, i in enumerate(b.indices):
            g = meta.index.geometry(i)
            small = masks.load_image(masks.index.position(meta.index.paths[i]))
            expected = to_pixels(apply_geometry(small.resize(g.original_size, Image.NEAREST), g))
            torch.testing.assert_close(entry.pixels[p], expected, atol=1e-6, rtol=0)
    f.close()


def test_reference_loose_keeps_its_own_geometry(data: dict[str, Path], tmp_path: Path) -> None:
    config = entries(data["src"], tmp_path, cond("ref", data["ref"], "reference_loose"),
                     train_batch_size=3)
    f = factory(config, tmp_path, max_epochs=1).build()
    ref = f.metadata["ref"].index
    shapes = set()
    for b in f.iterator(prefetch=False):
        (entry,) = b.conditioning
        latents = entry.latents if isinstance(entry.latents, list) else list(entry.latents)
        for sid, lat in zip(entry.sample_ids, latents, strict=True):
            w, h = ref.geometry(ref.position(sid.split(":", 1)[1])).target_size
            assert tuple(lat.shape) == (4, h // 8, w // 8)
            shapes.add(tuple(lat.shape))
    f.close()
    assert len(shapes) == 2  # squares and wide references, whatever the source bucket


def _two(data: dict[str, Path], tmp_path: Path, mode: str, **kw: Any) -> Any:
    config = entries(data["src"], tmp_path, cond("inv", data["inv"], "controlnet"),
                     cond("copy", data["copy"], "controlnet"), **CROP)
    return factory(config, tmp_path, opts=options(
        tmp_path, seed=7, conditioning_multidataset_sampling=mode), **kw).build()


def _check_latents(f: Any, b: Any) -> None:
    vae, meta = ReferenceVAE(), f.metadata["src"]
    for entry in b.conditioning:
        sign = -1 if entry.dataset_id == "inv" else 1
        for p, lat in zip(entry.rows.tolist(), entry.latents, strict=True):
            pixels = load_pixels(meta, b.indices[p])[None]
            torch.testing.assert_close(lat.float(), vae(sign * pixels)[0].float(), atol=2e-2,
                                       rtol=0)


def test_combined_gives_every_sample_every_dataset(data: dict[str, Path],
                                                   tmp_path: Path) -> None:
    f = _two(data, tmp_path, "combined", max_epochs=1)
    batches = list(f.iterator(prefetch=False))
    f.close()
    trained = {s for b in batches for s in b.sample_ids}
    assert len(trained) == 8 and "src:img_8.png" not in trained  # no copy: left out
    for b in batches:
        assert [e.dataset_id for e in b.conditioning] == ["inv", "copy"]
        assert all(e.rows.tolist() == list(range(len(b))) for e in b.conditioning)
        _check_latents(f, b)


def test_random_draws_one_dataset_per_sample_from_seed_epoch_step(
        data: dict[str, Path], tmp_path: Path) -> None:
    f = _two(data, tmp_path, "random", max_epochs=2)
    batches = list(f.iterator(prefetch=False))
    f.close()
    picks: dict[str, int] = {"inv": 0, "copy": 0}
    for b in batches:
        rows = sorted(r for e in b.conditioning for r in e.rows.tolist())
        assert rows == list(range(len(b)))  # each sample exactly once
        for e in b.conditioning:
            picks[e.dataset_id] += len(e)
            for p in e.rows.tolist():
                i = b.indices[p]
                if f.metadata["src"].index.paths[i] == "img_8.png":
                    assert e.dataset_id == "inv"  # the only one with a pair
                    continue
                u = uniform(7, "conditioning", "src", b.epoch, b.step, i)
                assert e.dataset_id == ("inv", "copy")[int(u * 2)]
        _check_latents(f, b)
    assert picks["inv"] > 2 and picks["copy"] > 2


def _conditioning(batches: list[Any]) -> list[Any]:
    return [(b.step, b.sample_ids, [(e.dataset_id, e.rows.tolist(), e.sample_ids,
                                     e.latents.float().sum().item()) for e in b.conditioning])
            for b in batches]


def test_resume_mid_epoch_reproduces_the_conditioning(data: dict[str, Path],
                                                      tmp_path: Path) -> None:
    f = _two(data, tmp_path, "random")
    it = f.iterator()
    [next(it) for _ in range(3)]
    state = f.state_dict()
    straight = _conditioning([next(it) for _ in range(6)])
    f.close()
    g = _two(data, tmp_path, "random")
    g.load_state_dict(state)
    it = g.iterator()
    resumed = _conditioning([next(it) for _ in range(6)])
    g.close()
    assert resumed == straight
