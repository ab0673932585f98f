"""databackend: the data layer diffusion-model trainers embed.

Public API::

    from databackend import hookimpl, StorageBackend, FsspecBackend, load_config
"""

from __future__ import annotations

from databackend.config import (
    BaseBackendConfig,
    DataPlan,
    ImageBackendConfig,
    ImageEmbedBackendConfig,
    TextEmbedBackendConfig,
    load_config,
)
from databackend.context import BuildContext
from databackend.errors import (
    CacheError,
    ConfigError,
    DatabackendError,
    PluginLoadError,
    StorageError,
    UnknownBackendError,
)
from databackend.markers import hookimpl
from databackend.options import FactoryOptions
from databackend.plugins import make_plugin_manager, make_registry
from databackend.registry import KNOWN_BACKENDS, PluginRegistry
from databackend.storage import FileInfo, FsspecBackend, StorageBackend
from databackend.storage.localdir import LocalDirectory

__version__ = "0.1.0"

__all__ = [
    "KNOWN_BACKENDS",
    "BaseBackendConfig",
    "BuildContext",
    "CacheError",
    "ConfigError",
    "DataPlan",
    "DatabackendError",
    "FactoryOptions",
    "FileInfo",
    "FsspecBackend",
    "ImageBackendConfig",
    "ImageEmbedBackendConfig",
    "LocalDirectory",
    "PluginLoadError",
    "PluginRegistry",
    "StorageBackend",
    "StorageError",
    "TextEmbedBackendConfig",
    "UnknownBackendError",
    "available_backends",
    "hookimpl",
    "load_config",
    "make_plugin_manager",
    "make_registry",
]


def available_backends() -> list[str]:
    """The backend types the installed plugins provide."""
    return sorted(make_registry().backends)
