"""Config checks that come from what backend types declare (plugin API 1.0), never their names.

* key spellings: the core's aliases plus the type's ``key_aliases``; keys the type lists in
  ``ignored_keys`` warn instead of failing;
* ``caption_strategy``: the built-in strategies plus those plugins register; a dataset without
  one gets its type's ``default_caption_strategy`` here, once, in the plan;
* ``metadata_backend``: the built-in names plus those the types declare;
* read-only types: a cache (``text_embeds``/``image_embeds`` entry) or a deletion switch on one
  is a problem naming the dataset and the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import attrs

from databackend.captionstrategy import BUILTIN_CAPTION_STRATEGIES
from databackend.config.keys import ALIASES, UNIMPLEMENTED_KEYS
from databackend.config.models import (
    BaseBackendConfig,
    ImageBackendConfig,
    ImageEmbedBackendConfig,
    TextEmbedBackendConfig,
)

if TYPE_CHECKING:
    from databackend.backendtype import BackendType
    from databackend.registry import PluginRegistry

__all__ = ["BUILTIN_METADATA_BACKENDS", "aliases_for", "apply_defaults", "choices",
           "ignored_for", "read_only_problems"]

#: SimpleTuner's ``metadata_backend`` values; all select the built-in discovery scan.
BUILTIN_METADATA_BACKENDS = ("discovery", "json", "filesystem", "parquet")
_DELETE_KEYS = ("delete_problematic_images", "delete_unwanted_images")


def _declared(btype: object, registry: PluginRegistry) -> BackendType | None:
    return registry.types.get(btype) if isinstance(btype, str) else None


def aliases_for(btype: object, registry: PluginRegistry) -> Mapping[str, str]:
    """``{alias: canonical}`` for an entry of type ``btype`` (core aliases + the type's own)."""
    declared = _declared(btype, registry)
    return {**ALIASES, **declared.key_aliases} if declared else ALIASES


def ignored_for(btype: object, registry: PluginRegistry) -> frozenset[str]:
    """Keys accepted with a warning for an entry of type ``btype``."""
    declared = _declared(btype, registry)
    return UNIMPLEMENTED_KEYS | declared.ignored_keys if declared else UNIMPLEMENTED_KEYS


def choices(registry: PluginRegistry) -> dict[str, tuple[str, ...]]:
    """Accepted values of the keys whose choices plugins extend."""
    metadata = {m for t in registry.types.values() for m in t.metadata_backends}
    return {"caption_strategy": (*BUILTIN_CAPTION_STRATEGIES,
                                 *sorted(registry.caption_strategies)),
            "metadata_backend": (*BUILTIN_METADATA_BACKENDS,
                                 *sorted(metadata - set(BUILTIN_METADATA_BACKENDS)))}


def apply_defaults(config: BaseBackendConfig, registry: PluginRegistry) -> BaseBackendConfig:
    """The entry with its type's ``default_caption_strategy`` when it names none."""
    declared = _declared(config.type, registry)
    if (isinstance(config, ImageBackendConfig) and config.caption_strategy is None
            and declared is not None and declared.default_caption_strategy):
        return attrs.evolve(config, caption_strategy=declared.default_caption_strategy)
    return config


def read_only_problems(config: BaseBackendConfig, registry: PluginRegistry) -> list[str]:
    """Caches and deletions placed on a read-only type, as ``key: ...`` lines."""
    declared = _declared(config.type, registry)
    if declared is None or not declared.read_only:
        return []
    if isinstance(config, (TextEmbedBackendConfig, ImageEmbedBackendConfig)):
        return [f"`type`: {config.type!r} storage is read-only and cannot hold a "
                f"{config.dataset_type} cache; use a writable type (e.g. local)"]
    return [f"`{key}`: {config.type!r} storage is read-only, nothing can be deleted from it"
            for key in _DELETE_KEYS if getattr(config, key, False)]
