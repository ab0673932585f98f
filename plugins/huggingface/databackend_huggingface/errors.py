"""Errors of the Hugging Face plugin; each message names the dataset id and what to change."""

from __future__ import annotations

from collections.abc import Iterable

from databackend.pluginapi import ReadOnlyStorageError, StorageError

__all__ = ["DatasetLoadError", "MissingColumnError", "ReadOnlyError"]


class DatasetLoadError(StorageError):
    """``datasets`` could not open the dataset (unknown name, offline, bad split...)."""


class ReadOnlyError(ReadOnlyStorageError):
    """A write or delete was attempted on a (read-only) Hugging Face dataset."""


class MissingColumnError(StorageError):
    """A configured column is not in the dataset.

    :param dataset_id: the databackend dataset id.
    :param source: the Hugging Face dataset name or path.
    :param column: the missing column (dotted for struct fields).
    :param key: the config key that named it (``caption_column``...).
    :param available: the columns the dataset has.
    """

    def __init__(self, dataset_id: str, source: str, column: str, key: str,
                 available: Iterable[str]) -> None:
        self.dataset_id, self.source, self.column, self.key = dataset_id, source, column, key
        self.available = sorted(available)
        super().__init__(f"dataset {dataset_id!r}: column {column!r} (from `{key}`) is not in "
                         f"huggingface dataset {source!r}; available columns: "
                         f"{', '.join(self.available) or 'none'}")
