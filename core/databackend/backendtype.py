"""What the core knows about a backend type before (and without) importing its implementation.

A plugin registers either a :class:`~databackend.storage.base.StorageBackend` subclass (read
eagerly) or a :class:`BackendType` naming its implementation as ``"module:Class"``: then only
the small ``Config`` class and the declarations load at registration, so ``databackend
validate`` and ``plugins`` never import the backend's heavy dependencies (boto3, datasets...).
Everything the core decides about a type at config time -- key aliases, ignored keys, the
default caption strategy, read-only, local files, the location shown by ``validate`` -- comes
from here, never from the type's name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import attrs

from databackend.errors import PluginLoadError

if TYPE_CHECKING:
    from databackend.storage.base import StorageBackend

__all__ = ["CAPABILITIES", "BackendType"]

#: The declarations a backend type makes (class attributes of the same names on a backend).
CAPABILITIES = ("local_files", "read_only", "default_caption_strategy", "metadata_backends",
                "key_aliases", "ignored_keys", "install_hint")


def _frozen_map(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


def _names(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _name_set(value: Iterable[str]) -> frozenset[str]:
    return frozenset(value)


@attrs.frozen(kw_only=True)
class BackendType:
    """A backend type: its config ``type`` name, ``Config`` class, declarations, implementation.

    :param name: the value of ``"type"`` in the dataset JSON.
    :param Config: the attrs class of the type's own config keys (light to import).
    :param implementation: ``"package.module:Class"``, imported on first :meth:`load`; or the
        class itself.
    :param location: ``location(config) -> str | None``, shown by ``databackend validate``.
    """

    name: str
    Config: type[Any]
    implementation: str | type[Any]
    local_files: bool = False
    read_only: bool = False
    default_caption_strategy: str | None = None
    metadata_backends: tuple[str, ...] = attrs.field(default=(), converter=_names)
    key_aliases: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_map)
    ignored_keys: frozenset[str] = attrs.field(default=frozenset(), converter=_name_set)
    install_hint: str | None = None
    location: Callable[[Any], str | None] | None = attrs.field(default=None, eq=False)

    @classmethod
    def of(cls, backend: type[StorageBackend]) -> BackendType:
        """The declarations of an eagerly registered backend class (its class attributes)."""
        declared = {key: getattr(backend, key) for key in CAPABILITIES}
        return cls(name=backend.name, Config=backend.Config, implementation=backend,
                   location=backend.location, **declared)

    def where(self, config: Any) -> str | None:
        """The location of a dataset of this type, or None when the type does not say."""
        return self.location(config) if self.location is not None and config is not None \
            else None

    def load(self) -> type[StorageBackend]:
        """The implementation class (imported now for a lazy type); a failing import names
        the type and what to install."""
        if not isinstance(self.implementation, str):
            return self.implementation
        module, _, attr = self.implementation.partition(":")
        try:
            found: type[StorageBackend] = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            hint = f"; {self.install_hint}" if self.install_hint else ""
            raise PluginLoadError(f"backend type {self.name!r}: cannot load "
                                  f"{self.implementation} ({type(exc).__name__}: {exc}){hint}"
                                  ) from exc
        if getattr(found, "name", None) != self.name:
            raise PluginLoadError(f"backend type {self.name!r}: {self.implementation} has name "
                                  f"{getattr(found, 'name', None)!r}")
        self.declare(found)
        return found

    def declare(self, cls: type[StorageBackend]) -> None:
        """Give the class the type's ``Config`` and declarations where it keeps the base
        defaults; a class contradicting its type is a PluginLoadError. :meth:`load` does this;
        an implementation module also calls it after its class (``CSV.declare(CsvBackend)``),
        so the class is complete however it is imported."""
        from databackend.storage.base import StorageBackend

        config = getattr(cls, "Config", None)
        if config is None:
            cls.Config = self.Config
        elif config is not self.Config:
            raise PluginLoadError(f"backend type {self.name!r}: {self.implementation} has Config "
                                  f"{config!r}, its BackendType {self.Config!r}")
        inherit = {}
        for key in CAPABILITIES:
            mine, theirs = getattr(self, key), getattr(cls, key)
            if theirs == mine:
                continue
            if theirs != getattr(StorageBackend, key):
                raise PluginLoadError(f"backend type {self.name!r}: {self.implementation} "
                                      f"declares {key}={theirs!r}, its BackendType {mine!r}")
            inherit[key] = mine
        for key, value in inherit.items():  # only once every declaration agreed
            setattr(cls, key, value)
