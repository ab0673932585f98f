"""Built-in builder: instantiate the registered backend class for a config ``type``."""

from __future__ import annotations

from typing import Any

from databackend.context import BuildContext
from databackend.markers import hookimpl
from databackend.storage.base import StorageBackend

__all__ = ["databackend_make_backend"]


@hookimpl(trylast=True)
def databackend_make_backend(backend_type: str, config: Any, dataset_id: str, root: str | None,
                             context: BuildContext) -> StorageBackend:
    """Build ``registry.backends[backend_type](config, dataset_id=..., root=...)``."""
    cls = context.registry.backend_class(backend_type, dataset_id=dataset_id)
    return cls(config, dataset_id=dataset_id, root=root)
