"""The summary's text tables (``str(factory.summary())``, ``databackend run``).

The dataset table names what each figure means, because the default ``exhaust`` policy draws
every dataset until its epoch is used up: a dataset's weight orders the epoch but does not set
its share of it (docs/runtime.md, "Reading the summary").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["COLUMN_NOTES", "summary_lines", "table"]

#: what each figure of the dataset table means, printed under it
COLUMN_NOTES = (
    "draws: batches drawn so far; share: their fraction of all steps so far",
    "expected: the draw probability averaged over the steps so far",
    "epoch share: the share of a whole epoch the policy gives the dataset "
    "(exhaust: its batches / all batches; mixture: its weight)",
    "weight now: its draw probability at the current step (0 once used up this epoch)",
)


def table(rows: list[list[str]], header: list[str]) -> list[str]:
    """Left-aligned columns, header first."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()
    return [line] + ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows]


def _pct(x: float) -> str:
    return f"{100 * x:5.1f}%"


def _stages(s: Mapping[str, Any]) -> list[str]:
    out = ["startup stages:"]
    out += ["  " + r for r in table(
        [[st["name"], f"{st['seconds']:.3f} s", f"{st['rss_mb']:.1f} MB",
          f"{st['peak_rss_mb']:.1f} MB"] for st in s["stages"]],
        ["stage", "time", "rss", "peak rss"])]
    out.append(f"  total {s['total_seconds']:.3f} s, peak RSS {s['peak_rss_mb']:.1f} MB")
    for did, scan in s["counters"].get("scan", {}).items():
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(scan["skipped"].items())) or "none"
        out.append(f"scan {did}: {scan['kept']} kept, skipped: {skipped} "
                   f"({scan['seconds']:.2f} s)")
        out += [_media_bucket(b) for b in scan.get("buckets", ())]
    return out


def _datasets(s: Mapping[str, Any]) -> list[str]:
    out = [f"datasets (sampling policy {s.get('policy', 'exhaust')}):"]
    out += ["  " + r for r in table(
        [[d["id"], str(d["samples"]), str(d["batches_per_epoch"]), str(d["draws"]),
          _pct(d["share"]), _pct(d["expected"]), _pct(d.get("epoch_share", 0.0)),
          _pct(d.get("weight_now", 0.0))] for d in s["datasets"]],
        ["dataset", "samples", "batches/epoch", "draws", "share", "expected", "epoch share",
         "weight now"])]
    out += [f"    {note}" for note in COLUMN_NOTES]
    for d in s["datasets"]:
        out += [f"  short bucket {d['id']} {text}" for text in d["short_buckets"]]
    return out


def _caches(s: Mapping[str, Any]) -> list[str]:
    out = ["caches:"]
    for p in s["precompute"]:
        state = f"skipped ({p['skipped']})" if p["skipped"] else \
            f"{p['cached']} cached, {p['encoded']} encoded, {len(p['failed'])} failed"
        out.append(f"  precompute {p['kind']:7s} {p['name']}: {state} in {p['seconds']:.2f} s")
    for did, paths in s.get("excluded", {}).items():
        more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
        out.append(f"  left out of training, latents could not be made: {did}: "
                   f"{', '.join(paths[:3])}{more}")
    for name, c in s["cache_stats"].items():
        out.append(f"  batch time {name}: {c['hits']} hits, {c['misses']} misses, "
                   f"{c['repairs']} repairs, {c['encoded']} encoded")
    return out


def _media_bucket(row: Mapping[str, Any]) -> str:
    """One media bucket: its key, clips, and the frames of its windows and of its clips."""
    def span(pair: list[int]) -> str:
        """``a`` or ``a-b``."""
        return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}-{pair[1]}"

    return (f"  bucket {row['bucket']}: {row['count']} clip(s), {span(row['window_frames'])} "
            f"frames per window (clips of {span(row['source_frames'])} frames)")


def _conditioning(found: Mapping[str, Any]) -> list[str]:
    """Pairing counts and generation figures of a summary's ``conditioning`` part."""
    from databackend.conditioning.pairing import pairing_lines

    out = ["  " + line for line in pairing_lines(found.get("pairing", []))]
    for did, g in found.get("generated", {}).items():
        out.append(f"  generated {did}: {g['existing']} present, {g['generated']} generated, "
                   f"{len(g['failed'])} failed in {g['seconds']:.2f} s")
    return out


def summary_lines(s: Mapping[str, Any]) -> list[str]:
    """The human-readable lines of a summary dict (``Summary.to_dict()``)."""
    out = _stages(s) + _datasets(s) + _caches(s) + _conditioning(s.get("conditioning") or {})
    run, fetch = s.get("run"), s["fetch"]
    if run:
        out.append(f"iteration: {run['steps']} batches in {run['seconds']:.2f} s = "
                   f"{run['batches_per_s']:.1f} batches/s (epoch {run['epoch']}, "
                   f"step {run['step']})")
    out.append(f"consumer wait: mean {fetch['mean_wait_ms']:.3f} ms, after warm-up "
               f"{fetch['steady_mean_wait_ms']:.3f} ms, max {fetch['max_wait_ms']:.1f} ms, "
               f"mean queue depth {fetch['mean_queue_depth']:.1f}")
    return out
