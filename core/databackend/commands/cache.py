"""``databackend cache CONFIG``: scan every dataset and fill its latent and text caches.

Uses the reference encoders unless ``--text-encoder`` / ``--image-encoder`` name a
``module:callable``. Entries already cached are not recomputed, so an interrupted run is
finished by running it again. Caches marked on demand are filled too (the command is an
explicit request); disabled ones are skipped. Exit status 1 when a sample failed to load.

A plain run only checks that entries *exist* (fast) and says so; ``--verify`` reads and checks
every entry, re-encodes the bad ones and reports counts (exit status 1 when any stay bad).
"""

from __future__ import annotations

import argparse
from typing import Any

from databackend.commands.common import add_config_arguments, load_plan
from databackend.commands.encoder_options import (
    add_encoder_arguments,
    encoder_options,
    named_media_encoders,
)
from databackend.commands.engine import add_engine_arguments, ray_fill_settings
from databackend.errors import ConfigError

__all__ = ["register"]


def _encoder(spec: str | None, kind: str, args: Any = None) -> Any:
    from databackend.caches import encoders

    if spec is None:
        return encoders.ReferenceTextEncoder() if kind == "text" else encoders.ReferenceVAE()
    try:
        encoder = encoders.load_encoder(spec, kind, **encoder_options(args, kind))
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
    failed += f", {r.retries} retried by Ray" if r.retries else ""
    return (f"{run.kind:7} {run.name}: {r.total} entries, {r.cached} already cached, "
            f"{r.encoded} encoded{failed} in {r.seconds:.1f}s  [{run.location}]")


def _verify(args: argparse.Namespace, plan: Any, context: Any, text_encoder: Any,
            image_encoder: Any) -> int:
    from databackend.caches.verify import verify_plan

    results = verify_plan(plan, context, text_encoder=text_encoder,
                          image_encoder=image_encoder, progress=False if args.no_progress
                          else None, batch_size=args.batch_size,
                          text_batch_size=args.text_batch_size)
    for r in results:
        print(r.line())
        for path, why in r.problems:
            print(f"  bad: {path}: {why}")
    bad = sum(r.bad - r.repaired for r in results)
    print(f"{'FAILED' if bad else 'OK'}: {sum(r.checked for r in results)} entries read, "
          f"{sum(r.bad for r in results)} bad, {sum(r.repaired for r in results)} repaired")
    return 1 if bad else 0


def _media_encoders(args: argparse.Namespace) -> dict[str, Any]:
    """The encoders named by ``--video-encoder`` and ``--audio-encoder`` (default: the
    reference stand-ins)."""
    from databackend.media.wiring import reference_media_encoders

    return reference_media_encoders(named_media_encoders(args) or None)


def _run(args: argparse.Namespace) -> int:
    import attrs

    from databackend.caches.precompute import precompute_plan

    plan, context = load_plan(args)
    context = attrs.evolve(context, rank=args.rank, world_size=args.world_size)
    text_encoder, image_encoder = _encoder(args.text_encoder, "text", args), _encoder(
        args.image_encoder, "image", args)
    if args.verify:
        return _verify(args, plan, context, text_encoder, image_encoder)
    progress = False if args.no_progress else None
    stand_in = args.text_encoder is None and args.image_encoder is None  # reference encoders
    if args.engine == "ray":  # scan and fill on a Ray cluster (docs/scale.md)
        from databackend.engines.raycache import run_cache

        fill, shares = ray_fill_settings(args, context.options)
        runs = run_cache(args, (text_encoder, image_encoder), shares=shares,
                         num_gpus=fill.num_gpus, options=fill)
    else:
        runs = precompute_plan(plan, context, text_encoder=text_encoder,
                               image_encoder=image_encoder, progress=progress,
                               batch_size=args.batch_size,
                               text_batch_size=args.text_batch_size, include_ondemand=True,
                               media_encoders=_media_encoders(args),
                               conditioning_image_encoder=_reference_image_embedder()
                               if stand_in else None)
    for run in runs:
        print(_line(run))
        for path, error in run.report.failed:
            print(f"  failed: {path}: {error}")
    encoded = sum(r.report.encoded for r in runs)
    cached = sum(r.report.cached for r in runs)
    failed = sum(len(r.report.failed) for r in runs)
    for r in runs:
        if r.kind == "latents" and r.report.encoded:
            print(f"  {r.name}: {r.report.per_second:.1f} images/s, encoder busy "
                  f"{100 * r.report.busy_fraction:.0f}%, waited "
                  f"{r.report.wait_seconds:.1f}s, {r.report.oom_retries} OOM retries")
    print(f"{'FAILED' if failed else 'OK'}: {encoded} encoded, {cached} already cached, "
          f"{failed} failed (cached entries were checked for existence only; --verify reads "
          "and checks every one)")
    return 1 if failed else 0


def register(sub: Any) -> None:
    """Add the ``cache`` subcommand."""
    parser = sub.add_parser("cache", help="fill the text-embedding and VAE latent caches")
    add_config_arguments(parser)
    parser.add_argument("--text-encoder", metavar="PATH|MODULE:CALLABLE",
                        help="text encoder: a model folder or a factory (default: the "
                        "reference stand-in)")
    parser.add_argument("--image-encoder", metavar="PATH|MODULE:CALLABLE",
                        help="image encoder (VAE): a model folder or a factory (default: the "
                        "reference stand-in)")
    parser.add_argument("--video-encoder", metavar="MODULE:CALLABLE",
                        help="video encoder of video datasets (default: the reference stand-in)")
    parser.add_argument("--audio-encoder", metavar="MODULE:CALLABLE",
                        help="audio encoder of audio datasets (default: the reference stand-in)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per VAE call")
    parser.add_argument("--text-batch-size", type=int, default=32, help="captions per call")
    parser.add_argument("--rank", type=int, default=0, help="this process's rank")
    parser.add_argument("--world-size", type=int, default=1, help="number of processes")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--verify", action="store_true",
                        help="read and check every cache entry, re-encode bad ones, and "
                        "report counts (a plain run only checks that entries exist)")
    add_encoder_arguments(parser)
    add_engine_arguments(parser)
    parser.add_argument("--shares", type=int, default=None,
                        help="with --engine ray: Ray tasks the text, video/audio and "
                        "conditioning caches are split into (image latents run in the Ray "
                        "Data pipeline; default: option ray_shares, 2)")
    parser.add_argument("--num-gpus", type=float, default=None,
                        help="with --engine ray: GPUs per encoder actor and per share task "
                        "(default: option ray_num_gpus, 0)")
    parser.add_argument("--encoders", type=int, default=None,
                        help="with --engine ray: image encoder actors of the pipeline "
                        "(default: option ray_encoders, 1)")
    parser.add_argument("--decoders", type=int, default=None,
                        help="with --engine ray: decode actors (default: option "
                        "ray_decoders; 0: 1 up to the cluster's CPUs)")
    parser.set_defaults(func=_run)
