"""``databackend cache CONFIG``: scan every dataset and fill its latent and text caches.

Uses the reference encoders unless ``--text-encoder`` / ``--image-encoder`` name a
``module:callable``. Entries already cached are not recomputed, so an interrupted run is
finished by running it again. Caches marked on demand are filled too (the command is an
explicit request); disabled ones are skipped. Exit status 1 when a sample failed to load.
"""

from __future__ import annotations

import argparse
from typing import Any

from databackend.commands.common import add_config_arguments, load_plan
from databackend.commands.engine import add_engine_arguments
from databackend.errors import ConfigError

__all__ = ["register"]


def _encoder(spec: str | None, kind: str) -> Any:
    from databackend.caches import encoders

    if spec is None:
        return encoders.ReferenceTextEncoder() if kind == "text" else encoders.ReferenceVAE()
    try:
        encoder = encoders.load_encoder(spec)
    except (ValueError, ImportError, AttributeError) as exc:
        raise ConfigError([f"--{kind}-encoder {spec!r}: {exc}"]) from exc
    protocol = encoders.TextEncoder if kind == "text" else encoders.ImageEncoder
    if not isinstance(encoder, protocol) or not isinstance(encoder.identity, str):
        raise ConfigError([f"--{kind}-encoder {spec!r} gave {type(encoder).__name__}, which has "
                           "no string `identity` or is not callable"])
    return encoder


def _line(run: Any) -> str:
    r = run.report
    if r.skipped:
        return f"{run.kind:7} {run.name}: skipped ({r.skipped})  [{run.location}]"
    failed = f", {len(r.failed)} failed" if r.failed else ""
    return (f"{run.kind:7} {run.name}: {r.total} entries, {r.cached} already cached, "
            f"{r.encoded} encoded{failed} in {r.seconds:.1f}s  [{run.location}]")


def _run(args: argparse.Namespace) -> int:
    import attrs

    from databackend.caches.precompute import precompute_plan

    plan, context = load_plan(args)
    context = attrs.evolve(context, rank=args.rank, world_size=args.world_size)
    text_encoder, image_encoder = _encoder(args.text_encoder, "text"), _encoder(
        args.image_encoder, "image")
    progress = False if args.no_progress else None
    if args.engine == "ray":  # scan and fill on a Ray cluster (docs/scale.md)
        from databackend.engines.raycache import run_cache

        runs = run_cache(args, (text_encoder, image_encoder), shares=args.shares,
                         num_gpus=args.num_gpus)
    else:
        runs = precompute_plan(plan, context, text_encoder=text_encoder,
                               image_encoder=image_encoder, progress=progress,
                               batch_size=args.batch_size,
                               text_batch_size=args.text_batch_size, include_ondemand=True)
    for run in runs:
        print(_line(run))
        for path, error in run.report.failed:
            print(f"  failed: {path}: {error}")
    encoded = sum(r.report.encoded for r in runs)
    cached = sum(r.report.cached for r in runs)
    failed = sum(len(r.report.failed) for r in runs)
    print(f"{'FAILED' if failed else 'OK'}: {encoded} encoded, {cached} already cached, "
          f"{failed} failed")
    return 1 if failed else 0


def register(sub: Any) -> None:
    """Add the ``cache`` subcommand."""
    parser = sub.add_parser("cache", help="fill the text-embedding and VAE latent caches")
    add_config_arguments(parser)
    parser.add_argument("--text-encoder", metavar="MODULE:CALLABLE",
                        help="text encoder factory (default: the reference stand-in)")
    parser.add_argument("--image-encoder", metavar="MODULE:CALLABLE",
                        help="image encoder (VAE) factory (default: the reference stand-in)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per VAE call")
    parser.add_argument("--text-batch-size", type=int, default=32, help="captions per call")
    parser.add_argument("--rank", type=int, default=0, help="this process's rank")
    parser.add_argument("--world-size", type=int, default=1, help="number of processes")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_engine_arguments(parser)
    parser.add_argument("--shares", type=int, default=2,
                        help="with --engine ray: Ray tasks the caches are split into")
    parser.add_argument("--num-gpus", type=float, default=0,
                        help="with --engine ray: GPUs per task (for GPU encoders)")
    parser.set_defaults(func=_run)
