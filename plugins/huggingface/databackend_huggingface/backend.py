"""The ``huggingface`` storage backend: a ``datasets`` split seen as read-only virtual files.

Every row is a file ``{row}.{ext}`` (``{row}_{tile}.{ext}`` when every tile of a composite image
is a sample; see :mod:`databackend_huggingface.paths`). ``read`` returns the row's *encoded* image
bytes exactly as stored (never decoded and re-encoded; for a composite it is the whole composite,
the metadata backend crops the tile), ``read_range`` a slice of them, ``caption`` the row's
caption(s) from the caption columns. Writes and deletes raise :class:`ReadOnlyError`: caches and
the index go elsewhere (``{cache_root}``), never into the dataset.

Random access comes from the memory-mapped Arrow files ``datasets`` prepares (normal mode) or,
for ``streaming: true``, from the :class:`~databackend_huggingface.rowstore.RowStore` that the
metadata scan writes into :attr:`HuggingfaceBackend.rows_folder` during its single pass: the
backend finds the committed store there itself (before that scan, a streaming backend cannot
read). Nothing outside the backend changes its state.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from databackend.pluginapi import CaptionSettings, FileInfo, StorageBackend
from databackend_huggingface.captions import CaptionPicker
from databackend_huggingface.columns import column_array, column_chunks, image_cells
from databackend_huggingface.config import HFSettings, HuggingfaceConfig
from databackend_huggingface.errors import ReadOnlyError
from databackend_huggingface.paths import parse_path, virtual_path
from databackend_huggingface.rowstore import RowStore
from databackend_huggingface.source import OpenedDataset, open_dataset

__all__ = ["HuggingfaceBackend"]

_LIST_BATCH = 8192


class HuggingfaceBackend(StorageBackend):
    """A Hugging Face dataset split as read-only storage (see the module docstring)."""

    name = "huggingface"
    Config = HuggingfaceConfig
    io_concurrency = 8

    def __init__(self, config: Any, *, dataset_id: str, root: str | None = None, seed: int = 0,
                 rows_folder: str | None = None) -> None:
        """Resolve the settings; the dataset is opened on first use. ``seed`` chooses among
        several caption columns (the factory seed); ``rows_folder`` holds a streaming
        dataset's row store (the plugin's builder puts it under the cache root)."""
        super().__init__(config, dataset_id=dataset_id, root=root)
        problems = config.problems()
        if problems:
            raise ValueError(f"dataset {dataset_id!r}: " + "; ".join(problems))
        self.settings: HFSettings = config.settings()
        self._opened: OpenedDataset | None = None
        self._arrow: Any = None
        self._images: Any = None
        self._lock = threading.RLock()
        self.rows_folder = rows_folder
        self._store: RowStore | None = None
        self.caption_picker = CaptionPicker(self.settings, CaptionSettings(strategy=self.name),
                                            dataset_id, seed)

    # --- the dataset ---------------------------------------------------------------------------
    @property
    def opened(self) -> OpenedDataset:
        """The opened dataset (loaded on first use, once, thread-safely)."""
        with self._lock:
            if self._opened is None:
                self._opened = open_dataset(self.settings, self.dataset_id)
            return self._opened

    @property
    def streaming(self) -> bool:
        """Whether rows come from a stream (random access needs the scan's row store)."""
        return self.settings.streaming

    def _arrow_view(self) -> Any:
        """The non-streaming dataset in Arrow format (random access by row)."""
        with self._lock:
            if self._arrow is None:
                self._arrow = self.opened.dataset.with_format("arrow")
            return self._arrow

    def _image_view(self) -> Any:
        """The image column alone, in Arrow format (one row read per :meth:`row_bytes`)."""
        with self._lock:
            if self._images is None:
                self._images = self._arrow_view().select_columns([self.settings.source_column])
            return self._images

    def num_rows(self) -> int | None:
        """Rows of the split (None for a streaming dataset before its scan)."""
        if self.streaming:
            return None
        return len(self.opened.dataset)

    @property
    def row_store(self) -> RowStore | None:
        """The committed row store in :attr:`rows_folder` (streaming), found on first use and
        again after a new pass replaced it; None before any pass."""
        with self._lock:
            if self._store is not None and not self._store.current():
                self._store.close()
                self._store = None
            if self._store is None and self.rows_folder and self.streaming:
                self._store = RowStore.latest(self.rows_folder)
            return self._store

    def row_bytes(self, row: int) -> bytes:
        """The encoded image of ``row``; FileNotFoundError when there is none."""
        if self.streaming:
            store = self.row_store
            if store is None:
                raise FileNotFoundError(
                    f"dataset {self.dataset_id!r} is streamed: row {row} can be read only after "
                    "a metadata scan stored its bytes (scan first)")
            return store.read(row)
        n = self.num_rows() or 0
        if not 0 <= row < n:
            raise FileNotFoundError(f"dataset {self.dataset_id!r}: row {row} is out of range "
                                    f"(0..{n - 1})")
        column = self.settings.source_column
        table = self._image_view()[row]
        data = image_cells(column_array(table, column), self.opened.root).data(0)
        if data is None:
            raise FileNotFoundError(f"dataset {self.dataset_id!r}: row {row} has no image in "
                                    f"column {column!r}")
        return bytes(data)

    def _row_of(self, path: str) -> int:
        parsed = parse_path(path)
        composite = self.settings.composite
        if parsed is None or (parsed[1] is not None) != composite.split_all or (
                parsed[1] is not None and parsed[1] not in composite.tiles):
            raise FileNotFoundError(f"dataset {self.dataset_id!r}: {path!r} is not a sample "
                                    f"path of this dataset")
        return parsed[0]

    # --- StorageBackend ------------------------------------------------------------------------
    def list(self, prefix: str = "", *, extensions: Iterable[str] | None = None
             ) -> Iterator[FileInfo]:
        """Every row's virtual path with its encoded byte size (mtime 0); filters do not apply."""
        if prefix or (extensions is not None and self.settings.file_extension.lower()
                      not in {e.lower().lstrip(".") for e in extensions}):
            return
        for row, size in self._row_sizes():
            for tile in (self.settings.composite.tiles if self.settings.composite.split_all
                         else (None,)):
                yield FileInfo(virtual_path(row, self.settings.file_extension, tile), size, 0.0)

    def _row_sizes(self) -> Iterator[tuple[int, int]]:
        if self.streaming:
            store = self.row_store
            if store is None:
                raise FileNotFoundError(f"dataset {self.dataset_id!r} is streamed: run a "
                                        "metadata scan before listing it")
            yield from ((int(r), int(s)) for r, s in store.table[:, [0, 3]])
            return
        view = self._arrow_view().select_columns([self.settings.source_column])
        start = 0
        for table in view.iter(batch_size=_LIST_BATCH):
            chunks = column_chunks(table, self.settings.source_column) or []
            sizes = np.concatenate([_byte_lengths(c) for c in chunks]) if chunks else \
                np.zeros(0, np.int64)
            yield from zip(range(start, start + len(sizes)), sizes.tolist(), strict=True)
            start += len(sizes)

    def read(self, path: str) -> bytes:
        """The encoded image bytes of a virtual path (the whole composite for tile paths)."""
        return self.row_bytes(self._row_of(path))

    def read_range(self, path: str, start: int, length: int) -> bytes:
        """A slice of :meth:`read` (streaming: one ``pread`` on the row store)."""
        row = self._row_of(path)
        store = self.row_store if self.streaming else None
        if store is not None:
            return store.read(row, start, length)
        return self.row_bytes(row)[start:start + length]

    def exists(self, path: str) -> bool:
        """Whether ``path`` names a row of the dataset (streaming: a stored row)."""
        try:
            row = self._row_of(path)
        except FileNotFoundError:
            return False
        if self.streaming:
            store = self.row_store
            return store is not None and store.has(row)
        return 0 <= row < (self.num_rows() or 0)

    def stat(self, path: str) -> FileInfo:
        """Size of the row's encoded image; mtime 0 (identity comes from the fingerprint)."""
        row = self._row_of(path)
        store = self.row_store if self.streaming else None
        if store is not None:
            return FileInfo(path, store.size(row), 0.0)
        return FileInfo(path, len(self.row_bytes(row)), 0.0)

    def write(self, path: str, data: bytes) -> None:
        """Refused: Hugging Face datasets are read-only."""
        raise ReadOnlyError(f"dataset {self.dataset_id!r}: huggingface datasets are read-only "
                            f"(cannot write {path!r})")

    def delete(self, path: str) -> None:
        """Refused: Hugging Face datasets are read-only."""
        raise ReadOnlyError(f"dataset {self.dataset_id!r}: huggingface datasets are read-only "
                            f"(cannot delete {path!r})")

    def caption(self, path: str) -> str | builtins.list[str] | None:
        """The caption(s) of a sample from the caption columns (normal mode only)."""
        if self.streaming:
            return None
        row = self._row_of(path)
        tile = parse_path(path)[1]  # type: ignore[index]
        picker = self.caption_picker
        cols = sorted({c.split(".")[0] for _, c in picker.all_columns([tile])})
        table = self._arrow_view().select_columns(cols)[row] if cols else pa.table({})
        caps = picker.raw(table, [row], tile)[0] if cols else ()
        if not caps and self.settings.audio_column:
            caps = self._joined_fields(row)
        return None if not caps else caps[0] if len(caps) == 1 else list(caps)

    def _cells(self, row: int, columns: Iterable[str]) -> builtins.list[str]:
        """The non-empty text cells of ``columns`` (those the dataset has) in ``row``."""
        present = [c for c in columns if c in self._arrow_view().column_names]
        if not present:
            return []
        table = self._arrow_view().select_columns(present)[row]
        values = table.to_pylist()[0] if hasattr(table, "to_pylist") else dict(table)
        out = []
        for column in present:
            value = values.get(column)
            if isinstance(value, builtins.list):
                value = ", ".join(str(v) for v in value if v)
            if value is not None and str(value).strip():
                out.append(str(value).strip())
        return out

    def _joined_fields(self, row: int) -> tuple[str, ...]:
        """SimpleTuner's audio caption: ``audio_caption_fields`` joined (``, ``)."""
        parts = self._cells(row, self.settings.audio_caption_fields)
        return (", ".join(parts),) if parts else ()

    def lyrics(self, path: str) -> str | None:
        """The first non-empty lyrics column of the sample's row (audio datasets)."""
        if self.streaming or not self.settings.audio_column:
            return None
        found = self._cells(self._row_of(path), self.settings.lyrics_columns)
        return found[0] if found else None

    def describe(self) -> str:
        """``huggingface:{name}[@revision]/{split}`` (plus ``streaming``)."""
        s = self.settings
        rev = f"@{s.revision}" if s.revision else ""
        return f"huggingface:{s.dataset_name}{rev}/{s.split}" + (" streaming" if s.streaming else "")

    def close(self) -> None:
        """Close the row store's files."""
        if self._store is not None:
            self._store.close()


def _byte_lengths(arr: pa.Array | None) -> np.ndarray:
    """Encoded sizes of an image column (0 for paths and nulls), without copying bytes."""
    if arr is None:
        return np.zeros(0, np.int64)
    if pa.types.is_struct(arr.type):
        arr = arr.flatten()[arr.type.get_field_index("bytes")] \
            if arr.type.get_field_index("bytes") >= 0 else pa.nulls(len(arr), pa.binary())
    if not (pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type)):
        return np.zeros(len(arr), np.int64)
    lengths = pc.binary_length(arr).fill_null(0)
    return np.asarray(lengths.to_numpy(zero_copy_only=False), dtype=np.int64)


# The declarations live on the registered type (light to import); the class gets them here too.
from databackend_huggingface import HUGGINGFACE  # noqa: E402

HUGGINGFACE.declare(HuggingfaceBackend)
