"""Caption strategies that plugins contribute (``databackend_register_caption_strategies``).

The core implements ``filename``, ``textfile``, ``instanceprompt`` and ``parquet`` itself (they
read files beside the images or a table). Any other ``caption_strategy`` names a registered
:class:`CaptionStrategy`. A backend whose storage holds captions (a CSV column, a dataset
column) registers a :class:`StorageCaptions` subclass and names it as its type's
``default_caption_strategy``, so its datasets need no ``caption_strategy`` key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from databackend.storage.base import StorageBackend

__all__ = ["BUILTIN_CAPTION_STRATEGIES", "Caption", "CaptionStrategy", "StorageCaptions"]

#: Strategies the core implements (not registrable, not overridable).
BUILTIN_CAPTION_STRATEGIES = ("filename", "textfile", "instanceprompt", "parquet")

#: One sample's caption: a string, several strings, or None (no caption: the sample is skipped).
Caption = str | list[str] | None


class CaptionStrategy:
    """Finds the captions of sample paths. Subclasses set :attr:`name` and implement
    :meth:`captions`; the instance-prompt switches are applied by the core afterwards."""

    name: ClassVar[str]

    def captions(self, storage: StorageBackend, paths: Sequence[str]) -> list[Caption]:
        """The caption(s) of each path, in order."""
        raise NotImplementedError


class StorageCaptions(CaptionStrategy):
    """Captions the storage itself holds: :meth:`StorageBackend.caption` of each path."""

    def captions(self, storage: StorageBackend, paths: Sequence[str]) -> list[Caption]:
        """``storage.caption(path)`` for each path."""
        return [storage.caption(p) for p in paths]
