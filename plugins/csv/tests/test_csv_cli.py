"""``databackend scan`` on a CSV dataset served by the local image server: download progress,
failures by reason, and quarantined URLs still reported by later scans."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from csvhelpers import TIMEOUT, write_csv

from databackend.cli import main
from databackend_csv.testing import ImageServer, make_image

GOOD = ["/img/i0.png", "/img/i1.png", "/img/i2.png", "/img/i3.png", "/img/photo.jpg"]
NOT_FOUND = ["/missing/a.png", "/missing/b.jpg", "/img/absent.png"]
NOT_IMAGE = ["/html/c.png", "/disguised/d.png"]
FAILURES = {"not_found": len(NOT_FOUND), "not_image": len(NOT_IMAGE)}


class TtyStream(io.StringIO):
    """A captured stderr that says it is a terminal, so progress bars are drawn into it."""

    def isatty(self) -> bool:
        """Always a terminal."""
        return True


def config(tmp_path: Path, server: ImageServer, *, local: bool = False) -> Path:
    """A config with the ``web`` csv dataset (GOOD, NOT_FOUND and NOT_IMAGE URLs) and, with
    ``local``, a small local dataset first."""
    rows = [(server.url(p), f"caption of {p}") for p in GOOD + NOT_FOUND + NOT_IMAGE]
    entries: list[dict[str, Any]] = [
        {"id": "web", "type": "csv", "csv_file": str(write_csv(tmp_path / "web.csv", rows)),
         "csv_cache_dir": str(tmp_path / "downloads"), "caption_strategy": "csv",
         "csv_allow_private_addresses": True,
         "csv_timeout": TIMEOUT, "csv_retries": 0, "csv_backoff_seconds": 0.01,
         "csv_quarantine_seconds": 3600.0, "resolution": 64, "resolution_type": "pixel"}]
    if local:
        folder = tmp_path / "pets"
        folder.mkdir()
        (folder / "cat.png").write_bytes(make_image(64, 48))
        entries.insert(0, {"id": "pets", "type": "local", "instance_data_dir": str(folder),
                           "resolution": 64, "resolution_type": "pixel"})
    path = tmp_path / "multidatabackend.json"
    path.write_text(json.dumps(entries))
    return path


def scan(cfg: Path, tmp_path: Path, *extra: str) -> int:
    """Run ``databackend scan`` on ``cfg``."""
    return main(["scan", str(cfg), "--option", f"output_dir={tmp_path / 'out'}",
                 "--option", "scan_workers=1", *extra])


def test_scan_text_shows_failures_and_quarantine(tmp_path: Path, server: ImageServer,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The first scan prints the failures by reason after the bucket table; the second makes
    no request and still reports the quarantined URLs it left out of the listing."""
    cfg = config(tmp_path, server)
    assert scan(cfg, tmp_path, "--no-progress") == 0
    out = capsys.readouterr().out
    assert "dataset 'web': 5 kept, 5 skipped" in out
    assert out.index("bucket") < out.index("storage failures:")
    assert "storage failures: not_found 3, not_image 2" in out
    assert "storage quarantine: total 5, by_reason (not_found 3, not_image 2)" in out
    assert "skipped_quarantined 0" in out

    requests = sum(server.requests.values())
    assert scan(cfg, tmp_path, "--no-progress") == 0
    out = capsys.readouterr().out
    assert sum(server.requests.values()) == requests  # no download, no retry
    assert "dataset 'web': 5 kept, 0 skipped" in out
    assert "storage failures: none" in out
    assert "storage quarantine: total 5, by_reason (not_found 3, not_image 2)" in out
    assert "skipped_quarantined 5" in out


def test_scan_json_has_storage_figures(tmp_path: Path, server: ImageServer,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """``--json`` carries each dataset's storage figures; a local dataset has none."""
    cfg = config(tmp_path, server, local=True)
    assert scan(cfg, tmp_path, "--no-progress", "--json") == 0
    pets, web = json.loads(capsys.readouterr().out)["datasets"]
    assert pets["dataset"] == "pets" and pets["storage"] == {}
    storage = web["storage"]
    assert web["counts"]["kept"] == len(GOOD) and web["skipped"] == {"unreadable": 5}
    assert storage["failures"] == FAILURES
    assert storage["quarantine"] == {"total": 5, "by_reason": FAILURES, "due": 0}
    assert storage["downloads"] + storage["range_reads"] == len(GOOD)
    assert storage["bytes_downloaded"] > 0 and storage["rows"] == 10

    assert scan(cfg, tmp_path, "--no-progress", "--json") == 0
    web = json.loads(capsys.readouterr().out)["datasets"][1]
    assert web["counts"]["kept"] == len(GOOD) and web["counts"]["removed"] == 5
    assert web["storage"]["failures"] == {} and web["storage"]["requests"] == 0
    assert web["storage"]["quarantine"]["by_reason"] == FAILURES
    assert web["storage"]["skipped_quarantined"] == 5


def test_scan_shows_download_progress(tmp_path: Path, server: ImageServer,
                                      capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal a download counter with the failures runs next to the scan bar;
    ``--no-progress`` or a stderr that is not a terminal hide it."""
    for name, stream, extra, shown in [("tty", TtyStream(), (), True),
                                       ("off", TtyStream(), ("--no-progress",), False),
                                       ("pipe", io.StringIO(), (), False)]:
        folder = tmp_path / name
        folder.mkdir()
        monkeypatch.setattr(sys, "stderr", stream)
        assert scan(config(folder, server), folder, *extra) == 0
        assert "storage failures: not_found 3, not_image 2" in capsys.readouterr().out
        drawn = stream.getvalue()
        assert ("download web" in drawn and "failed" in drawn) is shown, name
        assert ("scan web" in drawn) is shown, name
