"""The runtime source of a media dataset: cached clip latents plus the video batch values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np

from databackend.media.batch import video_batch
from databackend.runtime.batch import Batch
from databackend.runtime.source import CachedSource

__all__ = ["MediaSource"]


class MediaSource(CachedSource):
    """A :class:`CachedSource` whose batches carry ``video`` (a
    :class:`~databackend.media.batch.VideoBatch`); ``first_frames`` is the i2v first-frame
    cache, or None."""

    def __init__(self, dataset_id: str, index: Any, latents: Any, texts: Any, *,
                 seed: int = 0, buckets: Mapping[Any, np.ndarray] | None = None,
                 first_frames: Any = None) -> None:
        """As :class:`CachedSource`, plus the first-frame cache."""
        super().__init__(dataset_id, index, latents, texts, seed=seed, buckets=buckets)
        self.first_frames = first_frames

    def batch(self, indices: list[int], *, epoch: int, step: int, bucket: Any) -> Batch:
        """The stacked batch (latents ``[B, C, F', h, w]``) with its ``video`` values."""
        batch = super().batch(indices, epoch=epoch, step=step, bucket=bucket)
        first = self.first_frames.tensors(indices) if self.first_frames is not None else None
        return attrs.evolve(batch, video=video_batch(self.index, indices,
                                                     first_frame_latents=first,
                                                     is_i2v=first is not None))
