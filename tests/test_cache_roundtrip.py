"""End to end on local storage: config -> scan (real metadata backend) -> caches -> read back,
cache locations from a plan, and ``databackend cache`` killed midway then resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from test_cache_support import FolderSource, SlowVAE, make_noise_images, params

from databackend.caches import (
    LatentCache,
    ReferenceTextEncoder,
    ReferenceVAE,
    latent_cache_location,
    open_latent_cache,
    open_text_cache,
    precompute_plan,
    text_cache_location,
)
from databackend.caches.imaging import load_pixels
from databackend.config.loader import load_config
from databackend.context import BuildContext
from databackend.errors import CacheError
from databackend.options import FactoryOptions
from databackend.registry import PluginRegistry
from databackend.storage.localdir import LocalDirectory

TESTS = Path(__file__).parent


def _dataset(root: Path, **extra: Any) -> dict[str, Any]:
    return {"id": "ds", "type": "local", "dataset_type": "image", "instance_data_dir": str(root),
            "resolution": 64, "resolution_type": "pixel", "crop": True,
            "crop_style": "center", "aspect_bucket_alignment": 16, **extra}


def _plan(entries: list[dict[str, Any]], registry: PluginRegistry, out: Path,
          **option: Any) -> tuple[Any, BuildContext]:
    options = FactoryOptions(output_dir=str(out), **option)
    return (load_config(entries, registry, options),
            BuildContext(options=options, registry=registry))


def _metadata(plan: Any, context: BuildContext) -> Any:
    pytest.importorskip("databackend.metadata.discovery", reason="metadata layer not landed")
    from databackend.build import build_metadata, build_storage

    dataset = plan.datasets[0]
    meta = build_metadata(dataset, build_storage(dataset, context), context)
    meta.scan(progress=False)
    return meta


def _all(meta: Any) -> list[int]:
    return sorted(int(i) for ids in meta.index.buckets().values() for i in ids)


def _assert_caches_valid(plan: Any, context: BuildContext, meta: Any, vae_identity: str,
                         vae: Any) -> None:
    """Every latent and caption embedding reads back intact (read-only caches: a bad or
    missing entry raises) and equals a fresh encode."""
    dataset = plan.datasets[0]
    latents = open_latent_cache(plan, dataset, meta, context, identity=vae_identity)
    indices = _all(meta)
    assert indices
    for i, entry in zip(indices, latents.get_many(indices), strict=True):
        assert torch.equal(entry.latents, vae(load_pixels(meta, i).unsqueeze(0))[0])
    text_encoder = ReferenceTextEncoder()
    text = open_text_cache(plan, dataset, context, identity=text_encoder.identity)
    captions = sorted({c for i in indices for c in meta.index.captions_of(i)} | {""})
    fresh = text_encoder(captions)
    for j, got in enumerate(text.get_many(captions)):
        assert all(torch.equal(got[k], fresh[k][j]) for k in fresh)
    assert latents.stats.hits == len(indices) and text.stats.hits == len(captions)


def test_full_round_trip_on_local_storage(tmp_path: Path, registry: PluginRegistry) -> None:
    root = make_noise_images(tmp_path / "images")
    plan, context = _plan([_dataset(root), {"id": "te", "type": "local",
                                            "dataset_type": "text_embeds",
                                            "cache_dir": str(tmp_path / "te")}],
                          registry, tmp_path / "out")
    meta = _metadata(plan, context)
    vae = ReferenceVAE()
    runs = precompute_plan(plan, context, text_encoder=ReferenceTextEncoder(),
                           image_encoder=vae, metadata={"ds": meta}, progress=False)
    by_kind = {r.kind: r.report for r in runs}
    assert by_kind["latents"].encoded == len(_all(meta)) > 0
    assert by_kind["text"].encoded >= 2  # the captions plus the empty caption
    assert list((tmp_path / "out" / "cache" / "vae" / "model" / "ds").rglob("*.dbt"))
    assert list((tmp_path / "te").rglob("*.dbt"))
    _assert_caches_valid(plan, context, meta, vae.identity, vae)
    again = precompute_plan(plan, context, text_encoder=ReferenceTextEncoder(),
                            image_encoder=vae, metadata={"ds": meta}, progress=False)
    assert sum(r.report.encoded for r in again) == 0


def test_crop_change_after_rescan_makes_misses(tmp_path: Path, registry: PluginRegistry
                                              ) -> None:
    root = make_noise_images(tmp_path / "images")
    vae = ReferenceVAE()
    plan, context = _plan([_dataset(root)], registry, tmp_path / "out")
    meta = _metadata(plan, context)
    open_latent_cache(plan, plan.datasets[0], meta, context, vae).precompute(progress=False)
    before = {meta.index.paths[i]: meta.index.geometry(i) for i in _all(meta)}

    plan, context = _plan([_dataset(root, crop_style="corner")], registry, tmp_path / "out")
    meta = _metadata(plan, context)
    changed = [i for i in _all(meta) if meta.index.geometry(i) != before[meta.index.paths[i]]]
    unchanged = [i for i in _all(meta) if i not in changed]
    assert changed and unchanged
    reader = open_latent_cache(plan, plan.datasets[0], meta, context, identity=vae.identity)
    reader.get_many(unchanged)
    with pytest.raises(CacheError, match="missing"):
        reader.get_many(changed[:1])
    report = open_latent_cache(plan, plan.datasets[0], meta, context, vae).precompute(
        progress=False)
    assert (report.encoded, report.cached) == (len(changed), len(unchanged))


def test_locations_follow_the_plan(tmp_path: Path, registry: PluginRegistry) -> None:
    root = make_noise_images(tmp_path / "images")
    out = tmp_path / "out"
    plan, context = _plan([_dataset(root)], registry, out)
    storage, prefix = latent_cache_location(plan, plan.datasets[0], context)
    assert isinstance(storage, LocalDirectory) and prefix == ""
    assert storage.root == str(out / "cache" / "vae" / "model" / "ds")
    text, prefix = text_cache_location(None, context)
    assert isinstance(text, LocalDirectory) and text.root == str(out / "cache" / "text" / "model")

    plan, context = _plan([_dataset(root, cache_dir_vae=str(tmp_path / "mine"))], registry, out)
    mine = latent_cache_location(plan, plan.datasets[0], context)[0]
    assert mine.local_path("") == str(tmp_path / "mine")

    embeds = {"id": "emb", "type": "local", "dataset_type": "image_embeds",
              "cache_dir": str(tmp_path / "emb"), "write_batch_size": 3, "compress_cache": True}
    plan, context = _plan([embeds, _dataset(root, image_embeds="emb")], registry, out)
    storage, prefix = latent_cache_location(plan, plan.datasets[0], context)
    assert storage.local_path("x") == str(tmp_path / "emb" / "x") and prefix == "model/ds"
    source = FolderSource(root, params())
    cache = open_latent_cache(plan, plan.datasets[0], source, context, ReferenceVAE())
    assert (cache.write_batch_size, cache.compress, cache.prefix) == (3, True, "model/ds")
    cache.get_many([0])
    assert list((tmp_path / "emb" / "model" / "ds").rglob("*.dbt"))


def test_flags_come_from_the_config(tmp_path: Path, registry: PluginRegistry) -> None:
    root = make_noise_images(tmp_path / "images")
    entries = [_dataset(root, vae_cache_disable=True, vae_cache_clear_each_epoch=True,
                        hash_filenames=False),
               {"id": "te", "type": "local", "dataset_type": "text_embeds",
                "text_cache_ondemand": True, "write_batch_size": 5}]
    plan, context = _plan(entries, registry, tmp_path / "out")
    source = FolderSource(root, params())
    cache: LatentCache = open_latent_cache(plan, plan.datasets[0], source, context,
                                           identity="v")
    assert cache.disable and cache.ondemand and cache.clear_each_epoch
    assert not cache.hash_filenames
    text = open_text_cache(plan, plan.datasets[0], context, identity="t")
    assert text.ondemand and not text.disable and text.write_batch_size == 5 and text.name == "te"
    assert isinstance(text.storage, LocalDirectory)
    assert text.storage.root == str(tmp_path / "out" / "cache" / "text" / "model")
    plan, context = _plan([_dataset(root)], registry, tmp_path / "out", vae_cache_ondemand=True,
                          compress_cache=True)
    cache = open_latent_cache(plan, plan.datasets[0], source, context, identity="v")
    assert cache.ondemand and not cache.disable and cache.compress
    plan, context = _plan([_dataset(root, vae_cache_ondemand=False)], registry,
                          tmp_path / "out", vae_cache_ondemand=True)
    assert not open_latent_cache(plan, plan.datasets[0], source, context, identity="v").ondemand


def _cli(config: Path, out: Path, *extra: str, slow: float = 0.0) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get(
        "PYTHONPATH", "")]), "SLOW_VAE_SECONDS": str(slow)}
    return subprocess.Popen(
        [sys.executable, "-m", "databackend", "cache", str(config), "--option",
         f"output_dir={out}", "--image-encoder", "test_cache_support:SlowVAE", "--batch-size",
         "2", "--no-progress", *extra], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)


def test_cli_killed_midway_then_rerun_finishes_with_no_corrupt_entry(
        tmp_path: Path, registry: PluginRegistry) -> None:
    specs = [(f"d{n % 3}/img{n:02d}.{'jpg' if n % 2 else 'png'}", 64 + 16 * (n % 4), 64)
             for n in range(30)]
    root = make_noise_images(tmp_path / "images", specs)
    vae_dir = tmp_path / "vae"
    entries = [_dataset(root, image_embeds="vae"),
               {"id": "vae", "type": "local", "dataset_type": "image_embeds",
                "cache_dir": str(vae_dir), "write_batch_size": 2}]
    plan, context = _plan(entries, registry, tmp_path / "out")
    meta = _metadata(plan, context)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(entries))

    proc = _cli(config, tmp_path / "out", slow=0.3)
    deadline = time.monotonic() + 120
    while len(list(vae_dir.rglob("*.dbt"))) < 6 and proc.poll() is None:
        assert time.monotonic() < deadline, "the cache command wrote nothing"
        time.sleep(0.05)
    assert proc.poll() is None, f"finished before it could be killed:\n{proc.communicate()[0]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(vae_dir.rglob("*.dbt")))
    assert 0 < done_before < len(specs)

    output, _ = _cli(config, tmp_path / "out").communicate(timeout=300)
    assert "OK:" in output, output
    assert f"{len(specs)} entries, {done_before} already cached, " \
           f"{len(specs) - done_before} encoded" in output
    output, _ = _cli(config, tmp_path / "out").communicate(timeout=300)
    assert "OK: 0 encoded" in output, output
    _assert_caches_valid(plan, context, meta, SlowVAE().identity, ReferenceVAE())
