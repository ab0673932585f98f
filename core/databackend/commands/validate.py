"""``databackend validate CONFIG``: print the resolved, sorted plan, or every error (exit 1)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from databackend.commands.common import add_config_arguments, load_plan
from databackend.config.models import BaseBackendConfig, ImageBackendConfig
from databackend.config.plan import DataPlan
from databackend.registry import PluginRegistry

__all__ = ["plan_rows", "register"]


def _where(entry: BaseBackendConfig, registry: PluginRegistry | None) -> str:
    """The location the entry's type declares (``BackendType.location``), else its cache
    folder, else ``-``."""
    declared = registry.types.get(entry.type) if registry is not None else None
    where = declared.where(entry.storage) if declared is not None else None
    return where or getattr(entry, "cache_dir", None) or "-"


def plan_rows(plan: DataPlan, registry: PluginRegistry | None = None) -> list[dict[str, Any]]:
    """One row per entry in build order (no secrets: only ids, types and locations; the
    location comes from the types in ``registry``)."""
    rows = []
    for n, e in enumerate(plan.entries, 1):
        row: dict[str, Any] = {"order": n, "id": e.id, "dataset_type": e.dataset_type,
                               "type": e.type, "location": _where(e, registry)}
        if isinstance(e, ImageBackendConfig):
            te, resolved = plan.text_embeds_for(e), plan.settings_for(e)
            row.update(text_embeds=te.id if te else None, image_embeds=e.image_embeds,
                       resolution=resolved.resolution,
                       resolution_type=resolved.resolution_type,
                       probability=e.probability, repeats=e.repeats)
        rows.append(row)
    return rows


def _run(args: argparse.Namespace) -> int:
    plan, context = load_plan(args)
    rows = plan_rows(plan, context.registry)
    if args.json:
        print(json.dumps({"entries": rows, "warnings": list(plan.warnings)}, indent=2))
        return 0
    cols = ("order", "id", "dataset_type", "type", "location", "text_embeds", "resolution")
    table = [[str(r.get(c, "") if r.get(c) is not None else "-") for c in cols] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for t in table:
        print("  ".join(v.ljust(w) for v, w in zip(t, widths, strict=True)))
    for w in plan.warnings:
        print(f"warning: {w}")
    print(f"OK: {len(rows)} entries")
    return 0


def register(sub: Any) -> None:
    """Add the ``validate`` subcommand."""
    parser = sub.add_parser("validate", help="check a config and print the build plan")
    add_config_arguments(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=_run)
