"""``databackend scan CONFIG``: scan every dataset, print its bucket table, skipped files and the
storage's own figures (:meth:`~databackend.storage.base.StorageBackend.scan_summary`: for URL
datasets downloads, bytes, cache hits, failures by reason, quarantined URLs).

While a dataset scans, a progress counter of its transfers (the storage's
:meth:`~databackend.storage.base.StorageBackend.add_listener` events) runs next to the scan's
progress bar; both are shown only on a terminal and without ``--no-progress``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from databackend.build import build_metadata, build_storage
from databackend.commands.common import add_config_arguments, load_plan
from databackend.commands.engine import add_engine_arguments, attach_engine

if TYPE_CHECKING:  # numpy-backed: imported by the scan itself, not by `databackend validate`
    from databackend.metadata.report import ScanReport

__all__ = ["TransferProgress", "format_summary", "register", "scan_all", "scan_datasets"]

#: Longest line of :func:`format_summary` (figures are not split across lines).
LINE_WIDTH = 100


class TransferProgress:
    """A tqdm counter of a storage's transfers during one scan, with the bytes fetched, the
    failures and the cache hits so far; created on the first event and only when enabled.
    Thread-safe: events arrive on the reading threads."""

    def __init__(self, enabled: bool, desc: str) -> None:
        """``enabled``: show it (the caller checks for a tty and ``--no-progress``)."""
        self.enabled, self.desc = enabled, desc
        self.counts = {"failure": 0, "cache_hit": 0, "bytes": 0}
        self._lock = threading.Lock()
        self._bar: Any = None

    def __call__(self, event: Any) -> None:
        """Count one event (``kind``, ``nbytes``; see ``StorageBackend.add_listener``)."""
        kind = getattr(event, "kind", "")
        with self._lock:
            if not self.enabled:
                return
            if self._bar is None:
                from tqdm import tqdm

                self._bar = tqdm(desc=self.desc, unit="file", leave=False,
                                 postfix=self.postfix())
            if kind in ("failure", "cache_hit"):
                self.counts[kind] += 1
            else:
                self.counts["bytes"] += int(getattr(event, "nbytes", 0) or 0)
            self._bar.set_postfix_str(self.postfix(), refresh=False)
            self._bar.update(1)

    def postfix(self) -> str:
        """``1.2 MiB, 3 failed`` (and ``, 5 cached`` once files came from a cache)."""
        c = self.counts
        return (f"{_size(c['bytes'])}, {c['failure']} failed"
                + (f", {c['cache_hit']} cached" if c["cache_hit"] else ""))

    def close(self) -> None:
        """Close the counter if it was shown; later events are ignored."""
        with self._lock:
            self.enabled = False
            if self._bar is not None:
                self._bar.close()
                self._bar = None


def _size(nbytes: float) -> str:
    """``812 B``, ``71.6 KiB``, ``1.2 MiB``..."""
    units, n = ("B", "KiB", "MiB", "GiB", "TiB"), 0
    while nbytes >= 1024 and n < len(units) - 1:
        nbytes, n = nbytes / 1024, n + 1
    return f"{nbytes:.0f} B" if n == 0 else f"{nbytes:.1f} {units[n]}"


def scan_datasets(args: argparse.Namespace) -> list[tuple[ScanReport, dict[str, Any]]]:
    """Load the config and scan each dataset in build order; returns each report with its
    storage's :meth:`~databackend.storage.base.StorageBackend.scan_summary`."""
    plan, context = load_plan(args)
    progress = not args.no_progress and sys.stderr.isatty()
    results, storages = [], []
    metas: dict[str, Any] = {}
    from databackend.conditioning.build import ConditioningBuild

    conditioning = ConditioningBuild(plan, context)
    try:
        for dataset in plan.datasets:
            storage = build_storage(dataset, context)
            storages.append(storage)
            counter = TransferProgress(progress, f"download {dataset.id}")
            try:
                if progress:
                    storage.add_listener(counter)
                if dataset.auto_generated:  # generated conditioning: outputs first
                    conditioning.generate(dataset, storage, metas, progress=progress)
                metas[dataset.id] = meta = build_metadata(dataset, storage, context)
                engine = attach_engine(args, meta)
                report = meta.scan(progress=progress)
                if engine is not None:  # --engine ray: probe tasks and Ray's retries
                    args.engine_stats = {**getattr(args, "engine_stats", {}),
                                         dataset.id: engine.stats()}
                results.append((report, storage.scan_summary()))
            finally:
                counter.close()
        args.pairings = [p.to_dict() for p in conditioning.pair(metas).values()]
    finally:
        for storage in storages:
            storage.close()
    return results


def scan_all(args: argparse.Namespace) -> list[ScanReport]:
    """Load the config and scan each dataset in build order; returns the reports."""
    return [report for report, _ in scan_datasets(args)]


def format_summary(summary: Mapping[str, Any], indent: str = "  ") -> list[str]:
    """Text lines of a storage's ``scan_summary()``: its plain figures first (wrapped), then
    one line per nested group (``storage failures: not_found 3, not_image 2``)."""
    plain = [_figure(k, v) for k, v in summary.items() if not isinstance(v, Mapping)]
    lines = _wrap(f"{indent}storage: ", plain, indent * 2) if plain else []
    for key, value in summary.items():
        if isinstance(value, Mapping):
            parts = [_figure(k, v) for k, v in value.items()] or ["none"]
            lines += _wrap(f"{indent}storage {key}: ", parts, indent * 2)
    return lines


def _figure(key: str, value: Any) -> str:
    """``key value``; ints with thousands separators, nested mappings in parentheses."""
    if isinstance(value, Mapping):
        return f"{key} ({', '.join(_figure(k, v) for k, v in value.items()) or 'none'})"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{key} {value:,}"
    return f"{key} {value}"


def _wrap(head: str, parts: list[str], indent: str) -> list[str]:
    """Join ``parts`` with commas into lines of at most :data:`LINE_WIDTH` characters."""
    lines, line, fresh = [], head, True
    for n, part in enumerate(parts):
        piece = part + ("," if n < len(parts) - 1 else "")
        if not fresh and len(line) + 1 + len(piece) > LINE_WIDTH:
            lines.append(line)
            line, fresh = indent, True
        line += piece if fresh else " " + piece
        fresh = False
    return [*lines, line]


def _run(args: argparse.Namespace) -> int:
    results = scan_datasets(args)
    if args.json:
        print(json.dumps({"datasets": [{**report.to_dict(), "storage": summary}
                                       for report, summary in results],
                          "pairing": getattr(args, "pairings", []),
                          **({"engine": args.engine_stats} if hasattr(args, "engine_stats")
                             else {})}, indent=2))
        return 0
    for report, summary in results:
        print(report.format_table())
        for line in format_summary(summary):
            print(line)
        print()
    from databackend.conditioning.pairing import pairing_lines

    for line in pairing_lines(getattr(args, "pairings", [])):
        print(line)
    for name, stats in getattr(args, "engine_stats", {}).items():
        print(f"ray {name}: {stats['list_tasks']} listing and {stats['tasks']} probe tasks, "
              f"{stats['retries']} retried by Ray")
    total = sum(r.counts["kept"] for r, _ in results)
    skipped = sum(r.counts["skipped"] for r, _ in results)
    print(f"OK: {len(results)} dataset(s), {total} samples kept, {skipped} skipped")
    return 0


def register(sub: Any) -> None:
    """Add the ``scan`` subcommand."""
    parser = sub.add_parser("scan", help="scan datasets: sizes, buckets, captions, skipped "
                            "files, downloads and failures")
    add_config_arguments(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_engine_arguments(parser)
    parser.set_defaults(func=_run)
