"""One pass over a Hugging Face split: filters, captions, sizes and composite tiles per row.

The pass reads Arrow batches (``Dataset.with_format("arrow").iter`` in normal mode, the same on
the ``IterableDataset`` in streaming mode) and, per batch:

1. applies ``max_num_samples`` (normal mode: SimpleTuner's rule, sorted paths shuffled with
   ``random.Random(dataset_id)``; streaming: the first N rows, and the pass stops there);
2. applies the row filters (:mod:`databackend_huggingface.filters`);
3. finds each sample's caption (:mod:`databackend_huggingface.captions`); rows without any are
   not read further;
4. gets the image size: from ``width_column``/``height_column`` when configured (the image
   column is not even loaded, except for rows whose size cell is empty or < 1), else by parsing
   the image header from the encoded bytes (``imageprobe``; never a decode);
5. splits composite rows into tiles (width / ``image_count``) and applies ``min_width`` /
   ``min_height`` to each tile;
6. streaming: appends the encoded bytes of rows that yield a sample to the row store.

The result is a work table (one entry per sample) that the metadata backend places into buckets
and assembles into the index.
"""

from __future__ import annotations

import logging
import random
import sys
from array import array
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from databackend.pluginapi import (
    REASONS,
    CorruptImage,
    NeedMoreData,
    NotAnImage,
    probe_bytes,
    probe_file,
)
from databackend_huggingface.backend import HuggingfaceBackend
from databackend_huggingface.captions import CaptionPicker, Captions
from databackend_huggingface.columns import (
    ImageCells,
    column_array,
    column_chunks,
    image_cells,
    numbers,
)
from databackend_huggingface.filters import RowFilter
from databackend_huggingface.paths import virtual_path
from databackend_huggingface.rowstore import RowStoreWriter
from databackend_huggingface.validate import check_columns

__all__ = ["ScanPass", "probe_cell"]

log = logging.getLogger(__name__)
_CODE = {name: k for k, name in enumerate(REASONS)}
#: First header read; JPEG SOF / PNG IHDR / WebP headers are nearly always within it.
_FIRST_READ = 4096


def _probe_view(view: memoryview) -> Any:
    """Probe from the first bytes only, growing the prefix while the header runs past it
    (pages of the memory-mapped Arrow file beyond the header are never touched)."""
    want = _FIRST_READ
    while True:
        try:
            return probe_bytes(bytes(view[:want]), eof=len(view) <= want)
        except NeedMoreData as more:
            want = max(more.needed, 2 * want)


def probe_cell(cells: ImageCells, k: int) -> tuple[str | None, int, int]:
    """(failure reason or None, width, height) of row ``k``'s image, from its header only."""
    view = cells.views[k]
    local = cells.file_of(k) if view is None else None
    if view is None and local is None:
        return "unreadable", -1, -1
    try:
        if local is not None:
            info = probe_file(local)
        else:
            assert view is not None
            info = _probe_view(view)
    except OSError:
        return "unreadable", -1, -1
    except NotAnImage:
        return "not_an_image", -1, -1
    except CorruptImage:
        return "corrupt", -1, -1
    except Exception as exc:  # a probe bug must not stop a scan of millions of rows
        log.debug("probe failed unexpectedly: %r", exc)
        return "corrupt", -1, -1
    return None, info.width, info.height


def _bar(enabled: bool, total: int | None, desc: str) -> Any:
    """A tqdm progress bar on a terminal, else None."""
    if not (enabled and sys.stderr.isatty()):
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="row", leave=False)


class ScanPass:
    """Collects the work table of one pass (see the module docstring).

    Work table columns (one entry per sample): ``paths``, ``rows``, ``file_size``, ``width``,
    ``height``, ``status`` (0, or the code of a probe failure / ``no_caption``), ``captions``.
    """

    batch_rows = 1024
    stream_batch_rows = 256

    def __init__(self, storage: HuggingfaceBackend, picker: CaptionPicker, row_filter: RowFilter,
                 *, max_samples: int | None, progress: bool,
                 writer: RowStoreWriter | None = None) -> None:
        self.storage, self.s = storage, storage.settings
        self.picker, self.filter, self.writer = picker, row_filter, writer
        self.max_samples, self.progress = max_samples, progress
        self.dataset_id = storage.dataset_id
        self.tiles: tuple[int | None, ...] = (tuple(self.s.composite.tiles)
                                              if self.s.composite.split_all else (None,))
        self.paths: list[str] = []
        self.rows, self.file_size = array("q"), array("q")
        self.width, self.height, self.status = array("q"), array("q"), array("b")
        self.captions: list[Captions | None] = []
        self.filtered: dict[str, int] = {}
        self.filter_examples: dict[str, list[str]] = {}
        self.counts = {"rows": 0, "not_selected": 0, "probed": 0, "captioned": 0}
        self._selected: np.ndarray | None = None
        self._image_view: Any = None

    # --- batches ---------------------------------------------------------------------------------
    def _columns(self) -> list[str] | None:
        """Top-level columns to read (None: all of them)."""
        if self.filter.reads_all_columns or self.storage.opened.column_names is None:
            return None
        dotted = [c for _, c in self.picker.all_columns(self.tiles)] + \
                 [c for _, c in self.filter.needed()]
        if self.s.has_size_columns:
            dotted += [self.s.width_column or "", self.s.height_column or ""]
        if self.storage.streaming or not self.s.has_size_columns:
            dotted.append(self.s.source_column)
        return list(dict.fromkeys(c.split(".")[0] for c in dotted))

    def _batches(self) -> Iterator[tuple[pa.Table, int]]:
        ds = self.storage.opened.dataset
        cols = self._columns()
        if cols is not None:
            ds = ds.select_columns(cols)
        size = self.stream_batch_rows if self.storage.streaming else self.batch_rows
        start = 0
        for table in ds.with_format("arrow").iter(batch_size=size):
            if start == 0 and self.storage.opened.column_names is None:
                check_columns(self.storage, self.picker, self.filter, names=table.column_names)
            if self.storage.streaming and self.max_samples is not None:
                table = table.slice(0, max(0, self.max_samples - start))
                if not table.num_rows:
                    return
            yield table, start
            start += table.num_rows

    def run(self) -> ScanPass:
        """Run the pass; returns ``self`` with the work table filled."""
        total = None if self.storage.streaming else self.storage.num_rows()
        if total is not None and self.max_samples is not None and total > self.max_samples:
            self._selected = self._selection(total, self.max_samples)
        bar = _bar(self.progress, total, f"scan {self.dataset_id}")
        try:
            for table, start in self._batches():
                self._batch(table, start)
                if bar is not None:
                    bar.update(table.num_rows)
        finally:
            if bar is not None:
                bar.close()
        return self

    def _selection(self, total: int, limit: int) -> np.ndarray:
        """SimpleTuner's ``max_num_samples``: sorted paths, seeded shuffle, first N."""
        ext = self.s.file_extension
        by_path = sorted(range(total), key=lambda r: virtual_path(r, ext))
        order = list(range(total))
        random.Random(self.dataset_id).shuffle(order)
        chosen = np.zeros(total, np.bool_)
        chosen[[by_path[k] for k in order[:limit]]] = True
        return chosen

    # --- one batch -------------------------------------------------------------------------------
    def _batch(self, table: pa.Table, start: int) -> None:
        n = table.num_rows
        rows = np.arange(start, start + n, dtype=np.int64)
        self.counts["rows"] += n
        alive = np.ones(n, np.bool_)
        if self._selected is not None:
            alive = self._selected[start:start + n].copy()
            self.counts["not_selected"] += int((~alive).sum())
        codes = self.filter.rows(table, rows)
        self._count_filtered(codes[alive], rows[alive])
        alive &= codes == 0
        caps = self._captions(table, rows, alive)
        wanted = alive & np.array([any(bool(c[k]) for c in caps) for k in range(n)], np.bool_)
        width, height, status, cells = self._sizes(table, start, rows, wanted)
        stored = self._samples(rows, alive, caps, width, height, status, cells)
        if self.writer is not None and cells is not None:
            for k in np.flatnonzero(stored & (status == 0)):
                data = cells.data(int(k))
                if data is not None:
                    self.writer.add(int(rows[k]), data)

    def _count_filtered(self, codes: np.ndarray, rows: np.ndarray) -> None:
        for code in np.unique(codes[codes > 0]):
            reason = RowFilter.reason(int(code))
            hits = rows[codes == code]
            self.filtered[reason] = self.filtered.get(reason, 0) + len(hits)
            examples = self.filter_examples.setdefault(reason, [])
            examples += [virtual_path(int(r), self.s.file_extension) for r in hits[:5 - len(examples)]]

    def _captions(self, table: pa.Table, rows: np.ndarray, alive: np.ndarray
                  ) -> list[list[Captions | None]]:
        """Per tile: the captions of every row of the batch (None for dead rows)."""
        idx = np.flatnonzero(alive)
        names = {c.split(".")[0] for _, c in self.picker.all_columns(self.tiles)}
        sub = table.select([c for c in table.column_names if c in names])
        if len(idx) < table.num_rows:
            sub = sub.take(pa.array(idx, pa.int64()))
        out: list[list[Captions | None]] = []
        for tile in self.tiles:
            found = self.picker.batch(sub, rows[idx].tolist(), tile)
            full: list[Captions | None] = [None] * table.num_rows
            for k, caps in zip(idx, found, strict=True):
                full[int(k)] = caps if caps is not None else ()
            out.append(full)
        return out

    def _image_slice(self, table: pa.Table, start: int) -> list[pa.Array]:
        column = self.s.source_column
        if column in table.column_names:
            chunks = column_chunks(table, column)
            assert chunks is not None
            return chunks
        if self._image_view is None:  # normal mode with size columns: load images on demand
            self._image_view = self.storage.opened.dataset.select_columns([column]) \
                .with_format("arrow")
        sliced = column_chunks(self._image_view[start:start + table.num_rows], column)
        assert sliced is not None
        return sliced

    def _sizes(self, table: pa.Table, start: int, rows: np.ndarray, wanted: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, ImageCells | None]:
        n = table.num_rows
        width, height = np.full(n, -1, np.int64), np.full(n, -1, np.int64)
        status = np.zeros(n, np.int8)
        if self.s.has_size_columns:
            width[:] = numbers(column_array(table, self.s.width_column or ""), n).astype(np.int64)
            height[:] = numbers(column_array(table, self.s.height_column or ""), n).astype(np.int64)
        probe = wanted & ((width < 1) | (height < 1))
        cells = None
        if probe.any() or (self.writer is not None and wanted.any()):
            cells = image_cells(self._image_slice(table, start), self.storage.opened.root)
        for k in np.flatnonzero(probe):
            assert cells is not None
            reason, w, h = probe_cell(cells, int(k))
            width[k], height[k] = w, h
            status[k] = _CODE[reason] if reason else 0
        self.counts["probed"] += int(probe.sum())
        if cells is not None and self.writer is not None:
            missing = wanted & (status == 0) & np.array([v is None and cells.file_of(i) is None
                                                         for i, v in enumerate(cells.views)])
            status[missing] = _CODE["unreadable"]
        return width, height, status, cells

    def _samples(self, rows: np.ndarray, alive: np.ndarray, caps: list[list[Captions | None]],
                 width: np.ndarray, height: np.ndarray, status: np.ndarray,
                 cells: ImageCells | None) -> np.ndarray:
        """Append the samples (row-major, then tile); returns the rows that need their image."""
        comp = self.s.composite
        tw = width // comp.image_count if comp.enabled else width.copy()
        tw[width < 0] = -1
        codes = self.filter.size_codes(tw, height)
        codes[~(alive & (status == 0) & (tw > 0) & (height > 0))] = 0
        small = codes > 0
        if small.any():
            self._count_filtered(np.repeat(codes[small], len(self.tiles)),
                                 np.repeat(rows[small], len(self.tiles)))
        needs_image = np.zeros(len(rows), np.bool_)
        ext = self.s.file_extension
        for k in np.flatnonzero(alive & ~small):
            row = int(rows[k])
            size = len(cells.views[k] or b"") if cells is not None else 0
            for t, tile in enumerate(self.tiles):
                cap = caps[t][int(k)]
                code = int(status[k]) or (0 if cap else _CODE["no_caption"])
                self.paths.append(virtual_path(row, ext, tile))
                self.rows.append(row)
                self.file_size.append(size)
                self.width.append(int(tw[k]))
                self.height.append(int(height[k]))
                self.status.append(code)
                self.captions.append(cap or None)
                needs_image[k] |= code == 0
            self.counts["captioned"] += len(self.tiles)
        return needs_image
