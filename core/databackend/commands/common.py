"""Arguments and helpers shared by the subcommands that read a config."""

from __future__ import annotations

import argparse
from typing import Any

from databackend.config.loader import load_config
from databackend.config.plan import DataPlan
from databackend.context import BuildContext
from databackend.errors import ConfigError
from databackend.options import FactoryOptions
from databackend.plugins import make_registry

__all__ = ["add_config_arguments", "load_plan", "parse_pairs"]


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """``CONFIG``, ``--var k=v`` and ``--option k=v``."""
    parser.add_argument("config", metavar="CONFIG", help="multidatabackend JSON file")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                        help="fill {NAME} in config strings (repeatable)")
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="factory option, e.g. seed=3, output_dir=out (repeatable)")


def parse_pairs(pairs: list[str], what: str) -> dict[str, str]:
    """``["a=1", "b=2"]`` -> ``{"a": "1", "b": "2"}``; a pair without ``=`` is a ConfigError."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ConfigError([f"{what} {pair!r} must look like NAME=VALUE"])
        out[name.strip()] = value
    return out


def load_plan(args: Any) -> tuple[DataPlan, BuildContext]:
    """Load and validate the config named on the command line."""
    options = FactoryOptions.from_mapping(parse_pairs(args.option, "--option"))
    registry = make_registry()
    plan = load_config(args.config, registry, options,
                       variables=parse_pairs(args.var, "--var"))
    return plan, BuildContext(options=options, registry=registry)
