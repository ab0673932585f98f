"""Building live objects from validated configs through the plugin hooks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from databackend.config.models import BaseBackendConfig, ImageBackendConfig
from databackend.context import BuildContext
from databackend.errors import StorageError

if TYPE_CHECKING:
    from databackend.metadata.backend import MetadataBackend
    from databackend.storage.base import StorageBackend

__all__ = ["build_metadata", "build_storage"]


def build_storage(entry: BaseBackendConfig, context: BuildContext, *,
                  root: str | None = None) -> StorageBackend:
    """Make the storage backend of one entry via ``databackend_make_backend``.

    :param root: overrides the backend's data root (cache folders); None uses the data root.
    """
    try:
        backend = context.registry.pm.hook.databackend_make_backend(
            backend_type=entry.type, config=entry.storage, dataset_id=entry.id, root=root,
            context=context)
    except (ValueError, FileNotFoundError, PermissionError) as exc:
        raise StorageError(str(exc) if entry.id in str(exc)
                           else f"dataset {entry.id!r}: {exc}") from exc
    if backend is None:
        raise StorageError(f"dataset {entry.id!r}: no plugin built a {entry.type!r} backend")
    return backend  # type: ignore[no-any-return]


def build_metadata(dataset: ImageBackendConfig, storage: StorageBackend,
                   context: BuildContext) -> MetadataBackend:
    """Make a dataset's metadata backend via ``databackend_make_metadata_backend``."""
    meta = context.registry.pm.hook.databackend_make_metadata_backend(
        dataset=dataset, storage=storage, context=context)
    if meta is None:
        raise StorageError(f"dataset {dataset.id!r}: no plugin builds `metadata_backend` "
                           f"{dataset.metadata_backend!r} for type {dataset.type!r}")
    return meta  # type: ignore[no-any-return]
