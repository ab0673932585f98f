"""The memory-mapped index container (format version 2): named fixed-width columns and packed
string sections, opened in O(1) by mapping the file.

Layout (little-endian)::

    b"DBIDX\\x00\\x02\\n"      8-byte magic (format version 2)
    u64                      length of the JSON header
    u32                      crc32 of the JSON header
    JSON header              the caller's fields plus ``sections`` and ``payload_bytes``
    padding                  to a 64-byte boundary
    payload                  every section raw, each starting on a 64-byte boundary

Each entry of ``sections`` names one column: ``{"name", "dtype", "shape", "offset", "nbytes",
"crc32"}``. A string section ``S`` (a sequence of str) is stored as two columns, ``S.blob``
(the UTF-8 bytes back to back) and ``S.offsets`` (``count + 1`` byte offsets, uint32 when the
blob is under 4 GiB, else int64), and listed in the header's ``texts``. Nothing is compressed,
so a column is a :func:`numpy.frombuffer` view of the mapping: opening touches only the header,
and a process's memory grows with the pages it reads (shared between processes through the page
cache). The header checksum is verified on every open; the section checksums on open when the
payload is small (:data:`VERIFY_ALL_BELOW`), else by :func:`verify` (the writer's rank does).
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, overload

import numpy as np

from databackend.errors import DatabackendError

__all__ = ["MAGIC", "VERIFY_ALL_BELOW", "MappedSections", "NullableStrings", "PackedStrings",
           "SectionError", "open_sections", "pack_sections", "section_chunks", "verify"]

MAGIC = b"DBIDX\x00\x02\n"
_HEAD = struct.Struct("<QI")
_ALIGN = 64
#: Payloads up to this size have every section checksum verified when opened.
VERIFY_ALL_BELOW = 64 << 20
_SEP = 0


class SectionError(DatabackendError):
    """A mapped index is damaged or truncated (raised as IndexFormatError by the index)."""


class PackedStrings(Sequence[str]):
    """A read-only sequence of strings over one UTF-8 blob and ``len + 1`` byte offsets.

    Indexing decodes one item; slices and ``+`` give lists; equal to any sequence holding the
    same strings. A hundred million paths cost their bytes plus one offset each, not Python
    objects, and a mapped blob is only read where it is indexed.
    """

    __hash__ = None  # type: ignore[assignment]

    def __init__(self, blob: Any, offsets: np.ndarray) -> None:
        """``blob`` is any buffer of bytes; ``offsets`` its ``n + 1`` item boundaries."""
        self._blob = memoryview(blob).cast("B")
        self._off = offsets

    @classmethod
    def from_strings(cls, items: Iterable[str | None]) -> PackedStrings:
        """Pack ``items`` (None is stored as the empty string)."""
        texts = [("" if s is None else s) for s in items]
        blob = "\0".join(texts).encode("utf-8", "surrogateescape")  # one encode for all
        raw = np.frombuffer(blob, np.uint8)
        seps = np.flatnonzero(raw == 0)
        offsets = np.zeros(len(texts) + 1, np.int64)
        if len(seps) == max(0, len(texts) - 1):  # no item holds NUL itself
            offsets[1:-1] = seps - np.arange(len(seps))
            offsets[-1] = len(raw) - len(seps)
            return cls(np.delete(raw, seps).tobytes() if len(seps) else blob, offsets)
        encoded = [s.encode("utf-8", "surrogateescape") for s in texts]
        np.cumsum(np.fromiter(map(len, encoded), np.int64, len(encoded)), out=offsets[1:])
        return cls(b"".join(encoded), offsets)

    @property
    def blob(self) -> memoryview:
        """The UTF-8 bytes of every item back to back."""
        return self._blob

    @property
    def offsets(self) -> np.ndarray:
        """The ``len + 1`` byte offsets of the items in :attr:`blob`."""
        return self._off

    def __len__(self) -> int:
        return len(self._off) - 1

    def _one(self, i: int) -> str:
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"string index {i} out of range for {n} items")
        return str(self._blob[int(self._off[i]):int(self._off[i + 1])], "utf-8",
                   "surrogateescape")

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self._one(k) for k in range(*i.indices(len(self)))]
        return self._one(int(i))

    def __iter__(self) -> Iterator[str]:
        return (self._one(k) for k in range(len(self)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PackedStrings):
            return (len(self) == len(other) and bytes(self._blob) == bytes(other._blob)
                    and bool(np.array_equal(np.diff(self._off), np.diff(other._off))))
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    def __add__(self, other: Sequence[str]) -> list[str]:
        return [*self, *other]

    def __radd__(self, other: Sequence[str]) -> list[str]:
        return [*other, *self]

    def __repr__(self) -> str:
        return f"PackedStrings({len(self)} items, {len(self._blob)} bytes)"

    def __reduce__(self) -> tuple[Any, ...]:
        return (PackedStrings, (bytes(self._blob), np.asarray(self._off)))


class NullableStrings(PackedStrings):
    """:class:`PackedStrings` whose empty items read as None (stored ETags: "" means none)."""

    def _one(self, i: int) -> str | None:  # type: ignore[override]
        return super()._one(i) or None

    def __reduce__(self) -> tuple[Any, ...]:
        return (NullableStrings, (bytes(self._blob), np.asarray(self._off)))


def _encode(items: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """Blob and offsets of a string sequence (reused as they are when already packed)."""
    packed = items if isinstance(items, PackedStrings) else PackedStrings.from_strings(items)
    blob = np.frombuffer(packed.blob, np.uint8)
    off = np.asarray(packed.offsets, np.int64)
    if len(off) and int(off[0]):  # a sliced view: rebase
        blob, off = blob[int(off[0]):int(off[-1])], off - off[0]
    small = len(blob) < (1 << 32)
    return blob, off.astype(np.uint32 if small else np.int64, copy=False)


def _little(arr: np.ndarray) -> np.ndarray:
    arr = np.ascontiguousarray(arr)
    return arr.astype(arr.dtype.newbyteorder("<")) if arr.dtype.byteorder == ">" else arr


def section_chunks(header: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
                   texts: Mapping[str, Sequence[str | None]]) -> Iterator[memoryview | bytes]:
    """The file of :func:`pack_sections` as consecutive chunks: the head, then each section
    and its padding, as views of the arrays (nothing is copied: a 100M-entry index is written
    without a second copy of it in memory)."""
    columns = {k: _little(np.asarray(v)) for k, v in arrays.items()}
    for name, items in texts.items():
        columns[f"{name}.blob"], columns[f"{name}.offsets"] = _encode(items)
    sections: list[dict[str, Any]] = []
    views: list[memoryview | bytes] = []
    offset = 0
    for name, arr in columns.items():
        raw = memoryview(arr).cast("B") if arr.nbytes else b""  # type: ignore[arg-type]
        sections.append({"name": name, "dtype": arr.dtype.str, "shape": list(arr.shape),
                         "offset": offset, "nbytes": arr.nbytes, "crc32": zlib.crc32(raw)})
        views.append(raw)
        offset += arr.nbytes + (-arr.nbytes % _ALIGN)
    end = max((int(s["offset"]) + int(s["nbytes"]) for s in sections), default=0)  # no trailing padding
    full = {**header, "texts": {k: len(v) for k, v in texts.items()}, "sections": sections,
            "payload_bytes": end}
    head = json.dumps(full, separators=(",", ":")).encode()
    start = len(MAGIC) + _HEAD.size + len(head)
    yield MAGIC + _HEAD.pack(len(head), zlib.crc32(head)) + head + bytes(-start % _ALIGN)
    for k, (info, raw) in enumerate(zip(sections, views, strict=True)):
        yield raw
        if k + 1 < len(sections):
            yield bytes(int(sections[k + 1]["offset"]) - int(info["offset"]) - len(raw))


def pack_sections(header: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
                  texts: Mapping[str, Sequence[str | None]]) -> bytearray:
    """The whole file: ``header`` fields, then ``arrays`` and ``texts`` as sections."""
    buf = bytearray()
    for chunk in section_chunks(header, arrays, texts):
        buf += chunk
    return buf


class MappedSections:
    """The parsed header and zero-copy column views of one version-2 file (or buffer)."""

    def __init__(self, data: Any) -> None:
        """Parse ``data`` (an mmap, bytes or bytearray); raises SectionError when damaged."""
        view = memoryview(data).cast("B")
        if bytes(view[:len(MAGIC)]) != MAGIC:
            raise SectionError("bad magic (not a version-2 databackend index)")
        base = len(MAGIC) + _HEAD.size
        if len(view) < base:
            raise SectionError("truncated header")
        hlen, hcrc = _HEAD.unpack_from(view, len(MAGIC))
        head = bytes(view[base:base + hlen])
        if len(head) != hlen or zlib.crc32(head) != hcrc:
            raise SectionError("header checksum mismatch")
        self.header: dict[str, Any] = json.loads(head)
        start = base + hlen
        start += -start % _ALIGN
        self._payload = view[start:]
        if len(self._payload) != self.header.get("payload_bytes"):
            raise SectionError("payload length mismatch (truncated or extended file)")
        self.sections = {s["name"]: s for s in self.header["sections"]}
        for s in self.sections.values():
            if s["offset"] + s["nbytes"] > len(self._payload):
                raise SectionError(f"section {s['name']!r} runs past the end of the file")
        self.texts: dict[str, int] = dict(self.header.get("texts", {}))

    def raw(self, name: str) -> memoryview:
        """The bytes of section ``name``."""
        s = self.sections[name]
        return self._payload[s["offset"]:s["offset"] + s["nbytes"]]

    def array(self, name: str) -> np.ndarray:
        """Section ``name`` as a read-only NumPy view."""
        s = self.sections[name]
        arr = np.frombuffer(self.raw(name), dtype=np.dtype(s["dtype"])).reshape(s["shape"])
        arr.flags.writeable = False
        return arr

    def strings(self, name: str) -> PackedStrings:
        """The string section ``name``."""
        return PackedStrings(self.raw(f"{name}.blob"), self.array(f"{name}.offsets"))

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array section that is not part of a string section."""
        parts = {f"{t}.{p}" for t in self.texts for p in ("blob", "offsets")}
        return {k: self.array(k) for k in self.sections if k not in parts}

    def verify(self, names: Iterable[str] | None = None) -> None:
        """Check the crc32 of ``names`` (default: every section); SectionError on a mismatch."""
        for name in self.sections if names is None else names:
            if zlib.crc32(self.raw(name)) != self.sections[name]["crc32"]:
                raise SectionError(f"section {name!r} checksum mismatch")


def open_sections(path: str | None = None, data: Any = None) -> MappedSections:
    """Map the file at ``path`` read-only (or parse ``data``); small payloads are verified."""
    if path is not None:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                raise SectionError("empty file")
            data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    found = MappedSections(data)
    if len(found._payload) <= VERIFY_ALL_BELOW:
        found.verify()
    return found


def verify(found: MappedSections) -> None:
    """Verify every section of ``found`` (reads the whole payload once)."""
    found.verify()
