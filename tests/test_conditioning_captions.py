"""Conditioning datasets' own captions: carried in the entries with their text embeddings,
swapped in for the prompts in ``random`` mode (prompt swap), absent by default; generated
datasets' ``captions`` (a string, or a list chosen per sample)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from condfiles import entries, factory, inverted, noise_image, options

from databackend.caches import ReferenceTextEncoder
from databackend.errors import ConfigError
from databackend.runtime.seeding import uniform

ENCODER = ReferenceTextEncoder(width=16, seq_len=8)


@pytest.fixture
def roots(tmp_path: Path) -> dict[str, Path]:
    """src: 6 images captioned ``source n``; hint: inverted copies captioned ``hint n``;
    plain: inverted copies without captions."""
    out = {k: tmp_path / k for k in ("src", "hint", "plain")}
    for n in range(6):
        pixels = noise_image(out["src"] / f"img_{n}.png", 64, 64, seed=n)
        (out["src"] / f"img_{n}.txt").write_text(f"source {n}")
        for k in ("hint", "plain"):
            inverted(out[k] / f"img_{n}.png", pixels)
        (out["hint"] / f"img_{n}.txt").write_text(f"hint {n}")
    return out


def cond(cid: str, root: Path, **keys: Any) -> dict[str, Any]:
    return {"id": cid, "type": "local", "instance_data_dir": str(root),
            "conditioning_type": "controlnet", "source_dataset_id": "src", **keys}


def build(roots: dict[str, Path], tmp: Path, mode: str, *extra: dict[str, Any]) -> Any:
    config = entries(roots["src"], tmp, *extra, caption_strategy="textfile")
    return factory(config, tmp, max_epochs=2, opts=options(
        tmp, seed=3, conditioning_multidataset_sampling=mode)).build()


def expected_embeds(captions: list[str]) -> dict[str, torch.Tensor]:
    return {k: v.to(torch.float32) for k, v in ENCODER(captions).items()}


def check_entry(entry: Any) -> None:
    """The entry's captions are its conditioning files' captions, embedded by the encoder."""
    assert entry.captions == [f"hint {sid.split('_')[1][0]}" for sid in entry.sample_ids]
    if not entry.captions:
        assert entry.text_embeds == {}
        return
    want = expected_embeds(entry.captions)
    for name, tensor in entry.text_embeds.items():
        torch.testing.assert_close(tensor.float(), want[name], atol=1e-2, rtol=0)


def test_random_mode_swaps_the_conditioning_captions_in(roots: dict[str, Path],
                                                       tmp_path: Path) -> None:
    f = build(roots, tmp_path, "random", cond("hint", roots["hint"], caption_strategy="textfile"),
              cond("plain", roots["plain"]))
    batches = list(f.iterator(prefetch=False))
    f.close()
    swapped = 0
    for b in batches:
        hint, plain = b.conditioning
        assert plain.captions is None and plain.text_embeds is None
        assert b.source_captions == [f"source {s.split('_')[1][0]}" for s in b.sample_ids]
        check_entry(hint)
        for p in range(len(b)):
            i = b.indices[p]
            drew = ("hint", "plain")[int(uniform(3, "conditioning", "src", b.epoch, b.step, i) * 2)]
            want = f"hint {i}" if drew == "hint" else f"source {i}"
            assert b.captions[p] == want and (drew == "hint") == (p in hint.rows.tolist())
            swapped += drew == "hint"
        want = expected_embeds(b.captions)
        for name, tensor in b.text_embeds.items():
            torch.testing.assert_close(tensor.float(), want[name], atol=1e-2, rtol=0)
    assert swapped >= 2


def test_combined_mode_carries_captions_and_keeps_the_prompts(roots: dict[str, Path],
                                                              tmp_path: Path) -> None:
    f = build(roots, tmp_path, "combined",
              cond("hint", roots["hint"], caption_strategy="textfile"),
              cond("plain", roots["plain"]))
    for b in f.iterator(prefetch=False):
        hint, plain = b.conditioning
        check_entry(hint)
        assert plain.captions is None and b.source_captions is None
        assert b.captions == [f"source {s.split('_')[1][0]}" for s in b.sample_ids]
    f.close()


def test_no_caption_strategy_changes_nothing(roots: dict[str, Path], tmp_path: Path) -> None:
    f = build(roots, tmp_path, "random", cond("plain", roots["plain"]),
              cond("hint", roots["hint"]))
    texts = f.text_caches[next(iter(f.text_caches))]
    for b in f.iterator(prefetch=False):
        assert all(e.captions is None and e.text_embeds is None for e in b.conditioning)
        assert b.source_captions is None
        assert b.captions == [f"source {s.split('_')[1][0]}" for s in b.sample_ids]
    cached = {r.name: r.report.encoded for r in f.cache_runs if r.kind == "text"}
    f.close()
    assert sum(cached.values()) == 7  # the 6 source captions and the empty one, no hints
    assert texts is not None


def generated(roots: dict[str, Path], tmp: Path, captions: Any, mode: str = "combined") -> Any:
    config = entries(roots["src"], tmp, caption_strategy="textfile", conditioning=[
        {"type": "jpeg_artifacts", "captions": captions}, {"type": "superresolution"}])
    return factory(config, tmp, max_epochs=2, opts=options(
        tmp, seed=5, conditioning_multidataset_sampling=mode)).build()


def test_generated_caption_list_is_chosen_per_sample(roots: dict[str, Path],
                                                     tmp_path: Path) -> None:
    choices = ["make it sharp", "remove the artifacts", "restore"]
    f = generated(roots, tmp_path, choices)
    gid = "src_conditioning_jpeg_artifacts"
    assert f.plan.by_id[gid].caption_strategy == "instanceprompt"
    paths = f.metadata[gid].index.paths
    seen: dict[str, set[str]] = {}
    for b in f.iterator(prefetch=False):
        jpeg, sr = b.conditioning
        assert sr.captions is None and b.source_captions is None  # combined: no swap
        for sid, caption in zip(jpeg.sample_ids, jpeg.captions, strict=True):
            path = sid.split(":", 1)[1]
            u = uniform(5, "conditioning_caption", gid, path)
            assert caption == choices[int(u * 3)] and path in list(paths)
            seen.setdefault(path, set()).add(caption)
        want = expected_embeds(jpeg.captions) if jpeg.captions else {}
        for name, tensor in jpeg.text_embeds.items():
            torch.testing.assert_close(tensor.float(), want[name], atol=1e-2, rtol=0)
    f.close()
    assert len(seen) == 6 and all(len(v) == 1 for v in seen.values())  # fixed per sample
    assert len(set().union(*seen.values())) >= 2


def test_generated_caption_string_swaps_in_random_mode(roots: dict[str, Path],
                                                       tmp_path: Path) -> None:
    f = generated(roots, tmp_path, "undo the compression", mode="random")
    batches = list(f.iterator(prefetch=False))
    f.close()
    for b in batches:
        jpeg, _ = b.conditioning
        for p in range(len(b)):
            swapped = p in jpeg.rows.tolist()
            assert (b.captions[p] == "undo the compression") == swapped
    assert any(len(b.conditioning[0]) for b in batches)


def test_bad_generated_captions_are_config_errors(roots: dict[str, Path],
                                                  tmp_path: Path) -> None:
    config = entries(roots["src"], tmp_path, conditioning=[
        {"type": "jpeg_artifacts", "captions": [1, 2]},
        {"type": "canny", "captions": {"a": 1}}])
    with pytest.raises(ConfigError) as err:
        factory(config, tmp_path).build()
    text = str(err.value)
    assert text.count("`captions` must be a string or a list") == 2
    assert "conditioning[0]" in text and "conditioning[1]" in text
