"""``databackend report CONFIG -o report.html``: the self-contained HTML data report.

Builds the config (scan, caches opened but not filled, samplers) and writes one HTML file with
per-dataset bucket, aspect, size and caption plots, filter reasons, cache coverage, the
dependency graph and the build's stage times; ``--metrics FILE`` (from ``databackend run
--metrics-out``) adds the run's mix of datasets and consumer wait. See docs/report.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from databackend.commands.common import add_config_arguments, parse_pairs
from databackend.options import FactoryOptions

__all__ = ["make_report", "register"]


def make_report(config: str, output: str | Path, *, options: FactoryOptions,
                variables: dict[str, str] | None = None, text_encoder: Any = None,
                image_encoder: Any = None, metrics: str | Path | None = None,
                coverage: bool = True, progress: bool | None = None) -> Path:
    """Build ``config`` without filling caches and write its report to ``output``.

    Encoders (or identity strings) name the caches whose coverage is shown; the reference
    encoders stand in for missing ones, as in ``databackend run``.
    """
    from databackend.factory import DataBackendFactory
    from databackend.monitor.htmlreport import write_report

    factory = DataBackendFactory(config, options=options, variables=variables,
                                 text_encoder=text_encoder, image_encoder=image_encoder,
                                 use_reference_encoders=True, precompute=False,
                                 progress=progress, queue_size=0)
    with factory:
        return write_report(factory, output, metrics=metrics, coverage=coverage,
                            progress=progress)


def _encoder(spec: str | None, identity: str | None) -> Any:
    from databackend.caches import load_encoder  # (not at every CLI start)

    return load_encoder(spec) if spec else identity


def _report(args: argparse.Namespace) -> int:
    options = FactoryOptions.from_mapping(parse_pairs(args.option, "--option"))
    try:
        import vl_convert  # noqa: F401  (checked before the build, not after it)
    except ImportError:
        print("error: the HTML report needs vl-convert-python; "
              "pip install 'databackend[report]'", file=sys.stderr)
        return 1
    path = make_report(args.config, args.output, options=options,
                       variables=parse_pairs(args.var, "--var"),
                       text_encoder=_encoder(args.text_encoder, args.text_identity),
                       image_encoder=_encoder(args.image_encoder, args.image_identity),
                       metrics=args.metrics, coverage=not args.no_coverage,
                       progress=False if args.no_progress else None)
    print(f"report: {path.resolve()}")
    return 0


def register(sub: Any) -> None:
    """Add the ``report`` subcommand."""
    parser = sub.add_parser("report", help="write a self-contained HTML data report")
    add_config_arguments(parser)
    parser.add_argument("-o", "--output", default="report.html", help="HTML file to write")
    parser.add_argument("--metrics", metavar="FILE",
                        help="a `databackend run --metrics-out` file: draw the run's mix and wait")
    parser.add_argument("--text-encoder", metavar="MODULE:CALLABLE",
                        help="text encoder whose cache coverage to show (default: reference)")
    parser.add_argument("--image-encoder", metavar="MODULE:CALLABLE",
                        help="VAE encoder whose cache coverage to show (default: reference)")
    parser.add_argument("--text-identity", metavar="ID",
                        help="or just the text encoder's identity string")
    parser.add_argument("--image-identity", metavar="ID",
                        help="or just the VAE encoder's identity string")
    parser.add_argument("--no-coverage", action="store_true",
                        help="skip counting cache entries (faster on remote storage)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=_report)
