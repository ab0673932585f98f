"""Bucket tables, short-bucket policies and the scan report."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from imagefiles import write_image
from test_metadata_support import make_meta

from databackend.metadata.report import BucketRow, ScanReport, bucket_table, effective_buckets
from databackend.registry import PluginRegistry

BUCKETS = {(512, 512): np.arange(10), (768, 512): np.arange(10, 13), (512, 768): np.arange(13, 14)}


def test_pad_policy_table() -> None:
    rows = bucket_table(BUCKETS, batch_size=4, repeats=0, policy="pad")
    by = {r.target: r for r in rows}
    assert [r.target for r in rows] == sorted(BUCKETS)
    assert (by[(512, 512)].batches, by[(512, 512)].padded, by[(512, 512)].action) == (3, 2,
                                                                                       "pad +2")
    assert (by[(768, 512)].batches, by[(768, 512)].short) == (1, True)
    assert by[(512, 768)].padded == 3 and by[(512, 768)].aspect == 0.67
    assert effective_buckets(BUCKETS, batch_size=4, policy="pad").keys() == BUCKETS.keys()


def test_drop_policy_table_and_effective_buckets() -> None:
    rows = bucket_table(BUCKETS, batch_size=4, repeats=1, policy="drop")
    by = {r.target: r for r in rows}
    assert (by[(512, 512)].batches, by[(512, 512)].dropped) == (4, 2)
    assert (by[(768, 512)].batches, by[(768, 512)].short, by[(768, 512)].action) == (
        0, False, "drop -3")  # 3 x 2 passes >= 4: not short by SimpleTuner's rule, yet empty
    assert by[(512, 768)].short
    eff = effective_buckets(BUCKETS, batch_size=4, repeats=1, policy="drop")
    assert list(eff) == [(512, 512)] and eff[(512, 512)] is BUCKETS[(512, 512)]


def test_world_size_multiplies_the_batch() -> None:
    rows = bucket_table({(64, 64): np.arange(8)}, batch_size=2, world_size=4, policy="drop")
    assert rows[0].batch_size == 8 and rows[0].batches == 1 and rows[0].action == "ok"


def test_report_renderings() -> None:
    report = ScanReport(dataset_id="pets")
    report.counts.update(listed=5, kept=3, skipped=2, probed=5)
    report.skipped = {"corrupt": 2}
    report.examples = {"corrupt": ["x.jpg", "y.jpg"]}
    report.buckets = bucket_table(BUCKETS, batch_size=4)
    report.elapsed = 0.5
    text = report.format_table()
    assert "dataset 'pets': 3 kept, 2 skipped" in text
    assert "512x768" in text and "pad +3 (short)" in text and "skipped corrupt: 2" in text
    data = json.loads(json.dumps(report.to_dict()))
    assert data["counts"]["probed"] == 5 and data["rate_per_s"] == 10.0
    assert data["buckets"][0]["bucket"] == "512x512"
    assert isinstance(report.buckets[0], BucketRow) and len(report.short_buckets) == 3


@pytest.mark.parametrize(("where", "policy"), [("dataset", "drop"), ("options", "drop"),
                                               ("default", "pad")])
def test_scan_applies_the_policy(registry: PluginRegistry, tmp_path: Path, where: str,
                                 policy: str, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "img"
    for i in range(5):
        write_image(root / f"sq{i}.png", 64, 64)
    write_image(root / "wide.png", 128, 64)
    keys: dict[str, object] = {"resolution": 64, "resolution_type": "pixel",
                               "train_batch_size": 2}
    options: dict[str, object] = {}
    if where == "dataset":
        keys["short_bucket_policy"] = "drop"
    elif where == "options":
        options["short_bucket_policy"] = "drop"
    meta = make_meta(registry, tmp_path / "out", root, options=options, **keys)
    with caplog.at_level(logging.WARNING):
        report = meta.scan(progress=False)
    rows = {r.target: r for r in report.buckets}
    assert rows[(64, 64)].count == 5 and rows[(128, 64)].short
    if policy == "drop":
        assert rows[(128, 64)].batches == 0 and rows[(64, 64)].dropped == 1
        assert report.warnings and "lose 2 sample(s)" in report.warnings[0]
        assert "short_bucket_policy 'drop'" in caplog.text
        assert list(meta.effective_buckets()) == [(64, 64)]
    else:
        assert rows[(128, 64)].batches == 1 and rows[(128, 64)].padded == 1
        assert not report.warnings and len(meta.effective_buckets()) == 2
