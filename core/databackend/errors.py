"""The databackend error hierarchy.

Every error the library raises on purpose derives from :class:`DatabackendError`; the CLI prints
these without a traceback because their message already says what is wrong and how to fix it.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "CacheError",
    "ConfigError",
    "DatabackendError",
    "PluginLoadError",
    "ReadOnlyStorageError",
    "StorageError",
    "UnknownBackendError",
]


class DatabackendError(Exception):
    """Base class of the errors databackend raises deliberately."""


class ConfigError(DatabackendError):
    """A configuration is invalid; ``problems`` lists every problem found, one line each."""

    def __init__(self, problems: Iterable[str], *, source: str | None = None) -> None:
        self.problems: list[str] = list(problems)
        self.source = source
        head = f"{source}: " if source else ""
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{head}{count} configuration {noun}:\n{lines}")


class PluginLoadError(DatabackendError):
    """A plugin's entry point failed to import or registered something invalid."""


class UnknownBackendError(DatabackendError):
    """A config names a backend type or sampling strategy that no installed plugin provides."""


class StorageError(DatabackendError):
    """A storage backend operation failed; the message names the dataset and the location.

    ``fatal`` (default False) says the failure is not about one file: every further request
    would fail the same way (a missing bucket, rejected credentials, access denied, an
    unreachable endpoint). A metadata scan stops and raises a fatal error instead of recording
    the file as ``unreadable``; a non-fatal one only costs that file (read again next scan).
    Backends decide: pass ``fatal=True`` or set the attribute.
    """

    fatal: bool = False

    def __init__(self, *args: object, fatal: bool | None = None) -> None:
        """``args`` as for :class:`Exception`; ``fatal`` overrides the class default."""
        super().__init__(*args)
        if fatal is not None:
            self.fatal = fatal


class ReadOnlyStorageError(StorageError, PermissionError):
    """A write or delete reached a backend that declares ``read_only`` (also a PermissionError)."""


class CacheError(DatabackendError):
    """A cache entry is missing or invalid and no encoder is available to recompute it."""
