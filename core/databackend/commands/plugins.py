"""``databackend plugins``: installed plugins, their versions, backend types and strategies."""

from __future__ import annotations

import argparse
import json
from typing import Any

from databackend.plugins import make_plugin_manager
from databackend.registry import PluginRegistry

__all__ = ["plugin_rows", "register"]


def plugin_rows(registry: PluginRegistry) -> list[dict[str, Any]]:
    """One row per plugin: name, source distribution, backend types, strategies, hooks."""
    pm = registry.pm
    sources = getattr(pm, "plugin_sources", {})
    rows = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda kv: str(kv[0])):
        rows.append({
            "name": name,
            "source": sources.get(name, "?"),
            "types": sorted(t for t in registry.backends if registry.plugin_of(t) == name),
            "strategies": registry.strategies_of(name),
            "hooks": sorted(h.name for h in pm.get_hookcallers(plugin) or ()),
        })
    return rows


def _run(args: argparse.Namespace) -> int:
    registry = PluginRegistry.collect(make_plugin_manager())
    rows = plugin_rows(registry)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(f"{row['name']}  ({row['source']})")
        print(f"    backend types: {', '.join(row['types']) or '-'}")
        print(f"    strategies:    {', '.join(row['strategies']) or '-'}")
        print(f"    hooks:         {', '.join(row['hooks']) or '-'}")
    print(f"\nbackend types available: {', '.join(sorted(registry.backends)) or 'none'}")
    return 0


def register(sub: Any) -> None:
    """Add the ``plugins`` subcommand."""
    parser = sub.add_parser("plugins", help="list installed plugins, backend types, strategies")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=_run)
