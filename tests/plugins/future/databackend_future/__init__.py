"""A plugin for plugin API 2.0 (does not exist yet): the core must refuse it at load time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from databackend.pluginapi import hookimpl

DATABACKEND_PLUGIN_API = "2.0"


@hookimpl
def databackend_register_backends() -> Sequence[Any]:
    """Never reached: the version check comes first."""
    return []
