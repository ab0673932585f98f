"""The HTML report: produced by the demo and by `databackend report`, self-contained, and
rendered in headless Chromium without console errors, every plot drawn (screenshot saved as a
test artifact under $DATABACKEND_ARTIFACTS, default ./test-artifacts)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from reportbrowser import browser_missing, render

from databackend.cli import main


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--dir", str(root), "--steps", "40", "--no-progress"]) == 0
    return root


def test_demo_writes_metrics_and_a_self_contained_report(demo: Path) -> None:
    page = (demo / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    # offline: no external script, style or image
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=['\"]?(https?:)?//", page)
    for text in ("Dataset <code>photos</code>", "Dataset <code>art</code>", "Cache coverage",
                 "not_an_image", "Run</h2>", "sampling policy"):
        assert text in page, text
    assert len(page) < 5 * 2**20
    assert (demo / "metrics.jsonl").read_text().count('"kind":"step"') >= 8


def test_report_command_writes_the_page(demo: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r" / "report.html"
    options = ["--option", f"output_dir={demo / 'out'}", "--option", "resolution=256",
               "--option", "seed=7"]
    assert main(["report", str(demo / "multidatabackend.json"), "-o", str(out),
                 "--metrics", str(demo / "metrics.jsonl"), "--no-progress", *options]) == 0
    assert f"report: {out}" in capsys.readouterr().out
    page = out.read_text(encoding="utf-8")
    # the demo ran with the reference encoders, so their caches are complete
    assert re.search(r"\(100\.0%\)", page) and "Run</h2>" in page


def test_report_renders_in_headless_chromium(demo: Path) -> None:
    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    artifacts = Path(os.environ.get("DATABACKEND_ARTIFACTS", "test-artifacts"))
    shot = artifacts / "report.png"
    result = render(demo / "report.html", shot)
    assert result["errors"] == []
    assert result["state"] == "done"
    plots = result["plots"]
    assert len(plots) >= 12  # graph, stages, mix, wait, and four per dataset
    for plot in plots:
        assert plot["svg"] and plot["width"] > 50 and plot["height"] > 50, plot
        assert plot["marks"] > 0, plot
    assert shot.stat().st_size > 10_000
