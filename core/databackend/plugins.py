"""Building the plugin manager: built-in plugins, entry points, allow/deny switches, tracing.

Environment switches:

* ``DATABACKEND_LOAD_PLUGINS=a,b`` -- load only these entry points (by entry-point or
  distribution name); set it to an empty string to load none.
* ``DATABACKEND_BLOCK_PLUGINS=a,b`` -- never load these.
* ``DATABACKEND_TRACE_PLUGINS=1`` -- log every hook call at DEBUG.
* ``DATABACKEND_PLUGIN_MODULES=pkg.mod,/path/plugin.py`` -- also load these loose plugins
  (module names or ``.py`` files; for developing a plugin without installing it). The CLI's
  ``--plugin`` option adds to it.

Every plugin's declared plugin API version is checked as it loads
(:func:`databackend.apiversion.check_plugin_api`).

Built-in plugins (:data:`DEFAULT_PLUGINS`) are always registered and cannot be blocked.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Iterable
from importlib import metadata
from typing import Any

import pluggy

from databackend import hookspecs
from databackend.apiversion import check_plugin_api
from databackend.errors import PluginLoadError
from databackend.registry import PluginRegistry

__all__ = ["DEFAULT_PLUGINS", "ENTRY_POINT_GROUP", "PluginRegistry", "make_plugin_manager",
           "make_registry"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "databackend"
DEFAULT_PLUGINS = (
    "databackend.builtin.builders",
    "databackend.builtin.metadata",
    "databackend.builtin.strategies",
    "databackend.builtin.generators",
)


def _env_list(name: str) -> set[str] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def _selected(ep: metadata.EntryPoint, allowed: set[str] | None, blocked: set[str]) -> bool:
    dist = ep.dist.name if ep.dist else ""
    names = {ep.name, dist}
    if names & blocked:
        return False
    return allowed is None or bool(names & allowed)


def _load_entrypoints(pm: pluggy.PluginManager, allowed: set[str] | None,
                      blocked: set[str]) -> None:
    """Import each selected entry point, naming the distribution when one fails."""
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if not _selected(ep, allowed, blocked) or pm.get_plugin(ep.name) is not None:
            continue
        dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "an unknown distribution"
        try:
            plugin = ep.load()
        except Exception as exc:
            raise PluginLoadError(f"plugin {ep.name!r} from {dist} failed to import: "
                                  f"{type(exc).__name__}: {exc}") from exc
        check_plugin_api(plugin, ep.name, dist)
        pm.register(plugin, name=ep.name)
        pm.plugin_sources[ep.name] = dist  # type: ignore[attr-defined]


def _import_loose(spec: str) -> Any:
    """Import a module by name, or a ``.py`` file by path (registered under its stem)."""
    if not spec.endswith(".py"):
        return importlib.import_module(spec)
    name = os.path.splitext(os.path.basename(spec))[0]
    found = importlib.util.spec_from_file_location(name, spec)
    if found is None or found.loader is None or not os.path.isfile(spec):
        raise FileNotFoundError(spec)
    module = importlib.util.module_from_spec(found)
    sys.modules[name] = module
    found.loader.exec_module(module)
    return module


def _load_loose(pm: pluggy.PluginManager, specs: Iterable[str]) -> None:
    """Register loose plugins (``DATABACKEND_PLUGIN_MODULES``), naming the one that fails."""
    for spec in specs:
        try:
            plugin = _import_loose(spec)
        except Exception as exc:
            raise PluginLoadError(f"loose plugin {spec!r} failed to import: "
                                  f"{type(exc).__name__}: {exc}") from exc
        name = getattr(plugin, "__name__", spec)
        check_plugin_api(plugin, name, f"loose plugin {spec}")
        if pm.get_plugin(name) is None:
            pm.register(plugin, name=name)
            pm.plugin_sources[name] = f"loose plugin {spec}"  # type: ignore[attr-defined]


def make_plugin_manager(*, entrypoints: bool = True, blocked: Iterable[str] = (),
                        extra: Iterable[Any] = ()) -> pluggy.PluginManager:
    """Create a plugin manager with the hookspecs, built-in plugins and installed plugins.

    :param entrypoints: load plugins from the ``databackend`` entry-point group.
    :param blocked: entry-point or distribution names not to load (added to the env deny list).
    :param extra: plugin objects (modules or instances) to register as well, e.g. in tests.
    """
    pm = pluggy.PluginManager(hookspecs.NAME)
    pm.add_hookspecs(hookspecs)
    pm.plugin_sources = {}  # type: ignore[attr-defined]
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
        pm.plugin_sources[name] = "databackend (built-in)"  # type: ignore[attr-defined]
    if entrypoints:
        deny = set(blocked) | (_env_list("DATABACKEND_BLOCK_PLUGINS") or set())
        _load_entrypoints(pm, _env_list("DATABACKEND_LOAD_PLUGINS"), deny)
        _load_loose(pm, sorted(_env_list("DATABACKEND_PLUGIN_MODULES") or ()))
    for i, plugin in enumerate(extra):
        name = getattr(plugin, "__name__", None) or f"extra-{i}-{type(plugin).__name__}"
        pm.register(plugin, name=name)
        pm.plugin_sources[name] = "registered in code"  # type: ignore[attr-defined]
    pm.check_pending()
    if os.environ.get("DATABACKEND_TRACE_PLUGINS"):
        pm.trace.root.setwriter(lambda msg: log.debug("plugin trace: %s", msg.rstrip()))
        pm.enable_tracing()
    return pm


def make_registry(pm: pluggy.PluginManager | None = None) -> PluginRegistry:
    """Collect backends and strategies from a plugin manager (a fresh default one if None)."""
    return PluginRegistry.collect(pm if pm is not None else make_plugin_manager())
