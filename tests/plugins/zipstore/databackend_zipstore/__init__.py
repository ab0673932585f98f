"""databackend-zipstore: datasets inside zip archives (``"type": "zip"``), read-only.

Written against ``databackend.pluginapi`` only, as a third party would. It declares a
read-only type, its own key alias (``zip_archive`` for ``zip_file``), an install hint, and
captions held by the storage: each member's zip comment, through its own caption strategy
``zip-comment`` (the type's default). The implementation module loads on first build.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from databackend.pluginapi import BackendType, CaptionStrategy, StorageCaptions, hookimpl

__all__ = ["DATABACKEND_PLUGIN_API", "ZIP", "ZipComment", "ZipConfig"]

DATABACKEND_PLUGIN_API = "1.0"


@attrs.frozen(kw_only=True)
class ZipConfig:
    """Keys of a zip dataset: ``zip_file`` (alias ``zip_archive``)."""

    zip_file: str = ""

    def problems(self) -> list[str]:
        """``zip_file`` must be set and end in ``.zip``."""
        return [] if self.zip_file.endswith(".zip") else ["`zip_file` must name a .zip file"]


class ZipComment(StorageCaptions):
    """``caption_strategy: zip-comment``: the member's zip comment."""

    name = "zip-comment"


def _location(config: Any) -> str | None:
    return str(config.zip_file) or None


ZIP = BackendType(name="zip", Config=ZipConfig, implementation="databackend_zipstore.backend:ZipBackend",
                  read_only=True, default_caption_strategy="zip-comment",
                  key_aliases={"zip_archive": "zip_file"},
                  install_hint="pip install databackend-zipstore", location=_location)


@hookimpl
def databackend_register_backends() -> Sequence[BackendType]:
    """Register the ``zip`` type."""
    return [ZIP]


@hookimpl
def databackend_register_caption_strategies() -> Sequence[type[CaptionStrategy]]:
    """Register ``zip-comment``."""
    return [ZipComment]
