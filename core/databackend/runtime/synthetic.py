"""An in-memory dataset source with made-up tensors: for tests, examples and dry runs.

Sample ``i`` of a :class:`SyntheticSource` has latents filled with ``i`` and a caption
``"{dataset_id} {i}"``, so tests can check which samples a batch holds from its tensors alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from databackend.runtime.batch import Sample

__all__ = ["SyntheticSource"]

Bucket = tuple[int, int]


class SyntheticSource:
    """``counts`` maps ``(W, H)`` buckets to sample counts; indices run bucket after bucket."""

    def __init__(self, dataset_id: str, counts: Mapping[Bucket, int], *, channels: int = 4,
                 embed_dim: int = 8, tokens: int = 4) -> None:
        """Lay out ``sum(counts.values())`` samples over the buckets in sorted order."""
        self.dataset_id = dataset_id
        self.channels, self.embed_dim, self.tokens = channels, embed_dim, tokens
        self._buckets: dict[Bucket, np.ndarray] = {}
        self._bucket_of: dict[int, Bucket] = {}
        start = 0
        for key in sorted(counts):
            idx = np.arange(start, start + counts[key], dtype=np.int64)
            self._buckets[key] = idx
            self._bucket_of.update(dict.fromkeys(idx.tolist(), key))
            start += counts[key]
        self.reads = 0

    def buckets(self) -> dict[Bucket, np.ndarray]:
        """``(W, H) -> sample indices``."""
        return dict(self._buckets)

    def samples(self, indices: Sequence[int], *, epoch: int, step: int) -> list[Sample]:
        """Made-up samples; latents are ``[C, H/8, W/8]`` filled with the index."""
        self.reads += len(indices)
        out = []
        for i in indices:
            w, h = self._bucket_of[int(i)]
            latents = torch.full((self.channels, max(1, h // 8), max(1, w // 8)), float(i))
            embeds = {"prompt_embeds": torch.full((self.tokens, self.embed_dim), float(i))}
            out.append(Sample(latents=latents, text_embeds=embeds, original_size=(w, h),
                              crop_coordinates=(0, 0), target_size=(w, h),
                              caption=f"{self.dataset_id} {i}", path=f"{i:06d}.png"))
        return out
