"""Small real video files for tests, benchmarks and the demo, written with PyAV.

Frame ``k`` has a colour ramp and a brightness that grows with ``k``, so a decoded frame tells
which frame it was (tests check seeks and windows against a full decode with it).
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["frame_pixels", "write_video"]

_FORMATS = {"mkv": ("matroska", "libx264"), "webm": ("webm", "libvpx-vp9"),
            "mov": ("mov", "libx264"), "m4v": ("mp4", "libx264")}


def frame_pixels(k: int, width: int, height: int, seed: int = 0, noise: int = 0) -> Any:
    """The RGB ``uint8`` array ``[height, width, 3]`` written as frame ``k`` (``noise``: the
    amplitude of seeded noise added, which makes files large)."""
    import numpy as np

    ramp = np.linspace(0, 60, width, dtype=np.float32)[None, :, None]
    base = (20 + 6 * k + 17 * seed) % 160
    out = np.broadcast_to(ramp + base, (height, width, 3)).copy()
    out[..., 1] *= 0.5
    if noise:
        out += np.random.default_rng((seed, k)).integers(0, noise, out.shape)
    return out.astype(np.uint8)


def write_video(path: str | os.PathLike[str], width: int, height: int, frames: int, *,
                fps: int = 12, rotation: int = 0, seed: int = 0, gop: int = 12,
                noise: int = 0, fragmented: bool = False) -> str:
    """Write an H.264 (VP9 for ``.webm``) clip of ``frames`` frames; ``rotation`` (degrees,
    counter-clockwise) goes into the display matrix; ``fragmented``: a fragmented MP4 (an
    empty ``moov``, ``moof`` fragments). Returns the path."""
    import av

    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    ext = path.rpartition(".")[2].lower()
    fmt, codec = _FORMATS.get(ext, ("mp4", "libx264"))
    options = {"movflags": "frag_keyframe+empty_moov"} if fragmented else {}
    with av.open(path, "w", format=fmt, options=options) as container:
        stream: Any = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = gop
        if rotation:
            stream.set_display_rotation(rotation)
        for k in range(frames):
            frame = av.VideoFrame.from_ndarray(frame_pixels(k, width, height, seed, noise),
                                               format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path
