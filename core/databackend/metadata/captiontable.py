"""Captions of many samples in one compact table (a UTF-8 blob and two offset arrays).

Each sample has a tuple of captions (usually one); a million of them cost the size of their text
instead of ~150 bytes of Python objects each. :class:`CaptionTable` is what
:class:`~databackend.metadata.index.DatasetIndex` keeps and persists.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any, overload

import numpy as np

__all__ = ["CaptionTable"]

_SEP = "\x00"
_PACK_SLICE = 1 << 16  # samples whose captions are joined and encoded at once


def _pack_strings(items: list[str]) -> tuple[bytes, np.ndarray]:
    """The UTF-8 of ``items`` back to back, and each one's byte length: one join and one
    encode (NUL-separated, the separators found by NumPy), per item only if a text holds NUL."""
    text = _SEP.join(items).encode("utf-8", "surrogateescape")
    raw = np.frombuffer(text, np.uint8)
    seps = np.flatnonzero(raw == 0)
    if len(seps) != max(0, len(items) - 1):  # a caption holds NUL itself
        encoded = [c.encode("utf-8", "surrogateescape") for c in items]
        return b"".join(encoded), np.fromiter(map(len, encoded), np.int64, len(encoded))
    bounds = np.concatenate([[-1], seps, [len(raw)]])
    return np.delete(raw, seps).tobytes(), np.diff(bounds) - 1


def _offsets(values: Any) -> np.ndarray:
    """Offsets as given when already an integer array (a mapped uint32 column stays a view)."""
    arr = np.asarray(values)
    return arr if arr.dtype.kind in "iu" and arr.ndim == 1 else arr.astype(np.int64)


def _narrow(offsets: np.ndarray) -> np.ndarray:
    """uint32 offsets when they fit (half the bytes on disk), else int64."""
    small = not len(offsets) or int(offsets[-1]) < (1 << 32)
    return offsets.astype(np.uint32 if small else np.int64, copy=False)


class CaptionTable(Sequence[tuple[str, ...]]):
    """Captions of every sample, stored compactly: one UTF-8 blob plus two offset arrays.

    Behaves like a read-only ``list[tuple[str, ...]]``.
    """

    def __init__(self, blob: bytes | bytearray | memoryview | np.ndarray,
                 caption_offsets: np.ndarray, sample_offsets: np.ndarray) -> None:
        """Wrap a blob; ``caption_offsets`` (m+1) are byte offsets, ``sample_offsets`` (n+1)
        index into the m captions."""
        self._blob = memoryview(blob).cast("B")  # type: ignore[arg-type]
        self._cap, self._smp = _offsets(caption_offsets), _offsets(sample_offsets)

    @classmethod
    def from_tuples(cls, items: Iterable[Sequence[str]]) -> CaptionTable:
        """Pack an iterable of caption tuples (streamed in slices of ``_PACK_SLICE`` samples,
        so a million captions never exist as Python objects at once)."""
        blob = bytearray()
        lengths, counts = array("q"), array("q")
        it = iter(items)
        while piece := list(islice(it, _PACK_SLICE)):
            counts.extend(map(len, piece))
            text, sizes = _pack_strings([c for caps in piece for c in caps])
            blob += text
            lengths.extend(sizes.tolist())
        cap = np.zeros(len(lengths) + 1, np.int64)
        np.cumsum(np.frombuffer(lengths, np.int64), out=cap[1:])
        smp = np.zeros(len(counts) + 1, np.int64)
        np.cumsum(np.frombuffer(counts, np.int64), out=smp[1:])
        return cls(blob, cap, smp)

    def __len__(self) -> int:
        return len(self._smp) - 1

    def _one(self, i: int) -> tuple[str, ...]:
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"caption index {i} out of range for {n} samples")
        lo, hi = int(self._smp[i]), int(self._smp[i + 1])
        cap, blob = self._cap, self._blob
        return tuple(str(blob[int(cap[k]):int(cap[k + 1])], "utf-8", "surrogateescape")
                     for k in range(lo, hi))

    @overload
    def __getitem__(self, i: int) -> tuple[str, ...]: ...
    @overload
    def __getitem__(self, i: slice) -> list[tuple[str, ...]]: ...
    def __getitem__(self, i: int | slice) -> tuple[str, ...] | list[tuple[str, ...]]:
        if isinstance(i, slice):
            return [self._one(k) for k in range(*i.indices(len(self)))]
        return self._one(int(i))

    def __iter__(self) -> Iterator[tuple[str, ...]]:
        return (self._one(k) for k in range(len(self)))

    def __reduce__(self) -> tuple[Any, ...]:
        return (CaptionTable, (bytes(self._blob), self._cap, self._smp))

    def sections(self) -> dict[str, np.ndarray]:
        """The arrays that persist this table (lengths rather than offsets: they compress)."""
        return {"blob": np.frombuffer(self._blob, dtype=np.uint8),
                "lengths": np.diff(self._cap).astype(np.uint32),
                "counts": np.diff(self._smp).astype(np.uint32)}

    def offset_sections(self) -> dict[str, np.ndarray]:
        """The arrays that persist this table uncompressed: blob and both offset arrays (a
        mapped index opens them as views, with no per-sample work)."""
        return {"blob": np.frombuffer(self._blob, dtype=np.uint8),
                "caption_offsets": _narrow(self._cap), "sample_offsets": _narrow(self._smp)}

    @classmethod
    def from_any_sections(cls, arrays: Mapping[str, np.ndarray], prefix: str) -> CaptionTable:
        """Rebuild from :meth:`offset_sections` or :meth:`sections` stored under ``prefix``."""
        if f"{prefix}caption_offsets" in arrays:
            return cls(arrays[f"{prefix}blob"], arrays[f"{prefix}caption_offsets"],
                       arrays[f"{prefix}sample_offsets"])
        return cls.from_sections(arrays[f"{prefix}blob"], arrays[f"{prefix}lengths"],
                                 arrays[f"{prefix}counts"])

    @classmethod
    def from_sections(cls, blob: np.ndarray, lengths: np.ndarray,
                      counts: np.ndarray) -> CaptionTable:
        """Inverse of :meth:`sections`."""
        def offsets(sizes: np.ndarray) -> np.ndarray:
            """Start offsets (with a final end) of consecutive ``sizes``."""
            out = np.zeros(len(sizes) + 1, np.int64)
            np.cumsum(sizes, out=out[1:])
            return out

        return cls(blob, offsets(lengths), offsets(counts))
