"""The self-contained HTML report with hostile names: a dataset id, file names and skip
examples holding markup, ``</script>`` and ``<!--`` are shown as text; the page keeps exactly
its own three scripts, and nothing is written outside the output file and folder."""

from __future__ import annotations

import html
from pathlib import Path

import pytest
from advhelpers import cli, dataset, image_folder, snapshot, write_config
from imagefiles import write_image

pytest.importorskip("vl_convert")

IDENT = "</script><!--<script>alert('id')</script>"
NAMES = ["<img src=x onerror=alert(1)>.png", "<!--<script>.png", "a&amp;b\"'<b>.png"]


def test_hostile_names_are_text_in_the_report(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "data", 2)
    for name in NAMES:  # too small: they appear as skip examples
        write_image(root / name, 8, 8)
    config = write_config(tmp_path / "c.json", [
        {**dataset(root, minimum_image_size=32), "id": IDENT}])
    before = snapshot(root)
    out_file = tmp_path / "report.html"
    code, out = cli("report", str(config), "-o", str(out_file),
                    "--option", f"output_dir={tmp_path / 'out'}")
    assert code == 0 and "Traceback" not in out, out
    page = out_file.read_text(encoding="utf-8")
    assert page.count("<script") == 3 and page.count("</script>") == 3
    assert page.count("<!--") == 0
    for text in (IDENT, *NAMES):
        assert text not in page
    assert html.escape(NAMES[0]) in page and html.escape(IDENT) in page
    assert snapshot(root) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json", "data", "out",
                                                          "report.html"]
