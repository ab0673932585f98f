"""Bucket placement of samples with known sizes, and assembly of the :class:`DatasetIndex`.

Placement is :func:`databackend.geometry.compute_geometry` per sample, the one implementation of
SimpleTuner's bucket math. When a sample's geometry cannot depend on its key (no random aspect,
and no random crop with slack) the result is reused per distinct size, so datasets with few
distinct sizes place in microseconds per row; otherwise large jobs use a process pool.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from databackend.pluginapi import (
    REASONS,
    CaptionTable,
    DatasetIndex,
    GeometryParams,
    SampleGeometry,
    SkippedFiles,
    aspect_out_of_range,
    compute_geometry,
    filter_reason,
)

__all__ = ["ROW_WIDTH", "build_index", "place_samples"]

#: Columns of a placed row: code, original W, H, target W, H, intermediary W, H, crop top,
#: left, downsample W, H.
ROW_WIDTH = 11
_CODE = {name: k for k, name in enumerate(REASONS)}
_POOL_MIN = 50_000
_CHUNK = 4096


def _independent(geo: SampleGeometry, params: GeometryParams) -> bool:
    if params.crop and params.crop_aspect == "random":
        return False
    return params.crop_style not in ("random", "face") or geo.intermediary_size == geo.target_size


def _place_one(w: int, h: int, key: str, params: GeometryParams, seed: int
               ) -> tuple[list[int], float, bool]:
    """(row, aspect bucket, whether the result holds for any key of this size)."""
    if filter_reason(w, h, params) is not None:
        return [_CODE["too_small"], w, h, 0, 0, 0, 0, 0, 0, -1, -1], 0.0, True
    geo = compute_geometry(w, h, params, seed=seed, key=key)
    code = _CODE["aspect_out_of_range"] if aspect_out_of_range(geo, params) else 0
    down = geo.downsample_size or (-1, -1)
    row = [code, w, h, *geo.target_size, *geo.intermediary_size, *geo.crop_coordinates, *down]
    return row, geo.aspect_bucket, _independent(geo, params)


def _place_chunk(task: tuple[list[str], np.ndarray, GeometryParams, int]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Place one chunk (runs in a worker process, or in-process)."""
    keys, sizes, params, seed = task
    ints = np.zeros((len(keys), ROW_WIDTH), np.int64)
    aspect = np.zeros(len(keys))
    memo: dict[tuple[int, int], tuple[list[int], float]] = {}
    for k, (key, (w, h)) in enumerate(zip(keys, sizes.tolist(), strict=True)):
        hit = memo.get((w, h))
        if hit is None:
            row, bucket, reusable = _place_one(int(w), int(h), key, params, seed)
            if reusable:
                memo[(w, h)] = (row, bucket)
        else:
            row, bucket = hit
        ints[k], aspect[k] = row, bucket
    return ints, aspect


def _workers() -> int:
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        count = os.cpu_count() or 1
    return max(1, min(count, 16))


def place_samples(keys: Sequence[str], sizes: np.ndarray, params: GeometryParams, seed: int, *,
                  workers: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(ints (n, ROW_WIDTH), aspect (n,))`` for samples of known ``(W, H)`` sizes.

    ``workers``: processes for large jobs (0: one per CPU, at most 16; 1: in-process).
    """
    n = len(keys)
    sizes = np.asarray(sizes, np.int64).reshape(n, 2)
    nproc = workers if workers > 0 else _workers()
    if n < _POOL_MIN or nproc <= 1:
        return _place_chunk((list(keys), sizes, params, seed))
    tasks = [(list(keys[s:s + _CHUNK]), sizes[s:s + _CHUNK], params, seed)
             for s in range(0, n, _CHUNK)]
    method = ("fork" if threading.active_count() == 1 else "forkserver") \
        if sys.platform.startswith("linux") else "spawn"
    with ProcessPoolExecutor(nproc, mp_context=multiprocessing.get_context(method)) as pool:
        parts = list(pool.map(_place_chunk, tasks))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def build_index(paths: Sequence[str], file_size: np.ndarray, ints: np.ndarray,
                aspect: np.ndarray, captions: Sequence[tuple[str, ...]], *, fingerprint: str,
                meta: Mapping[str, Any]) -> DatasetIndex:
    """The index of placed samples: code-0 rows are kept (``captions`` lists theirs, in order),
    the others go to its skipped table. mtimes are 0 (identity comes from the fingerprint)."""
    kept = np.flatnonzero(ints[:, 0] == 0)
    skip = np.flatnonzero(ints[:, 0] != 0)
    size = np.asarray(file_size, np.int64)
    skipped = SkippedFiles([paths[int(k)] for k in skip], size[skip], np.zeros(len(skip)),
                           ints[skip, 1:3], ints[skip, 0])
    rows = ints[kept]
    return DatasetIndex([paths[int(k)] for k in kept], file_size=size[kept],
                        mtime=np.zeros(len(kept)), original=rows[:, 1:3], target=rows[:, 3:5],
                        intermediary=rows[:, 5:7], crop=rows[:, 7:9], downsample=rows[:, 9:11],
                        aspect=aspect[kept], captions=CaptionTable.from_tuples(captions),
                        params_fingerprint=fingerprint, skipped=skipped, meta=meta)
