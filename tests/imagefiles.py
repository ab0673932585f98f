"""Small real image files for tests (a module of its own: ``conftest`` names clash across
the repository's test folders)."""

from __future__ import annotations

import random
from pathlib import Path


def write_image(path: Path, width: int, height: int, *, seed: int = 0,
                exif_orientation: int | None = None) -> Path:
    """Write a small noisy RGB image; the format comes from the suffix."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    img = Image.new("RGB", (width, height), (rng.randrange(256), rng.randrange(256), 90))
    kwargs: dict[str, object] = {}
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif
    img.save(path, **kwargs)
    return path
