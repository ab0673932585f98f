"""Monitoring: factory.scalars() names and values on a known run, the JSON-lines metrics file
of ``databackend run --metrics-out``, the typed summary and its text, the mixture option."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

import databackend_local
from databackend.caches import ReferenceTextEncoder, ReferenceVAE
from databackend.cli import main
from databackend.factory import DataBackendFactory
from databackend.monitor.metricslog import read_metrics
from databackend.monitor.summary import DatasetRow, Summary
from databackend.plugins import make_plugin_manager

SIZES = [(128, 128), (192, 128), (128, 192), (160, 160)]


@pytest.fixture
def root(make_images: Callable[..., Path]) -> Path:
    specs = [(f"a/img_{n:02d}.png", *SIZES[n % 4]) for n in range(12)]
    specs += [(f"b/pic_{n:02d}.jpg", *SIZES[(n + 1) % 4]) for n in range(8)]
    out = make_images(specs)
    (out / "b/broken.jpg").write_bytes(b"")  # skipped by the scan, counted
    return out


def entries(root: Path, tmp_path: Path) -> list[dict[str, object]]:
    return [{"id": "vae", "dataset_type": "image_embeds", "type": "local",
             "cache_dir": str(tmp_path / "cache/vae")},
            {"id": "a", "type": "local", "instance_data_dir": str(root / "a"),
             "image_embeds": "vae", "train_batch_size": 2},
            {"id": "b", "type": "local", "instance_data_dir": str(root / "b"),
             "image_embeds": "vae", "probability": 0.5}]


def make(root: Path, tmp_path: Path, **opts: object) -> DataBackendFactory:
    pm = make_plugin_manager(entrypoints=False, extra=[databackend_local])
    return DataBackendFactory(
        entries(root, tmp_path), plugin_manager=pm, max_epochs=1,
        text_encoder=ReferenceTextEncoder(width=16, seq_len=8), image_encoder=ReferenceVAE(),
        options={"output_dir": str(tmp_path / "out"), "resolution": 64,
                 "aspect_bucket_alignment": 16, "sampling": "uniform", **opts})


def test_scalars_names_and_values_after_a_whole_epoch(root: Path, tmp_path: Path) -> None:
    f = make(root, tmp_path).build()
    per_epoch = f.runtime.batches_per_epoch
    total = sum(per_epoch.values())
    assert len(list(f.iterator())) == total
    m = f.scalars()
    f.close()
    assert m["data/step"] == total and m["data/batches"] == total and m["data/epoch"] == 1
    for did in ("a", "b"):
        assert m[f"data/{did}/draws"] == per_epoch[did]
        assert m[f"data/{did}/share"] == pytest.approx(per_epoch[did] / total)
        assert m[f"data/{did}/epoch_share"] == pytest.approx(per_epoch[did] / total)
        assert m[f"data/{did}/weight"] == 0.0  # both used up: the epoch is over
        assert m[f"cache/latents_{did}/misses"] == 0 and m[f"cache/latents_{did}/hits"] > 0
    assert m["scan/a/kept"] == 12 and m["scan/b/kept"] == 8 and m["scan/b/skipped"] == 1
    assert m["data/wait_ms_max"] >= m["data/wait_ms"] >= 0
    stages = {k for k in m if k.startswith("startup/")}
    assert {"startup/metadata_s", "startup/caches_s", "startup/total_s"} <= stages
    assert m["memory/peak_rss_mb"] >= m["memory/rss_mb"] > 0
    assert all(isinstance(v, float) for v in m.values())


def test_weight_now_and_share_mid_epoch(root: Path, tmp_path: Path) -> None:
    f = make(root, tmp_path).build()
    it = f.iterator(prefetch=False)
    for _ in range(3):
        next(it)
    m = f.scalars()
    f.close()
    assert m["data/step"] == 3 and m["data/a/draws"] + m["data/b/draws"] == 3
    # uniform weights 1.0 and 0.5, neither used up yet after 3 steps
    assert m["data/a/weight"] == pytest.approx(2 / 3) and m["data/b/weight"] == pytest.approx(1 / 3)


def test_summary_is_typed_readable_and_keeps_the_dict(root: Path, tmp_path: Path) -> None:
    f = make(root, tmp_path).build()
    list(f.iterator())
    f.close()
    s = f.summary()
    assert isinstance(s, Summary) and isinstance(s.datasets[0], DatasetRow)
    assert [d.id for d in s.datasets] == ["a", "b"]
    assert s["datasets"][0]["draws"] == s.datasets[0].draws  # the old dict access still works
    assert json.loads(json.dumps(s.to_dict()))["policy"] == "exhaust"
    text = str(s)
    header = next(line for line in text.splitlines() if line.strip().startswith("dataset "))
    assert header.split() == ["dataset", "samples", "batches/epoch", "draws", "share",
                              "expected", "epoch", "share", "weight", "now"]
    row_a = next(line.split() for line in text.splitlines() if line.strip().startswith("a "))
    assert row_a[1] == "12" and row_a[3] == str(s.datasets[0].draws)
    assert "weight now: its draw probability at the current step" in text
    assert "scan b: 8 kept" in text and "startup stages:" in text


def test_run_writes_metrics_json_lines(root: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(entries(root, tmp_path)))
    out = tmp_path / "m" / "metrics.jsonl"
    assert main(["run", str(config), "--steps", "7", "--no-progress", "--metrics-out", str(out),
                 "--metrics-every", "3", "--option", f"output_dir={tmp_path / 'out'}",
                 "--option", "resolution=64", "--option", "aspect_bucket_alignment=16"]) == 0
    records = list(read_metrics(out))
    assert [r["kind"] for r in records] == ["build", "step", "step", "step"]
    build = records[0]
    assert [s["name"] for s in build["stages"]][-1] == "samplers"
    assert {d["id"] for d in build["datasets"]} == {"a", "b"} and build["policy"] == "exhaust"
    steps = records[1:]
    assert [r["step"] for r in steps] == [3, 6, 7]
    for r in steps:
        m = r["metrics"]
        assert m["data/step"] == r["step"] == m["data/a/draws"] + m["data/b/draws"]
        assert m["data/wait_ms_interval"] >= 0
    assert steps[0]["time"] <= steps[-1]["time"]
    assert "7 batches in" in capsys.readouterr().out


def test_bad_metrics_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text('{"kind": "build"}\nnot json\n')
    with pytest.raises(ValueError, match=r"m.jsonl: line 2"):
        list(read_metrics(path))


def test_mixture_option_draws_past_a_dataset_epoch(root: Path, tmp_path: Path) -> None:
    f = make(root, tmp_path, sampling_policy="mixture", mixture_steps_per_epoch=40).build()
    batches = list(f.iterator())
    f.close()
    assert len(batches) == 40  # max_epochs=1: one epoch of the fixed length
    assert f.summary().policy == "mixture"
    assert f.runtime.state_dict()["dataset_epochs"]["b"] > 1  # b restarted its own epoch


def test_tensorboard_writer_gets_the_same_scalars(root: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="tensorboard is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from databackend.commands.run import run_job
    from databackend.options import FactoryOptions

    config = tmp_path / "config.json"
    config.write_text(json.dumps(entries(root, tmp_path)))
    opts = FactoryOptions(output_dir=str(tmp_path / "out"), resolution=64,
                          aspect_bucket_alignment=16)
    run_job(str(config), steps=4, options=opts, progress=False,
            metrics_out=str(tmp_path / "m.jsonl"), metrics_every=2,
            tensorboard_dir=str(tmp_path / "tb"))
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    steps = [e.step for e in events.Scalars("data/step")]
    assert steps == [2, 4] and [e.value for e in events.Scalars("data/step")] == [2.0, 4.0]
    assert "cache/latents_a/hits" in events.Tags()["scalars"]


def test_sampling_policy_in_the_config_wins_and_must_agree(root: Path, tmp_path: Path) -> None:
    from databackend.errors import ConfigError

    config = entries(root, tmp_path)
    config[1]["sampling_policy"] = "mixture"
    pm = make_plugin_manager(entrypoints=False, extra=[databackend_local])
    f = DataBackendFactory(config, plugin_manager=pm, use_reference_encoders=True,
                           precompute=False, options={"output_dir": str(tmp_path / "out")})
    f.build()
    f.close()
    assert f.policy == "mixture" and isinstance(f.runtime.state_dict()["dataset_epochs"], dict)
    config[2]["sampling_policy"] = "exhaust"
    with pytest.raises(ConfigError, match=r"datasets disagree: 'a' mixture, 'b' exhaust"):
        DataBackendFactory(config, plugin_manager=pm, use_reference_encoders=True).build()
    config[2]["sampling_policy"] = "blend"
    with pytest.raises(ConfigError, match=r"sampling_policy"):
        DataBackendFactory(config, plugin_manager=pm, use_reference_encoders=True).build()
