"""Built-in sampling strategies ``uniform`` and ``auto-weighting``."""

from __future__ import annotations

from collections.abc import Sequence

from databackend.markers import hookimpl
from databackend.runtime.strategies import AutoWeighting, SamplingStrategy, Uniform

__all__ = ["databackend_register_strategies"]


@hookimpl
def databackend_register_strategies() -> Sequence[type[SamplingStrategy]]:
    """Register :class:`Uniform` and :class:`AutoWeighting`."""
    return [Uniform, AutoWeighting]
