"""The conditioning part of a :class:`~databackend.runtime.batch.Batch`.

A batch of a source dataset carries one :class:`ConditioningEntry` per linked conditioning
dataset, in config order (``Batch.conditioning``). ``rows`` says which samples of the batch the
entry covers: all of them (``arange(B)``) with ``conditioning_multidataset_sampling: combined``
or a single linked dataset, the samples that drew this dataset with ``random``. Tensors are
ordered like ``rows``:

* ``latents``: ``[B_k, C, h, w]`` (the VAE's latents of the conditioning image; pixel-aligned
  types have exactly the source latents' ``h, w``), or a list of ``[C, h, w]`` when the sizes
  differ within the batch (``reference_loose``); None when the entry carries pixels;
* ``pixels``: ``[B_k, 3, H, W]`` float32 in ``[-1, 1]`` at the source's target size (masks,
  segmentation maps, or any type with ``conditioning_output: pixels``); None otherwise;
* ``captions`` and ``text_embeds`` (each encoder output stacked ``[B_k, ...]``): the
  conditioning samples' own captions and their embeddings, when the conditioning dataset has
  its own captions (``conditioning/captions.py``); None otherwise;
* ``image_embeds``: the conditioning samples' image embeddings, each encoder output stacked
  ``[B_k, ...]``, when the conditioning dataset sets ``conditioning_image_embeds``; else None.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import torch

__all__ = ["ConditioningEntry"]


@attrs.frozen(kw_only=True, eq=False)
class ConditioningEntry:
    """One conditioning dataset's tensors for the samples of a batch (see the module doc)."""

    dataset_id: str
    conditioning_type: str
    rows: torch.Tensor
    sample_ids: list[str]
    latents: torch.Tensor | list[torch.Tensor] | None = None
    pixels: torch.Tensor | None = None
    captions: list[str] | None = None
    text_embeds: dict[str, torch.Tensor] | None = None
    image_embeds: dict[str, torch.Tensor] | None = None

    def __len__(self) -> int:
        return len(self.sample_ids)

    @property
    def tensor(self) -> Any:
        """The latents, or the pixels when the entry carries pixels."""
        return self.latents if self.latents is not None else self.pixels

    def map(self, move: Callable[[torch.Tensor], torch.Tensor]) -> ConditioningEntry:
        """A copy with every tensor passed through ``move`` (device moves, pinning)."""
        latents = self.latents
        if isinstance(latents, list):
            latents = [move(t) for t in latents]
        elif latents is not None:
            latents = move(latents)
        return attrs.evolve(self, rows=move(self.rows), latents=latents,
                            pixels=None if self.pixels is None else move(self.pixels),
                            text_embeds=_move_all(self.text_embeds, move),
                            image_embeds=_move_all(self.image_embeds, move))


def _move_all(tensors: dict[str, torch.Tensor] | None, move: Callable[[torch.Tensor], torch.Tensor]
              ) -> dict[str, torch.Tensor] | None:
    return None if tensors is None else {k: move(v) for k, v in tensors.items()}
