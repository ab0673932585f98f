"""What a video batch carries besides its latents: frame counts, fps, windows, i2v latents.

:class:`VideoBatch` is ``Batch.video`` for batches of a video dataset (None for images).
``frames`` is the number of source frames each latent was encoded from (the window length),
``source_frames`` the clip's frame count, ``fps`` its frame rate (the window covers
``window[:, 2] / fps`` seconds per step), ``window`` ``(start, length, stride)`` per sample.
With ``is_i2v``, ``first_frame_latents`` ``[B, C, 1, h, w]`` are the window's first frame
encoded alone: the reference's ``conditioning_latents[0]`` with ``is_i2v_data``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    import torch

__all__ = ["VideoBatch", "video_batch"]


@attrs.frozen(kw_only=True)
class VideoBatch:
    """Per-sample video values of one batch (see the module docstring); int64 / float32."""

    frames: torch.Tensor
    source_frames: torch.Tensor
    fps: torch.Tensor
    window: torch.Tensor
    is_i2v: bool = False
    first_frame_latents: torch.Tensor | None = None

    def map(self, move: Callable[[torch.Tensor], torch.Tensor]) -> VideoBatch:
        """A copy with every tensor passed through ``move`` (device moves, pinning)."""
        first = self.first_frame_latents
        return attrs.evolve(self, frames=move(self.frames),
                            source_frames=move(self.source_frames), fps=move(self.fps),
                            window=move(self.window),
                            first_frame_latents=None if first is None else move(first))


def video_batch(index: Any, indices: Sequence[int], *,
                first_frame_latents: Sequence[torch.Tensor] | None = None,
                is_i2v: bool = False) -> VideoBatch:
    """The :class:`VideoBatch` of ``indices`` of a media index."""
    import numpy as np
    import torch

    rows = np.asarray(indices, np.int64)
    window = index.window_table[rows].astype(np.int64)
    first = torch.stack(list(first_frame_latents)) if first_frame_latents else None
    return VideoBatch(frames=torch.from_numpy(window[:, 1].copy()),
                      source_frames=torch.from_numpy(index.columns["frames"][rows].astype(np.int64)),
                      fps=torch.from_numpy(index.columns["fps"][rows].astype(np.float32)),
                      window=torch.from_numpy(window), is_i2v=is_i2v, first_frame_latents=first)
