"""The persisted, columnar index of one dataset: what every kept sample is and where it goes.

A :class:`DatasetIndex` holds one row per kept sample in NumPy columns (sizes, mtimes, geometry)
plus the relative paths and captions, and a :class:`SkippedFiles` table of every file that was
looked at and left out (with its reason), so a rescan does not probe it again.

Persisted format: the memory-mapped container of :mod:`databackend.metadata.indexfile`
(version 2): every column is a named fixed-width section and every string list (paths, ETags) a
packed blob with offsets, so :meth:`DatasetIndex.load` maps the file in O(1) and a process reads
only the pages it touches. The buckets are stored precomputed (``buckets.*`` sections). Files
of the previous version (:mod:`databackend.metadata.indexv1`) are still read, and rewritten in
the new format by the next save. Columns are serialised generically: whatever arrays and string
lists ``_pack`` collects are written, and ``_from_sections`` receives them back by name.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from databackend.errors import DatabackendError
from databackend.geometry import SampleGeometry
from databackend.metadata import indexfile, indexv1
from databackend.metadata.captiontable import CaptionTable
from databackend.metadata.indexfile import PackedStrings

if TYPE_CHECKING:
    from databackend.storage.base import StorageBackend

__all__ = [
    "FORMAT_VERSION", "PROBE_FAILURES", "REASONS", "REASON_CODES", "CaptionTable", "DatasetIndex",
    "IndexFormatError", "PackedStrings", "SkippedFiles",
]

log = logging.getLogger(__name__)

FORMAT_VERSION = 2
#: Reason codes stored per skipped file (code = position); 0 is never stored.
REASONS: tuple[str, ...] = ("kept", "too_small", "aspect_out_of_range", "no_caption",
                            "corrupt", "not_an_image", "unreadable",
                            # media (video, audio) datasets; appended so stored codes keep
                            "not_media", "too_few_frames", "too_many_frames", "too_short",
                            "too_long", "no_audio")
#: The stored code of each reason name.
REASON_CODES: Mapping[str, int] = {name: code for code, name in enumerate(REASONS)}
#: Reasons found by reading the file: kept until the file changes (no re-probe).
PROBE_FAILURES = frozenset({"corrupt", "not_an_image", "unreadable", "not_media"})


class IndexFormatError(DatabackendError):
    """A persisted index is damaged, truncated or of an unknown version."""


def _pairs(n: int, fill: int = 0, dtype: Any = np.int32) -> np.ndarray:
    return np.full((n, 2), fill, dtype=dtype)


class _Files:
    """Columns common to kept and skipped files: path, size, mtime, original size, stamps."""

    paths: Sequence[str]
    file_size: np.ndarray
    mtime: np.ndarray
    original: np.ndarray
    caption_stamp: np.ndarray
    etags: Sequence[str | None] | None

    def _init_files(self, paths: Sequence[str], file_size: Any, mtime: Any, original: Any,
                    etags: Sequence[str | None] | None, caption_stamp: Any) -> None:
        n = len(paths)
        self.paths = paths
        self.file_size = np.asarray(file_size, dtype=np.int64).reshape(n)
        self.mtime = np.asarray(mtime, dtype=np.float64).reshape(n)
        self.original = np.asarray(original, dtype=np.int32).reshape(n, 2)
        self.etags = etags if isinstance(etags, PackedStrings) or (
            etags is not None and any(e for e in etags)) else None  # packed: stored only if any
        stamp = None if caption_stamp is None else np.asarray(caption_stamp, np.float64)
        stored = stamp is not None and not stamp.flags.writeable  # mapped: written only if any
        if stamp is None or not (stored or (stamp >= 0).any()):  # no caption files: a view
            stamp = np.broadcast_to(np.array([-1.0, -1.0]), (n, 2))
        self.caption_stamp = stamp.reshape(n, 2)

    def __len__(self) -> int:
        return len(self.paths)

    def etag(self, i: int) -> str | None:
        """The ETag stored for row ``i`` (None when the storage gives none)."""
        return (self.etags[i] or None) if self.etags is not None else None

    def _file_sections(self, prefix: str
                       ) -> tuple[dict[str, np.ndarray], dict[str, Sequence[str | None]]]:
        arrays = {f"{prefix}size": self.file_size, f"{prefix}mtime": self.mtime,
                  f"{prefix}original": self.original}
        if self.caption_stamp.strides[0]:  # stored only when some file has a caption file
            arrays[f"{prefix}capstamp"] = self.caption_stamp
        texts: dict[str, Sequence[str | None]] = {f"{prefix}paths": self.paths}
        if self.etags is not None:
            texts[f"{prefix}etags"] = self.etags
        return arrays, texts


class SkippedFiles(_Files):
    """Files that were looked at and left out, with the reason code of each (see REASONS).

    ``original`` is ``(-1, -1)`` when the size is unknown (probe failures).
    """

    def __init__(self, paths: Sequence[str], file_size: Any, mtime: Any, original: Any,
                 reason: Any, *, etags: Sequence[str | None] | None = None,
                 caption_stamp: Any = None) -> None:
        """Columns of equal length."""
        self._init_files(paths, file_size, mtime, original, etags, caption_stamp)
        self.reason = np.asarray(reason, dtype=np.int8).reshape(len(paths))

    @classmethod
    def empty(cls) -> SkippedFiles:
        """No skipped files."""
        return cls([], [], [], _pairs(0), [])

    def reason_of(self, i: int) -> str:
        """The reason name of row ``i``."""
        return REASONS[int(self.reason[i])]

    def counts(self) -> dict[str, int]:
        """Skipped files per reason (only reasons that occur)."""
        codes, counts = np.unique(self.reason, return_counts=True)
        return {REASONS[int(c)]: int(k) for c, k in zip(codes, counts, strict=True)}

    def examples(self, per_reason: int = 5) -> dict[str, list[str]]:
        """Up to ``per_reason`` example paths per reason."""
        out: dict[str, list[str]] = {}
        for code in np.unique(self.reason):
            rows = np.flatnonzero(self.reason == code)[:per_reason]
            out[REASONS[int(code)]] = [self.paths[int(r)] for r in rows]
        return out


class DatasetIndex(_Files):
    """Columnar index of the kept samples of one dataset (see the module docstring).

    Columns: ``paths`` (relative keys), ``file_size`` int64, ``mtime`` float64, ``original``
    int32 (n, 2) as (W, H) after EXIF orientation, ``target``, ``intermediary``, ``crop``
    (top, left) and ``downsample`` ((-1, -1) when none) as int32 (n, 2), ``aspect`` float32,
    ``captions`` (a :class:`CaptionTable`). ``skipped`` lists the files left out.
    """

    def __init__(self, paths: Sequence[str], *, file_size: Any, mtime: Any, original: Any,
                 target: Any, intermediary: Any, crop: Any, downsample: Any, aspect: Any,
                 captions: CaptionTable | Iterable[Sequence[str]], params_fingerprint: str,
                 etags: Sequence[str | None] | None = None, caption_stamp: Any = None,
                 skipped: SkippedFiles | None = None, meta: Mapping[str, Any] | None = None
                 ) -> None:
        """Columns of equal length; plain caption lists are packed into a CaptionTable."""
        n = len(paths)
        self._init_files(paths, file_size, mtime, original, etags, caption_stamp)
        self.target = np.asarray(target, dtype=np.int32).reshape(n, 2)
        self.intermediary = np.asarray(intermediary, dtype=np.int32).reshape(n, 2)
        self.crop = np.asarray(crop, dtype=np.int32).reshape(n, 2)
        self.downsample = np.asarray(downsample, dtype=np.int32).reshape(n, 2)
        self.aspect = np.asarray(aspect, dtype=np.float32).reshape(n)
        self.captions: CaptionTable = (captions if isinstance(captions, CaptionTable)
                                       else CaptionTable.from_tuples(captions))
        if len(self.captions) != n:
            raise ValueError(f"{len(self.captions)} caption rows for {n} samples")
        self.params_fingerprint = params_fingerprint
        self.skipped = skipped if skipped is not None else SkippedFiles.empty()
        self.meta: dict[str, Any] = dict(meta or {})
        self._buckets: dict[tuple[int, int], np.ndarray] | None = None
        self._positions: dict[str, int] | None = None

    @classmethod
    def empty(cls, params_fingerprint: str = "", **meta: Any) -> DatasetIndex:
        """An index with no samples."""
        z = _pairs(0)
        return cls([], file_size=[], mtime=[], original=z, target=z, intermediary=z, crop=z,
                   downsample=z, aspect=[], captions=CaptionTable.from_tuples([]),
                   params_fingerprint=params_fingerprint, meta=meta)

    @classmethod
    def from_rows(cls, paths: Sequence[str], size: np.ndarray, mtime: np.ndarray,
                  etags: Sequence[str | None] | None, ints: np.ndarray, aspect: np.ndarray,
                  capstamp: np.ndarray, captions: Iterable[Sequence[str]], *, fingerprint: str,
                  meta: Mapping[str, Any]) -> DatasetIndex:
        """Build from scan rows: ``ints`` columns are code, original (W, H), target,
        intermediary, crop (top, left), downsample; code 0 rows are kept (``captions`` gives
        theirs, in order), the others become the skipped table."""
        def pick(rows: np.ndarray) -> tuple[list[str], list[str | None] | None]:
            """Paths and etags of ``rows`` (ascending, as ``flatnonzero`` gives them)."""
            if len(rows) == len(paths):  # every row
                return list(paths), None if etags is None else list(etags)
            at = rows.tolist()
            return [paths[r] for r in at], None if etags is None else [etags[r] for r in at]

        kept, skip = np.flatnonzero(ints[:, 0] == 0), np.flatnonzero(ints[:, 0] != 0)
        skip_paths, skip_etags = pick(skip)
        skipped = SkippedFiles(skip_paths, size[skip], mtime[skip], ints[skip, 1:3],
                               ints[skip, 0], etags=skip_etags, caption_stamp=capstamp[skip])
        (kept_paths, kept_etags), r = pick(kept), ints[kept]
        return cls(kept_paths, file_size=size[kept], mtime=mtime[kept], original=r[:, 1:3],
                   target=r[:, 3:5], intermediary=r[:, 5:7], crop=r[:, 7:9],
                   downsample=r[:, 9:11], aspect=aspect[kept],
                   captions=CaptionTable.from_tuples(captions), params_fingerprint=fingerprint,
                   etags=kept_etags, caption_stamp=capstamp[kept], skipped=skipped, meta=meta)

    # --- access ----------------------------------------------------------------------------
    def geometry(self, i: int) -> SampleGeometry:
        """The :class:`SampleGeometry` of sample ``i`` (as compute_geometry returned it)."""
        def pair(a: np.ndarray) -> tuple[int, int]:
            """Row ``i`` of a two-column array."""
            return (int(a[i, 0]), int(a[i, 1]))

        down = pair(self.downsample)
        rounding = int(self.meta.get("aspect_rounding", 2))
        return SampleGeometry(pair(self.original), pair(self.intermediary), pair(self.target),
                              pair(self.crop), round(float(self.aspect[i]), rounding),
                              None if down[0] < 0 else down)

    def captions_of(self, i: int) -> tuple[str, ...]:
        """The caption(s) of sample ``i``."""
        return self.captions[i]

    def position(self, path: str) -> int | None:
        """The row of ``path``, or None."""
        if self._positions is None:
            self._positions = {p: k for k, p in enumerate(self.paths)}
        return self._positions.get(path)

    def buckets(self) -> dict[tuple[int, int], np.ndarray]:
        """``{(W, H) target size: sorted sample indices}``, ordered by target size."""
        if self._buckets is None:
            self._buckets = group_by_target(self.target)
        return dict(self._buckets)

    # --- persistence -----------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """Serialise the index (and its skipped files) in the documented format."""
        return bytes(self._pack())

    def _pack(self) -> bytearray:
        buf = bytearray()
        for chunk in self._chunks():
            buf += chunk
        return buf

    def _chunks(self) -> Iterator[memoryview | bytes]:
        arrays, texts = self._file_sections("")
        arrays.update(target=self.target, intermediary=self.intermediary, crop=self.crop,
                      downsample=self.downsample, aspect=self.aspect)
        arrays.update({f"captions.{k}": v for k, v in self.captions.offset_sections().items()})
        skipped_arrays, skipped_texts = self.skipped._file_sections("skipped.")
        arrays.update(skipped_arrays, **{"skipped.reason": self.skipped.reason})
        texts.update(skipped_texts)
        arrays.update(bucket_sections(self.buckets()))
        header = {"format": "databackend-index", "version": FORMAT_VERSION,
                  "count": len(self), "skipped": len(self.skipped),
                  "params_fingerprint": self.params_fingerprint, "meta": self.meta}
        return indexfile.section_chunks(header, arrays, texts)

    @classmethod
    def from_bytes(cls, data: Any) -> DatasetIndex:
        """Parse :meth:`to_bytes` output (or a version-1 file); columns are views of ``data``.

        Raises :class:`IndexFormatError` when damaged.
        """
        return cls._open(None, data)

    @classmethod
    def open_file(cls, path: str) -> DatasetIndex:
        """Map the index file at ``path`` (O(1): columns are views of the mapping)."""
        return cls._open(path, None)

    @classmethod
    def _open(cls, path: str | None, data: Any) -> DatasetIndex:
        try:
            if path is not None:
                with open(path, "rb") as fh:
                    if fh.read(len(indexv1.MAGIC)) == indexv1.MAGIC:  # migrate: read it whole
                        fh.seek(0)
                        data, path = fh.read(), None
            if data is not None and bytes(memoryview(data)[:8]) == indexv1.MAGIC:
                header, arrays, lists = indexv1.unpack(data)
                texts: dict[str, Sequence[str]] = dict(lists)
            else:
                found = indexfile.open_sections(path, data)
                header, arrays = found.header, found.arrays()
                texts = {k: found.strings(k) for k in found.texts}
            if header.get("format") != "databackend-index":
                raise IndexFormatError("not a databackend index")
            index = cls._from_sections(header, arrays, texts)
        except (indexv1.LegacyFormatError, indexfile.SectionError) as exc:
            raise IndexFormatError(str(exc)) from exc
        except (KeyError, ValueError, TypeError) as exc:
            raise IndexFormatError(f"index sections are inconsistent: {exc}") from exc
        index._buckets = stored_buckets(arrays, len(index))
        return index

    @classmethod
    def _from_sections(cls, header: Mapping[str, Any], a: Mapping[str, np.ndarray],
                       t: Mapping[str, Sequence[str]]) -> DatasetIndex:
        captions = CaptionTable.from_any_sections(a, "captions.")
        skipped = SkippedFiles(t["skipped.paths"], a["skipped.size"], a["skipped.mtime"],
                               a["skipped.original"], a["skipped.reason"],
                               etags=_etags(t.get("skipped.etags")),
                               caption_stamp=a.get("skipped.capstamp"))
        return cls(t["paths"], file_size=a["size"], mtime=a["mtime"], original=a["original"],
                   target=a["target"], intermediary=a["intermediary"], crop=a["crop"],
                   downsample=a["downsample"], aspect=a["aspect"], captions=captions,
                   params_fingerprint=str(header.get("params_fingerprint", "")),
                   etags=_etags(t.get("etags")), caption_stamp=a.get("capstamp"),
                   skipped=skipped, meta=header.get("meta") or {})

    def save(self, storage: StorageBackend, key: str) -> None:
        """Write the index atomically to ``key`` of ``storage``, streamed from views of its
        columns where the storage can (no second copy of a large index in memory)."""
        storage.write_chunks(key, self._chunks())

    @classmethod
    def load(cls, storage: StorageBackend, key: str) -> DatasetIndex | None:
        """Open an index (mapped when ``storage`` has it locally, else read once and viewed);
        None when it is absent or damaged (a damaged one is logged)."""
        try:
            local = storage.local_path(key)
            if local is not None:
                return cls.open_file(local)
            return cls.from_bytes(storage.read(key))
        except FileNotFoundError:
            return None
        except IndexFormatError as exc:
            log.warning("ignoring the damaged index %s in %s: %s", key, storage.describe(), exc)
            return None


def _etags(items: Sequence[str] | None) -> Sequence[str | None] | None:
    if isinstance(items, PackedStrings):
        return indexfile.NullableStrings(items.blob, items.offsets)
    if items is None:
        return None
    return [e or None for e in items]


def bucket_sections(buckets: Mapping[tuple[int, int], np.ndarray]) -> dict[str, np.ndarray]:
    """The precomputed buckets as three columns: keys (B, 2), starts (B + 1), rows (n)."""
    keys = np.asarray(list(buckets), np.int32).reshape(len(buckets), 2)
    sizes = np.fromiter((len(v) for v in buckets.values()), np.int64, len(buckets))
    starts = np.zeros(len(buckets) + 1, np.int64)
    np.cumsum(sizes, out=starts[1:])
    rows = (np.concatenate(list(buckets.values())) if buckets else np.zeros(0)).astype(np.int64)
    return {"buckets.keys": keys, "buckets.starts": starts, "buckets.rows": rows}


def stored_buckets(arrays: Mapping[str, np.ndarray], n: int
                   ) -> dict[tuple[int, int], np.ndarray] | None:
    """Inverse of :func:`bucket_sections` (views; O(buckets)); None when absent or stale."""
    if "buckets.rows" not in arrays or len(arrays["buckets.rows"]) != n:
        return None
    keys, starts, rows = arrays["buckets.keys"], arrays["buckets.starts"], arrays["buckets.rows"]
    out = {}
    for k in range(len(keys)):
        group = rows[int(starts[k]):int(starts[k + 1])]
        group.flags.writeable = False
        out[(int(keys[k, 0]), int(keys[k, 1]))] = group
    return out


def group_by_target(target: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    """Group row numbers by their (W, H) row of ``target``; keys sorted, indices ascending."""
    if len(target) == 0:
        return {}
    keys = target[:, 0].astype(np.int64) << 32 | target[:, 1].astype(np.int64)
    order = np.argsort(keys, kind="stable").astype(np.int64, copy=False)
    order.flags.writeable = False  # the groups are views of it
    keys = keys[order]
    starts = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    firsts = keys[np.concatenate(([0], starts))]
    del keys
    return {(int(k >> 32), int(k & 0xFFFFFFFF)): g
            for k, g in zip(firsts, np.split(order, starts), strict=True)}
