"""Command-line options for real encoders, shared by ``cache`` and ``run``."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_encoder_arguments", "encoder_options", "named_media_encoders"]


def add_encoder_arguments(parser: argparse.ArgumentParser) -> None:
    """``--encoder-dtype``, ``--encoder-device``, ``--vae-mode``, ``--vae-seed``, ``--vae-tiling``,
    ``--vae-slicing`` (used when an encoder is a model folder)."""
    group = parser.add_argument_group("model folders (--text-encoder/--image-encoder PATH)")
    group.add_argument("--encoder-dtype", help="move the models to this dtype (bfloat16, ...)")
    group.add_argument("--encoder-device", help="move the models to this device (cuda, cpu)")
    group.add_argument("--vae-mode", choices=("mode", "sample"), default="mode",
                       help="latent distribution: its mode, or a sample seeded per image")
    group.add_argument("--vae-seed", type=int, default=0, help="base seed of --vae-mode sample")
    group.add_argument("--vae-tiling", action="store_true", help="tiled VAE encode")
    group.add_argument("--vae-slicing", action="store_true", help="one image at a time in the VAE")


def encoder_options(args: Any, kind: str) -> dict[str, Any]:
    """The adapter options of ``kind`` (``image`` or ``text``) from parsed arguments."""
    options: dict[str, Any] = {"dtype": getattr(args, "encoder_dtype", None),
                               "device": getattr(args, "encoder_device", None)}
    if kind == "image":
        options.update(mode=getattr(args, "vae_mode", "mode"), seed=getattr(args, "vae_seed", 0),
                       tiling=getattr(args, "vae_tiling", False),
                       slicing=getattr(args, "vae_slicing", False))
    return options


def named_media_encoders(args: Any) -> dict[str, Any]:
    """The media encoders named on the command line (``--video-encoder``,
    ``--audio-encoder``), by kind; kinds not named are absent."""
    from databackend.caches import load_encoder

    specs = (("video", getattr(args, "video_encoder", None)),
             ("audio", getattr(args, "audio_encoder", None)))
    return {kind: load_encoder(spec) for kind, spec in specs if spec}
