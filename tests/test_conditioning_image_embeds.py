"""Conditioning image embeddings: config rules all at once, a cache of the trainer's image
encoder over source and conditioning samples (stored once, verified, repaired), and the batch
fields ``batch.conditioning_image_embeds`` and ``ConditioningEntry.image_embeds``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from condfiles import entries, factory, make_pairs
from PIL import Image

from databackend.conditioning.image_embeds import ReferenceImageEmbedder
from databackend.errors import ConfigError

EMBEDDER = ReferenceImageEmbedder(dim=16, grid=4)
SPECS = [("a.png", "a.png", 64, 64), ("sub/b.png", "sub/b.png", 96, 64),
         ("c.png", "c.png", 64, 96), ("d.png", "d.png", 64, 64)]


def store(tmp: Path, **keys: Any) -> dict[str, Any]:
    return {"id": "clip", "dataset_type": "conditioning_image_embeds", "type": "local", **keys}


def config(tmp: Path, src: Path, cond: Path, **cond_keys: Any) -> list[dict[str, Any]]:
    hint = {"id": "hint", "type": "local", "instance_data_dir": str(cond),
            "conditioning_type": "controlnet", "source_dataset_id": "src", **cond_keys}
    return entries(src, tmp, hint, store(tmp, cache_dir=str(tmp / "cache/clip")),
                   conditioning_image_embeds="clip", conditioning_image_embed_batch_size=3)


def embed(path: Path) -> torch.Tensor:
    return EMBEDDER([Image.open(path).convert("RGB")])["image_embeds"][0]


def build(cfg: list[dict[str, Any]], tmp: Path, **kw: Any) -> Any:
    kw.setdefault("conditioning_image_encoder", EMBEDDER)
    return factory(cfg, tmp, max_epochs=1, **kw).build()


def runs(f: Any) -> dict[str, Any]:
    return {r.name: r.report for r in f.cache_runs if r.kind == "conditioning_image_embeds"}


def test_batches_carry_the_embeddings_of_source_and_conditioning(tmp_path: Path) -> None:
    src, cond = make_pairs(tmp_path, SPECS)
    cfg = config(tmp_path, src, cond, conditioning_image_embeds="clip")
    f = build(cfg, tmp_path)
    assert {k: (r.encoded, r.cached) for k, r in runs(f).items()} == \
        {"src": (4, 0), "hint": (4, 0)}
    seen = set()
    for b in f.iterator(prefetch=False):
        got = b.conditioning_image_embeds["image_embeds"]
        assert got.shape == (len(b), 16)
        for p, sid in enumerate(b.sample_ids):
            torch.testing.assert_close(got[p], embed(src / sid.split(":", 1)[1]))
            seen.add(sid)
        (entry,) = b.conditioning
        for j, sid in enumerate(entry.sample_ids):
            torch.testing.assert_close(entry.image_embeds["image_embeds"][j],
                                       embed(cond / sid.split(":", 1)[1]))
    stats = f.conditioning.image_embed_caches["src"].stats
    assert f.cache_stats()["image_embeds:hint"]["hits"] >= 4
    f.close()
    assert len(seen) == 4 and stats.hits >= 4 and (stats.misses, stats.encoded) == (0, 0)
    stored = sorted((tmp_path / "cache/clip").rglob("*.dbt"))
    assert len(stored) == 8 and any("/src/sub/" in str(p) for p in stored)
    again = build(cfg, tmp_path)  # stored once: a rerun encodes nothing
    assert {k: (r.encoded, r.cached) for k, r in runs(again).items()} == \
        {"src": (0, 4), "hint": (0, 4)}
    again.close()


def test_a_bad_entry_is_recomputed_and_a_missing_encoder_is_an_error(tmp_path: Path) -> None:
    src, cond = make_pairs(tmp_path, SPECS)
    cfg = config(tmp_path, src, cond)
    build(cfg, tmp_path).close()
    # sub/b.png is alone in its bucket, so its batch may repeat it: still one repair
    (victim,) = (tmp_path / "cache/clip/src/sub").glob("*.dbt")
    victim.write_bytes(b"not an entry")
    f = build(cfg, tmp_path, precompute=False)
    for _ in f.iterator(prefetch=False):
        pass
    stats = f.conditioning.image_embed_caches["src"].stats
    assert f.cache_stats()["image_embeds:src"]["hits"] >= 3
    f.close()
    assert (stats.repairs, stats.encoded) == (1, 1)
    with pytest.raises(ConfigError, match="no conditioning image encoder was given"):
        factory(cfg, tmp_path, conditioning_image_encoder=None).build()


def test_config_rules_are_reported_together(tmp_path: Path) -> None:
    src, cond = make_pairs(tmp_path, SPECS)
    cfg = entries(src, tmp_path,
                  {"id": "hint", "type": "local", "instance_data_dir": str(cond),
                   "conditioning_type": "mask", "source_dataset_id": "src",
                   "conditioning_image_embeds": "clip"},
                  {"id": "other", "type": "local", "instance_data_dir": str(src),
                   "conditioning_image_embeds": "vae", "conditioning_image_embed_batch_size": 0},
                  {"id": "third", "type": "local", "instance_data_dir": str(src),
                   "cache_dir_conditioning_image_embeds": str(tmp_path / "x")},
                  store(tmp_path), conditioning_image_embeds="clpi")
    with pytest.raises(ConfigError) as err:
        factory(cfg, tmp_path).build()
    text = str(err.value)
    for fragment in ("'src': `conditioning_image_embeds` names 'clpi'", "did you mean 'clip'",
                     "'hint': `conditioning_image_embeds` is not for mask",
                     "'other': `conditioning_image_embeds` names 'vae'",
                     "`conditioning_image_embed_batch_size` must be at least 1",
                     "'third': `cache_dir_conditioning_image_embeds` has no effect"):
        assert fragment in text, fragment


def test_locations_eval_batches_and_no_encoder_at_precompute(tmp_path: Path) -> None:
    from databackend.caches import ReferenceTextEncoder, ReferenceVAE
    from databackend.caches.precompute import precompute_plan

    src, _ = make_pairs(tmp_path, SPECS)
    ev = {"id": "ev", "type": "local", "dataset_type": "eval", "instance_data_dir": str(src),
          "conditioning_image_embeds": "clip",
          "cache_dir_conditioning_image_embeds": str(tmp_path / "mine")}
    cfg = entries(src, tmp_path, ev, store(tmp_path), conditioning_image_embeds="clip")
    f = build(cfg, tmp_path)
    default = tmp_path / "out/cache/conditioning_image_embeds/clip/src"
    assert len(list(default.rglob("*.dbt"))) == 4
    assert len(list((tmp_path / "mine/ev").rglob("*.dbt"))) == 4
    batches = list(f.eval_batches("ev"))
    assert sum(len(b) for b in batches) == 4
    for b in batches:
        for p, sid in enumerate(b.sample_ids):
            torch.testing.assert_close(b.conditioning_image_embeds["image_embeds"][p],
                                       embed(src / sid.split(":", 1)[1]))
    assert f.conditioning.image_embed_caches["ev"].stats.encoded == 0
    reports = precompute_plan(f.plan, f.context, text_encoder=ReferenceTextEncoder(width=16,
                              seq_len=8), image_encoder=ReferenceVAE(), metadata=f.metadata)
    f.close()
    skipped = {r.name: r.report.skipped for r in reports if r.kind == "conditioning_image_embeds"}
    assert skipped == {"src": "no conditioning image encoder", "ev": "no conditioning image encoder"}
