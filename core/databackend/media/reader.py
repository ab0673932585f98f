"""A seekable, read-only file over ranged reads, so container parsers read only what they need.

:class:`RangeFile` turns ``read(offset, length) -> bytes`` (e.g. a storage backend's
``read_range``) into a buffered file object that PyAV, soundfile or the MP4 box walker can
``seek`` and ``read``: a probe of a remote MP4 whose index sits at the end fetches the header,
the index and little else. ``bytes_read`` and ``reads`` count what was fetched.
"""

from __future__ import annotations

import io
from collections.abc import Callable

__all__ = ["RangeFile"]

ReadAt = Callable[[int, int], bytes]
_KEEP_BLOCKS = 4  # headers at the start and an index at the end stay cached together


class RangeFile(io.RawIOBase):
    """A read-only, seekable file of ``size`` bytes read through ``read_at(offset, length)``.

    Reads are rounded up to ``block`` bytes and the last few blocks are kept, so parsers that read
    many small pieces cost one ranged request per block.
    """

    def __init__(self, read_at: ReadAt, size: int, *, block: int = 64 * 1024,
                 name: str = "", blocks: dict[int, bytes] | None = None) -> None:
        """``size`` must be the file's byte size (the listing knows it); ``blocks``: a block
        cache shared with other files over the same bytes (several parsers of one probe)."""
        super().__init__()
        if size < 0:
            raise ValueError(f"{name or 'file'}: the byte size must be known for ranged reads")
        self._read_at, self.size, self.block, self.name = read_at, size, block, name
        self._pos = 0
        self._blocks = blocks if blocks is not None else {}  # the last few, oldest first
        self.bytes_read = 0
        self.reads = 0

    def readable(self) -> bool:
        """Always true."""
        return True

    def seekable(self) -> bool:
        """Always true."""
        return True

    def tell(self) -> int:
        """The current position."""
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move the position (``SEEK_SET``, ``SEEK_CUR``, ``SEEK_END``); returns it."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def _fetch(self, at: int) -> bytes:
        """The block that starts at ``at`` (block-aligned), from the last few blocks read."""
        data = self._blocks.get(at)
        if data is None:
            want = min(self.block, self.size - at)
            data = bytes(self._read_at(at, want)) if want > 0 else b""
            if len(self._blocks) >= _KEEP_BLOCKS:
                del self._blocks[next(iter(self._blocks))]
            self._blocks[at] = data
            self.bytes_read += len(data)
            self.reads += 1
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill ``buffer`` from the current position; 0 at the end of the file."""
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._pos < self.size:
            start = self._pos - self._pos % self.block
            data = self._fetch(start)
            piece = data[self._pos - start:self._pos - start + len(view) - done]
            if not piece:
                break
            view[done:done + len(piece)] = piece
            done += len(piece)
            self._pos += len(piece)
        return done
