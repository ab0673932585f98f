"""``databackend run CONFIG`` (the main job) and ``databackend demo`` (sample data + run).

``run`` builds everything (scans, fills missing caches with the reference encoders or the
``--text-encoder``/``--image-encoder`` given as ``module:callable``), iterates ``--steps``
batches through the prefetching fetcher, and prints a summary: per-stage times, peak RSS,
per-dataset draws against target weights, cache hits/misses, batches/s and consumer wait.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from databackend.commands.common import add_config_arguments, parse_pairs
from databackend.options import FactoryOptions

__all__ = ["format_summary", "register", "run_job"]


def _encoder(spec: str | None) -> Any:
    from databackend.caches import load_encoder  # not at import: `databackend validate` stays light

    return load_encoder(spec) if spec else None


def run_job(config: str, *, steps: int, options: FactoryOptions,
            variables: dict[str, str] | None = None, text_encoder: Any = None,
            image_encoder: Any = None, progress: bool | None = None, queue_size: int = 10
            ) -> dict[str, Any]:
    """Build, iterate ``steps`` batches, and return the factory summary plus run figures."""
    from databackend.factory import DataBackendFactory  # torch: only for the commands that run

    factory = DataBackendFactory(config, options=options, variables=variables,
                                 text_encoder=text_encoder, image_encoder=image_encoder,
                                 use_reference_encoders=True, progress=progress,
                                 queue_size=queue_size)
    with factory.build():
        fetcher = factory.iterator(prefetch=queue_size > 0)
        start = time.perf_counter()
        done = 0
        for _batch in fetcher:
            done += 1
            if done >= steps:
                break
        seconds = time.perf_counter() - start
    summary = factory.summary()  # after close(): counts cover the batches consumed
    summary["run"] = {"steps": done, "seconds": round(seconds, 4),
                      "batches_per_s": round(done / seconds, 2) if seconds > 0 else 0.0,
                      "epoch": factory.runtime.epoch, "step": factory.runtime.step}
    return summary


def _table(rows: list[list[str]], header: list[str]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    return [line] + ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]


def _pct(x: float) -> str:
    return f"{100 * x:5.1f}%"


def format_summary(summary: dict[str, Any]) -> list[str]:
    """The human-readable summary lines of a :func:`run_job` result."""
    out = ["startup stages:"]
    out += ["  " + r for r in _table(
        [[s["name"], f"{s['seconds']:.3f} s", f"{s['rss_mb']:.1f} MB", f"{s['peak_rss_mb']:.1f} MB"]
         for s in summary["stages"]], ["stage", "time", "rss", "peak rss"])]
    out.append(f"  total {summary['total_seconds']:.3f} s, peak RSS {summary['peak_rss_mb']:.1f} MB")
    for did, scan in summary["counters"].get("scan", {}).items():
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(scan["skipped"].items())) or "none"
        out.append(f"scan {did}: {scan['kept']} kept, skipped: {skipped} "
                   f"({scan['seconds']:.2f} s)")
    out.append("datasets (draws vs target weights):")
    out += ["  " + r for r in _table(
        [[d["id"], str(d["samples"]), str(d["batches_per_epoch"]), str(d["draws"]),
          _pct(d["share"]), _pct(d["expected"]), _pct(d["target"])]
         for d in summary["datasets"]],
        ["dataset", "samples", "batches/epoch", "draws", "share", "expected", "target"])]
    for d in summary["datasets"]:
        for text in d["short_buckets"]:
            out.append(f"  short bucket {d['id']} {text}")
    out.append("caches:")
    for p in summary["precompute"]:
        state = f"skipped ({p['skipped']})" if p["skipped"] else \
            f"{p['cached']} cached, {p['encoded']} encoded, {len(p['failed'])} failed"
        out.append(f"  precompute {p['kind']:7s} {p['name']}: {state} in {p['seconds']:.2f} s")
    for did, paths in summary.get("excluded", {}).items():
        more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
        out.append(f"  left out of training, latents could not be made: {did}: "
                   f"{', '.join(paths[:3])}{more}")
    for name, s in summary["cache_stats"].items():
        out.append(f"  batch time {name}: {s['hits']} hits, {s['misses']} misses, "
                   f"{s['repairs']} repairs, {s['encoded']} encoded")
    run, fetch = summary["run"], summary["fetch"]
    out.append(f"iteration: {run['steps']} batches in {run['seconds']:.2f} s = "
               f"{run['batches_per_s']:.1f} batches/s (epoch {run['epoch']}, step {run['step']})")
    out.append(f"consumer wait: mean {fetch['mean_wait_ms']:.3f} ms, after warm-up "
               f"{fetch['steady_mean_wait_ms']:.3f} ms, max {fetch['max_wait_ms']:.1f} ms, "
               f"mean queue depth {fetch['mean_queue_depth']:.1f}")
    return out


def _print(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print("\n".join(format_summary(summary)))


def _run(args: argparse.Namespace) -> int:
    options = FactoryOptions.from_mapping(parse_pairs(args.option, "--option"))
    summary = run_job(args.config, steps=args.steps, options=options,
                      variables=parse_pairs(args.var, "--var"),
                      text_encoder=_encoder(args.text_encoder),
                      image_encoder=_encoder(args.image_encoder),
                      progress=False if args.no_progress else None,
                      queue_size=0 if args.no_prefetch else args.queue_size)
    _print(summary, args.json)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from databackend.demo import make_demo

    root = Path(args.dir) if args.dir else Path(tempfile.gettempdir()) / "databackend-demo"
    config = make_demo(root, overwrite=args.regenerate)
    print(f"demo data and config: {config}")
    raw = json.loads((root / "options.json").read_text(encoding="utf-8"))
    options = FactoryOptions.from_mapping(raw)
    summary = run_job(str(config), steps=args.steps, options=options,
                      progress=False if args.no_progress else None)
    _print(summary, args.json)
    return 0


def _add_run_flags(parser: argparse.ArgumentParser, steps: int) -> None:
    parser.add_argument("--steps", type=int, default=steps, help=f"batches to iterate ({steps})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def register(sub: Any) -> None:
    """Add the ``run`` and ``demo`` subcommands."""
    parser = sub.add_parser("run", help="build everything, iterate batches, print a summary")
    add_config_arguments(parser)
    _add_run_flags(parser, 100)
    parser.add_argument("--text-encoder", metavar="MODULE:CALLABLE",
                        help="text encoder to fill missing caches (default: reference)")
    parser.add_argument("--image-encoder", metavar="MODULE:CALLABLE",
                        help="image (VAE) encoder to fill missing caches (default: reference)")
    parser.add_argument("--queue-size", type=int, default=10, help="prefetch queue length")
    parser.add_argument("--no-prefetch", action="store_true", help="build batches inline")
    parser.set_defaults(func=_run)
    demo = sub.add_parser("demo", help="generate a sample dataset and config, then run it")
    demo.add_argument("--dir", help="where to put the demo (default: a folder in the temp dir)")
    demo.add_argument("--regenerate", action="store_true", help="rewrite the sample files")
    _add_run_flags(demo, 60)
    demo.set_defaults(func=_demo)
