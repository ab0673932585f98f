"""Helpers shared by the metadata tests (no tests here): build a discovery backend for a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from databackend.build import build_metadata, build_storage
from databackend.config.loader import load_config
from databackend.context import BuildContext
from databackend.metadata.discovery import DiscoveryMetadataBackend
from databackend.options import FactoryOptions
from databackend.registry import PluginRegistry
from databackend.storage.base import StorageBackend


def dataset_entry(root: Path, ident: str = "ds", **keys: Any) -> dict[str, Any]:
    """A local dataset entry for ``root``."""
    return {"id": ident, "type": "local", "instance_data_dir": str(root), **keys}


def make_meta(registry: PluginRegistry, out: Path, root: Path, *,
              options: dict[str, Any] | None = None, storage: StorageBackend | None = None,
              **keys: Any) -> DiscoveryMetadataBackend:
    """The discovery backend of one local dataset; index under ``out``; in-process probing
    unless ``options`` says otherwise."""
    opts = FactoryOptions(**{"output_dir": str(out), "scan_workers": 1, **(options or {})})
    plan = load_config([dataset_entry(root, **keys)], registry, opts)
    context = BuildContext(options=opts, registry=registry)
    dataset = plan.datasets[0]
    meta = build_metadata(dataset, storage or build_storage(dataset, context), context)
    assert isinstance(meta, DiscoveryMetadataBackend)
    return meta


def files_under(root: Path) -> set[str]:
    """Every file below ``root``, relative."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


class RemoteLike:
    """Mixin for a local backend that pretends to be remote: no local paths, so the scan reads
    headers through ``read_range``; paths containing ``locked`` raise PermissionError."""

    reads: int = 0

    def local_path(self, path: str) -> str | None:
        return None

    def read_range(self, path: str, start: int, length: int) -> bytes:
        type(self).reads += 1
        if "locked" in path:
            raise PermissionError(f"{path}: access denied")
        return super().read_range(path, start, length)  # type: ignore[misc, no-any-return]


def remote_storage(root: Path, ident: str = "ds") -> StorageBackend:
    """A ``RemoteLike`` local backend over ``root``."""
    from databackend_local import LocalBackend, LocalConfig

    cls = type("RemoteLocal", (RemoteLike, LocalBackend), {"reads": 0})
    return cls(LocalConfig(instance_data_dir=str(root)), dataset_id=ident)  # type: ignore[no-any-return]
