"""Aggregates of one dataset's index for the HTML report: small, whatever the dataset size.

Everything is computed with NumPy over the index's columns (no per-sample Python), so a
1M-sample index reduces to a few hundred numbers in well under a second: bucket counts,
an aspect-ratio histogram, a 2-D histogram of original sizes, skip reasons with example paths
and caption statistics.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["aspect_histogram", "bucket_counts", "caption_stats", "index_facts", "size_heatmap",
           "skip_reasons"]

#: aspect-ratio histogram: bins per octave and the range (log2 of W/H)
_ASPECT_BINS_PER_OCTAVE, _ASPECT_LOG2_RANGE = 12, 2.0
_SIZE_BINS = 24
_LENGTH_BINS = 30


def bucket_counts(target: np.ndarray, global_batch: int) -> list[dict[str, Any]]:
    """One row per target size: ``bucket`` ("WxH"), ``w``, ``h``, ``aspect``, ``count``,
    ``short`` (fewer samples than one global batch), ``remainder`` (samples past the last
    whole global batch, padded or dropped by the short-bucket policy) and ``status``
    (``short``, ``partial`` or ``full``)."""
    if not len(target):
        return []
    packed = target[:, 0].astype(np.int64) << 32 | target[:, 1].astype(np.int64)
    keys, counts = np.unique(packed, return_counts=True)  # 1-D: far cheaper than axis=0
    rows = [{"bucket": f"{k >> 32}x{k & 0xFFFFFFFF}", "w": k >> 32, "h": k & 0xFFFFFFFF,
             "aspect": round((k >> 32) / max(1, k & 0xFFFFFFFF), 3), "count": c,
             "short": c < global_batch, "remainder": c % global_batch,
             "status": _status(c, global_batch)}
            for k, c in zip(keys.tolist(), counts.tolist(), strict=True)]
    return sorted(rows, key=lambda r: (r["aspect"], r["w"]))


def _status(count: int, global_batch: int) -> str:
    """``short`` (under one global batch), ``partial`` (last batch padded or dropped by the
    short-bucket policy) or ``full``."""
    if count < global_batch:
        return "short"
    return "partial" if count % global_batch else "full"


def aspect_histogram(original: np.ndarray) -> list[dict[str, Any]]:
    """Counts of original W/H in log-spaced bins (``lo``, ``hi``, ``count``); ratios past
    4:1 either way fall in the outermost bins."""
    if not len(original):
        return []
    w, h = original[:, 0].astype(np.float64), original[:, 1].astype(np.float64)
    ok = (w > 0) & (h > 0)
    r = np.clip(np.log2(w[ok] / h[ok]), -_ASPECT_LOG2_RANGE, _ASPECT_LOG2_RANGE - 1e-9)
    n = int(2 * _ASPECT_LOG2_RANGE * _ASPECT_BINS_PER_OCTAVE)
    edges = np.linspace(-_ASPECT_LOG2_RANGE, _ASPECT_LOG2_RANGE, n + 1)
    counts, _ = np.histogram(r, bins=edges)
    return [{"lo": round(float(2 ** a), 4), "hi": round(float(2 ** b), 4), "count": int(c)}
            for a, b, c in zip(edges[:-1], edges[1:], counts, strict=True) if c]


def size_heatmap(original: np.ndarray) -> list[dict[str, Any]]:
    """Non-empty cells of a 2-D histogram of original (W, H): ``w0``, ``w1``, ``h0``, ``h1``,
    ``count``."""
    if not len(original):
        return []
    w, h = original[:, 0], original[:, 1]
    top = float(max(w.max(), h.max(), 1))
    edges = np.linspace(0.0, top * 1.0001, _SIZE_BINS + 1)
    counts, _, _ = np.histogram2d(w, h, bins=[edges, edges])
    out = []
    for i, j in zip(*np.nonzero(counts), strict=True):
        out.append({"w0": int(edges[i]), "w1": int(edges[i + 1]), "h0": int(edges[j]),
                    "h1": int(edges[j + 1]), "count": int(counts[i, j])})
    return out


def skip_reasons(skipped: Any, examples: int = 5) -> list[dict[str, Any]]:
    """Skipped files per reason with up to ``examples`` example paths, most frequent first."""
    samples = skipped.examples(examples)
    rows = [{"reason": r, "count": n, "examples": samples.get(r, [])}
            for r, n in skipped.counts().items()]
    return sorted(rows, key=lambda r: -r["count"])


def caption_stats(captions: Any) -> dict[str, Any]:
    """Samples without a caption, with several, and a histogram of caption lengths in
    characters (UTF-8 bytes) and words (over every caption)."""
    sections = captions.sections()
    counts = sections["counts"].astype(np.int64)
    lengths = sections["lengths"].astype(np.int64)
    blob = sections["blob"]
    empty_sample = counts == 0
    if len(lengths):  # a sample whose captions are all empty has none either
        firsts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        has = counts > 0
        total = np.zeros(len(counts), np.int64)
        total[has] = np.add.reduceat(lengths, firsts[has])
        empty_sample |= total == 0
    words = _word_counts(blob, lengths)
    return {"samples": len(counts), "missing": int(empty_sample.sum()),
            "multiple": int((counts > 1).sum()), "captions": len(lengths),
            "mean_chars": round(float(lengths.mean()), 1) if len(lengths) else 0.0,
            "mean_words": round(float(words.mean()), 1) if len(words) else 0.0,
            "chars": _histogram(lengths), "words": _histogram(words)}


def _word_counts(blob: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Words per caption: spaces + 1 for non-empty captions (vectorised over the blob)."""
    if not len(lengths):
        return lengths
    ends = np.cumsum(lengths)
    spaces = np.flatnonzero(blob == 32)
    inside = np.searchsorted(spaces, ends) - np.searchsorted(spaces, ends - lengths)
    return np.where(lengths > 0, inside + 1, 0)


def _histogram(values: np.ndarray) -> list[dict[str, Any]]:
    if not len(values):
        return []
    top = int(values.max()) + 1
    edges = np.unique(np.linspace(0, top, min(_LENGTH_BINS, top) + 1).astype(np.int64))
    counts, _ = np.histogram(values, bins=edges)
    return [{"lo": int(a), "hi": int(b), "count": int(c)}
            for a, b, c in zip(edges[:-1], edges[1:], counts, strict=True) if c]


def index_facts(index: Any, *, global_batch: int) -> dict[str, Any]:
    """Every aggregate of one dataset's index (see the module docstring)."""
    return {"samples": len(index), "skipped": len(index.skipped),
            "buckets": bucket_counts(index.target, global_batch),
            "aspects": aspect_histogram(index.original),
            "sizes": size_heatmap(index.original),
            "skip_reasons": skip_reasons(index.skipped),
            "captions": caption_stats(index.captions)}
