"""Column access on Arrow batches: dotted struct paths, image cells without decoding, captions.

Scans read ``datasets`` batches in Arrow format, so no image is decoded and no Python object is
made for a cell that is not needed. An image column may be:

* a ``datasets.Image`` feature (Arrow ``struct<bytes: binary, path: string>``);
* raw ``binary`` / ``large_binary`` bytes;
* a ``string`` path (absolute, or relative to the dataset's local folder).

A relative path must stay inside that folder (``databackend.safepath.confined``: no ``..``,
no symlinked folder leading out); a hub dataset has no local folder, so its relative paths are
never read. Such cells read as empty (the row is skipped and counted).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from databackend.pluginapi import UnsafePathError, confined

log = logging.getLogger(__name__)

__all__ = ["ImageCells", "caption_cells", "column_array", "column_chunks", "column_exists",
           "image_cells", "numbers"]

log = logging.getLogger(__name__)


def _child(arr: pa.Array, name: str) -> pa.Array | None:
    if not pa.types.is_struct(arr.type) or arr.type.get_field_index(name) < 0:
        return None
    flat = arr.flatten()  # applies the struct's offset and validity to its children
    return flat[arr.type.get_field_index(name)]  # type: ignore[no-any-return]


def column_chunks(table: pa.Table, dotted: str) -> list[pa.Array] | None:
    """The chunks of the array at ``a.b.c`` of ``table`` (no copy); None when missing."""
    first, *rest = dotted.split(".")
    if first not in table.column_names:
        return None
    out = []
    for chunk in table.column(first).chunks:
        arr: pa.Array | None = chunk
        for part in rest:
            arr = _child(arr, part) if arr is not None else None
        if arr is None:
            return None
        out.append(arr)
    return out


def column_array(table: pa.Table, dotted: str) -> pa.Array | None:
    """The array at ``a.b.c`` of ``table`` as one array; None when any part is missing."""
    chunks = column_chunks(table, dotted)
    if chunks is None:
        return None
    if len(chunks) == 1:
        return chunks[0]
    if not chunks:
        first = table.column(dotted.split(".")[0])
        return pa.array([], type=first.type) if "." not in dotted else pa.nulls(0)
    return pa.concat_arrays(chunks)


def column_exists(features: Any, names: Iterable[str] | None, dotted: str) -> bool | None:
    """Whether ``a.b`` exists per the dataset's features (None when they are unknown)."""
    if names is None:
        return None
    first, *rest = dotted.split(".")
    if first not in set(names):
        return False
    node = features[first] if features is not None else None
    for part in rest:
        if node is None:
            return None  # no schema to check nested names against
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def numbers(arr: pa.Array | None, n: int, fill: float = -1) -> np.ndarray:
    """A float64 column (nulls and non-numbers -> ``fill``)."""
    if arr is None:
        return np.full(n, fill, np.float64)
    try:
        out = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)
    except (TypeError, ValueError, pa.ArrowInvalid):
        out = np.array([_to_float(v, fill) for v in arr.to_pylist()], np.float64)
    return np.where(np.isnan(out), fill, out)


def _to_float(value: Any, fill: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return fill


class ImageCells:
    """The image cells of one batch: encoded bytes (zero-copy views) or file paths.

    ``data(k)`` returns the bytes of row ``k`` (reading the file for path cells), or None.
    """

    def __init__(self, views: list[memoryview | None], paths: list[str | None],
                 root: str | None) -> None:
        self.views, self.paths, self.root = views, paths, root

    def __len__(self) -> int:
        return len(self.views)

    def file_of(self, k: int) -> str | None:
        """The local file of a path cell (None for byte cells or missing files)."""
        path = self.paths[k]
        if not path or self.views[k] is not None:
            return None
        if os.path.isabs(path):  # read where it is, as documented (docs/security.md)
            full = path
        elif self.root is None:  # a hub dataset: it would resolve against the working folder
            return None
        else:
            try:
                full = confined(self.root, path.replace(os.sep, "/"), what="path cell")
            except UnsafePathError as exc:
                log.warning("%s", exc)
                return None
        return full if os.path.isfile(full) else None

    def data(self, k: int) -> bytes | memoryview | None:
        """The encoded image of row ``k``, or None when the cell is empty or unreadable."""
        view = self.views[k]
        if view is not None:
            return view
        full = self.file_of(k)
        if full is None:
            return None
        with open(full, "rb") as fh:
            return fh.read()


def _binary_views(arr: pa.Array) -> list[memoryview | None]:
    """Zero-copy views of each value of a binary array (None for nulls)."""
    if pa.types.is_large_binary(arr.type):
        dtype: Any = np.int64
    elif pa.types.is_binary(arr.type):
        dtype = np.int32
    else:
        return [None if v is None else memoryview(bytes(v)) for v in arr.to_pylist()]
    _, off_buf, data_buf = arr.buffers()
    n = len(arr)
    if n == 0:
        return []
    offsets = np.frombuffer(off_buf, dtype=dtype)[arr.offset:arr.offset + n + 1]
    data = memoryview(data_buf) if data_buf is not None else memoryview(b"")
    valid = arr.is_valid().to_numpy(zero_copy_only=False)
    return [data[int(offsets[k]):int(offsets[k + 1])] if valid[k] else None for k in range(n)]


def image_cells(arr: pa.Array | Sequence[pa.Array], root: str | None) -> ImageCells:
    """Split an image column (an array or its chunks) into byte views and paths (see the
    module docstring). Byte views point into the Arrow buffers: nothing is copied."""
    if not isinstance(arr, pa.Array):
        parts = [image_cells(chunk, root) for chunk in arr]
        return ImageCells([v for p in parts for v in p.views], [q for p in parts for q in p.paths],
                          root)
    n = len(arr)
    if pa.types.is_struct(arr.type):
        raw = _child(arr, "bytes")
        path_arr = _child(arr, "path")
        views = _binary_views(raw) if raw is not None else [None] * n
        paths = path_arr.to_pylist() if path_arr is not None else [None] * n
    elif pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        views, paths = [None] * n, arr.to_pylist()
    else:
        views, paths = _binary_views(arr), [None] * n
    views = [v if v is None or len(v) else None for v in views]
    return ImageCells(views, paths, root)


def _texts(value: Any) -> tuple[str, ...]:
    """Caption strings from one cell: a string, a number, a list, or a description struct."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ()
    if isinstance(value, str):
        return (value.strip(),) if value.strip() else ()
    if isinstance(value, dict):
        parts = [str(value[k]).strip() for k in ("main_subject", "description", "text")
                 if value.get(k)]
        return (" ".join(parts),) if parts else ()
    if isinstance(value, (list, tuple)):
        return tuple(c for v in value for c in _texts(v))
    return (str(value),)


def caption_cells(arr: pa.Array | None, n: int) -> list[tuple[str, ...]]:
    """The caption(s) of each row of a caption column (empty tuples for missing values)."""
    if arr is None:
        return [()] * n
    return [_texts(v) for v in arr.to_pylist()]


def first_non_empty(options: Sequence[tuple[str, ...]]) -> tuple[str, ...]:
    """The first non-empty caption tuple of ``options`` (or the empty tuple)."""
    return next((o for o in options if o), ())
