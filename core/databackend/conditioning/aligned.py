"""Conditioning samples in their source sample's geometry (the pixel-aligned types).

:class:`AlignedSource` is a sample source (what :class:`~databackend.caches.LatentCache` reads)
over the **source** dataset's rows: row ``i`` is the conditioning image paired with source
sample ``i``, placed with source sample ``i``'s stored geometry (the same target size,
intermediary size and crop box, random crops included, since the crop is stored per sample).
A conditioning image whose size differs from its source image is first resized to the source's
original size (nearest neighbour for masks and segmentation maps, bicubic otherwise).

:class:`PixelEncoder` is the "encoder" of conditioning datasets that contribute pixels: it
stores the prepared pixels as uint8 ``[3, H, W]`` through the same cache machinery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from databackend.conditioning.pairing import Pairing

__all__ = ["AlignedSource", "PixelEncoder", "pixels_to_float"]


class _Paths:
    """``paths[i]``: the conditioning path paired with source row ``i``."""

    def __init__(self, cond_paths: Any, rows: np.ndarray) -> None:
        self.cond_paths, self.rows = cond_paths, rows

    def __getitem__(self, i: int) -> str:
        row = int(self.rows[i])
        if row < 0:
            raise KeyError(f"source row {i} has no conditioning sample")
        return str(self.cond_paths[row])

    def __len__(self) -> int:
        return len(self.rows)


class AlignedIndex:
    """The index view :class:`AlignedSource` exposes: source geometry, conditioning paths, and
    buckets holding only paired rows."""

    def __init__(self, source: Any, cond: Any, rows: np.ndarray) -> None:
        """``rows[i]``: the conditioning row of source row ``i`` (-1: unpaired)."""
        self.source, self.cond, self.rows = source, cond, rows
        self.paths = _Paths(cond.paths, rows)
        self._buckets: dict[tuple[int, int], np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def geometry(self, i: int) -> Any:
        """Source row ``i``'s geometry."""
        return self.source.geometry(i)

    def buckets(self) -> dict[tuple[int, int], np.ndarray]:
        """The source's buckets without unpaired rows."""
        if self._buckets is None:
            kept = {b: rows[self.rows[rows] >= 0] for b, rows in self.source.buckets().items()}
            self._buckets = {b: r for b, r in kept.items() if len(r)}
        return dict(self._buckets)


class AlignedSource:
    """A sample source over the source dataset's rows that loads the paired conditioning
    images (see the module doc)."""

    def __init__(self, source: Any, cond: Any, pairing: Pairing, *, nearest: bool = False
                 ) -> None:
        """``source``/``cond``: scanned metadata backends; ``nearest``: resize masks without
        interpolation."""
        self.source, self.cond, self.pairing, self.nearest = source, cond, pairing, nearest
        self._index: AlignedIndex | None = None

    @property
    def index(self) -> AlignedIndex:
        """The aligned index (one object while the underlying indexes stay)."""
        src, cond = self.source.index, self.cond.index
        if self._index is None or self._index.source is not src or self._index.cond is not cond:
            self._index = AlignedIndex(src, cond, self.pairing.rows)
        return self._index

    def load_image(self, i: int) -> Image.Image:
        """The conditioning image of source row ``i`` at the source's original size."""
        from PIL import Image as PILImage

        row = int(self.pairing.rows[i])
        if row < 0:
            raise KeyError(f"source sample {self.source.index.paths[i]!r} has no conditioning "
                           f"sample in {self.pairing.conditioning_id!r}")
        image: Image.Image = self.cond.load_image(row)
        size = (int(self.source.index.original[i, 0]), int(self.source.index.original[i, 1]))
        if image.size != size:
            method = PILImage.Resampling.NEAREST if self.nearest else PILImage.Resampling.BICUBIC
            image = image.resize(size, method)
        return image

    def sample_key(self, i: int) -> str:
        """The conditioning sample's identity (the geometry is keyed separately)."""
        return f"{self.cond.sample_key(int(self.pairing.rows[i]))}|aligned"


class PixelEncoder:
    """Stores prepared pixels as uint8 (``[B, 3, H, W]`` in -> the same, 0..255)."""

    identity = "databackend-pixels-uint8-v1"

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[-1, 1]`` floats to exact uint8 values."""
        import torch

        return torch.round((pixels.float() + 1.0) * 127.5).clamp(0, 255).to(torch.uint8)


def pixels_to_float(pixels: torch.Tensor) -> torch.Tensor:
    """Stored uint8 pixels back to float32 in ``[-1, 1]`` (the VAE's input range)."""
    return pixels.float() / 127.5 - 1.0
