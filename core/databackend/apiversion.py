"""The plugin API version check made when a plugin loads."""

from __future__ import annotations

from typing import Any

from databackend._version import PLUGIN_API_VERSION, __version__
from databackend.errors import PluginLoadError

__all__ = ["ATTRIBUTE", "check_plugin_api", "compatible"]

#: The module attribute a plugin declares its plugin API version in (``"1.0"``).
ATTRIBUTE = "DATABACKEND_PLUGIN_API"


def _parse(version: str) -> tuple[int, int] | None:
    major, _, minor = version.strip().partition(".")
    try:
        return int(major), int(minor or 0)
    except ValueError:
        return None


def compatible(wanted: str, provided: str = PLUGIN_API_VERSION) -> bool:
    """Same major version, and the plugin's minor version not newer than the core's."""
    w, p = _parse(wanted), _parse(provided)
    return w is not None and p is not None and w[0] == p[0] and w[1] <= p[1]


def check_plugin_api(plugin: Any, name: str, source: str) -> None:
    """Raise one-line :class:`PluginLoadError` when ``plugin`` declares an API this core lacks.

    A plugin without the attribute is accepted (written before versioning).
    """
    wanted = getattr(plugin, ATTRIBUTE, None)
    if wanted is None or compatible(str(wanted)):
        return
    raise PluginLoadError(f"plugin {name!r} ({source}) needs databackend plugin API {wanted}, "
                          f"but databackend {__version__} provides plugin API "
                          f"{PLUGIN_API_VERSION}; install a release of the plugin built for "
                          f"API {PLUGIN_API_VERSION.split('.')[0]}.x")
