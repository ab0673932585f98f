"""A 1,000-row CSV through the whole pipeline: scan, caches, iteration; then a second run."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

import databackend_csv
from databackend_csv.testing import ImageServer, make_image

pytest.importorskip("torch")
factory_mod = pytest.importorskip("databackend.factory")

ROWS = 1000
SIZES = [(64, 64), (96, 64), (64, 96), (80, 80)]
BAD = ["/missing/a.png", "/missing/b.jpg", "/missing/c.png", "/html/d.png", "/html/e.png",
       "/disguised/f.png", "/slow/p0.png", "/slow/p2.png"]


def _rows(server: ImageServer) -> list[tuple[str, str]]:
    """ROWS rows: good images (8 distinct encodings under many names) and BAD URLs."""
    blobs = [make_image(w, h, fmt, seed=k) for k, ((w, h), fmt) in
             enumerate((s, f) for s in SIZES for f in ("PNG", "JPEG"))]
    rows = []
    for n in range(ROWS - len(BAD)):
        ext = "png" if n % 2 == 0 else "jpg"
        url = server.add(f"p{n}.{ext}", blobs[n % len(blobs)])
        rows.append((url, f"photo number {n % 50}"))
    return rows + [(server.url(p), "bad") for p in BAD]


def _entries(tmp_path: Path, csv_file: Path) -> list[dict[str, Any]]:
    return [
        {"id": "text", "dataset_type": "text_embeds", "type": "local",
         "cache_dir": str(tmp_path / "cache/text")},
        {"id": "vae", "dataset_type": "image_embeds", "type": "local",
         "cache_dir": str(tmp_path / "cache/vae")},
        {"id": "web", "type": "csv", "csv_file": str(csv_file),
         "csv_cache_dir": str(tmp_path / "downloads"), "csv_caption_column": "caption",
         "csv_allow_private_addresses": True,
         "caption_strategy": "csv", "image_embeds": "vae", "train_batch_size": 4,
         "csv_timeout": 0.4, "csv_retries": 0, "csv_backoff_seconds": 0.01},
    ]


def _factory(tmp_path: Path, csv_file: Path) -> Any:
    import databackend_local
    from databackend.caches import ReferenceTextEncoder, ReferenceVAE
    from databackend.plugins import make_plugin_manager

    pm = make_plugin_manager(entrypoints=False, extra=[databackend_local, databackend_csv])
    opts = {"output_dir": str(tmp_path / "out"), "resolution": 64,
            "resolution_type": "pixel_area", "aspect_bucket_alignment": 16}
    return factory_mod.DataBackendFactory(
        _entries(tmp_path, csv_file), plugin_manager=pm, options=opts, max_epochs=1,
        text_encoder=ReferenceTextEncoder(width=16, seq_len=8), image_encoder=ReferenceVAE())


def test_thousand_rows_scan_cache_iterate(tmp_path: Path) -> None:
    """Every good row becomes a trainable sample with its caption; bad rows are quarantined
    and counted; a second run makes no request and serves the same batches."""
    with ImageServer(slow_seconds=1.0) as server:
        rows = _rows(server)
        csv_file = tmp_path / "web.csv"
        with open(csv_file, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["url", "caption"])
            writer.writerows(rows)
        first = _factory(tmp_path, csv_file).build()
        storage = first.storages["web"]
        index = first.metadata["web"].index
        good = ROWS - len(BAD)
        assert len(index) == good
        for i in range(0, good, 97):
            url = storage.url(index.paths[i])
            assert index.captions_of(i) == (dict(rows)[url],)
        summary = storage.scan_summary()
        assert summary["quarantine"]["total"] == len(BAD)
        assert summary["failures"] == {"not_found": 3, "not_image": 3, "timeout": 2}
        transfers = server.full + server.ranged
        assert all(n == 1 for p, n in transfers.items() if p.startswith("/img/"))  # one each
        batches = list(first.iterator())
        first.close()
        seen = {s for b in batches for s in b.sample_ids}
        assert seen == {f"web:{p}" for p in index.paths}
        assert all(b.latents.shape[0] == len(b) for b in batches)
        storage.close()

        requests = sum(server.requests.values())
        second = _factory(tmp_path, csv_file).build()
        again = list(second.iterator())
        second.close()
        assert sum(server.requests.values()) == requests  # no download, no retry of BAD
        assert [b.sample_ids for b in again] == [b.sample_ids for b in batches]
        assert second.storages["web"].scan_summary()["skipped_quarantined"] == len(BAD)
