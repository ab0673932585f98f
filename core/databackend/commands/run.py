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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from databackend.commands.common import add_config_arguments, parse_pairs
from databackend.commands.encoder_options import (
    add_encoder_arguments,
    encoder_options,
    named_media_encoders,
)
from databackend.monitor.metricslog import MetricsLog
from databackend.monitor.summary import RunFigures, Summary
from databackend.monitor.summarytext import summary_lines
from databackend.options import FactoryOptions

__all__ = ["format_summary", "register", "run_job"]


def _encoder(spec: str | None, kind: str | None = None, args: Any = None) -> Any:
    from databackend.caches import load_encoder  # not at import: `databackend validate` stays light

    if not spec:
        return None
    return load_encoder(spec, kind, **(encoder_options(args, kind or "") if args else {}))


def run_job(config: str, *, steps: int, options: FactoryOptions,
            variables: dict[str, str] | None = None, text_encoder: Any = None,
            image_encoder: Any = None, progress: bool | None = None, queue_size: int = 10,
            metrics_out: str | None = None, metrics_every: int = 10,
            tensorboard_dir: str | None = None,
            media_encoders: dict[str, Any] | None = None) -> Summary:
    """Build, iterate ``steps`` batches, and return the factory summary with run figures.

    With ``metrics_out`` the scalars go to that JSON-lines file every ``metrics_every`` steps
    (:class:`~databackend.monitor.metricslog.MetricsLog`); ``progress`` also governs the live
    line (step, batches/s, wait).
    """
    from databackend.factory import DataBackendFactory  # torch: only for the commands that run

    factory = DataBackendFactory(config, options=options, variables=variables,
                                 text_encoder=text_encoder, image_encoder=image_encoder,
                                 use_reference_encoders=True, progress=progress,
                                 queue_size=queue_size, media_encoders=media_encoders)
    metrics_log = MetricsLog(metrics_out, every=metrics_every,
                             tensorboard_dir=tensorboard_dir) if metrics_out else None
    with factory.build():
        if metrics_log is not None:
            metrics_log.build(factory)
        done, seconds = _iterate(factory, steps, queue_size, metrics_log, progress)
    summary = factory.summary()  # after close(): counts cover the batches consumed
    summary.run = RunFigures(steps=done, seconds=round(seconds, 4),
                             batches_per_s=round(done / seconds, 2) if seconds > 0 else 0.0,
                             epoch=factory.runtime.epoch, step=factory.runtime.step)
    return summary


def _iterate(factory: Any, steps: int, queue_size: int, metrics_log: MetricsLog | None,
             progress: bool | None) -> tuple[int, float]:
    """Consume up to ``steps`` batches with the live line; returns (steps, seconds)."""
    from databackend.monitor.liveline import LiveLine  # (psutil: not at every CLI start)

    fetcher = factory.iterator(prefetch=queue_size > 0)
    line = LiveLine(steps, factory.metrics.fetch, enabled=progress)
    start = time.perf_counter()
    done = 0
    try:
        for _batch in fetcher:
            done += 1
            line.update(done)
            if metrics_log is not None:
                metrics_log.step(factory, done)
            if done >= steps:
                break
        if metrics_log is not None:
            metrics_log.step(factory, done, force=True)
    finally:
        line.close()
        if metrics_log is not None:
            metrics_log.close()
    return done, time.perf_counter() - start


def format_summary(summary: Mapping[str, Any]) -> list[str]:
    """The human-readable summary lines of a :func:`run_job` result (``str(summary)``)."""
    return summary_lines(summary.to_dict() if isinstance(summary, Summary) else summary)


def _print(summary: Summary, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary.to_dict(), indent=2, default=str))
    else:
        print("\n".join(format_summary(summary)))


def _run(args: argparse.Namespace) -> int:
    options = FactoryOptions.from_mapping(parse_pairs(args.option, "--option"))
    summary = run_job(args.config, steps=args.steps, options=options,
                      variables=parse_pairs(args.var, "--var"),
                      text_encoder=_encoder(args.text_encoder, "text", args),
                      image_encoder=_encoder(args.image_encoder, "image", args),
                      progress=False if args.no_progress else None,
                      queue_size=0 if args.no_prefetch else args.queue_size,
                      metrics_out=args.metrics_out, metrics_every=args.metrics_every,
                      tensorboard_dir=args.tensorboard_dir,
                      media_encoders=named_media_encoders(args) or None)
    _print(summary, args.json)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from databackend.demo import make_demo

    root = Path(args.dir) if args.dir else Path(tempfile.gettempdir()) / "databackend-demo"
    config = make_demo(root, overwrite=args.regenerate)
    print(f"demo data and config: {config}")
    raw = json.loads((root / "options.json").read_text(encoding="utf-8"))
    options = FactoryOptions.from_mapping(raw)
    progress = False if args.no_progress else None
    metrics = root.resolve() / "metrics.jsonl"
    summary = run_job(str(config), steps=args.steps, options=options, progress=progress,
                      metrics_out=str(metrics), metrics_every=5)
    _print(summary, args.json)
    print(f"metrics: {metrics}")
    try:
        report = _demo_report(str(config), root / "report.html", options, metrics, progress)
    except ImportError as exc:
        print(f"report skipped: {exc}")
    else:
        print(f"report: {report.resolve()}")
    return 0


def _demo_report(config: str, path: Path, options: FactoryOptions, metrics: Path,
                 progress: bool | None) -> Path:
    """The demo's HTML report (docs/report.md), with the run's metrics drawn."""
    from databackend.commands.report import make_report

    return make_report(config, path, options=options, metrics=metrics, progress=progress)


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
    parser.add_argument("--video-encoder", metavar="MODULE:CALLABLE",
                        help="video encoder for video datasets (default: reference)")
    parser.add_argument("--audio-encoder", metavar="MODULE:CALLABLE",
                        help="audio encoder for audio datasets (default: reference)")
    parser.add_argument("--queue-size", type=int, default=10, help="prefetch queue length")
    parser.add_argument("--no-prefetch", action="store_true", help="build batches inline")
    _add_metrics_flags(parser)
    add_encoder_arguments(parser)
    parser.set_defaults(func=_run)
    demo = sub.add_parser("demo", help="generate a sample dataset and config, then run it")
    demo.add_argument("--dir", help="where to put the demo (default: a folder in the temp dir)")
    demo.add_argument("--regenerate", action="store_true", help="rewrite the sample files")
    _add_run_flags(demo, 60)
    demo.set_defaults(func=_demo)


def _add_metrics_flags(parser: argparse.ArgumentParser) -> None:
    """``--metrics-out``, ``--metrics-every``, ``--tensorboard-dir`` (docs/report.md)."""
    parser.add_argument("--metrics-out", metavar="FILE",
                        help="write scalar metrics as JSON lines (read by `databackend report`)")
    parser.add_argument("--metrics-every", type=int, default=10, metavar="N",
                        help="steps between metrics lines (10)")
    parser.add_argument("--tensorboard-dir", metavar="DIR",
                        help="also write the scalars as TensorBoard events (needs tensorboard)")
