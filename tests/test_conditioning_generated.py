"""Generated conditioning: every built-in generator is deterministic from (seed, sample),
written once (a rerun generates and encodes nothing), regenerated when its parameters change,
and reaches the batches; a third-party generator plugs in through the same hook."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from condfiles import entries, factory, noise_image, options
from PIL import Image

from databackend import hookimpl
from databackend.conditioning.generator import ConditioningGenerator

SPECS = {"superresolution": {"downscale_factor": 2, "jpeg_quality": 60},
         "jpeg_artifacts": {"quality_mode": "range", "compression_rounds": 2},
         "random_masks": {"min_coverage": 0.2},
         "canny": {"params": {"low_threshold": 100, "high_threshold": 200}}}


@pytest.fixture
def src(tmp_path: Path) -> Path:
    for n, (w, h) in enumerate([(64, 64), (96, 64), (64, 96), (64, 64)]):
        noise_image(tmp_path / "src" / f"{'sub/' if n % 2 else ''}p{n}.png", w, h, seed=n)
    return tmp_path / "src"


def outputs(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): np.asarray(Image.open(p)).tobytes()
            for p in sorted(folder.rglob("*.png"))}


def build(src: Path, tmp: Path, spec: dict[str, Any], **kw: Any) -> Any:
    config = entries(src, tmp, conditioning=spec)
    f = factory(config, tmp, max_epochs=1, opts=options(tmp, **kw.pop("opts", {})), **kw)
    return f.build()


def runs(f: Any) -> dict[str, Any]:
    return {p["kind"]: p for p in f.summary()["precompute"] if p["kind"] == "conditioning"}


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_builtin_generator(kind: str, src: Path, tmp_path: Path) -> None:
    spec = {"type": kind, **SPECS[kind]}
    f = build(src, tmp_path / "one", spec)
    gid = f"src_conditioning_{kind}"
    folder = Path(f.plan.by_id[gid].storage.instance_data_dir)
    report = f.conditioning.generation[gid]
    assert (report.generated, report.existing, report.failed) == (4, 0, ())
    made = outputs(folder)
    assert len(made) == 4 and any(k.startswith("sub/p1.") for k in made)
    batches = list(f.iterator(prefetch=False))
    f.close()
    assert {b.conditioning[0].conditioning_type for b in batches} == {"reference_strict"}
    assert all(b.conditioning[0].latents.shape == b.latents.shape for b in batches)
    again = build(src, tmp_path / "one", spec)  # same folders: nothing to do
    report = again.conditioning.generation[gid]
    assert (report.generated, report.existing) == (0, 4)
    assert runs(again)["conditioning"]["encoded"] == 0
    again.close()
    elsewhere = build(src, tmp_path / "two", spec)  # a fresh cache root: same bytes
    assert outputs(Path(elsewhere.plan.by_id[gid].storage.instance_data_dir)) == made
    elsewhere.close()


def test_parameters_and_seed_change_the_outputs(src: Path, tmp_path: Path) -> None:
    spec: dict[str, Any] = {"type": "random_masks"}
    first = build(src, tmp_path, spec)
    folder = Path(first.plan.by_id["src_conditioning_random_masks"].storage.instance_data_dir)
    first.close()
    masks = outputs(folder)
    assert len(set(masks.values())) == 4  # random per file
    reseeded = build(src, tmp_path, spec, opts={"seed": 5})
    assert reseeded.conditioning.generation["src_conditioning_random_masks"].generated == 4
    reseeded.close()
    changed = build(src, tmp_path, {**spec, "max_coverage": 0.3})
    assert changed.conditioning.generation["src_conditioning_random_masks"].generated == 4
    pairing = changed.conditioning.pairings[("src", "src_conditioning_random_masks")]
    changed.close()
    assert pairing.paired == 4 and pairing.orphans == 8  # older outputs stay, unused
    assert len(outputs(folder)) == 12


class _Invert:
    @hookimpl
    def databackend_register_conditioning_generators(self) -> Any:
        class Invert(ConditioningGenerator):
            name, defaults = "invert", {}

            def generate(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
                return Image.fromarray(255 - np.asarray(image))

        return [Invert]


def test_third_party_generator(src: Path, tmp_path: Path) -> None:
    import torch

    from databackend.caches import ReferenceVAE
    from databackend.caches.imaging import load_pixels

    config = entries(src, tmp_path, conditioning={"type": "invert",
                                                  "conditioning_type": "controlnet"})
    f = factory(config, tmp_path, plugins=[_Invert()], max_epochs=1).build()
    vae = ReferenceVAE()
    for b in f.iterator(prefetch=False):
        (entry,) = b.conditioning
        assert entry.conditioning_type == "controlnet"
        pixels = torch.stack([load_pixels(f.metadata["src"], i) for i in b.indices])
        torch.testing.assert_close(entry.latents.float(), vae(-pixels).float(), atol=2e-2,
                                   rtol=0)
    f.close()


def test_scan_command_generates_and_pairs(src: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from databackend.cli import main

    config = tmp_path / "multidatabackend.json"
    config.write_text(json.dumps(entries(src, tmp_path, conditioning={"type": "jpeg"})))
    flags = ["--option", f"output_dir={tmp_path / 'out'}", "--option", "resolution=64",
             "--option", "aspect_bucket_alignment=16", "--no-progress", "--json"]
    assert main(["scan", str(config), *flags]) == 0
    (pairing,) = json.loads(capsys.readouterr().out)["pairing"]
    assert pairing["conditioning"] == "src_conditioning_jpeg_artifacts"
    assert pairing["paired"] == 4 and pairing["unpaired"] == {}
