"""The dataset source the factory builds: a scanned index plus its latent and text caches.

Captions: a sample with several captions gets one per step, chosen by a pure function of
``(seed, dataset id, epoch, step, sample)`` so resumed and distributed runs agree; a sample with
none gets the empty caption (cached by the text precompute for caption dropout).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np

from databackend.caches.base import KeyMemo
from databackend.runtime.batch import Batch, Sample, stack_batch
from databackend.runtime.seeding import uniform

__all__ = ["CachedSource"]

Bucket = tuple[int, int]


class _Index(Protocol):
    paths: Any

    def buckets(self) -> dict[Bucket, np.ndarray]:
        """Sample indices per bucket."""

    def captions_of(self, i: int) -> tuple[str, ...]:
        """Captions of sample ``i``."""

    def geometry(self, i: int) -> Any:
        """The geometry of sample ``i`` (sizes and crop)."""


class _Latents(Protocol):
    def tensors(self, indices: Sequence[int]) -> list[Any]:
        """Latent tensors of samples ``indices``."""


class _Texts(Protocol):
    def get_many(self, captions: Sequence[str]) -> list[Any]:
        """Embeddings of ``captions``."""


class _SampleInfo(NamedTuple):
    """What a batch needs of one sample besides its tensors (memoised per sample)."""

    caption: str | None  #: the caption when there is at most one ("" for none), else None
    captions: tuple[str, ...]
    sizes: tuple[int, int, int, int, int, int]  #: original (W, H), crop (top, left), target
    path: str
    sample_id: str


class CachedSource:
    """Reads samples of one dataset from its index, :class:`LatentCache` and
    :class:`TextEmbedCache` (see :class:`~databackend.runtime.batch.DatasetSource`)."""

    def __init__(self, dataset_id: str, index: _Index, latents: _Latents, texts: _Texts, *,
                 seed: int = 0, buckets: Mapping[Bucket, np.ndarray] | None = None) -> None:
        """``buckets`` overrides ``index.buckets()`` (e.g. after a short-bucket policy)."""
        self.dataset_id = dataset_id
        self.index, self.latents, self.texts, self.seed = index, latents, texts, seed
        self._buckets = dict(buckets) if buckets is not None else None
        #: decoded from the index's compact tables once per sample
        self._info = KeyMemo(self._describe)

    def buckets(self) -> dict[Bucket, np.ndarray]:
        """``(W, H) -> sorted sample indices`` of the scanned index."""
        return dict(self._buckets) if self._buckets is not None else self.index.buckets()

    def _describe(self, i: int) -> _SampleInfo:
        captions = tuple(self.index.captions_of(i))
        g, path = self.index.geometry(i), str(self.index.paths[i])
        return _SampleInfo(captions[0] if len(captions) == 1 else None if captions else "",
                           captions, (*g.original_size, *g.crop_coordinates, *g.target_size),
                           path, f"{self.dataset_id}:{path}")

    def caption(self, i: int, *, epoch: int, step: int) -> str:
        """The caption sample ``i`` uses at ``(epoch, step)``."""
        info = self._info[i]
        return info.caption if info.caption is not None else self._pick(info, i, epoch, step)

    def _pick(self, info: _SampleInfo, i: int, epoch: int, step: int) -> str:
        u = uniform(self.seed, "caption", self.dataset_id, epoch, step, i)
        return info.captions[int(u * len(info.captions))]

    def _rows(self, indices: Sequence[int], epoch: int, step: int
              ) -> tuple[list[_SampleInfo], list[str]]:
        """The memoised info of each index and the caption each uses at ``(epoch, step)``."""
        memo = self._info
        rows = [memo[i] for i in indices]
        return rows, [r.caption if r.caption is not None else self._pick(r, i, epoch, step)
                      for r, i in zip(rows, indices, strict=True)]

    def samples(self, indices: Sequence[int], *, epoch: int, step: int) -> list[Sample]:
        """Latents, embeddings, geometry, caption and path of each index, in order."""
        rows, captions = self._rows(indices, epoch, step)
        latents = self.latents.tensors(indices)
        embeds = self.texts.get_many(captions)
        return [Sample(latents=t, text_embeds=e, original_size=r.sizes[0:2],
                       crop_coordinates=r.sizes[2:4], target_size=r.sizes[4:6], caption=c,
                       path=r.path)
                for t, e, r, c in zip(latents, embeds, rows, captions, strict=True)]

    def batch(self, indices: list[int], *, epoch: int, step: int, bucket: Bucket) -> Batch:
        """The stacked batch of ``indices``: what ``collate(samples(...))`` gives, without a
        :class:`Sample` per index (the runtime's hot path)."""
        rows, captions = self._rows(indices, epoch, step)
        latents = self.latents.tensors(indices)
        return stack_batch(
            latents, self.texts.get_many(captions), [r.sizes for r in rows], captions=captions,
            sample_ids=[r.sample_id for r in rows], indices=indices,
            dataset_id=self.dataset_id, bucket=bucket, epoch=epoch, step=step)
