"""Vega-Lite specifications of the report's plots (plain dicts, rendered by vega-embed).

Each function takes the already-aggregated rows from :mod:`databackend.monitor.indexfacts` or
:mod:`databackend.monitor.reportdata` and returns one chart; data sizes are bounded by the
aggregation, not by the dataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["aspect_chart", "bucket_chart", "caption_chart", "graph_chart", "share_chart",
           "size_chart", "stage_chart", "wait_chart"]

Spec = dict[str, Any]
_W, _H = 420, 220


def _base(rows: Sequence[Any], title: str, **extra: Any) -> Spec:
    return {"title": title, "width": _W, "height": _H, "data": {"values": list(rows)}, **extra}


def bucket_chart(buckets: Sequence[dict[str, Any]]) -> Spec:
    """Samples per target size, coloured by status: full, partial (the last batch is padded
    or dropped) or short (under one global batch)."""
    return _base(buckets, "Samples per aspect bucket (target size)", mark={"type": "bar",
                                                                          "tooltip": True},
                 encoding={
                     "x": {"field": "bucket", "type": "nominal", "sort": None,
                           "title": "bucket (W x H, by aspect)"},
                     "y": {"field": "count", "type": "quantitative", "title": "samples"},
                     "color": {"field": "status", "type": "nominal", "title": "bucket",
                               "scale": {"domain": ["full", "partial", "short"],
                                         "range": ["#4c78a8", "#f2a93b", "#e45756"]}}})


def aspect_chart(aspects: Sequence[dict[str, Any]]) -> Spec:
    """Histogram of original aspect ratios (W/H, log scale)."""
    return _base(aspects, "Original aspect ratio (W/H)", mark={"type": "bar", "tooltip": True},
                 encoding={
                     "x": {"field": "lo", "type": "quantitative", "bin": {"binned": True},
                           "scale": {"type": "log"}, "title": "W / H"},
                     "x2": {"field": "hi"},
                     "y": {"field": "count", "type": "quantitative", "title": "images"}})


def size_chart(cells: Sequence[dict[str, Any]]) -> Spec:
    """Heatmap of original sizes (W x H)."""
    return _base(cells, "Original sizes (pixels)", mark={"type": "rect", "tooltip": True},
                 height=_W * 0.6, encoding={
                     "x": {"field": "w0", "type": "quantitative", "title": "width"},
                     "x2": {"field": "w1"},
                     "y": {"field": "h0", "type": "quantitative", "title": "height"},
                     "y2": {"field": "h1"},
                     "color": {"field": "count", "type": "quantitative", "title": "images",
                               "scale": {"scheme": "blues", "type": "sqrt"}}})


def caption_chart(chars: Sequence[dict[str, Any]]) -> Spec:
    """Histogram of caption lengths in characters."""
    return _base(chars, "Caption length (characters)", mark={"type": "bar", "tooltip": True},
                 encoding={
                     "x": {"field": "lo", "type": "quantitative", "bin": {"binned": True},
                           "title": "characters"},
                     "x2": {"field": "hi"},
                     "y": {"field": "count", "type": "quantitative", "title": "captions"}})


def stage_chart(stages: Sequence[dict[str, Any]]) -> Spec:
    """Seconds per startup stage with the peak RSS at its end in the tooltip."""
    return _base(stages, "Startup stages of the last build", mark={"type": "bar",
                                                                   "tooltip": True},
                 encoding={
                     "y": {"field": "name", "type": "nominal", "sort": None, "title": None},
                     "x": {"field": "seconds", "type": "quantitative", "title": "seconds"},
                     "color": {"field": "peak_rss_mb", "type": "quantitative",
                               "title": "peak RSS (MB)", "scale": {"scheme": "oranges"}}})


def share_chart(points: Sequence[dict[str, Any]], targets: Sequence[dict[str, Any]]) -> Spec:
    """Each dataset's share of the steps so far (lines) against its epoch share (dashed)."""
    line = {"mark": {"type": "line", "point": len(points) < 200, "tooltip": True},
            "data": {"values": list(points)},
            "encoding": {"x": {"field": "step", "type": "quantitative"},
                         "y": {"field": "share", "type": "quantitative",
                               "axis": {"format": "%"}, "title": "share of steps so far"},
                         "color": {"field": "dataset", "type": "nominal"}}}
    rule = {"mark": {"type": "rule", "strokeDash": [6, 4], "tooltip": True},
            "data": {"values": list(targets)},
            "encoding": {"y": {"field": "epoch_share", "type": "quantitative"},
                         "color": {"field": "dataset", "type": "nominal"}}}
    return {"title": "Draws per dataset over the run (dashed: epoch share)", "width": _W,
            "height": _H, "layer": [line, rule]}


def wait_chart(points: Sequence[dict[str, Any]]) -> Spec:
    """The consumer's mean wait per batch between metrics lines."""
    return _base(points, "Consumer wait per batch", mark={"type": "line", "point": True,
                                                          "tooltip": True},
                 encoding={"x": {"field": "step", "type": "quantitative"},
                           "y": {"field": "wait_ms", "type": "quantitative",
                                 "title": "mean wait (ms)"}})


def graph_chart(nodes: Sequence[dict[str, Any]], edges: Sequence[dict[str, Any]]) -> Spec:
    """The dependency graph: caches on the left, datasets on the right, an edge per use."""
    scale = {"x": {"field": "x", "type": "quantitative", "axis": None,
                   "scale": {"domain": [-0.3, max([n["x"] for n in nodes] or [0]) + 0.7]}},
             "y": {"field": "y", "type": "quantitative", "axis": None,
                   "scale": {"domain": [max([n["y"] for n in nodes] or [0]) + 0.5, -0.5]}}}
    edge = {"data": {"values": list(edges)}, "mark": {"type": "rule", "color": "#999"},
            "encoding": {**scale, "x2": {"field": "x2"}, "y2": {"field": "y2"}}}
    point = {"data": {"values": list(nodes)},
             "mark": {"type": "point", "filled": True, "size": 220, "tooltip": True},
             "encoding": {**scale, "color": {"field": "kind", "type": "nominal"},
                          "shape": {"field": "kind", "type": "nominal"}}}
    label = {"data": {"values": list(nodes)},
             "mark": {"type": "text", "dy": -14, "fontSize": 12},
             "encoding": {**scale, "text": {"field": "id"}}}
    rows = max([n["y"] for n in nodes] or [0]) + 1
    return {"title": "Datasets and caches", "width": _W, "height": max(120, 60 * rows),
            "layer": [edge, point, label]}
