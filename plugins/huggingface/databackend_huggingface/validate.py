"""Checks a dataset's columns against the config before a scan reads any row.

Every column a scan would read (image, captions, fallback, width/height, filter columns, quality
fields) must exist; the first missing one raises :class:`MissingColumnError` naming the dataset,
the column, the config key and the available columns. Streaming datasets that do not declare
their features are checked against the schema of their first batch instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from databackend_huggingface.backend import HuggingfaceBackend
from databackend_huggingface.captions import CaptionPicker
from databackend_huggingface.columns import column_exists
from databackend_huggingface.errors import MissingColumnError
from databackend_huggingface.filters import RowFilter

__all__ = ["check_columns", "needed_columns"]


def needed_columns(storage: HuggingfaceBackend, picker: CaptionPicker, row_filter: RowFilter
                   ) -> list[tuple[str, str]]:
    """``(config key, column)`` of every column a scan or a load reads."""
    s = storage.settings
    tiles: tuple[int | None, ...] = tuple(s.composite.tiles) if s.composite.split_all else (None,)
    image_key = "composite_image_column" if s.composite.column else "image_column"
    out = [(image_key, s.source_column)]
    out += picker.all_columns(tiles)
    if s.has_size_columns:
        out += [("width_column", s.width_column or ""), ("height_column", s.height_column or "")]
    out += row_filter.needed()
    return out


def check_columns(storage: HuggingfaceBackend, picker: CaptionPicker, row_filter: RowFilter, *,
                  names: Iterable[str] | None = None, features: Any = None) -> None:
    """Raise :class:`MissingColumnError` for the first missing column (see the module doc).

    ``names``/``features`` default to the opened dataset's; when those are unknown (some
    streaming datasets) nothing is checked.
    """
    opened = storage.opened
    if names is None:
        names, features = opened.column_names, opened.features
    if names is None:
        return
    names = list(names)
    for key, column in needed_columns(storage, picker, row_filter):
        if column_exists(features, names, column) is False:
            raise MissingColumnError(storage.dataset_id, storage.settings.dataset_name, column,
                                     key, names)
