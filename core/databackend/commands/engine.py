"""``--engine local|ray [--address ADDR]`` for the preprocessing commands (docs/scale.md)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

__all__ = ["add_engine_arguments", "attach_engine", "ray_fill_settings"]

log = logging.getLogger(__name__)


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--engine`` and ``--address``."""
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="where header probes run: this machine's processes (default) or "
                        "a Ray cluster (pip install 'databackend[ray]')")
    parser.add_argument("--address", default=None,
                        help="Ray cluster address (default: a running cluster, else a local one)")


def attach_engine(args: argparse.Namespace, meta: Any) -> Any:
    """Make ``meta`` probe on the engine ``args`` names (metadata backends that can); the
    engine's pool (with ``stats()``: tasks and retries), or None for local probing."""
    if getattr(args, "engine", "local") != "ray":
        return None
    if not hasattr(meta, "probe_executor"):
        log.warning("dataset %r: its metadata backend cannot run on Ray; scanning locally",
                    getattr(getattr(meta, "dataset", None), "id", "?"))
        return None
    from databackend.engines.ray import connect, use_ray

    connect(args.address)
    return use_ray(meta)


def ray_fill_settings(args: argparse.Namespace, options: Any) -> tuple[Any, int]:
    """``(RayFillOptions, shares)`` of ``cache --engine ray``: the command line's flags, else
    the factory options ``ray_num_gpus``, ``ray_encoders``, ``ray_decoders``, ``ray_shares``."""
    from databackend.engines.raydata import RayFillOptions

    def pick(flag: str, option: str) -> Any:
        """The flag's value, else the option's."""
        value = getattr(args, flag, None)
        return getattr(options, option) if value is None else value

    fill = RayFillOptions(num_gpus=pick("num_gpus", "ray_num_gpus"),
                          encoders=pick("encoders", "ray_encoders"),
                          decoders=pick("decoders", "ray_decoders") or None)
    return fill, int(pick("shares", "ray_shares"))
