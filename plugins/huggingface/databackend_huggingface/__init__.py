"""databackend-huggingface: Hugging Face ``datasets`` as data backends (``"type": "huggingface"``).

A dataset is a split of a hub dataset, of local parquet / arrow / JSON lines files, or of a
``save_to_disk`` folder, in normal (memory-mapped, random access) or streaming mode. The plugin
uses only ``databackend.pluginapi``: it registers the read-only ``huggingface`` type (lazily:
``datasets`` and ``pyarrow`` load when a dataset is built), its builder (the factory seed and
the row-store folder), the ``huggingface`` caption strategy (the type's default) and, through
``databackend_make_metadata_backend``, the :class:`HuggingfaceMetadataBackend` that scans rows
(width/height columns or image headers, captions from columns, filters, composite tiles) into
the standard index. See ``docs/huggingface.md``.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from databackend.pluginapi import BackendType, CaptionStrategy, StorageCaptions, hookimpl
from databackend_huggingface.config import HFSettings, HuggingfaceConfig

if TYPE_CHECKING:
    from databackend.pluginapi import (
        BuildContext,
        ImageBackendConfig,
        MetadataBackend,
        StorageBackend,
    )
    from databackend_huggingface.backend import HuggingfaceBackend
    from databackend_huggingface.errors import DatasetLoadError, MissingColumnError, ReadOnlyError
    from databackend_huggingface.filters import FILTER_REASONS
    from databackend_huggingface.paths import parse_path, virtual_path
    from databackend_huggingface.rowstore import RowStore

__all__ = [
    "DATABACKEND_PLUGIN_API",
    "FILTER_REASONS",
    "HUGGINGFACE",
    "DatasetLoadError",
    "HFSettings",
    "HuggingfaceBackend",
    "HuggingfaceCaptions",
    "HuggingfaceConfig",
    "MissingColumnError",
    "ReadOnlyError",
    "RowStore",
    "databackend_make_backend",
    "databackend_make_metadata_backend",
    "databackend_register_backends",
    "databackend_register_caption_strategies",
    "parse_path",
    "rows_folder",
    "virtual_path",
]

#: The plugin API this plugin is built for (checked by the core at load time).
DATABACKEND_PLUGIN_API = "1.0"
_LAZY = {"HuggingfaceBackend": "backend", "DatasetLoadError": "errors",
         "MissingColumnError": "errors", "ReadOnlyError": "errors", "FILTER_REASONS": "filters",
         "parse_path": "paths", "virtual_path": "paths", "RowStore": "rowstore"}


def _location(config: Any) -> str | None:
    name = config.value("dataset_name")
    return str(name) if name else None


#: The ``huggingface`` type: declarations here, implementation loaded on first build.
HUGGINGFACE = BackendType(
    name="huggingface", Config=HuggingfaceConfig,
    implementation="databackend_huggingface.backend:HuggingfaceBackend", read_only=True,
    default_caption_strategy="huggingface", metadata_backends=("huggingface",),
    install_hint="pip install databackend-huggingface", location=_location)


class HuggingfaceCaptions(StorageCaptions):
    """``caption_strategy: huggingface``: captions from the dataset's caption columns."""

    name = "huggingface"


def rows_folder(cache_root: str, dataset_id: str) -> str:
    """Where a streaming dataset's row store lives: ``{cache_root}/metadata/{id}/rows``."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", dataset_id).strip(".") or "dataset"
    return os.path.join(cache_root, "metadata", safe, "rows")


def _check_video(dataset: ImageBackendConfig, storage: HuggingfaceBackend) -> None:
    """A video dataset needs ``video_column`` and random access (not streaming)."""
    from databackend.pluginapi import ConfigError

    problems = []
    if not storage.settings.video_column:
        problems.append(f"dataset {dataset.id!r}: a huggingface video dataset needs "
                        "`video_column` (the column of encoded clips)")
    if storage.settings.streaming:
        problems.append(f"dataset {dataset.id!r}: huggingface video datasets cannot be "
                        "streamed; set `streaming: false`")
    if problems:
        raise ConfigError(problems)


@hookimpl
def databackend_register_backends() -> Sequence[BackendType]:
    """Register the ``huggingface`` backend type."""
    return [HUGGINGFACE]


@hookimpl
def databackend_register_caption_strategies() -> Sequence[type[CaptionStrategy]]:
    """Register the ``huggingface`` caption strategy."""
    return [HuggingfaceCaptions]


@hookimpl
def databackend_make_backend(backend_type: str, config: Any, dataset_id: str, root: str | None,
                             context: BuildContext) -> StorageBackend | None:
    """Build ``huggingface`` storage with the factory seed and its row-store folder."""
    if backend_type != HUGGINGFACE.name:
        return None
    cls = HUGGINGFACE.load()
    return cls(config, dataset_id=dataset_id, root=root,  # type: ignore[call-arg]
               seed=context.options.seed,
               rows_folder=rows_folder(context.options.cache_root, dataset_id))


@hookimpl
def databackend_make_metadata_backend(dataset: ImageBackendConfig, storage: StorageBackend,
                                      context: BuildContext) -> MetadataBackend | None:
    """The Hugging Face metadata backend for ``huggingface`` image datasets, else None (video
    and audio datasets get databackend's media backend, reading their column through this
    storage)."""
    if getattr(storage, "name", None) != HUGGINGFACE.name:
        return None  # decided without importing pyarrow for other datasets
    from databackend_huggingface.backend import HuggingfaceBackend
    from databackend_huggingface.metadata import HuggingfaceMetadataBackend

    if not isinstance(storage, HuggingfaceBackend):
        return None
    if dataset.dataset_type == "video" or getattr(dataset, "video", None) is not None:
        _check_video(dataset, storage)
        return None
    if dataset.dataset_type == "audio":  # the core's media scan lists the audio cells
        return None
    return HuggingfaceMetadataBackend(dataset, storage, context)


def __getattr__(name: str) -> Any:
    """Load the pyarrow/datasets-backed names on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module 'databackend_huggingface' has no attribute {name!r}")
    return getattr(importlib.import_module(f"databackend_huggingface.{_LAZY[name]}"), name)
