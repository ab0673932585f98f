"""databackend-huggingface: Hugging Face ``datasets`` as data backends (``"type": "huggingface"``).

A dataset is a split of a hub dataset, of local parquet / arrow / JSON lines files, or of a
``save_to_disk`` folder, in normal (memory-mapped, random access) or streaming mode. The plugin
registers the storage backend :class:`HuggingfaceBackend` and, through
``databackend_make_metadata_backend``, the :class:`HuggingfaceMetadataBackend` that scans rows
(width/height columns or image headers, captions from columns, filters, composite tiles) into
the standard index. See ``docs/huggingface.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from databackend import StorageBackend, hookimpl
from databackend_huggingface.backend import HuggingfaceBackend
from databackend_huggingface.config import HFSettings, HuggingfaceConfig
from databackend_huggingface.errors import DatasetLoadError, MissingColumnError, ReadOnlyError
from databackend_huggingface.filters import FILTER_REASONS
from databackend_huggingface.paths import parse_path, virtual_path
from databackend_huggingface.rowstore import RowStore

if TYPE_CHECKING:
    from databackend.config.models import ImageBackendConfig
    from databackend.context import BuildContext
    from databackend.metadata.backend import MetadataBackend

__all__ = [
    "FILTER_REASONS",
    "DatasetLoadError",
    "HFSettings",
    "HuggingfaceBackend",
    "HuggingfaceConfig",
    "MissingColumnError",
    "ReadOnlyError",
    "RowStore",
    "databackend_make_metadata_backend",
    "databackend_register_backends",
    "parse_path",
    "virtual_path",
]


def _check_video(dataset: ImageBackendConfig, storage: HuggingfaceBackend) -> None:
    """A video dataset needs ``video_column`` and random access (not streaming)."""
    from databackend.errors import ConfigError

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
def databackend_register_backends() -> Sequence[type[StorageBackend]]:
    """Register the ``huggingface`` backend type."""
    return [HuggingfaceBackend]


@hookimpl
def databackend_make_metadata_backend(dataset: ImageBackendConfig, storage: StorageBackend,
                                      context: BuildContext) -> MetadataBackend | None:
    """The Hugging Face metadata backend for ``type: huggingface`` image datasets, else None
    (video datasets get databackend's media backend, reading ``video_column`` through this
    storage)."""
    if dataset.type != HuggingfaceBackend.name or not isinstance(storage, HuggingfaceBackend):
        return None
    if dataset.dataset_type == "audio":  # the core's media scan lists the audio cells
        return None
    if dataset.dataset_type == "video" or getattr(dataset, "video", None) is not None:
        _check_video(dataset, storage)
        return None
    from databackend_huggingface.metadata import HuggingfaceMetadataBackend

    return HuggingfaceMetadataBackend(dataset, storage, context)
