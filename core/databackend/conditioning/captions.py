"""Conditioning datasets' own captions (SimpleTuner's ``conditioning_captions``).

A conditioning dataset *has its own captions* when

* it is hand-written and sets ``caption_strategy`` (any strategy: its index holds the captions
  as for an image dataset), or
* it is generated and its generator spec has a truthy ``captions``: a string, or a list from
  which each sample gets one entry, chosen by ``uniform(seed, "conditioning_caption", id,
  path)`` (a pure function of the sample, where the reference called ``random.choice``).

Otherwise (the default) it has none: batches carry only the source's captions, as before.

Its captions are cached by the text precompute like any dataset's (through the text cache its
``text_embeds`` names, else the default one) and each :class:`ConditioningEntry` carries
``captions`` and ``text_embeds`` for its rows. **Prompt swap**: with
``conditioning_multidataset_sampling: random`` and several linked datasets, a sample whose
drawn conditioning dataset has its own captions trains on that caption: ``batch.captions`` and
``batch.text_embeds`` of its row are replaced (the reference replaced the batch's prompts the
same way, with a salted, per-process choice); ``batch.source_captions`` then keeps the
originals (on every batch of such a source, swapped or not; None elsewhere).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from databackend.runtime.seeding import uniform

if TYPE_CHECKING:  # torch is imported where embeddings are stacked, not by `databackend scan`
    import torch

__all__ = ["CaptionReader", "captions_to_cache", "fixed_captions", "has_own_captions",
           "swap_prompts"]


def fixed_captions(dataset: Any) -> tuple[str, ...]:
    """The ``captions`` of a generated dataset's spec (empty when none)."""
    spec = getattr(dataset, "conditioning_config", None) or {}
    value = spec.get("captions")
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    return ()


def has_own_captions(dataset: Any) -> bool:
    """Whether a conditioning dataset's batches entries carry captions (see the module doc)."""
    if dataset.dataset_type != "conditioning":
        return False
    if dataset.auto_generated:
        return bool(fixed_captions(dataset))
    return dataset.caption_strategy is not None


def captions_to_cache(dataset: Any, index: Any) -> set[str]:
    """The captions the text precompute embeds for a dataset (none for a conditioning dataset
    without its own captions)."""
    if dataset.dataset_type == "conditioning" and not has_own_captions(dataset):
        return set()
    fixed = fixed_captions(dataset)
    if fixed:
        return set(fixed)
    out: set[str] = set()
    for captions in index.captions:
        out.update(captions)
    return out


class CaptionReader:
    """Captions and text embeddings of one conditioning dataset's rows."""

    def __init__(self, dataset_id: str, index: Any, texts: Any, *, seed: int = 0,
                 fixed: Sequence[str] = ()) -> None:
        """``index``: the conditioning dataset's scanned index; ``texts``: its text cache."""
        self.dataset_id, self.index, self.texts, self.seed = dataset_id, index, texts, seed
        self.fixed = tuple(fixed)

    def caption(self, row: int, *, epoch: int, step: int) -> str:
        """The caption of conditioning row ``row`` at ``(epoch, step)``."""
        if self.fixed:
            path = str(self.index.paths[row])
            u = uniform(self.seed, "conditioning_caption", self.dataset_id, path)
            return self.fixed[int(u * len(self.fixed))]
        captions = tuple(self.index.captions_of(row))
        if len(captions) <= 1:
            return str(captions[0]) if captions else ""
        u = uniform(self.seed, "caption", self.dataset_id, epoch, step, row)
        return str(captions[int(u * len(captions))])

    def read(self, rows: Sequence[int], *, epoch: int, step: int
             ) -> tuple[list[str], dict[str, torch.Tensor]]:
        """The captions of ``rows`` and their embeddings stacked per encoder output."""
        from databackend.runtime.batch import _stack_embeds  # (import cycle)

        captions = [self.caption(r, epoch=epoch, step=step) for r in rows]
        if not captions:
            return [], {}
        try:
            return captions, _stack_embeds(self.texts.get_many(captions))
        except ValueError as exc:
            raise ValueError(f"conditioning dataset {self.dataset_id!r}: {exc}") from None


def swap_prompts(batch: Any, entries: Sequence[Any]) -> Any:
    """``batch`` with the captions and text embeddings of each entry's rows replaced by the
    entry's own (prompt swap, see the module doc); ``source_captions`` keeps the originals."""
    owned = [e for e in entries if e.captions is not None and len(e)]
    if not owned:
        return attrs.evolve(batch, source_captions=list(batch.captions))
    captions = list(batch.captions)
    embeds = {k: v.clone() for k, v in batch.text_embeds.items()}
    for entry in owned:
        rows = entry.rows.tolist()
        for j, p in enumerate(rows):
            captions[p] = entry.captions[j]
        for name, tensor in entry.text_embeds.items():
            have = embeds.get(name)
            if have is None or have.shape[1:] != tensor.shape[1:] or have.dtype != tensor.dtype:
                raise ValueError(
                    f"dataset {batch.dataset_id!r}: the text embedding {name!r} of conditioning "
                    f"dataset {entry.dataset_id!r} ({tuple(tensor.shape[1:])}) does not match "
                    f"the batch's ({None if have is None else tuple(have.shape[1:])}); its "
                    "captions cannot replace the prompts")
            have[entry.rows] = tensor
    return attrs.evolve(batch, captions=captions, text_embeds=embeds,
                        source_captions=list(batch.captions))
