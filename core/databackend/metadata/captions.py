"""Captions per sample, by ``caption_strategy``.

* ``filename``: the file stem with ``_`` turned into spaces (``a/red_car.jpg`` -> ``red car``).
* ``textfile``: ``<stem>.txt`` beside the image; each non-empty line is one caption unless
  ``disable_multiline_split`` (then the whole stripped text is one caption). The caption file's
  size and mtime are remembered, so an edited caption is picked up on the next scan.
* ``instanceprompt``: ``instance_prompt``.
* ``parquet``: a parquet, CSV, JSON (a list of objects) or JSONL table named by ``parquet.path``
  (a key of the dataset's storage, or a local path); rows are matched by ``filename_column``
  against the file stem (``identifier_includes_extension``: the relative path, then the file
  name). ``caption_column`` may list several columns (each gives captions);
  ``fallback_caption_column`` is used when they are empty. When the table has
  ``width_column``/``height_column``, sizes come from it and the image is not read.
* any other name: the caption strategy a plugin registered under it
  (:class:`~databackend.captionstrategy.CaptionStrategy`; e.g. ``csv`` and ``huggingface``
  return :meth:`StorageBackend.caption` of the storage).

Then ``only_instance_prompt`` replaces every caption by ``instance_prompt``, and
``prepend_instance_prompt`` prefixes it (``"{instance_prompt} {caption}"``). A sample without a
caption is skipped with reason ``no_caption``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import posixpath
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import attrs
import numpy as np

from databackend.errors import ConfigError, StorageError
from databackend.metadata.captionpaths import caption_file_of, filename_caption, is_caption_file
from databackend.metadata.params import CaptionSettings, TableSettings
from databackend.safepath import key_problem
from databackend.storage.base import FileInfo, StorageBackend

if TYPE_CHECKING:
    from databackend.metadata.scanner import Known

__all__ = ["CaptionBook", "CaptionSource", "CaptionTableRows", "caption_file_of",
           "filename_caption", "is_caption_file", "load_table"]

log = logging.getLogger(__name__)
Captions = tuple[str, ...]
NO_STAMP = (-1.0, -1.0)


def _split_text(text: str, multiline: bool) -> Captions:
    if not multiline:
        text = text.strip()
        return (text,) if text else ()
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def _cell_captions(value: Any) -> Captions:
    """Captions from one table cell: a string, a list of strings, or empty/null."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ()
    if isinstance(value, str):
        return (value.strip(),) if value.strip() else ()
    if isinstance(value, (list, tuple)):
        return tuple(c for v in value for c in _cell_captions(v))
    if hasattr(value, "tolist"):  # numpy arrays from parquet list columns
        return _cell_captions(value.tolist())
    raise ConfigError([f"caption cell {value!r} is a {type(value).__name__}; captions must be "
                       "strings or lists of strings"])


def _size_cell(value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return -1
    return number if number > 0 else -1


@attrs.frozen
class CaptionTableRows:
    """A loaded caption table: identifier -> (captions, width, height); -1 for unknown sizes."""

    rows: Mapping[str, tuple[Captions, int, int]]
    has_sizes: bool
    stamp: tuple[float, float]


def _records(data: bytes, name: str) -> list[dict[str, Any]]:
    """Rows of a parquet, CSV, JSON or JSONL file as dicts."""
    lower = name.lower()
    if lower.endswith(".parquet"):
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise ConfigError([f"reading {name} needs pyarrow (pip install pyarrow)"]) from exc
        return list(pq.read_table(io.BytesIO(data)).to_pylist())
    text = data.decode("utf-8-sig")
    if lower.endswith(".jsonl"):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if lower.endswith(".json"):
        rows = json.loads(text)
        return list(rows.values() if isinstance(rows, dict) else rows)
    return list(csv.DictReader(io.StringIO(text)))


def _read_table(table: TableSettings, storage: StorageBackend) -> tuple[bytes, tuple[float, float]]:
    """The table's bytes and (size, mtime): from the dataset storage (when the path is a
    relative key), else the local disk (the path comes from the trusted config)."""
    if key_problem(table.path) is None and storage.exists(table.path):
        info = storage.stat(table.path)
        return storage.read(table.path), (float(info.size), info.mtime)
    if os.path.isfile(table.path):
        st = os.stat(table.path)
        with open(table.path, "rb") as fh:
            return fh.read(), (float(st.st_size), st.st_mtime)
    raise StorageError(f"dataset {storage.dataset_id!r}: caption table `parquet.path` "
                       f"{table.path!r} is neither in {storage.describe()} nor a local file")


def load_table(table: TableSettings, storage: StorageBackend) -> CaptionTableRows:
    """Load the caption table; raises ConfigError naming missing columns."""
    data, stamp = _read_table(table, storage)
    records = _records(data, table.path)
    columns = set(records[0]) if records else set()
    needed = {table.filename_column, *table.caption_column}
    missing = sorted(needed - columns) if records else []
    if missing:
        raise ConfigError([f"dataset {storage.dataset_id!r}: caption table {table.path!r} has no "
                           f"column(s) {', '.join(missing)}; it has {', '.join(sorted(columns))}"])
    has_sizes = {table.width_column, table.height_column} <= columns
    rows: dict[str, tuple[Captions, int, int]] = {}
    for rec in records:
        caps = tuple(c for col in table.caption_column for c in _cell_captions(rec.get(col)))
        if not caps and table.fallback_caption_column:
            caps = _cell_captions(rec.get(table.fallback_caption_column))
        width = _size_cell(rec.get(table.width_column)) if has_sizes else -1
        height = _size_cell(rec.get(table.height_column)) if has_sizes else -1
        rows[str(rec.get(table.filename_column))] = (caps, width, height)
    return CaptionTableRows(rows, has_sizes, stamp)


class CaptionSource:
    """Finds captions (and table sizes) for sample paths under one :class:`CaptionSettings`."""

    def __init__(self, settings: CaptionSettings, storage: StorageBackend,
                 caption_files: Mapping[str, FileInfo] | None = None) -> None:
        """``caption_files``: the listed ``.txt`` files by path (textfile strategy)."""
        self.settings = settings
        self.storage = storage
        self.caption_files = dict(caption_files or {})
        self._table: CaptionTableRows | None = None

    @property
    def uses_files(self) -> bool:
        """Whether captions live in ``.txt`` files beside the images."""
        return self.settings.strategy == "textfile" and not self.settings.only_instance_prompt

    @property
    def table(self) -> CaptionTableRows | None:
        """The loaded caption table (parquet strategy), loaded on first use."""
        if self._table is None and self.settings.table is not None:
            self._table = load_table(self.settings.table, self.storage)
        return self._table

    def table_stamp(self) -> list[float] | None:
        """(size, mtime) of the caption table, or None without one (cheap: one stat)."""
        table = self.settings.table
        if table is None:
            return None
        if self._table is not None:
            return list(self._table.stamp)
        if key_problem(table.path) is None and self.storage.exists(table.path):
            info = self.storage.stat(table.path)
            return [float(info.size), info.mtime]
        st = os.stat(table.path) if os.path.isfile(table.path) else None
        return [float(st.st_size), st.st_mtime] if st else None

    def stamp(self, path: str) -> tuple[float, float]:
        """(size, mtime) of the caption file of ``path`` (``(-1, -1)`` when none or unused)."""
        if not self.uses_files:
            return NO_STAMP
        info = self.caption_files.get(caption_file_of(path))
        return (float(info.size), info.mtime) if info is not None else NO_STAMP

    def _row(self, path: str) -> tuple[Captions, int, int] | None:
        table = self.table
        if table is None or self.settings.table is None:
            return None
        base = posixpath.basename(path)
        if self.settings.table.identifier_includes_extension:
            keys: Sequence[str] = (path, base)
        else:
            keys = (posixpath.splitext(path)[0], posixpath.splitext(base)[0])
        return next((table.rows[k] for k in keys if k in table.rows), None)

    def table_size(self, path: str) -> tuple[int, int] | None:
        """(W, H) from the caption table when it has size columns and a valid row."""
        table = self.table if self.settings.table is not None else None
        if table is None or not table.has_sizes:
            return None
        row = self._row(path)
        if row is None or row[1] < 1 or row[2] < 1:
            return None
        return row[1], row[2]

    def captions_for(self, paths: Sequence[str]) -> list[Captions | None]:
        """Captions of each path (None: no caption, the sample is skipped)."""
        return self._finish(self._raw(paths))

    def _raw(self, paths: Sequence[str]) -> Iterable[Captions]:
        s = self.settings
        if s.only_instance_prompt or s.strategy == "instanceprompt":
            return [(s.instance_prompt,) if s.instance_prompt else ()] * len(paths)
        if s.strategy == "filename":
            return [(c,) if (c := filename_caption(p)) else () for p in paths]
        if s.strategy == "textfile":
            return self._textfiles(paths)
        if s.strategy == "parquet":
            return [row[0] if (row := self._row(p)) else () for p in paths]
        if s.plugin is not None:
            return [_cell_captions(c) for c in s.plugin().captions(self.storage, paths)]
        raise ConfigError([f"dataset {self.storage.dataset_id!r}: unknown caption_strategy "
                           f"{s.strategy!r}"])

    def _textfiles(self, paths: Sequence[str]) -> list[Captions]:
        multiline = not self.settings.disable_multiline_split
        keys = [caption_file_of(p) for p in paths]
        present = [k for k in keys if k in self.caption_files]
        texts = dict(zip(present, self.storage.read_many(present), strict=True))
        out: list[Captions] = []
        for key in keys:
            data = texts.get(key)
            if isinstance(data, BaseException) or data is None:
                if isinstance(data, BaseException):
                    log.debug("caption file %s unreadable: %s", key, data)
                out.append(())
                continue
            out.append(_split_text(data.decode("utf-8", "replace"), multiline))
        return out

    def _finish(self, raw: Iterable[Captions]) -> list[Captions | None]:
        """Apply the instance-prompt settings (checked once, not per caption); None: no
        caption."""
        s = self.settings
        raw = list(raw)
        if s.only_instance_prompt:
            return [(s.instance_prompt,) if s.instance_prompt else None] * len(raw)
        if s.prepend_instance_prompt and s.instance_prompt:
            return [tuple(f"{s.instance_prompt} {c}" for c in caps) if caps else None
                    for caps in raw]
        return [caps or None for caps in raw]


class CaptionBook:
    """The captions of one scan's rows: looked up as rows turn out kept, or reused from the
    stored rows of unchanged samples (same caption settings, caption file and table)."""

    _BATCH = 4096

    def __init__(self, source: CaptionSource, paths: Sequence[str], no_caption: int) -> None:
        """``no_caption``: the code given to rows without a caption."""
        self.source, self.paths, self.no_caption = source, paths, no_caption
        n = len(paths)
        self.computed: dict[int, Captions] = {}
        self.done = np.zeros(n, np.bool_)
        self.ref = np.full(n, -1, np.int64)
        self.looked_up = 0
        self.stamps = np.full((n, 2), -1.0)

    def look_up(self, rows: np.ndarray, ints: np.ndarray) -> None:
        """Find the captions of ``rows``; rows without one get the ``no_caption`` code."""
        for start in range(0, len(rows), self._BATCH):
            part = rows[start:start + self._BATCH].tolist()
            found = self.source.captions_for([self.paths[r] for r in part])
            self.computed.update((r, c) for r, c in zip(part, found, strict=True) if c is not None)
            ints[[r for r, c in zip(part, found, strict=True) if c is None], 0] = self.no_caption
            self.done[part] = True
            self.looked_up += len(part)

    def settle(self, ints: np.ndarray, pos: np.ndarray, stored: Known) -> None:
        """Every kept row gets captions: stored ones when still valid, else looked up."""
        if self.source.uses_files:
            self.stamps = np.array([self.source.stamp(p) for p in self.paths],
                                   np.float64).reshape(len(self.paths), 2)
        cand = np.flatnonzero((ints[:, 0] == 0) & ~self.done)
        at = pos[cand]
        hit = at >= 0
        prev = np.full(len(cand), -1, np.int64)
        reuse = np.zeros(len(cand), np.bool_)
        prev[hit] = stored.ints[at[hit], 0]
        reuse[hit] = (stored.captions_ok[at[hit]] & np.isin(prev[hit], [0, self.no_caption])
                      & (stored.capstamp[at[hit]] == self.stamps[cand[hit]]).all(axis=1))
        self.ref[cand[reuse & (prev == 0)]] = at[reuse & (prev == 0)]
        ints[cand[reuse & (prev == self.no_caption)], 0] = self.no_caption
        self.look_up(cand[~reuse], ints)

    def captions(self, rows: Iterable[int], stored: Known) -> Iterator[Captions]:
        """The captions of kept ``rows``, in order."""
        at = rows.tolist() if isinstance(rows, np.ndarray) else list(rows)
        for start in range(0, len(at), 1 << 16):  # (a slice at a time: memory stays bounded)
            part = at[start:start + (1 << 16)]
            found = list(map(self.computed.get, part))  # (C-level for looked-up rows)
            if None in found:
                found = [f if f is not None else stored.caption_of(int(self.ref[r]))
                         for f, r in zip(found, part, strict=True)]
            yield from cast("list[Captions]", found)
