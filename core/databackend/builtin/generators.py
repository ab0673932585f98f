"""Built-in conditioning generators, registered through the public generator hook."""

from __future__ import annotations

from collections.abc import Sequence

from databackend.conditioning.builtin_generators import (
    Canny,
    JpegArtifacts,
    RandomMasks,
    Superresolution,
)
from databackend.conditioning.generator import ConditioningGenerator
from databackend.markers import hookimpl

__all__ = ["databackend_register_conditioning_generators"]


@hookimpl
def databackend_register_conditioning_generators() -> Sequence[type[ConditioningGenerator]]:
    """Register ``superresolution``, ``jpeg_artifacts``, ``random_masks`` and ``canny``."""
    return [Superresolution, JpegArtifacts, RandomMasks, Canny]
