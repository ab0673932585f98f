"""The plugin API (version :data:`PLUGIN_API_VERSION`): everything a plugin may import.

A plugin imports from this module only (``from databackend.pluginapi import ...``); the rest of
the core is private and may change between releases without notice. A test in this
repository fails when a plugin here imports anything else. Changes to this module follow the
plugin API version: new names raise the minor version, removals or incompatible changes the
major one (see CHANGELOG.md and docs/plugins.md).

Registration-time names (hooks, backend classes, declarations, errors) import nothing heavy.
The building blocks for metadata backends (index, geometry, header probes, reports) load on
first use, so registering a plugin costs no numpy or PIL import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from databackend._version import PLUGIN_API_VERSION, __version__
from databackend.apiversion import ATTRIBUTE as PLUGIN_API_ATTRIBUTE
from databackend.backendtype import BackendType
from databackend.captionstrategy import Caption, CaptionStrategy, StorageCaptions
from databackend.errors import (
    CacheError,
    ConfigError,
    DatabackendError,
    PluginLoadError,
    ReadOnlyStorageError,
    StorageError,
    UnknownBackendError,
)
from databackend.markers import hookimpl
from databackend.safepath import UnsafePathError, check_key, confined, neutralise_key
from databackend.storage.base import FileInfo, StorageBackend

if TYPE_CHECKING:  # the lazily loaded names, for type checkers
    from databackend.config.models import BaseBackendConfig, ImageBackendConfig
    from databackend.context import BuildContext
    from databackend.geometry import (
        GeometryParams,
        SampleGeometry,
        aspect_out_of_range,
        compute_geometry,
        filter_reason,
    )
    from databackend.imageprobe import (
        CorruptImage,
        ImageInfo,
        NeedMoreData,
        NotAnImage,
        probe_bytes,
        probe_file,
    )
    from databackend.media.kinds import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS
    from databackend.media.probe import looks_like_container
    from databackend.metadata.backend import MetadataBackend
    from databackend.metadata.index import REASONS, CaptionTable, DatasetIndex, SkippedFiles
    from databackend.metadata.indexed import IndexedMetadataBackend
    from databackend.metadata.params import CaptionSettings, combined_fingerprint
    from databackend.metadata.report import ScanReport
    from databackend.options import FactoryOptions
    from databackend.runtime.distributed import PeerTimeoutError, wait_for
    from databackend.runtime.strategies import DatasetView, SamplingStrategy
    from databackend.storage.fsspec_backend import FsspecBackend
    from databackend.storage.localdir import LocalDirectory

_LAZY = {
    "BaseBackendConfig": "databackend.config.models",
    "ImageBackendConfig": "databackend.config.models",
    "BuildContext": "databackend.context",
    "FactoryOptions": "databackend.options",
    "FsspecBackend": "databackend.storage.fsspec_backend",
    "LocalDirectory": "databackend.storage.localdir",
    "MetadataBackend": "databackend.metadata.backend",
    "IndexedMetadataBackend": "databackend.metadata.indexed",
    "DatasetIndex": "databackend.metadata.index",
    "CaptionTable": "databackend.metadata.index",
    "SkippedFiles": "databackend.metadata.index",
    "REASONS": "databackend.metadata.index",
    "ScanReport": "databackend.metadata.report",
    "CaptionSettings": "databackend.metadata.params",
    "combined_fingerprint": "databackend.metadata.params",
    "GeometryParams": "databackend.geometry",
    "SampleGeometry": "databackend.geometry",
    "compute_geometry": "databackend.geometry",
    "filter_reason": "databackend.geometry",
    "aspect_out_of_range": "databackend.geometry",
    "ImageInfo": "databackend.imageprobe",
    "NotAnImage": "databackend.imageprobe",
    "CorruptImage": "databackend.imageprobe",
    "NeedMoreData": "databackend.imageprobe",
    "probe_bytes": "databackend.imageprobe",
    "probe_file": "databackend.imageprobe",
    "SamplingStrategy": "databackend.runtime.strategies",
    "DatasetView": "databackend.runtime.strategies",
    "PeerTimeoutError": "databackend.runtime.distributed",
    "wait_for": "databackend.runtime.distributed",
    "VIDEO_EXTENSIONS": "databackend.media.kinds",
    "AUDIO_EXTENSIONS": "databackend.media.kinds",
    "looks_like_container": "databackend.media.probe",
}

__all__ = [
    "AUDIO_EXTENSIONS",
    "PLUGIN_API_ATTRIBUTE",
    "PLUGIN_API_VERSION",
    "REASONS",
    "VIDEO_EXTENSIONS",
    "BackendType",
    "BaseBackendConfig",
    "BuildContext",
    "CacheError",
    "Caption",
    "CaptionSettings",
    "CaptionStrategy",
    "CaptionTable",
    "ConfigError",
    "CorruptImage",
    "DatabackendError",
    "DatasetIndex",
    "DatasetView",
    "FactoryOptions",
    "FileInfo",
    "FsspecBackend",
    "GeometryParams",
    "ImageBackendConfig",
    "ImageInfo",
    "IndexedMetadataBackend",
    "LocalDirectory",
    "MetadataBackend",
    "NeedMoreData",
    "NotAnImage",
    "PeerTimeoutError",
    "PluginLoadError",
    "ReadOnlyStorageError",
    "SampleGeometry",
    "SamplingStrategy",
    "ScanReport",
    "SkippedFiles",
    "StorageBackend",
    "StorageCaptions",
    "StorageError",
    "UnknownBackendError",
    "UnsafePathError",
    "__version__",
    "aspect_out_of_range",
    "check_key",
    "combined_fingerprint",
    "compute_geometry",
    "confined",
    "filter_reason",
    "hookimpl",
    "looks_like_container",
    "neutralise_key",
    "probe_bytes",
    "probe_file",
    "wait_for",
]


def __getattr__(name: str) -> Any:
    """Load the building blocks on first use (see the module docstring)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'databackend.pluginapi' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
