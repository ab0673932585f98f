"""Index aggregates of the report: bucket status, aspect and size histograms, caption counts
(missing, several, characters, words), skip reasons; the config graph."""

from __future__ import annotations

import numpy as np

from databackend.metadata.captiontable import CaptionTable
from databackend.metadata.index import DatasetIndex, SkippedFiles
from databackend.monitor.indexfacts import (
    aspect_histogram,
    bucket_counts,
    caption_stats,
    index_facts,
    size_heatmap,
)
from databackend.monitor.reportdata import run_series


def test_bucket_counts_and_status() -> None:
    target = np.array([[512, 512]] * 9 + [[768, 512]] * 2 + [[512, 768]] * 4)
    rows = {r["bucket"]: r for r in bucket_counts(target, global_batch=4)}
    assert rows["512x512"]["count"] == 9 and rows["512x512"]["status"] == "partial"
    assert rows["512x512"]["remainder"] == 1
    assert rows["768x512"]["status"] == "short" and rows["768x512"]["short"]
    assert rows["512x768"]["status"] == "full" and rows["512x768"]["aspect"] == 0.667
    assert [r["bucket"] for r in bucket_counts(target, 4)] == ["512x768", "512x512", "768x512"]


def test_aspect_and_size_histograms_count_every_image() -> None:
    original = np.array([[1000, 500], [500, 1000], [800, 800], [10_000, 100]])
    aspects = aspect_histogram(original)
    assert sum(a["count"] for a in aspects) == 4
    assert aspects[-1]["hi"] == 4.0  # 100:1 lands in the outermost bin
    cells = size_heatmap(original)
    assert sum(c["count"] for c in cells) == 4
    assert all(c["w0"] < c["w1"] and c["h0"] < c["h1"] for c in cells)
    assert aspect_histogram(np.zeros((0, 2))) == [] and size_heatmap(np.zeros((0, 2))) == []


def test_caption_stats() -> None:
    table = CaptionTable.from_tuples([("a red bus",), (), ("",), ("one", "two words"),
                                      ("café au lait",)])
    stats = caption_stats(table)
    assert stats["samples"] == 5 and stats["captions"] == 5
    assert stats["missing"] == 2  # no caption, or only an empty one
    assert stats["multiple"] == 1
    # words: 3, 0, 1, 2, 3 -> mean 1.8; characters are UTF-8 bytes
    assert stats["mean_words"] == 1.8
    assert stats["mean_chars"] == round((9 + 0 + 3 + 9 + 13) / 5, 1)
    assert sum(h["count"] for h in stats["chars"]) == 5
    assert caption_stats(CaptionTable.from_tuples([]))["missing"] == 0


def test_index_facts_with_skipped_files() -> None:
    n = 6
    target = np.array([[64, 64]] * n)
    skipped = SkippedFiles(["x/bad.jpg", "y/tiny.png", "z/bad2.jpg"], np.zeros(3), np.zeros(3),
                           np.full((3, 2), -1), [6, 1, 6])
    index = DatasetIndex([f"{i}.jpg" for i in range(n)], file_size=np.ones(n),
                         mtime=np.ones(n), original=target * 2, target=target,
                         intermediary=target, crop=np.zeros((n, 2)),
                         downsample=np.full((n, 2), -1), aspect=np.ones(n),
                         captions=[("c",)] * n, params_fingerprint="t", skipped=skipped)
    facts = index_facts(index, global_batch=4)
    assert facts["samples"] == 6 and facts["skipped"] == 3
    reasons = facts["skip_reasons"]
    assert reasons[0]["count"] == 2 and reasons[0]["examples"] == ["x/bad.jpg", "z/bad2.jpg"]
    assert reasons[1]["examples"] == ["y/tiny.png"]
    assert facts["buckets"][0]["status"] == "partial"


def test_run_series_thins_long_runs_and_keeps_the_last_step() -> None:
    records = [{"kind": "build", "datasets": [{"id": "a", "epoch_share": 0.4}]}]
    records += [{"kind": "step", "step": s, "metrics": {"data/a/share": 0.5}}
                for s in range(1, 2002)]
    series = run_series(records)
    assert series["steps"] == 2001
    steps = [p["step"] for p in series["shares"]]
    assert len(steps) <= 601 and steps[0] == 1 and steps[-1] == 2001
    assert series["targets"] == [{"dataset": "a", "epoch_share": 0.4}]


def test_page_without_run_or_data_says_so() -> None:
    from databackend.monitor.htmlpage import render_html

    empty = {"id": "void", "storage": "local:/x", "global_batch": 4, "sampled": False,
             "samples": 0, "skipped": 0, "buckets": [], "aspects": [], "sizes": [],
             "skip_reasons": [], "captions": caption_stats(CaptionTable.from_tuples([]))}
    page = render_html({"title": "t <&>", "policy": "exhaust", "caches": [], "run": None,
                        "graph": {"nodes": [], "edges": []}, "datasets": [empty],
                        "build": {"stages": [], "total_seconds": 0.0, "peak_rss_mb": 1.0}})
    assert "<title>t &lt;&amp;&gt;</title>" in page
    assert "Run</h2>" not in page and "no buckets" in page and "no captions" in page
    assert '"chart-0"' not in page  # nothing to draw: no empty plots
    assert page.count("<script") == 3  # the Vega bundle, the specs, the init


def test_live_line_reports_rate_and_wait() -> None:
    from databackend.metrics import FetchStats
    from databackend.monitor.liveline import LiveLine

    fetch = FetchStats()
    line = LiveLine(10, fetch, enabled=False, interval=0.0)
    for step in range(1, 5):
        fetch.record_wait(0.002, 1)
        line.update(step)
    line.close()
    assert line.text.startswith("step 4, ") and "batches/s, wait 2.00 ms" in line.text
