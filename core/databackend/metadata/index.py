"""The persisted, columnar index of one dataset: what every kept sample is and where it goes.

A :class:`DatasetIndex` holds one row per kept sample in NumPy columns (sizes, mtimes, geometry)
plus the relative paths and captions, and a :class:`SkippedFiles` table of every file that was
looked at and left out (with its reason), so a rescan does not probe it again.

Persisted format (one file, written atomically through a :class:`StorageBackend`)::

    b"DBIDX\\x00\\x01\\n"               8-byte magic (format version 1)
    u64 little-endian                 length of the JSON header
    JSON header                       format, version, counts, fingerprint, meta, sections, crc32
    payload                           the sections back to back

Each section is a NumPy array (raw little-endian bytes, or zlib'ed), or a list of strings stored
as the zlib'ed UTF-8 of the items joined by NUL (paths cannot hold NUL). Captions are a byte
blob with two offset arrays. The header's ``crc32`` covers the payload, so a damaged file is
detected and treated as absent, never half-read.
"""

from __future__ import annotations

import json
import logging
import struct
import zlib
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from databackend.errors import DatabackendError
from databackend.geometry import SampleGeometry
from databackend.metadata.captiontable import CaptionTable

if TYPE_CHECKING:
    from databackend.storage.base import StorageBackend

__all__ = [
    "FORMAT_VERSION", "PROBE_FAILURES", "REASONS", "REASON_CODES", "CaptionTable", "DatasetIndex",
    "IndexFormatError", "SkippedFiles",
]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_MAGIC = b"DBIDX\x00\x01\n"
_U64 = struct.Struct("<Q")
#: Reason codes stored per skipped file (code = position); 0 is never stored.
REASONS: tuple[str, ...] = ("kept", "too_small", "aspect_out_of_range", "no_caption",
                            "corrupt", "not_an_image", "unreadable",
                            # media (video, audio) datasets; appended so stored codes keep
                            "not_media", "too_few_frames", "too_many_frames", "too_short",
                            "too_long")
#: The stored code of each reason name.
REASON_CODES: Mapping[str, int] = {name: code for code, name in enumerate(REASONS)}
#: Reasons found by reading the file: kept until the file changes (no re-probe).
PROBE_FAILURES = frozenset({"corrupt", "not_an_image", "unreadable", "not_media"})
_SEP = "\x00"
_PIECE = 1 << 18  # compressed bytes inflated at a time


class IndexFormatError(DatabackendError):
    """A persisted index is damaged, truncated or of an unknown version."""


def _pairs(n: int, fill: int = 0, dtype: Any = np.int32) -> np.ndarray:
    return np.full((n, 2), fill, dtype=dtype)


def _strings(items: Sequence[str | None]) -> bytes:
    """NUL-joined UTF-8 (surrogates from odd file names survive)."""
    return _SEP.join("" if s is None else s for s in items).encode("utf-8", "surrogateescape")


def _unstrings(raw: Any, count: int) -> list[str]:
    """Inverse of ``zlib.compress(_strings(items))``, decoded piecewise to bound memory."""
    if count == 0:
        return []
    inflate, out, tail = zlib.decompressobj(), [], b""
    for start in range(0, len(raw), _PIECE):
        chunk = tail + inflate.decompress(raw[start:start + _PIECE])
        cut = chunk.rfind(b"\0")
        if cut < 0:
            tail = chunk
            continue
        out.extend(chunk[:cut].decode("utf-8", "surrogateescape").split(_SEP))
        tail = chunk[cut + 1:]
    out.append((tail + inflate.flush()).decode("utf-8", "surrogateescape"))
    if len(out) != count:
        raise IndexFormatError(f"string section holds {len(out)} items, expected {count}")
    return out


class _Files:
    """Columns common to kept and skipped files: path, size, mtime, original size, stamps."""

    paths: list[str]
    file_size: np.ndarray
    mtime: np.ndarray
    original: np.ndarray
    caption_stamp: np.ndarray
    etags: list[str | None] | None

    def _init_files(self, paths: list[str], file_size: Any, mtime: Any, original: Any,
                    etags: list[str | None] | None, caption_stamp: Any) -> None:
        n = len(paths)
        self.paths = paths
        self.file_size = np.asarray(file_size, dtype=np.int64).reshape(n)
        self.mtime = np.asarray(mtime, dtype=np.float64).reshape(n)
        self.original = np.asarray(original, dtype=np.int32).reshape(n, 2)
        self.etags = etags if etags is not None and any(e for e in etags) else None
        stamp = None if caption_stamp is None else np.asarray(caption_stamp, np.float64)
        if stamp is None or not (stamp >= 0).any():  # no caption files: a free constant view
            stamp = np.broadcast_to(np.array([-1.0, -1.0]), (n, 2))
        self.caption_stamp = stamp.reshape(n, 2)

    def __len__(self) -> int:
        return len(self.paths)

    def etag(self, i: int) -> str | None:
        """The ETag stored for row ``i`` (None when the storage gives none)."""
        return (self.etags[i] or None) if self.etags is not None else None

    def _file_sections(self, prefix: str) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
        arrays = {f"{prefix}size": self.file_size, f"{prefix}mtime": self.mtime,
                  f"{prefix}original": self.original}
        if self.caption_stamp.strides[0]:  # stored only when some file has a caption file
            arrays[f"{prefix}capstamp"] = self.caption_stamp
        texts: dict[str, list[str]] = {f"{prefix}paths": self.paths}
        if self.etags is not None:
            texts[f"{prefix}etags"] = [e or "" for e in self.etags]
        return arrays, texts


class SkippedFiles(_Files):
    """Files that were looked at and left out, with the reason code of each (see REASONS).

    ``original`` is ``(-1, -1)`` when the size is unknown (probe failures).
    """

    def __init__(self, paths: list[str], file_size: Any, mtime: Any, original: Any,
                 reason: Any, *, etags: list[str | None] | None = None,
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

    def __init__(self, paths: list[str], *, file_size: Any, mtime: Any, original: Any,
                 target: Any, intermediary: Any, crop: Any, downsample: Any, aspect: Any,
                 captions: CaptionTable | Iterable[Sequence[str]], params_fingerprint: str,
                 etags: list[str | None] | None = None, caption_stamp: Any = None,
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
            """Paths and etags of ``rows``."""
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
        arrays, texts = self._file_sections("")
        arrays.update(target=self.target, intermediary=self.intermediary, crop=self.crop,
                      downsample=self.downsample, aspect=self.aspect)
        arrays.update({f"captions.{k}": v for k, v in self.captions.sections().items()})
        skipped_arrays, skipped_texts = self.skipped._file_sections("skipped.")
        arrays.update(skipped_arrays, **{"skipped.reason": self.skipped.reason})
        texts.update(skipped_texts)
        header = {"format": "databackend-index", "version": FORMAT_VERSION,
                  "count": len(self), "skipped": len(self.skipped),
                  "params_fingerprint": self.params_fingerprint, "meta": self.meta}
        return pack(header, arrays, texts)

    @classmethod
    def from_bytes(cls, data: bytes) -> DatasetIndex:
        """Parse :meth:`to_bytes` output; raises :class:`IndexFormatError` when damaged."""
        header, arrays, texts = unpack(data)
        if header.get("format") != "databackend-index":
            raise IndexFormatError("not a databackend index")
        try:
            return cls._from_sections(header, arrays, texts)
        except (KeyError, ValueError) as exc:
            raise IndexFormatError(f"index sections are inconsistent: {exc}") from exc

    @classmethod
    def _from_sections(cls, header: Mapping[str, Any], a: Mapping[str, np.ndarray],
                       t: Mapping[str, list[str]]) -> DatasetIndex:
        captions = CaptionTable.from_sections(a["captions.blob"], a["captions.lengths"],
                                              a["captions.counts"])
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
        """Write the index atomically to ``key`` of ``storage`` (no extra copy of the bytes)."""
        storage.write(key, cast(bytes, self._pack()))

    @classmethod
    def load(cls, storage: StorageBackend, key: str) -> DatasetIndex | None:
        """Read an index; None when it is absent or damaged (a damaged one is logged)."""
        try:
            data = storage.read(key)
        except FileNotFoundError:
            return None
        try:
            return cls.from_bytes(data)
        except IndexFormatError as exc:
            log.warning("ignoring the damaged index %s in %s: %s", key, storage.describe(), exc)
            return None


def _etags(items: list[str] | None) -> list[str | None] | None:
    return None if items is None else [e or None for e in items]


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


# --- container ------------------------------------------------------------------------------
_ZLIB_MIN = 4096  # arrays at least this large are compressed when that saves a fifth
_ALIGN = 8


def _array_part(name: str, arr: np.ndarray) -> tuple[dict[str, Any], Any]:
    """Section info and payload (a memoryview of the array, or its zlib'ed bytes)."""
    arr = np.ascontiguousarray(arr)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    raw: Any = memoryview(arr).cast("B") if arr.nbytes else b""  # type: ignore[arg-type]
    codec = "raw"
    if arr.nbytes >= _ZLIB_MIN:
        packed = zlib.compress(raw, 1)
        if len(packed) < 0.8 * arr.nbytes:
            raw, codec = packed, "zlib"
    info = {"name": name, "kind": "array", "dtype": arr.dtype.str, "shape": list(arr.shape),
            "nbytes": len(raw), "codec": codec}
    return info, raw


def pack(header: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
         texts: Mapping[str, Sequence[str | None]]) -> bytearray:
    """Build the container: magic, header length, JSON header (with sections and crc32), payload.

    The payload is assembled in one preallocated buffer, so saving costs one copy of it.
    """
    with ThreadPoolExecutor(2, thread_name_prefix="databackend-index") as pool:  # zlib frees
        texts_z = pool.map(lambda items: zlib.compress(_strings(items), 1), texts.values())
        parts = list(pool.map(_array_part, arrays, arrays.values()))  # the GIL: 2 at a time
        parts += [({"name": name, "kind": "text", "count": len(items), "codec": "zlib"}, raw)
                  for (name, items), raw in zip(texts.items(), texts_z, strict=True)]
    offset, crc = 0, 0
    for info, raw in parts:
        info["offset"], info["nbytes"] = offset, len(raw)
        offset += len(raw) + (-len(raw) % _ALIGN)
        crc = zlib.crc32(raw, crc)
        crc = zlib.crc32(b"\0" * (-len(raw) % _ALIGN), crc)
    full = {**header, "sections": [info for info, _ in parts], "payload_bytes": offset,
            "crc32": crc}
    head = json.dumps(full, separators=(",", ":")).encode()
    head += b" " * (-(len(_MAGIC) + _U64.size + len(head)) % _ALIGN)  # align the payload
    start = len(_MAGIC) + _U64.size + len(head)
    buf = bytearray(start + offset)
    buf[:start] = _MAGIC + _U64.pack(len(head)) + head
    for info, raw in parts:
        at = start + info["offset"]
        buf[at:at + len(raw)] = raw
    return buf


def unpack(data: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, list[str]]]:
    """Inverse of :func:`pack`; verifies the magic, the lengths and the checksum."""
    if not data.startswith(_MAGIC):
        raise IndexFormatError("bad magic (not a databackend index, or another format version)")
    start = len(_MAGIC) + _U64.size
    if len(data) < start:
        raise IndexFormatError("truncated header")
    (hlen,) = _U64.unpack_from(data, len(_MAGIC))
    try:
        header = json.loads(data[start:start + hlen])
    except ValueError as exc:
        raise IndexFormatError(f"unreadable header: {exc}") from exc
    payload = memoryview(data)[start + hlen:]
    if len(payload) != header.get("payload_bytes") or zlib.crc32(payload) != header.get("crc32"):
        raise IndexFormatError("payload length or checksum mismatch")
    arrays: dict[str, np.ndarray] = {}
    texts: dict[str, list[str]] = {}
    for info in header["sections"]:
        raw = payload[info["offset"]:info["offset"] + info["nbytes"]]
        if info["kind"] == "text":
            texts[info["name"]] = _unstrings(raw, int(info["count"]))
            continue
        buf = zlib.decompress(raw) if info["codec"] == "zlib" else raw
        arrays[info["name"]] = np.frombuffer(buf, dtype=np.dtype(info["dtype"])).reshape(
            info["shape"])
    return header, arrays, texts
