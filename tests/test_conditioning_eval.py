"""Eval datasets: never drawn in training; ``eval_batches`` is deterministic, complete, carries
conditioning, and leaves the training stream and its resume state untouched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from condfiles import entries, factory, inverted, noise_image

from databackend.caches import ReferenceVAE
from databackend.caches.imaging import load_pixels


@pytest.fixture
def config(tmp_path: Path) -> list[dict[str, Any]]:
    sizes = [(64, 64), (96, 64), (64, 96)]
    for n in range(8):
        noise_image(tmp_path / "src" / f"t{n}.png", *sizes[n % 3], seed=n)
    for n in range(5):
        pixels = noise_image(tmp_path / "ev" / f"e{n}.png", *sizes[n % 3], seed=50 + n)
        inverted(tmp_path / "evhint" / f"e{n}.png", pixels)
    ev = {"id": "ev", "type": "local", "instance_data_dir": str(tmp_path / "ev"),
          "dataset_type": "eval", "conditioning_data": "evhint", "crop": True,
          "crop_style": "random"}
    hint = {"id": "evhint", "type": "local", "instance_data_dir": str(tmp_path / "evhint"),
            "conditioning_type": "controlnet"}
    return entries(tmp_path / "src", tmp_path, ev, hint)


def ids(batches: list[Any]) -> list[list[str]]:
    return [b.sample_ids for b in batches]


def test_eval_batches(config: list[dict[str, Any]], tmp_path: Path) -> None:
    f = factory(config, tmp_path, max_epochs=2).build()
    assert set(f.runtime.ids) == {"src"}  # neither the eval set nor its conditioning
    first, again = list(f.eval_batches()), list(f.eval_batches("ev"))
    assert ids(first) == ids(again) and len(first) == 5  # batch size 1, fixed order
    assert sorted(s for b in first for s in b.sample_ids) == [f"ev:e{n}.png" for n in range(5)]
    assert [b.step for b in first] == list(range(5)) and {b.epoch for b in first} == {0}
    vae = ReferenceVAE()
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a.latents, b.latents)
        (entry,) = a.conditioning
        pixels = torch.stack([load_pixels(f.metadata["ev"], i) for i in a.indices])
        torch.testing.assert_close(entry.latents.float(), vae(-pixels).float(), atol=2e-2,
                                   rtol=0)
    pairs = list(f.eval_batches(batch_size=2))
    assert sum(len(b) for b in pairs) == 5 and max(len(b) for b in pairs) == 2
    with pytest.raises(ValueError, match="'src' is not an eval dataset; eval datasets: 'ev'"):
        f.eval_batches("src")
    f.close()


def test_eval_mid_run_leaves_training_untouched(config: list[dict[str, Any]],
                                                tmp_path: Path) -> None:
    straight = factory(config, tmp_path, max_epochs=2).build()
    expected = ids(list(straight.iterator()))
    straight.close()
    f = factory(config, tmp_path, max_epochs=2).build()
    it = f.iterator()
    got = ids([next(it) for _ in range(3)])
    state = f.state_dict()
    assert len(list(f.eval_batches())) == 5
    assert f.state_dict() == state
    got += ids(list(it))
    f.close()
    assert got == expected
    assert not any(s.startswith("ev") for batch in got for s in batch)
