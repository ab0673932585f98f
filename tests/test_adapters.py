"""Real encoders through the adapters: tiny diffusers and transformers models built from
configs, saved with save_pretrained, used from Python and from the CLI (cache and run)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from tinymodels import clip_model, clip_tokenizer, save_pipeline, tiny_vae

from databackend.adapters.diffusers_vae import DiffusersVAE
from databackend.adapters.transformers_text import (
    TextEncoderSet,
    TransformersTextEncoder,
)
from databackend.caches import LatentCache, load_encoder
from databackend.caches.imaging import load_pixels
from databackend.cli import main
from databackend.storage.localdir import LocalDirectory


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_pipeline(tmp_path_factory.mktemp("models") / "flux", second="t5")


def _pixels(n: int = 3) -> torch.Tensor:
    return torch.rand(n, 3, 64, 48, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_vae_latents_equal_a_direct_model_call() -> None:
    vae = tiny_vae(shift_factor=0.1)
    adapter = DiffusersVAE(vae)
    pixels = _pixels()
    with torch.no_grad():
        direct = (vae.encode(pixels).latent_dist.mode() - 0.1) * vae.config.scaling_factor
    assert torch.allclose(adapter(pixels), direct, atol=1e-6)


def test_vae_latents_mean_and_std() -> None:
    mean, std = [0.1, -0.2, 0.3, 0.0], [1.5, 0.5, 2.0, 1.0]
    vae = tiny_vae(latents_mean=mean, latents_std=std, scaling_factor=0.5)
    pixels = _pixels(2)
    with torch.no_grad():
        z = vae.encode(pixels).latent_dist.mode()
    want = (z - torch.tensor(mean).view(1, 4, 1, 1)) * 0.5 / torch.tensor(std).view(1, 4, 1, 1)
    assert torch.allclose(DiffusersVAE(vae)(pixels), want, atol=1e-6)


def test_sample_mode_is_seeded_per_sample() -> None:
    adapter = DiffusersVAE(tiny_vae(), mode="sample", seed=7)
    pixels = _pixels(3)
    together = adapter(pixels, keys=["a", "b", "c"])
    alone = adapter(pixels[1:2], keys=["b"])
    assert torch.allclose(together[1], alone[0], atol=1e-5)  # conv batches differ in ulps
    assert torch.equal(alone, adapter(pixels[1:2], keys=["b"]))
    mode = DiffusersVAE(tiny_vae())(pixels)
    assert (together - mode).abs().mean() > 1e-3
    other_seed = DiffusersVAE(tiny_vae(), mode="sample", seed=8)(pixels[1:2], keys=["b"])
    assert (alone - other_seed).abs().mean() > 1e-3


def test_vae_identity_follows_weights_dtype_and_mode() -> None:
    base = DiffusersVAE(tiny_vae()).identity
    assert DiffusersVAE(tiny_vae()).identity == base  # same weights, same identity
    assert DiffusersVAE(tiny_vae(seed=1)).identity != base
    changed = tiny_vae()
    with torch.no_grad():
        next(iter(changed.parameters())).add_(0.01)
    assert DiffusersVAE(changed).identity != base
    assert DiffusersVAE(tiny_vae(), dtype="bfloat16").identity != base
    assert DiffusersVAE(tiny_vae(), mode="sample").identity != base
    with pytest.raises(ValueError, match="mode"):
        DiffusersVAE(tiny_vae(), mode="mean")


def test_text_encoder_equals_the_model_and_sets_combine(tmp_path: Path) -> None:
    tokenizer, model = clip_tokenizer(tmp_path / "tok"), clip_model(projection=True)
    enc = TransformersTextEncoder(tokenizer, model, hidden_state=-2)
    out = enc(["a cat", "dog"])
    ids = tokenizer(["a cat", "dog"], padding="max_length", max_length=16, truncation=True,
                    return_tensors="pt")
    with torch.no_grad():
        direct = model(input_ids=ids["input_ids"], output_hidden_states=True)
    assert torch.equal(out["prompt_embeds"], direct.hidden_states[-2])
    assert torch.equal(out["pooled_prompt_embeds"], direct.text_embeds)
    assert torch.equal(out["attention_mask"], ids["attention_mask"])
    other = TransformersTextEncoder(tokenizer, clip_model(projection=True, seed=3), hidden_state=-2)
    assert other.identity != enc.identity
    assert TransformersTextEncoder(tokenizer, model).identity != enc.identity  # layer choice
    pair = TextEncoderSet.sdxl(enc, other)(["a cat"])
    assert pair["prompt_embeds"].shape == (1, 16, 64)
    assert torch.equal(pair["pooled_prompt_embeds"], other(["a cat"])["pooled_prompt_embeds"])


def test_folders_load_as_adapters(pipeline: Path) -> None:
    text = load_encoder(str(pipeline), "text")
    out = text(["a photo of cat"])
    assert isinstance(text, TextEncoderSet)
    assert out["prompt_embeds"].shape == (1, 16, 16)  # T5 states
    assert out["pooled_prompt_embeds"].shape == (1, 24)  # CLIP projection
    vae = load_encoder(str(pipeline / "vae"), "image", dtype="bfloat16")
    assert vae.input_dtype == torch.bfloat16 and ":bfloat16:" in vae.identity
    with pytest.raises(ValueError, match="image or a text"):
        load_encoder(str(pipeline))


def test_latent_cache_with_a_real_vae(tmp_path: Path, make_images: Callable[..., Any]) -> None:
    from test_cache_fill import RawSource
    from test_cache_support import params

    root = make_images([(f"im/{n}.jpg", 96 + 16 * n, 80) for n in range(4)])
    source = RawSource(root / "im", params())
    adapter = DiffusersVAE(tiny_vae())
    cache = LatentCache(LocalDirectory(root=str(tmp_path / "vae")), source, encoder=adapter,
                        batch_size=2, workers=0)
    assert cache.precompute(progress=False).encoded == 4
    for i, entry in enumerate(cache.get_many(range(4))):
        direct = adapter(load_pixels(source, i).unsqueeze(0))[0]
        assert torch.allclose(entry.latents, direct, atol=1e-5)  # batch of 2 vs 1: ulps


def _config(tmp_path: Path, make_images: Callable[..., Any]) -> Path:
    root = make_images([(f"set/{n:02d}.jpg", 96 + 32 * (n % 2), 96) for n in range(4)])
    path = tmp_path / "config.json"
    path.write_text(json.dumps([{"id": "set", "type": "local",
                                 "instance_data_dir": str(root / "set")}]))
    return path


def test_cli_cache_and_run_with_model_folders(pipeline: Path, tmp_path: Path,
                                              make_images: Callable[..., Any],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, make_images)
    opts = ["--option", f"output_dir={tmp_path / 'out'}", "--option", "resolution=64",
            "--option", "aspect_bucket_alignment=16", "--option", "train_batch_size=2"]
    encoders = ["--text-encoder", str(pipeline), "--image-encoder", str(pipeline)]
    assert main(["cache", str(config), "--no-progress", *encoders, *opts]) == 0
    out = capsys.readouterr().out
    assert "latents set: 4 entries, 0 already cached, 4 encoded" in out
    assert "images/s, encoder busy" in out
    assert main(["cache", str(config), "--no-progress", *encoders, *opts]) == 0
    assert "4 already cached, 0 encoded" in capsys.readouterr().out
    assert main(["run", str(config), "--steps", "2", "--no-progress", "--json", *encoders,
                 *opts]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert all(p["encoded"] == 0 for p in summary["precompute"] if not p["skipped"])
    mode = ["--vae-mode", "sample"]  # another identity: everything is encoded again
    assert main(["cache", str(config), "--no-progress", *encoders, *mode, *opts]) == 0
    assert "0 already cached, 4 encoded" in capsys.readouterr().out


def test_video_vae_through_the_same_adapter() -> None:
    from diffusers import AutoencoderKLWan

    torch.manual_seed(0)
    mean, std = [0.0, 0.1, 0.2, 0.3], [1.0, 2.0, 1.0, 0.5]
    vae = AutoencoderKLWan(base_dim=8, z_dim=4, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           latents_mean=mean, latents_std=std)
    video = torch.rand(1, 3, 5, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    out = DiffusersVAE(vae)(video)
    with torch.no_grad():
        z = vae.encode(video).latent_dist.mode()
    shape = (1, 4, 1, 1, 1)
    want = (z - torch.tensor(mean).view(shape)) / torch.tensor(std).view(shape)  # no scaling
    assert out.shape == (1, 4, 2, 4, 4) and torch.allclose(out, want, atol=1e-5)


def test_run_job_from_python_with_adapters(pipeline: Path, tmp_path: Path,
                                           make_images: Callable[..., Any]) -> None:
    from databackend.commands.run import run_job
    from databackend.options import FactoryOptions

    config = _config(tmp_path, make_images)
    options = FactoryOptions.from_mapping({"output_dir": str(tmp_path / "out"),
                                           "resolution": 64, "aspect_bucket_alignment": 16,
                                           "train_batch_size": 2})
    vae = load_encoder(str(pipeline), "image", mode="sample", seed=3)
    summary = run_job(str(config), steps=2, options=options, progress=False,
                      text_encoder=load_encoder(str(pipeline), "text"), image_encoder=vae)
    latents = [p for p in summary["precompute"] if p["kind"] == "latents"]
    assert latents[0]["encoded"] == 4 and summary["run"]["steps"] == 2
