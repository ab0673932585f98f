"""The media index: a :class:`~databackend.metadata.index.DatasetIndex` plus media columns.

The image part (paths, sizes, geometry, captions, skipped files) is an ordinary
``DatasetIndex`` in ``index.dbi``. The media part sits beside it in ``index.dbi.media``, in the
same container format and bound to it by the index's ``generation``:

* per kept sample: the probed columns (:data:`INFO_COLUMNS`), its ``window`` ``(start, length,
  stride)`` and its full ``bucket`` key (``(W, H)``, ``(W, H, F)``, ...);
* :class:`ProbeTable`: every probed file (path, size, mtime, probe outcome and columns), so a
  rescan re-plans unchanged files under new settings without reading them.

It is written first, so a reader sees a matching pair or treats the index as absent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from databackend.media.record import MediaInfo
from databackend.media.windows import Window
from databackend.metadata.index import DatasetIndex, IndexFormatError, pack, unpack

if TYPE_CHECKING:
    from databackend.storage.base import StorageBackend

__all__ = ["INFO_COLUMNS", "MediaIndex", "ProbeTable", "group_rows", "media_key"]

log = logging.getLogger(__name__)
#: Probed columns and their dtypes (the fields of MediaInfo that are numbers).
INFO_COLUMNS: Mapping[str, Any] = {
    "width": np.int32, "height": np.int32, "frames": np.int64, "fps": np.float64,
    "duration": np.float64, "rotation": np.int16, "sample_rate": np.int32,
    "channels": np.int16, "samples": np.int64, "counted": np.bool_}


def media_key(index_key: str) -> str:
    """Where the media columns of the index at ``index_key`` live."""
    return f"{index_key}.media"


def _columns(infos: Sequence[MediaInfo | None]) -> dict[str, np.ndarray]:
    return {name: np.array([getattr(i, name) if i is not None else 0 for i in infos],
                           dtype=dtype).reshape(len(infos)) for name, dtype in INFO_COLUMNS.items()}


def _info(columns: Mapping[str, np.ndarray], i: int, kind: str) -> MediaInfo:
    values = {name: columns[name][i].item() for name in INFO_COLUMNS}
    return MediaInfo(kind=kind, **values)


class ProbeTable:
    """Every probed file: ``paths``, ``size``, ``mtime``, ``reason`` (None: probed fine) and
    the :data:`INFO_COLUMNS` of the good ones."""

    def __init__(self, paths: list[str], size: Any, mtime: Any, reasons: Sequence[str],
                 columns: Mapping[str, np.ndarray]) -> None:
        """Columns of equal length (``reasons``: ``""`` for a good probe)."""
        self.paths, self.reasons = paths, list(reasons)
        self.size = np.asarray(size, np.int64).reshape(len(paths))
        self.mtime = np.asarray(mtime, np.float64).reshape(len(paths))
        self.columns = {k: np.asarray(columns[k], INFO_COLUMNS[k]) for k in INFO_COLUMNS}
        self._pos = {p: k for k, p in enumerate(paths)}

    @classmethod
    def build(cls, rows: Sequence[tuple[str, int, float, str, MediaInfo | None]]) -> ProbeTable:
        """From ``(path, size, mtime, reason, info)`` rows."""
        return cls([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                   [r[3] for r in rows], _columns([r[4] for r in rows]))

    def __len__(self) -> int:
        return len(self.paths)

    def lookup(self, path: str, size: int, mtime: float, kind: str
               ) -> tuple[str, MediaInfo | None] | None:
        """The stored outcome of an unchanged file (same size and mtime), else None."""
        k = self._pos.get(path)
        if k is None or self.size[k] != size or self.mtime[k] != mtime:
            return None
        reason = self.reasons[k]
        return reason, None if reason else _info(self.columns, k, kind)


def group_rows(keys: np.ndarray) -> dict[tuple[int, ...], np.ndarray]:
    """Row numbers grouped by their row of ``keys`` (n, k); keys sorted, rows ascending."""
    out: dict[tuple[int, ...], list[int]] = {}
    for row, key in enumerate(map(tuple, keys.tolist())):
        out.setdefault(key, []).append(row)
    return {k: np.asarray(out[k], np.int64) for k in sorted(out)}


class MediaIndex:
    """A :class:`DatasetIndex` (``base``; its attributes are available here too) with media
    columns per kept sample and the :class:`ProbeTable` (see the module docstring)."""

    def __init__(self, base: DatasetIndex, kind: str, columns: Mapping[str, np.ndarray],
                 window: Any, bucket: Any, probes: ProbeTable) -> None:
        """``columns``: :data:`INFO_COLUMNS` per kept row; ``window`` (n, 3); ``bucket`` (n, k)."""
        n = len(base)
        self.base, self.kind, self.probes = base, kind, probes
        self.columns = {k: np.asarray(columns[k], INFO_COLUMNS[k]).reshape(n) for k in INFO_COLUMNS}
        self.window_table = np.asarray(window, np.int32).reshape(n, 3)
        bucket = np.asarray(bucket, np.int32)
        self.bucket_table = bucket.reshape(n, bucket.shape[-1] if bucket.ndim == 2 else 2)
        self._buckets: dict[tuple[int, ...], np.ndarray] | None = None

    def __getattr__(self, name: str) -> Any:
        if name == "base":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.base, name)

    def __len__(self) -> int:
        return len(self.base)

    def info(self, i: int) -> MediaInfo:
        """The probed metadata of kept sample ``i``."""
        return _info(self.columns, i, self.kind)

    def window(self, i: int) -> Window:
        """The window sample ``i`` trains on."""
        start, length, stride = (int(v) for v in self.window_table[i])
        return Window(start, length, stride)

    def bucket_of(self, i: int) -> tuple[int, ...]:
        """The full bucket key of sample ``i``."""
        return tuple(int(v) for v in self.bucket_table[i])

    def buckets(self) -> dict[tuple[int, ...], np.ndarray]:
        """``{bucket key: sorted sample indices}``, keys sorted."""
        if self._buckets is None:
            self._buckets = group_rows(self.bucket_table)
        return dict(self._buckets)

    # --- persistence -----------------------------------------------------------------------
    def save(self, storage: StorageBackend, key: str) -> None:
        """Write the media columns, then the index (each atomically)."""
        p = self.probes
        arrays = {**{f"kept.{k}": v for k, v in self.columns.items()},
                  "kept.window": self.window_table, "kept.bucket": self.bucket_table,
                  "probe.size": p.size, "probe.mtime": p.mtime,
                  **{f"probe.{k}": v for k, v in p.columns.items()}}
        texts = {"probe.paths": p.paths, "probe.reasons": p.reasons}
        header = {"format": "databackend-media", "version": 1, "kind": self.kind,
                  "generation": self.base.meta.get("generation"), "count": len(self)}
        storage.write(media_key(key), bytes(pack(header, arrays, texts)))
        self.base.save(storage, key)

    @classmethod
    def load(cls, storage: StorageBackend, key: str) -> MediaIndex | None:
        """The stored pair, or None when either part is absent, damaged or from another run."""
        base = DatasetIndex.load(storage, key)
        if base is None:
            return None
        try:
            header, a, t = unpack(storage.read(media_key(key)))
            if header.get("generation") != base.meta.get("generation") or \
                    header.get("count") != len(base):
                raise IndexFormatError("the media columns belong to another index")
            probes = ProbeTable(t["probe.paths"], a["probe.size"], a["probe.mtime"],
                                t["probe.reasons"], {k: a[f"probe.{k}"] for k in INFO_COLUMNS})
            return cls(base, str(header.get("kind")), {k: a[f"kept.{k}"] for k in INFO_COLUMNS},
                       a["kept.window"], a["kept.bucket"], probes)
        except FileNotFoundError:
            return None
        except (IndexFormatError, KeyError, ValueError) as exc:
            log.warning("ignoring the media index %s in %s: %s", media_key(key),
                        storage.describe(), exc)
            return None
