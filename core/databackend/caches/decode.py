"""The CPU side of the latent fill: decode, EXIF, resize and crop one image to uint8 pixels.

This module imports only Pillow and NumPy, so worker processes start fast and never load
torch. A :class:`DecodeJob` is a plain picklable record; :func:`decode` turns it into a
``[H, W, 3]`` uint8 array of exactly the target size.

JPEG draft mode: when the first resize target is at most half the (oriented) source in both
edges, the JPEG decoder is asked for a DCT-scaled image (1/2, 1/4 or 1/8) no smaller than that
target, and the usual LANCZOS resizes and crop run on it. The result differs from a full
decode by a small, measured amount (see ``docs/caches.md``, and ``DRAFT_TOLERANCE``).
"""

from __future__ import annotations

import io
from typing import Any

import attrs

__all__ = ["DRAFT_TOLERANCE", "DecodeJob", "decode", "draft_request", "watch_parent"]

Size = tuple[int, int]

#: Mean absolute difference (0-255 levels) between a draft decode and a full decode that the
#: tests accept on a high-frequency noise texture (the worst case; photos differ less).
DRAFT_TOLERANCE = 3.0
#: EXIF orientations that swap width and height.
_SWAPS = {5, 6, 7, 8}


@attrs.frozen
class DecodeJob:
    """One image to decode: a local ``path`` or the file's ``data``, its scanned
    (EXIF-oriented) ``original`` size, the optional ``downsample`` size, the ``intermediary``
    size, the crop ``box`` (left, top, right, bottom) and whether ``draft`` decoding may be used.
    ``name`` is the sample's key for error messages."""

    name: str
    original: Size
    downsample: Size | None
    intermediary: Size
    box: tuple[int, int, int, int]
    draft: bool = True
    path: str | None = None
    data: bytes | None = None


def draft_request(original: Size, first_target: Size) -> Size | None:
    """The size to ask JPEG draft mode for, or None when the target is not at most half the
    source in both edges (draft mode would not scale, or would gain too little)."""
    if first_target[0] * 2 > original[0] or first_target[1] * 2 > original[1]:
        return None
    return first_target


def _open(job: DecodeJob) -> Any:
    from PIL import Image

    if job.path is not None:
        return Image.open(job.path)
    if job.data is None:
        raise ValueError(f"{job.name}: neither a path nor data to decode")
    return Image.open(io.BytesIO(job.data))


def _oriented(image: Any) -> tuple[int, Size]:
    """``(EXIF orientation, size after orientation)`` from the header only."""
    orientation = int(image.getexif().get(0x0112, 1) or 1)
    w, h = image.size
    return orientation, ((h, w) if orientation in _SWAPS else (w, h))


def _apply_draft(image: Any, job: DecodeJob, orientation: int) -> None:
    """Ask the JPEG decoder for a DCT-scaled image no smaller than the first resize target."""
    first = job.downsample or job.intermediary
    want = draft_request(job.original, first)
    if want is None or image.format != "JPEG":
        return
    if orientation in _SWAPS:  # draft works on the stored (unrotated) image
        want = (want[1], want[0])
    image.draft("RGB", want)


def decode(job: DecodeJob) -> Any:
    """Decode, orient, resize and crop ``job`` to ``[H, W, 3]`` uint8 (a NumPy array).

    Raises ``ValueError`` naming the sample when the file is not the size it was scanned at.
    """
    import numpy as np
    from PIL import Image, ImageOps

    lanczos = Image.Resampling.LANCZOS
    with _open(job) as image:
        orientation, size = _oriented(image)
        if size != job.original:
            raise ValueError(f"{job.name} is {size[0]}x{size[1]} but was scanned as "
                             f"{job.original[0]}x{job.original[1]}; the file changed, rescan")
        if job.draft:
            _apply_draft(image, job, orientation)
        out = ImageOps.exif_transpose(image) if orientation != 1 else image
        out = out.convert("RGB") if out.mode != "RGB" else out
        if job.downsample is not None and out.size != job.downsample:
            out = out.resize(job.downsample, lanczos)
        if out.size != job.intermediary:
            out = out.resize(job.intermediary, lanczos)
        if out.size != (job.box[2] - job.box[0], job.box[3] - job.box[1]):
            out = out.crop(job.box)
        return np.asarray(out, dtype=np.uint8)


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie nobody reaped yet counts as ended)."""
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        pass  # it exists, owned by another user
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return False


def watch_parent(parent: int, interval: float = 1.0) -> None:
    """A decoder process's initializer: exit when process ``parent`` (the fill's) has ended,
    so decoders never outlive a killed fill (the pool's queues alone do not end them then)."""
    import os
    import threading

    def watch() -> None:
        """Poll every ``interval`` seconds; end this process once the parent has ended."""
        while not _gone(parent):
            threading.Event().wait(interval)
        os._exit(0)

    threading.Thread(target=watch, name="databackend-parent-watch", daemon=True).start()
