"""Read-only registries of backend types, sampling and caption strategies collected from plugins.

Backend implementations load lazily: :attr:`PluginRegistry.types` holds each type's
:class:`~databackend.backendtype.BackendType` (its ``Config`` and declarations), and a class is
imported only when :attr:`PluginRegistry.backends` is indexed (at build time).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

from databackend.backendtype import BackendType
from databackend.errors import PluginLoadError, UnknownBackendError
from databackend.installhints import install_hint

if TYPE_CHECKING:
    from databackend.captionstrategy import CaptionStrategy
    from databackend.runtime.strategies import SamplingStrategy
    from databackend.storage.base import StorageBackend

__all__ = ["KNOWN_BACKENDS", "PluginRegistry", "missing_backend_message"]

#: Kept for compatibility (plugin API 1.0 removed the closed list): always empty. Install
#: hints come from the core distribution's extras and the backend declarations.
KNOWN_BACKENDS: Mapping[str, str] = MappingProxyType({})


def _collect(pm: pluggy.PluginManager, hook: Any, what: str) -> dict[str, tuple[Any, str]]:
    """Call a registration hook per plugin and index what it returns by ``name``."""
    found: dict[str, tuple[Any, str]] = {}
    sources = getattr(pm, "plugin_sources", {})
    for impl in hook.get_hookimpls():
        plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)
        for cls in impl.function() or ():
            name = getattr(cls, "name", None)
            if not isinstance(name, str) or not name:
                raise PluginLoadError(f"{what} {cls!r} from plugin {plugin_name!r} "
                                      "has no string `name`")
            if name in found:
                other_cls, other = found[name]
                raise PluginLoadError(
                    f"{what} {name!r} is registered twice: {_label(other_cls)} (plugin "
                    f"{other!r}) and {_label(cls)} (plugin {plugin_name!r}, "
                    f"{sources.get(plugin_name, 'unknown source')})")
            found[name] = (cls, plugin_name)
    return found


def _label(obj: Any) -> str:
    if isinstance(obj, BackendType):
        impl = obj.implementation
        return impl if isinstance(impl, str) else f"{impl.__module__}.{impl.__qualname__}"
    return f"{obj.__module__}.{obj.__qualname__}"


def _as_type(obj: Any) -> BackendType:
    return obj if isinstance(obj, BackendType) else BackendType.of(obj)


class _LazyBackends(Mapping[str, "type[StorageBackend]"]):
    """``{type name: implementation class}``, importing a class only when it is looked up."""

    def __init__(self, types: Mapping[str, BackendType]) -> None:
        self._types = types

    def __getitem__(self, key: str) -> type[StorageBackend]:
        return self._types[key].load()

    def __contains__(self, key: object) -> bool:
        return key in self._types

    def __iter__(self) -> Iterator[str]:
        return iter(self._types)

    def __len__(self) -> int:
        return len(self._types)


@attrs.frozen
class PluginRegistry:
    """Backend types, sampling and caption strategies of the loaded plugins, plus the manager."""

    pm: pluggy.PluginManager
    _backends: dict[str, tuple[BackendType, str]]
    _strategies: dict[str, tuple[type[SamplingStrategy], str]]
    _captions: dict[str, tuple[type[CaptionStrategy], str]] = attrs.field(factory=dict)

    @classmethod
    def collect(cls, pm: pluggy.PluginManager) -> PluginRegistry:
        """Run the registration hooks and check for duplicate names."""
        backends = _collect(pm, pm.hook.databackend_register_backends, "backend type")
        captions = getattr(pm.hook, "databackend_register_caption_strategies", None)
        return cls(pm, {k: (_as_type(v), p) for k, (v, p) in backends.items()},
                   _collect(pm, pm.hook.databackend_register_strategies, "sampling strategy"),
                   _collect(pm, captions, "caption strategy") if captions else {})

    @property
    def types(self) -> Mapping[str, BackendType]:
        """Installed backend types with their declarations (no implementation imported)."""
        return MappingProxyType({k: v[0] for k, v in self._backends.items()})

    @property
    def backends(self) -> Mapping[str, type[StorageBackend]]:
        """Installed backend classes, by config ``type`` (a lazy type imports on lookup)."""
        return _LazyBackends(self.types)

    @property
    def strategies(self) -> Mapping[str, type[SamplingStrategy]]:
        """Installed sampling strategies, by name."""
        return MappingProxyType({k: v[0] for k, v in self._strategies.items()})

    @property
    def caption_strategies(self) -> Mapping[str, type[CaptionStrategy]]:
        """Caption strategies contributed by plugins (the built-in four are not listed)."""
        return MappingProxyType({k: v[0] for k, v in self._captions.items()})

    def plugin_of(self, backend_type: str) -> str:
        """The plugin (entry-point or module name) that registered a backend type."""
        return self._backends[backend_type][1]

    def strategies_of(self, plugin: str) -> list[str]:
        """Names of the sampling and caption strategies a plugin registered."""
        return sorted([k for k, (_, p) in self._strategies.items() if p == plugin]
                      + [f"{k} (captions)" for k, (_, p) in self._captions.items() if p == plugin])

    def backend_class(self, backend_type: str, *, dataset_id: str = "?") -> type[StorageBackend]:
        """The class for ``backend_type``; unknown types name the package to install."""
        if backend_type in self._backends:
            return self._backends[backend_type][0].load()
        raise UnknownBackendError(missing_backend_message(backend_type, dataset_id,
                                                          list(self._backends)))

    def strategy_class(self, name: str) -> type[SamplingStrategy]:
        """The class of a sampling strategy; unknown names list the installed ones."""
        if name in self._strategies:
            return self._strategies[name][0]
        raise UnknownBackendError(f"sampling strategy {name!r} is not installed; installed: "
                                  f"{', '.join(sorted(self._strategies)) or 'none'}")


def missing_backend_message(backend_type: str, dataset_id: str, installed: list[str]) -> str:
    """The error text for a backend type with no installed plugin (with an install hint when
    the core distribution's extras name one)."""
    have = ", ".join(sorted(installed)) or "none"
    hint = install_hint(backend_type)
    if hint:
        return (f"dataset {dataset_id!r}: type {backend_type!r} is not installed; "
                f"{hint} (installed types: {have})")
    return (f"dataset {dataset_id!r}: unknown type {backend_type!r}; no installed plugin "
            f"provides it (installed types: {have})")
