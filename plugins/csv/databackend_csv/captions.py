"""The ``csv`` caption strategy: the caption column of each URL's row (the type's default)."""

from __future__ import annotations

from databackend.pluginapi import StorageCaptions

__all__ = ["CsvCaptions"]


class CsvCaptions(StorageCaptions):
    """``caption_strategy: csv``: :meth:`CsvBackend.caption` of each sample."""

    name = "csv"
