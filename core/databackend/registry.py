"""Read-only registries of backend types and sampling strategies collected from plugins."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

from databackend.errors import PluginLoadError, UnknownBackendError

if TYPE_CHECKING:
    from databackend.runtime.strategies import SamplingStrategy
    from databackend.storage.base import StorageBackend

__all__ = ["KNOWN_BACKENDS", "PluginRegistry"]

#: Backend types published by the databackend project, with the distribution to install.
KNOWN_BACKENDS: Mapping[str, str] = MappingProxyType({
    "local": "databackend-local",
    "aws": "databackend-aws",
    "csv": "databackend-csv",
    "huggingface": "databackend-huggingface",
})


def _collect(pm: pluggy.PluginManager, hook: Any, what: str) -> dict[str, tuple[type[Any], str]]:
    """Call a registration hook per plugin and index the classes by ``name``."""
    found: dict[str, tuple[type[Any], str]] = {}
    sources = getattr(pm, "plugin_sources", {})
    for impl in hook.get_hookimpls():
        plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)
        for cls in impl.function() or ():
            name = getattr(cls, "name", None)
            if not isinstance(name, str) or not name:
                raise PluginLoadError(f"{what} class {cls!r} from plugin {plugin_name!r} "
                                      "has no string `name`")
            if name in found:
                other_cls, other = found[name]
                raise PluginLoadError(
                    f"{what} {name!r} is registered twice: {other_cls.__module__}."
                    f"{other_cls.__qualname__} (plugin {other!r}) and {cls.__module__}."
                    f"{cls.__qualname__} (plugin {plugin_name!r}, "
                    f"{sources.get(plugin_name, 'unknown source')})")
            found[name] = (cls, plugin_name)
    return found


@attrs.frozen
class PluginRegistry:
    """The backends and strategies that the loaded plugins provide, plus the plugin manager."""

    pm: pluggy.PluginManager
    _backends: dict[str, tuple[type[StorageBackend], str]]
    _strategies: dict[str, tuple[type[SamplingStrategy], str]]

    @classmethod
    def collect(cls, pm: pluggy.PluginManager) -> PluginRegistry:
        """Run the registration hooks and check for duplicate names."""
        return cls(pm, _collect(pm, pm.hook.databackend_register_backends, "backend type"),
                   _collect(pm, pm.hook.databackend_register_strategies, "sampling strategy"))

    @property
    def backends(self) -> Mapping[str, type[StorageBackend]]:
        """Installed backend types, by config ``type``."""
        return MappingProxyType({k: v[0] for k, v in self._backends.items()})

    @property
    def strategies(self) -> Mapping[str, type[SamplingStrategy]]:
        """Installed sampling strategies, by name."""
        return MappingProxyType({k: v[0] for k, v in self._strategies.items()})

    def plugin_of(self, backend_type: str) -> str:
        """The plugin (entry-point or module name) that registered a backend type."""
        return self._backends[backend_type][1]

    def backend_class(self, backend_type: str, *, dataset_id: str = "?") -> type[StorageBackend]:
        """The class for ``backend_type``; unknown types name the package to install."""
        if backend_type in self._backends:
            return self._backends[backend_type][0]
        raise UnknownBackendError(missing_backend_message(backend_type, dataset_id,
                                                          list(self._backends)))

    def strategy_class(self, name: str) -> type[SamplingStrategy]:
        """The class of a sampling strategy; unknown names list the installed ones."""
        if name in self._strategies:
            return self._strategies[name][0]
        raise UnknownBackendError(f"sampling strategy {name!r} is not installed; installed: "
                                  f"{', '.join(sorted(self._strategies)) or 'none'}")


def missing_backend_message(backend_type: str, dataset_id: str, installed: list[str]) -> str:
    """The error text for a backend type with no installed plugin."""
    have = ", ".join(sorted(installed)) or "none"
    if backend_type in KNOWN_BACKENDS:
        return (f"dataset {dataset_id!r}: type {backend_type!r} is not installed; "
                f"pip install {KNOWN_BACKENDS[backend_type]} (installed types: {have})")
    return (f"dataset {dataset_id!r}: unknown type {backend_type!r}; no installed plugin "
            f"provides it (installed types: {have})")
