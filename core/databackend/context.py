"""The objects passed down to builders and hooks: factory-wide options and the plugin registry."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from databackend.options import FactoryOptions

if TYPE_CHECKING:
    from databackend.registry import PluginRegistry

__all__ = ["BuildContext"]


@attrs.frozen(kw_only=True)
class BuildContext:
    """What every builder receives: the factory options, the plugins, and this process's rank."""

    options: FactoryOptions
    registry: PluginRegistry
    rank: int = 0
    world_size: int = 1
