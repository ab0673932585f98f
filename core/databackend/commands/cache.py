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


def _reference_image_embedder() -> Any:
    """The stand-in conditioning image encoder (only next to the other reference encoders)."""
    from databackend.conditioning.image_embeds import ReferenceImageEmbedder

    return ReferenceImageEmbedder()


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
    stand_in = args.text_encoder is None and args.image_encoder is None  # reference encoders
    runs = precompute_plan(plan, context, text_encoder=text_encoder, image_encoder=image_encoder,
                           progress=progress, batch_size=args.batch_size,
                           text_batch_size=args.text_batch_size, include_ondemand=True,
                           conditioning_image_encoder=_reference_image_embedder() if stand_in
                           else None)
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
    parser.set_defaults(func=_run)
