"""``databackend scan CONFIG``: tables, filter counts and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from imagefiles import write_image

from databackend.cli import main


def config(tmp_path: Path) -> Path:
    pets, logos = tmp_path / "pets", tmp_path / "logos"
    for i in range(5):
        write_image(pets / f"cat_{i}.jpg", 96, 64, seed=i)
    write_image(pets / "tiny.png", 16, 16)
    (pets / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00")
    write_image(logos / "logo.png", 64, 64)
    entries = [{"id": "pets", "type": "local", "instance_data_dir": str(pets),
                "resolution": 64, "resolution_type": "pixel", "minimum_image_size": 32,
                "train_batch_size": 2},
               {"id": "logos", "type": "local", "instance_data_dir": "{root}/logos",
                "resolution": 64, "resolution_type": "pixel"}]
    path = tmp_path / "multidatabackend.json"
    path.write_text(json.dumps(entries))
    return path


def args(tmp_path: Path, *extra: str) -> list[str]:
    return ["scan", str(config(tmp_path)), "--var", f"root={tmp_path}", "--option",
            f"output_dir={tmp_path / 'out'}", "--option", "scan_workers=1", "--no-progress",
            *extra]


def test_scan_prints_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "dataset 'pets': 5 kept, 2 skipped" in out
    assert "bucket" in out and "count" in out and "batches" in out
    assert "128x64" in out and "pad +1" in out
    assert "skipped corrupt: 1" in out and "skipped too_small: 1" in out
    assert "dataset 'logos': 1 kept" in out and "OK: 2 dataset(s), 6 samples kept" in out


def test_scan_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = args(tmp_path, "--json")
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    pets = data["datasets"][0]
    assert pets["dataset"] == "pets" and pets["counts"]["kept"] == 5
    assert pets["skipped"] == {"corrupt": 1, "too_small": 1}
    assert pets["buckets"] == [{"bucket": "128x64", "target": [128, 64], "aspect": 2.0,
                                "count": 5, "batches": 3, "short": False, "action": "pad +1",
                                "padded": 1, "dropped": 0}]
    assert main(argv) == 0  # the second run reads nothing
    again = json.loads(capsys.readouterr().out)
    assert again["datasets"][0]["counts"]["probed"] == 0


def test_scan_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"id": "x", "type": "local", "instance_data_dir": "/nope"}]))
    assert main(["scan", str(path), "--no-progress"]) == 1
    assert "does not exist" in capsys.readouterr().err
