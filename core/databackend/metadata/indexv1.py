"""The version-1 index container (zlib'ed sections, one checksum over the payload), kept so an
index written before the memory-mapped format (see :mod:`databackend.metadata.indexfile`) is
still read, and migrated by the next save.

Layout: 8-byte magic ``b"DBIDX\\x00\\x01\\n"``, u64 length of the JSON header, the JSON header
(format, version, counts, fingerprint, meta, sections, crc32), the payload. Each section is a
NumPy array (raw little-endian bytes, or zlib'ed), or a list of strings stored as the zlib'ed
UTF-8 of the items joined by NUL.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from databackend.errors import DatabackendError

__all__ = ["MAGIC", "LegacyFormatError", "pack", "unpack"]

MAGIC = b"DBIDX\x00\x01\n"
_MAGIC = MAGIC
_U64 = struct.Struct("<Q")
_SEP = "\x00"
_PIECE = 1 << 18  # compressed bytes inflated at a time


class LegacyFormatError(DatabackendError):
    """A version-1 index is damaged (raised as IndexFormatError by the index)."""


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
        raise LegacyFormatError(f"string section holds {len(out)} items, expected {count}")
    return out



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
        raise LegacyFormatError("bad magic (not a databackend index, or another format version)")
    start = len(_MAGIC) + _U64.size
    if len(data) < start:
        raise LegacyFormatError("truncated header")
    (hlen,) = _U64.unpack_from(data, len(_MAGIC))
    try:
        header = json.loads(data[start:start + hlen])
    except ValueError as exc:
        raise LegacyFormatError(f"unreadable header: {exc}") from exc
    payload = memoryview(data)[start + hlen:]
    if len(payload) != header.get("payload_bytes") or zlib.crc32(payload) != header.get("crc32"):
        raise LegacyFormatError("payload length or checksum mismatch")
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
