"""The URL table: the CSV read with pandas (through fsspec for remote paths), one row per URL."""

from __future__ import annotations

import itertools
import logging
import math
import posixpath
from collections.abc import Iterable, Iterator
from typing import Any

import attrs

from databackend_csv.config import CsvConfig
from databackend_csv.urls import key_for_url, redact

__all__ = ["CsvTable", "Row", "load_table"]

logger = logging.getLogger(__name__)
_DEFAULT_CAPTION = "caption"


@attrs.frozen(slots=True)
class Row:
    """One URL of the CSV: its virtual key, the URL, and its caption(s)."""

    key: str
    url: str
    caption: str | list[str] | None


class CsvTable:
    """The rows of a CSV by virtual key, in sorted key order.

    Duplicate URLs collapse into one row whose captions are all the distinct captions given
    (a list when there are several), so no caption is silently dropped.
    """

    def __init__(self, rows: Iterable[Row]) -> None:
        """Index the rows by key."""
        self._rows: dict[str, Row] = {r.key: r for r in sorted(rows, key=lambda r: r.key)}

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    def __iter__(self) -> Iterator[Row]:
        return iter(self._rows.values())

    def get(self, key: str) -> Row | None:
        """The row of a key, or None."""
        return self._rows.get(key)


def _clean(value: Any) -> str | None:
    """A cell as a stripped string; empty cells and NaN are None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def _merge(rows: dict[str, tuple[str, list[str]]], url: str, caption: str | None) -> None:
    """Add one CSV line to the rows being collected (duplicates merge their captions)."""
    key = key_for_url(url)
    known = rows.get(key)
    if known is None:
        rows[key] = (url, [caption] if caption else [])
    elif caption and caption not in known[1]:
        known[1].append(caption)


def rows_from_columns(urls: Iterable[Any], captions: Iterable[Any] | None) -> CsvTable:
    """Build the table from the URL column and the optional caption column."""
    collected: dict[str, tuple[str, list[str]]] = {}
    caps = captions if captions is not None else itertools.repeat(None)
    skipped = 0
    for raw_url, raw_caption in zip(urls, caps, strict=False):
        url = _clean(raw_url)
        if url is None:
            skipped += 1
            continue
        _merge(collected, url, _clean(raw_caption))
    if skipped:
        logger.warning("csv: %d rows have an empty URL and are skipped", skipped)
    return CsvTable(Row(key, url, caps_list[0] if len(caps_list) == 1 else (caps_list or None))
                    for key, (url, caps_list) in collected.items())


def _separator(path: str) -> str:
    """Tab for ``.tsv`` files (also compressed ones), comma otherwise."""
    name = path.split("?", 1)[0].lower()
    for suffix in (".gz", ".bz2", ".xz", ".zst", ".zip"):
        name = name.removesuffix(suffix)
    return "\t" if posixpath.splitext(name)[1] == ".tsv" else ","


def _read(config: CsvConfig, **kwargs: Any) -> Any:
    """``pandas.read_csv`` of ``csv_file`` with every cell as a string."""
    import pandas as pd

    return pd.read_csv(config.csv_file, sep=_separator(config.csv_file), dtype=str,
                       keep_default_na=False, skipinitialspace=True, **kwargs)


def _missing_column(config: CsvConfig, key: str) -> ValueError:
    """The error for a configured column that the CSV lacks, listing the columns it has."""
    columns = [str(c).strip() for c in _read(config, nrows=0).columns]
    return ValueError(f"`{key}` {getattr(config, key)!r} is not a column of "
                      f"{redact(config.csv_file)}; its columns: {', '.join(columns)}")


def _caption_column(config: CsvConfig, columns: list[str]) -> str | None:
    """The caption column to use; raises when an explicitly named one is missing."""
    if config.csv_caption_column is None:
        return _DEFAULT_CAPTION if _DEFAULT_CAPTION in columns else None
    if config.csv_caption_column not in columns:
        raise _missing_column(config, "csv_caption_column")
    return config.csv_caption_column


def load_table(config: CsvConfig) -> CsvTable:
    """Read the CSV named by ``csv_file`` (pandas; fsspec for remote URLs) into a table.

    Only the URL and caption columns are kept in memory. Raises ``FileNotFoundError`` when the
    CSV is missing and ``ValueError`` when a column is missing.
    """
    wanted = {config.csv_url_column, config.csv_caption_column or _DEFAULT_CAPTION}
    frame = _read(config, usecols=lambda c: str(c).strip() in wanted)
    frame.columns = [str(c).strip() for c in frame.columns]
    columns = list(frame.columns)
    if config.csv_url_column not in columns:
        raise _missing_column(config, "csv_url_column")
    caption = _caption_column(config, columns)
    table = rows_from_columns(frame[config.csv_url_column].tolist(),
                              frame[caption].tolist() if caption else None)
    logger.info("csv: %s: %d lines, %d distinct URLs", redact(config.csv_file), len(frame),
                len(table))
    return table
