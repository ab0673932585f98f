"""Pairing by relative path: the rules, unpaired samples counted by reason (never a crash, never
trained without conditioning), the stored pairing reused until a listing changes, and the
figures in ``databackend scan --json`` and the ``databackend run`` summary."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from condfiles import entries, factory, inverted, noise_image

from databackend.cli import main
from databackend.commands.run import format_summary

SOURCES = ["a.png", "sub/b.png", "sub/c.jpg", "deep/x/d.png", "e.png", "sub/f.png",
           "other/f.png", "g.png", "h.png", "i.jpg"]
CONDS = ["a.png", "sub/b.png", "sub/c.png", "d.png", "f.png", "h.png", "h.jpg", "i.png",
         "i.webp", "orphan.png"]


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    src, cond = tmp_path / "src", tmp_path / "cond"
    for n, path in enumerate(SOURCES):
        pixels = noise_image(src / path, 64, 64, seed=n)
    for path in CONDS:
        inverted(cond / path, pixels)
    (cond / "g.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # a damaged pair
    return src, cond


def hint(cond: Path) -> dict[str, Any]:
    return {"id": "hint", "type": "local", "instance_data_dir": str(cond),
            "conditioning_type": "controlnet", "source_dataset_id": "src"}


def test_rules_and_unpaired_counts(roots: tuple[Path, Path], tmp_path: Path) -> None:
    src, cond = roots
    f = factory(entries(src, tmp_path, hint(cond), train_batch_size=1), tmp_path,
                max_epochs=1).build()
    pairing = f.conditioning.pairings[("src", "hint")]  # type: ignore[union-attr]
    paths = f.metadata["src"].index.paths
    cond_paths = f.metadata["hint"].index.paths
    paired = {paths[i]: cond_paths[r] for i, r in enumerate(pairing.rows) if r >= 0}
    assert paired == {"a.png": "a.png", "sub/b.png": "sub/b.png", "sub/c.jpg": "sub/c.png",
                      "deep/x/d.png": "d.png", "h.png": "h.png"}  # exact beats h.jpg
    unpaired = dict(pairing.unpaired)
    damaged = [k for k in unpaired if k.startswith("conditioning_")]
    assert len(damaged) == 1 and unpaired.pop(damaged[0]) == 1
    assert unpaired == {"missing": 1, "ambiguous_flat": 2, "ambiguous": 1}
    assert pairing.examples["ambiguous_flat"] == ["other/f.png", "sub/f.png"]
    assert pairing.examples["ambiguous"] == ["i.jpg"]  # i.png and i.webp
    assert pairing.orphans == 5 and "orphan.png" in pairing.orphan_examples
    batches = list(f.iterator(prefetch=False))
    f.close()
    trained = sorted(b.sample_ids[0].split(":", 1)[1] for b in batches)
    assert trained == sorted(paired)  # the unpaired sources are left out, nothing crashes
    assert all(b.conditioning[0].sample_ids == [f"hint:{paired[s.split(':', 1)[1]]}"]
               for b in batches for s in b.sample_ids)
    summary = f.summary()
    text = "\n".join(format_summary(summary))
    assert "pairing src <- hint: 5 paired, unpaired: ambiguous 1, ambiguous_flat 2" in text
    assert "precompute conditioning hint@src: 0 cached, 5 encoded" in text


def test_stored_pairing_is_reused_until_a_listing_changes(roots: tuple[Path, Path],
                                                          tmp_path: Path) -> None:
    src, cond = roots
    config = entries(src, tmp_path, hint(cond), train_batch_size=1)
    first = factory(config, tmp_path).build()
    assert not first.conditioning.pairings[("src", "hint")].reused  # type: ignore[union-attr]
    first.close()
    again = factory(config, tmp_path).build()
    kept = again.conditioning.pairings[("src", "hint")]  # type: ignore[union-attr]
    assert kept.reused and kept.paired == 5
    (run,) = [p for p in again.summary()["precompute"] if p["kind"] == "conditioning"]
    assert run["cached"] == 5 and run["encoded"] == 0  # nothing encoded twice
    again.close()
    inverted(cond / "e.png", noise_image(tmp_path / "scratch.png", 64, 64, seed=4))
    third = factory(config, tmp_path).build()
    fresh = third.conditioning.pairings[("src", "hint")]  # type: ignore[union-attr]
    third.close()
    assert not fresh.reused and fresh.paired == 6 and "missing" not in fresh.unpaired


def _config_file(tmp_path: Path, src: Path, cond: Path) -> Path:
    path = tmp_path / "multidatabackend.json"
    path.write_text(json.dumps(entries(src, tmp_path, hint(cond), train_batch_size=1)))
    return path


def test_scan_json_and_run_summary(roots: tuple[Path, Path], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    src, cond = roots
    flags = ["--option", f"output_dir={tmp_path / 'out'}", "--option", "resolution=64",
             "--option", "aspect_bucket_alignment=16", "--no-progress"]
    config = str(_config_file(tmp_path, src, cond))
    assert main(["scan", config, *flags, "--json"]) == 0
    (pairing,) = json.loads(capsys.readouterr().out)["pairing"]
    assert pairing["paired"] == 5 and pairing["unpaired"]["missing"] == 1
    assert pairing["unpaired_examples"]["missing"] == ["e.png"]
    assert main(["run", config, *flags, "--steps", "3"]) == 0
    out = capsys.readouterr().out
    assert "pairing src <- hint: 5 paired" in out
    assert "precompute conditioning hint@src: 0 cached, 5 encoded" in out
    assert re.search(r"batch time conditioning:hint@src: \d+ hits, 0 misses", out)


def test_conditioning_that_cannot_be_decoded_is_unpaired(tmp_path: Path) -> None:
    src, cond = tmp_path / "s", tmp_path / "c"
    for n in range(4):
        inverted(cond / f"p{n}.png", noise_image(src / f"p{n}.png", 64, 64, seed=n))
    data = (cond / "p2.png").read_bytes()
    (cond / "p2.png").write_bytes(data[:200])  # the header scan passes, decoding fails
    f = factory(entries(src, tmp_path, hint(cond), train_batch_size=1), tmp_path,
                max_epochs=1).build()
    pairing = f.conditioning.pairings[("src", "hint")]  # type: ignore[union-attr]
    assert pairing.paired == 3 and pairing.unpaired == {"conditioning_unloadable": 1}
    trained = {s for b in f.iterator(prefetch=False) for s in b.sample_ids}
    f.close()
    assert trained == {"src:p0.png", "src:p1.png", "src:p3.png"}
