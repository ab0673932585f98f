"""``databackend scan CONFIG``: scan every dataset, print its bucket table and skipped files."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from databackend.build import build_metadata, build_storage
from databackend.commands.common import add_config_arguments, load_plan
from databackend.metadata.report import ScanReport

__all__ = ["register", "scan_all"]


def scan_all(args: argparse.Namespace) -> list[ScanReport]:
    """Load the config and scan each dataset in build order; returns the reports."""
    plan, context = load_plan(args)
    reports = []
    for dataset in plan.datasets:
        storage = build_storage(dataset, context)
        try:
            meta = build_metadata(dataset, storage, context)
            reports.append(meta.scan(progress=not args.no_progress and sys.stderr.isatty()))
        finally:
            storage.close()
    return reports


def _run(args: argparse.Namespace) -> int:
    reports = scan_all(args)
    if args.json:
        print(json.dumps({"datasets": [r.to_dict() for r in reports]}, indent=2))
        return 0
    for report in reports:
        print(report.format_table())
        print()
    total = sum(r.counts["kept"] for r in reports)
    skipped = sum(r.counts["skipped"] for r in reports)
    print(f"OK: {len(reports)} dataset(s), {total} samples kept, {skipped} skipped")
    return 0


def register(sub: Any) -> None:
    """Add the ``scan`` subcommand."""
    parser = sub.add_parser("scan", help="scan datasets: sizes, buckets, captions, skipped files")
    add_config_arguments(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=_run)
