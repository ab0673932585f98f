"""``databackend plugins`` and ``databackend validate`` end to end (in-process CLI)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from databackend.cli import main


def test_plugins_lists_types_and_strategies(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["local"]["types"] == ["local"]
    assert rows["local"]["source"].startswith("databackend-local ")
    assert rows["databackend.builtin.strategies"]["strategies"] == ["auto-weighting", "uniform"]


def test_validate_prints_sorted_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps([
        {"id": "cond", "type": "local", "instance_data_dir": "{root}", "conditioning_type":
         "controlnet", "source_dataset_id": "main"},
        {"id": "main", "type": "local", "instance_data_dir": "{root}"},
        {"id": "te", "type": "local", "dataset_type": "text_embeds", "cache_dir": "{output_dir}"},
    ]))
    assert main(["validate", str(cfg), "--var", f"root={tmp_path}",
                 "--option", "output_dir=/x", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["entries"]
    assert [r["id"] for r in rows] == ["te", "main", "cond"]
    assert rows[0]["location"] == "/x" and rows[1]["text_embeds"] == "te"
    assert main(["validate", str(cfg), "--var", f"root={tmp_path}"]) == 0
    assert "OK: 3 entries" in capsys.readouterr().out


def test_validate_reports_every_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps([{"id": "a", "type": "local", "instance_data_dir": str(tmp_path),
                                "crop_style": "middle", "repeats": -1}]))
    assert main(["validate", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "2 configuration problems" in err
    assert "`crop_style` must be one of" in err and "`repeats` must be >= 0" in err
    assert "Traceback" not in err


def test_bad_option_and_var_syntax(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text("[]")
    assert main(["validate", str(cfg), "--option", "seed=abc"]) == 1
    assert "option `seed`: cannot read 'abc' as int" in capsys.readouterr().err
    assert main(["validate", str(cfg), "--var", "novalue"]) == 1
    assert "must look like NAME=VALUE" in capsys.readouterr().err


def test_help_everywhere() -> None:
    for args in ([], ["plugins"], ["validate"]):
        out = subprocess.run([sys.executable, "-m", "databackend", *args, "--help"],
                             capture_output=True, text=True, check=True).stdout
        assert "usage: databackend" in out
