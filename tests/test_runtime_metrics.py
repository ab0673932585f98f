"""Metrics: stage timing with RSS, INFO logging, plain-dict export, steady-state waits."""

from __future__ import annotations

import json
import logging

import pytest

from databackend.metrics import FetchStats, Metrics, peak_rss, rss


def test_stage_records_time_memory_and_details(caplog: pytest.LogCaptureFixture) -> None:
    m = Metrics()
    with caplog.at_level(logging.INFO, logger="databackend.metrics"), m.stage("scan") as d:
        d["files"] = 3
        blob = bytearray(8 * 1024 * 1024)
    assert blob is not None
    (stage,) = m.stages
    assert stage.name == "scan" and stage.seconds >= 0 and stage.details == {"files": 3}
    assert stage.peak_rss >= stage.rss > 0
    assert "stage scan" in caplog.text and "files=3" in caplog.text
    out = m.to_dict()
    json.dumps(out)
    assert out["stages"][0]["files"] == 3 and out["peak_rss_mb"] > 0


def test_stage_is_recorded_even_when_it_fails() -> None:
    m = Metrics()
    with pytest.raises(RuntimeError), m.stage("caches"):
        raise RuntimeError("boom")
    assert [s.name for s in m.stages] == ["caches"]
    assert m.stage_seconds()["caches"] >= 0


def test_rss_helpers() -> None:
    assert rss() > 0
    assert peak_rss() >= 0


def test_fetch_stats_separate_warmup() -> None:
    s = FetchStats(warmup=2)
    for wait in (1.0, 1.0, 0.001, 0.003):
        s.record_wait(wait, depth=2)
    assert s.mean_wait == pytest.approx(2.004 / 4)
    assert s.steady_mean_wait == pytest.approx(0.002)
    assert s.mean_depth == 2 and s.to_dict()["max_wait_ms"] == 1000.0
