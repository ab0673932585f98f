"""databackend-local: datasets and caches in local folders (``"type": "local"``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import attrs

from databackend.pluginapi import LocalDirectory, StorageBackend, hookimpl

__all__ = ["DATABACKEND_PLUGIN_API", "LocalBackend", "LocalConfig",
           "databackend_register_backends"]

#: The plugin API this plugin is built for (checked by the core at load time).
DATABACKEND_PLUGIN_API = "1.0"


@attrs.frozen(kw_only=True)
class LocalConfig:
    """Keys of a local dataset: ``instance_data_dir`` (alias ``instance_data_root``)."""

    instance_data_dir: str | None = None

    def problems(self) -> list[str]:
        """A given ``instance_data_dir`` must be a non-empty path to an existing folder."""
        folder = self.instance_data_dir
        if folder is None:
            return []
        if not folder.strip():
            return ["`instance_data_dir` must not be empty"]
        if not os.path.isdir(os.path.expanduser(folder)):
            return [f"`instance_data_dir` {folder!r} does not exist"]
        return []


class LocalBackend(LocalDirectory):
    """A dataset folder on local disk: scandir listing, pread header reads, atomic writes."""

    name = "local"
    Config = LocalConfig
    local_files = True

    @classmethod
    def location(cls, config: Any) -> str | None:
        """``instance_data_dir``."""
        return getattr(config, "instance_data_dir", None)

    def data_root(self, config: Any) -> str:
        """``instance_data_dir``; missing or non-existent folders are reported with the id."""
        folder = getattr(config, "instance_data_dir", None)
        if not folder:
            raise ValueError(f"dataset {self.dataset_id!r}: `instance_data_dir` is required "
                             "for a local dataset")
        folder = folder.rstrip("/") or "/"
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"dataset {self.dataset_id!r}: `instance_data_dir` "
                                    f"{folder!r} does not exist")
        return folder


@hookimpl
def databackend_register_backends() -> Sequence[type[StorageBackend]]:
    """Register the ``local`` backend type."""
    return [LocalBackend]
