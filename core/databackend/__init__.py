"""databackend: the data layer diffusion-model trainers embed.

Public API::

    from databackend import DataBackendFactory          # config in, batches out
    from databackend.pluginapi import hookimpl, StorageBackend  # writing a plugin (only there)
    from databackend import load_config, FactoryOptions # config only

The runtime names (``DataBackendFactory``, ``Batch``, ``BatchFetcher``, ``Metrics``) import
torch, so they load on first use: ``import databackend`` and the CLI's config commands stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from databackend._version import PLUGIN_API_VERSION, __version__
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

if TYPE_CHECKING:  # the lazy names below, for type checkers
    from databackend.factory import DataBackendFactory
    from databackend.metrics import Metrics
    from databackend.runtime.batch import Batch
    from databackend.runtime.fetcher import BatchFetcher


_LAZY = {"DataBackendFactory": "databackend.factory", "Batch": "databackend.runtime.batch",
         "BatchFetcher": "databackend.runtime.fetcher", "Metrics": "databackend.metrics"}

__all__ = [
    "KNOWN_BACKENDS",
    "PLUGIN_API_VERSION",
    "BaseBackendConfig",
    "Batch",
    "BatchFetcher",
    "BuildContext",
    "CacheError",
    "ConfigError",
    "DataBackendFactory",
    "DataPlan",
    "DatabackendError",
    "FactoryOptions",
    "FileInfo",
    "FsspecBackend",
    "ImageBackendConfig",
    "ImageEmbedBackendConfig",
    "LocalDirectory",
    "Metrics",
    "PluginLoadError",
    "PluginRegistry",
    "StorageBackend",
    "StorageError",
    "TextEmbedBackendConfig",
    "UnknownBackendError",
    "__version__",
    "available_backends",
    "hookimpl",
    "load_config",
    "make_plugin_manager",
    "make_registry",
]


def available_backends() -> list[str]:
    """The backend types the installed plugins provide."""
    return sorted(make_registry().backends)


def __getattr__(name: str) -> Any:
    """Load the torch-backed runtime names on first use (see the module docstring)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'databackend' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
