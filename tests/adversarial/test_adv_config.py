"""Bad and hostile configs: every one is a clear ``validate`` error naming the problem (never a
traceback, never accepted), and the dataset folder is left alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from advhelpers import cli, dataset, image_folder, snapshot, write_config


@pytest.fixture
def images(tmp_path: Path) -> Path:
    return image_folder(tmp_path / "images", 2)


def _validate(path: Path, images: Path) -> str:
    before = snapshot(images)
    code, out = cli("validate", str(path))
    assert code == 1, out
    assert "Traceback" not in out and "error:" in out, out
    assert snapshot(images) == before
    return out


FILES: dict[str, bytes] = {
    "binary": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "latin-1": '[{"id": "caf\xe9"}]'.encode("latin-1"),
    "deep": b"[" * 200_000 + b"]" * 200_000,
    "huge-int": b'[{"id": "x", "repeats": ' + b"9" * 5000 + b"}]",
    "duplicate-key": b'[{"id": "a", "type": "local", "id": "b"}]',
    "truncated": b'[{"id": "a", "type": "loc',
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_unreadable_config_documents(tmp_path: Path, images: Path, name: str) -> None:
    path = tmp_path / f"{name}.json"
    path.write_bytes(FILES[name])
    out = _validate(path, images)
    assert str(path) in out
    expected = {"binary": "binary", "latin-1": "not UTF-8", "deep": "nested too deeply",
                "huge-int": "cannot be read", "duplicate-key": "'id' appears twice",
                "truncated": "line 1"}[name]
    assert expected in out, out


def test_config_path_that_is_a_folder(tmp_path: Path, images: Path) -> None:
    out = _validate(images, images)
    assert "is a folder" in out and str(images) in out


BAD_VALUES: list[tuple[dict[str, Any], str]] = [
    ({"repeats": 10**12}, "`repeats` is out of range"),
    ({"resolution": 1e308}, "`resolution` is out of range"),
    ({"train_batch_size": 10**19}, "`train_batch_size` is out of range"),
    ({"probability": float("nan")}, "`probability` must be a finite number"),
    ({"probability": float("inf")}, "`probability` must be a finite number"),
    ({"minimum_aspect_ratio": float("inf")}, "`minimum_aspect_ratio` must be a finite"),
    ({"aspect_bucket_alignment": 0}, "`alignment`"),
    ({"aspect_bucket_alignment": -8}, "`alignment`"),
    ({"aspect_bucket_rounding": -1}, "`rounding`"),
    ({"target_downsample_size": -5, "maximum_image_size": 100}, "target_downsample_size"),
    ({"minimum_image_size": 900, "maximum_image_size": 100, "target_downsample_size": 64},
     "no image can pass"),
    ({"id": "/etc/cron.d"}, "is an absolute path"),
    ({"id": "../../outside"}, "'..' segment"),
    ({"id": "a/../../b"}, "'..' segment"),
    ({"id": "nul\x00id"}, "NUL"),
    ({"id": "."}, "'.' segment"),
    ({"instance_data_dir": None}, "`instance_data_dir` is required"),
]


@pytest.mark.parametrize(("change", "expected"), BAD_VALUES,
                         ids=[e for _, e in BAD_VALUES])
def test_values_that_would_fail_later(tmp_path: Path, images: Path, change: dict[str, Any],
                                      expected: str) -> None:
    entry = {k: v for k, v in {**dataset(images), **change}.items() if v is not None}
    out = _validate(write_config(tmp_path / "c.json", [entry]), images)
    assert expected in out, out
    ident = entry["id"]
    assert repr(ident) in out or f"dataset {ident!r}" in out or "entry #0" in out, out


def test_all_datasets_disabled(tmp_path: Path, images: Path) -> None:
    entries = [{**dataset(images), "disabled": True},
               {"id": "text", "type": "local", "dataset_type": "text_embeds",
                "cache_dir": str(tmp_path / "t")}]
    out = _validate(write_config(tmp_path / "c.json", entries), images)
    assert "every dataset is disabled" in out


def test_several_problems_are_reported_at_once(tmp_path: Path, images: Path) -> None:
    entry = {**dataset(images), "id": "../x", "repeats": 10**12, "probability": float("nan")}
    out = _validate(write_config(tmp_path / "c.json", [entry]), images)
    assert "'..' segment" in out and "`repeats`" in out and "`probability`" in out


def test_env_values_are_never_echoed(tmp_path: Path, images: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s3cr3t-t0ken-value"
    monkeypatch.setenv("DB_SECRET_DIR", secret)
    for entry in ({**dataset(images), "instance_data_dir": "/nowhere/{env:DB_SECRET_DIR}"},
                  {**dataset(images), "caption_strategy": "{env:DB_SECRET_DIR}"},
                  {**dataset(images), "resolution_type": "{env:DB_SECRET_DIR}"}):
        out = _validate(write_config(tmp_path / "c.json", [entry]), images)
        assert secret not in out and "{env:DB_SECRET_DIR}" in out, out


def test_nan_in_json_text(tmp_path: Path, images: Path) -> None:
    text = json.dumps([dataset(images)])[:-2] + ', "repeats": 1, "probability": NaN}]'
    path = tmp_path / "c.json"
    path.write_text(text)
    assert "`probability` must be a finite number" in _validate(path, images)
