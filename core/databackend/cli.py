"""The ``databackend`` command line. Each subcommand lives in ``databackend.commands.<name>``
and exposes ``register(subparsers)``; errors derived from DatabackendError print without a
traceback and exit 1."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from databackend.errors import DatabackendError

__all__ = ["COMMANDS", "main"]

COMMANDS = ("plugins", "validate", "scan", "cache", "run", "report")


def make_parser() -> argparse.ArgumentParser:
    """The argument parser with every available subcommand."""
    parser = argparse.ArgumentParser(prog="databackend", description=__doc__.split(".")[0])
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log more (-v info, -vv debug)")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="also load this plugin module or .py file (repeatable; for "
                             "developing a plugin without installing it)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"databackend.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"databackend.commands.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    args = make_parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if args.plugin:  # read by databackend.plugins.make_plugin_manager
        before = os.environ.get("DATABACKEND_PLUGIN_MODULES", "")
        os.environ["DATABACKEND_PLUGIN_MODULES"] = ",".join([before, *args.plugin]).strip(",")
    try:
        return int(args.func(args) or 0)
    except DatabackendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # hardening: a full disk, an unreadable file: no traceback
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
