"""The main job: ``databackend run CONFIG`` and ``databackend demo`` print the summary."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from databackend.cli import main
from databackend.demo import demo_config, make_demo


@pytest.fixture
def config_file(make_images: Callable[..., Path], tmp_path: Path) -> Path:
    root = make_images([(f"set/{n:02d}.{'png' if n % 2 else 'jpg'}", 96 + 32 * (n % 3), 96)
                        for n in range(10)])
    path = tmp_path / "config.json"
    path.write_text(json.dumps([{"id": "set", "type": "local",
                                 "instance_data_dir": str(root / "set")}]))
    return path


def run_opts(tmp_path: Path) -> list[str]:
    return ["--option", f"output_dir={tmp_path / 'out'}", "--option", "resolution=64",
            "--option", "aspect_bucket_alignment=16", "--option", "train_batch_size=2"]


def test_run_prints_the_summary(config_file: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(config_file), "--steps", "7", "--no-progress",
                 *run_opts(tmp_path)]) == 0
    out = capsys.readouterr().out
    for text in ("startup stages:", "caches", "peak RSS", "sampling policy exhaust",
                 "epoch share", "weight now",
                 "7 batches in", "batches/s", "consumer wait", "precompute latents set",
                 "batch time text:"):
        assert text in out, text


def test_run_json_and_inline_batches(config_file: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(config_file), "--steps", "3", "--json", "--no-prefetch",
                 *run_opts(tmp_path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["run"]["steps"] == 3
    assert [s["name"] for s in summary["stages"]][-1] == "samplers"
    assert summary["datasets"][0]["draws"] == 3


def test_run_reports_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[{\"id\": \"x\", \"type\": \"local\", \"instance_data_dir\": \"/nope\"}]")
    assert main(["run", str(bad), "--steps", "1"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_demo_config_has_two_datasets_and_both_cache_kinds(tmp_path: Path) -> None:
    kinds = [e.get("dataset_type", "image") for e in demo_config(tmp_path)]
    assert sorted(kinds) == ["audio", "image", "image", "image_embeds", "text_embeds", "video"]


def test_demo_generates_data_and_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--dir", str(tmp_path / "demo"), "--steps", "5", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "demo data and config" in out and "consumer wait" in out
    assert "not_an_image" in out  # the broken files were found and reported
    assert "pairing art <- art_conditioning_canny: 12 paired" in out  # generated ControlNet hints
    # the video dataset: frame buckets with their frame counts, and its filter reasons
    assert "scan clips: 6 kept, skipped: not_media 1, too_few_frames 1" in out
    assert "bucket 128x192@9: 3 clip(s), 9 frames per window (clips of 29-41 frames)" in out
    # the audio dataset: duration buckets and its filter reasons
    assert "scan sounds: 4 kept, skipped: not_media 1, too_long 1" in out
    data = tmp_path / "demo" / "data"
    suffixes = {p.suffix for p in data.rglob("*") if p.is_file()}
    assert {".jpg", ".png", ".txt"} <= suffixes
    assert make_demo(tmp_path / "demo") == tmp_path / "demo" / "multidatabackend.json"
