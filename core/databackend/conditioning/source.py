"""A source dataset with its conditioning: batches carry one entry per linked dataset.

With one linked dataset, or ``conditioning_multidataset_sampling: combined``, every sample gets
a tensor from every linked dataset. With ``random`` and several, each sample gets one, drawn
among the linked datasets that have a pair for it by
``uniform(seed, "conditioning", source id, epoch, step, sample index)``: a pure function of
``(seed, epoch, step, sample)``, identical on every rank and after a resume (the reference
used the salted ``hash()``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import torch

from databackend.conditioning.aligned import pixels_to_float
from databackend.conditioning.captions import CaptionReader, swap_prompts
from databackend.conditioning.entry import ConditioningEntry
from databackend.conditioning.image_embed_setup import stacked
from databackend.runtime.batch import Batch, Sample, _stack
from databackend.runtime.seeding import uniform

__all__ = ["ConditionedSource", "Link"]

Bucket = tuple[int, int]


@attrs.frozen(kw_only=True, eq=False)
class Link:
    """One linked conditioning dataset as the runtime reads it.

    ``cache.tensors(keys)`` reads the stored tensors; ``keys`` are source rows when
    ``aligned`` (the cache is laid out over the source's rows), else conditioning rows.
    ``rows[i]`` is the conditioning row paired with source row ``i`` (-1: none).
    ``captions`` reads the dataset's own captions (None: it has none).
    """

    dataset_id: str
    conditioning_type: str
    output: str
    cache: Any
    rows: np.ndarray
    paths: Any
    aligned: bool
    captions: CaptionReader | None = None
    image_embeds: Any = None  #: its ImageEmbedCache (over conditioning rows), or None


class ConditionedSource:
    """Wraps a dataset source (:class:`~databackend.runtime.source.CachedSource`) and adds
    :class:`ConditioningEntry` items to its batches (see the module doc)."""

    def __init__(self, inner: Any, links: Sequence[Link], *, mode: str = "random",
                 seed: int = 0) -> None:
        """``inner`` must have ``batch``; its buckets should hold only paired samples."""
        self.inner, self.links, self.mode, self.seed = inner, tuple(links), mode, seed
        self.dataset_id: str = inner.dataset_id
        self._paired = np.stack([link.rows >= 0 for link in self.links])

    def buckets(self) -> Mapping[Bucket, np.ndarray]:
        """The inner source's buckets."""
        return self.inner.buckets()  # type: ignore[no-any-return]

    def samples(self, indices: Sequence[int], *, epoch: int, step: int) -> list[Sample]:
        """The inner samples (without conditioning; the runtime calls :meth:`batch`)."""
        return self.inner.samples(indices, epoch=epoch, step=step)  # type: ignore[no-any-return]

    def choose(self, indices: Sequence[int], *, epoch: int, step: int) -> list[list[int]]:
        """For each sample, the links it reads (positions in :attr:`links`)."""
        everyone = list(range(len(self.links)))
        if self.mode == "combined" or len(self.links) == 1:
            return [everyone for _ in indices]
        out = []
        for i in indices:
            have = np.flatnonzero(self._paired[:, i]).tolist() or everyone
            u = uniform(self.seed, "conditioning", self.dataset_id, epoch, step, int(i))
            out.append([have[int(u * len(have))]])
        return out

    def entries(self, indices: Sequence[int], *, epoch: int, step: int
                ) -> tuple[ConditioningEntry, ...]:
        """The conditioning entries of a batch of ``indices`` (see the module doc)."""
        everyone = self.mode == "combined" or len(self.links) == 1
        chosen = None if everyone else self.choose(indices, epoch=epoch, step=step)
        out = []
        for k, link in enumerate(self.links):
            where = list(range(len(indices))) if chosen is None else \
                [p for p, picks in enumerate(chosen) if k in picks]
            rows = [int(link.rows[indices[p]]) for p in where]
            if min(rows, default=0) < 0:
                bad = [indices[p] for p, r in zip(where, rows, strict=True) if r < 0]
                raise ValueError(f"dataset {self.dataset_id!r}: samples {bad} have no pair in "
                                 f"conditioning dataset {link.dataset_id!r}")
            keys = [indices[p] for p in where] if link.aligned else rows
            tensors = link.cache.tensors(keys) if keys else []
            entry = _entry(link, torch.tensor(where, dtype=torch.int64), rows, tensors)
            if link.captions is not None:
                captions, embeds = link.captions.read(rows, epoch=epoch, step=step)
                entry = attrs.evolve(entry, captions=captions, text_embeds=embeds)
            if link.image_embeds is not None:
                entry = attrs.evolve(entry, image_embeds=stacked(link.image_embeds, rows))
            out.append(entry)
        return tuple(out)

    @property
    def swaps_prompts(self) -> bool:
        """Whether conditioning captions replace the prompts (``random`` with several linked
        datasets, one of them with its own captions; docs/conditioning.md)."""
        return self.mode == "random" and len(self.links) > 1 and \
            any(link.captions is not None for link in self.links)

    def batch(self, indices: list[int], *, epoch: int, step: int, bucket: Bucket) -> Batch:
        """The inner batch with its :attr:`Batch.conditioning` entries."""
        batch: Batch = self.inner.batch(indices, epoch=epoch, step=step, bucket=bucket)
        entries = self.entries(indices, epoch=epoch, step=step)
        batch = attrs.evolve(batch, conditioning=entries)
        return swap_prompts(batch, entries) if self.swaps_prompts else batch


def _entry(link: Link, where: torch.Tensor, rows: list[int], tensors: list[Any]
           ) -> ConditioningEntry:
    ids = [f"{link.dataset_id}:{link.paths[r]}" for r in rows]
    stacked: Any = None
    if tensors:
        same = all(t.shape == tensors[0].shape for t in tensors)
        stacked = _stack(tensors) if same else list(tensors)
    if link.output == "pixels":
        pixels = pixels_to_float(stacked) if stacked is not None else torch.empty(0, 3, 0, 0)
        return ConditioningEntry(dataset_id=link.dataset_id,
                                 conditioning_type=link.conditioning_type, rows=where,
                                 sample_ids=ids, pixels=pixels)
    latents = stacked if stacked is not None else torch.empty(0)
    return ConditioningEntry(dataset_id=link.dataset_id, conditioning_type=link.conditioning_type,
                             rows=where, sample_ids=ids, latents=latents)
