"""Builders of real ``datasets`` datasets and encoded images for the HF tests (a module of
its own: ``conftest`` names clash across the repository's test folders). The offline
environment is set by this folder's ``conftest``, which pytest imports first."""

from __future__ import annotations

import io
import random
from collections.abc import Sequence
from typing import Any

Image = Any


def encode(width: int, height: int, color: tuple[int, int, int] = (200, 30, 30), *,
           fmt: str = "PNG", orientation: int | None = None, noise: int = 0) -> bytes:
    """An encoded RGB image (optionally noisy, optionally with an EXIF orientation)."""
    from PIL import Image as PILImage

    img = PILImage.new("RGB", (width, height), color)
    if noise:
        rng = random.Random(noise)
        for _ in range(50):
            img.putpixel((rng.randrange(width), rng.randrange(height)),
                         (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    kwargs: dict[str, Any] = {}
    if orientation is not None:
        exif = PILImage.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def composite(colors: Sequence[tuple[int, int, int]], tile: tuple[int, int]) -> bytes:
    """A PNG of ``len(colors)`` tiles of ``tile`` size side by side, each one color."""
    from PIL import Image as PILImage

    w, h = tile
    img = PILImage.new("RGB", (w * len(colors), h))
    for k, color in enumerate(colors):
        img.paste(PILImage.new("RGB", (w, h), color), (k * w, 0))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def make_dataset(columns: dict[str, list[Any]], *, image_feature: bool = True) -> Any:
    """A ``datasets.Dataset``; ``image`` bytes become an ``Image`` feature when asked."""
    import datasets

    cols = dict(columns)
    if image_feature and "image" in cols:
        cols["image"] = [None if b is None else {"bytes": b, "path": None} for b in cols["image"]]
    ds = datasets.Dataset.from_dict(cols)
    if image_feature and "image" in cols:
        ds = ds.cast_column("image", datasets.Image())
    return ds


SIZES = [(96, 64), (64, 96), (80, 80), (128, 64), (64, 64), (112, 80)]


def basic_columns(n: int = 12, **extra: list[Any]) -> dict[str, list[Any]]:
    """``image`` (PNG/JPEG of SIZES), ``caption``, ``width``, ``height`` and extra columns."""
    sizes = [SIZES[k % len(SIZES)] for k in range(n)]
    return {"image": [encode(w, h, (k * 20 % 256, 60, 90), fmt="JPEG" if k % 2 else "PNG")
                      for k, (w, h) in enumerate(sizes)],
            "caption": [f"a photo number {k}" for k in range(n)],
            "width": [w for w, _ in sizes], "height": [h for _, h in sizes], **extra}
