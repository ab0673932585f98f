"""The dataset source the factory builds: a scanned index plus its latent and text caches.

Captions: a sample with several captions gets one per step, chosen by a pure function of
``(seed, dataset id, epoch, step, sample)`` so resumed and distributed runs agree; a sample with
none gets the empty caption (cached by the text precompute for caption dropout).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from databackend.caches.base import KeyMemo
from databackend.runtime.batch import Sample
from databackend.runtime.seeding import uniform

__all__ = ["CachedSource"]

Bucket = tuple[int, int]


class _Index(Protocol):
    paths: Any

    def buckets(self) -> dict[Bucket, np.ndarray]:
        """Sample indices per bucket."""

    def captions_of(self, i: int) -> tuple[str, ...]:
        """Captions of sample ``i``."""


class _Latents(Protocol):
    def get_many(self, indices: Sequence[int]) -> list[Any]:
        """Latents of samples ``indices``."""


class _Texts(Protocol):
    def get_many(self, captions: Sequence[str]) -> list[Any]:
        """Embeddings of ``captions``."""


class CachedSource:
    """Reads samples of one dataset from its index, :class:`LatentCache` and
    :class:`TextEmbedCache` (see :class:`~databackend.runtime.batch.DatasetSource`)."""

    def __init__(self, dataset_id: str, index: _Index, latents: _Latents, texts: _Texts, *,
                 seed: int = 0, buckets: Mapping[Bucket, np.ndarray] | None = None) -> None:
        """``buckets`` overrides ``index.buckets()`` (e.g. after a short-bucket policy)."""
        self.dataset_id = dataset_id
        self.index, self.latents, self.texts, self.seed = index, latents, texts, seed
        self._buckets = dict(buckets) if buckets is not None else None
        self._captions = KeyMemo()  # decoded from the index's compact table once per sample

    def buckets(self) -> dict[Bucket, np.ndarray]:
        """``(W, H) -> sorted sample indices`` of the scanned index."""
        return dict(self._buckets) if self._buckets is not None else self.index.buckets()

    def caption(self, i: int, *, epoch: int, step: int) -> str:
        """The caption sample ``i`` uses at ``(epoch, step)``."""
        captions: tuple[str, ...] = self._captions.get(i, self.index.captions_of)
        if not captions:
            return ""
        if len(captions) == 1:
            return captions[0]
        u = uniform(self.seed, "caption", self.dataset_id, epoch, step, i)
        return captions[int(u * len(captions))]

    def samples(self, indices: Sequence[int], *, epoch: int, step: int) -> list[Sample]:
        """Latents, embeddings, geometry, caption and path of each index, in order."""
        entries = self.latents.get_many(indices)
        captions = [self.caption(i, epoch=epoch, step=step) for i in indices]
        embeds = self.texts.get_many(captions)
        return [Sample(latents=e.latents, text_embeds=t, original_size=e.original_size,
                       crop_coordinates=e.crop_coordinates, target_size=e.target_size,
                       caption=c, path=e.path)
                for e, t, c in zip(entries, embeds, captions, strict=True)]
