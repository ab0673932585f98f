"""Training batches: what a dataset source returns per sample, and how samples are stacked.

A :class:`DatasetSource` turns sample indices into :class:`Sample` records (cached latents, text
embeddings, geometry, caption, path); :func:`collate` stacks them into a :class:`Batch` of torch
tensors ready for a training step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs
import numpy as np
import torch

__all__ = ["Batch", "DatasetSource", "Sample", "collate"]

Bucket = tuple[int, int]


@attrs.frozen(kw_only=True)
class Sample:
    """One training sample as read from the caches; sizes are ``(W, H)``, crops ``(top, left)``."""

    latents: torch.Tensor
    text_embeds: Mapping[str, torch.Tensor]
    original_size: tuple[int, int]
    crop_coordinates: tuple[int, int]
    target_size: tuple[int, int]
    caption: str
    path: str


@runtime_checkable
class DatasetSource(Protocol):
    """Where the runtime reads one dataset: its buckets and its cached samples."""

    dataset_id: str

    def buckets(self) -> Mapping[Bucket, np.ndarray]:
        """``(W, H) -> sorted sample indices``."""
        ...

    def samples(self, indices: Sequence[int], *, epoch: int, step: int) -> list[Sample]:
        """The samples at ``indices`` (caption choice may depend on ``epoch``/``step``)."""
        ...


@attrs.frozen(kw_only=True)
class Batch:
    """One rank's batch: every sample from one bucket of one dataset.

    ``latents`` is ``[B, C, h, w]``; ``text_embeds`` maps each encoder output name to a tensor
    stacked over the batch; ``original_sizes`` and ``target_sizes`` are ``[B, 2]`` as ``(W, H)``
    and ``crop_coords`` ``[B, 2]`` as ``(top, left)``, all int64. ``sample_ids`` are
    ``"{dataset_id}:{path}"``. ``epoch`` counts from 1 and ``step`` is the 0-based global step.
    """

    latents: torch.Tensor
    text_embeds: dict[str, torch.Tensor]
    original_sizes: torch.Tensor
    crop_coords: torch.Tensor
    target_sizes: torch.Tensor
    captions: list[str]
    sample_ids: list[str]
    indices: list[int]
    dataset_id: str
    bucket: Bucket
    epoch: int
    step: int

    def __len__(self) -> int:
        return len(self.sample_ids)

    def to(self, device: torch.device | str, *, non_blocking: bool = False) -> Batch:
        """A copy with every tensor moved to ``device``."""
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> Batch:
        """A copy in pinned memory (``DataLoader(pin_memory=True)`` calls this)."""
        return self._map(lambda t: t.pin_memory())

    def _map(self, move: Callable[[torch.Tensor], torch.Tensor]) -> Batch:
        return attrs.evolve(
            self, latents=move(self.latents),
            text_embeds={k: move(v) for k, v in self.text_embeds.items()},
            original_sizes=move(self.original_sizes), crop_coords=move(self.crop_coords),
            target_sizes=move(self.target_sizes))


def _stack_embeds(samples: Sequence[Sample]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for name in samples[0].text_embeds:
        values = [s.text_embeds.get(name) for s in samples]
        if any(v is None for v in values):
            raise ValueError(f"text embedding {name!r} is missing for some samples")
        try:
            out[name] = _stack([v for v in values if v is not None])
        except ValueError as exc:
            raise ValueError(f"text embedding {name!r}: {exc}") from None
    return out


def _stack(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """``torch.stack`` as single-threaded copies (``np.stack``; bytes for bfloat16).

    ``torch.stack`` splits copies of this size over the intra-op thread pool, which the fetch
    thread would then contend for with the training step (and which stalls for milliseconds on
    a busy CPU); numpy's copy is single-threaded and releases the GIL.
    """
    first = tensors[0]
    if first.ndim == 0 or first.device.type != "cpu":
        return torch.stack(list(tensors))
    if first.dtype != torch.bfloat16:  # numpy has every other cached dtype
        arrays = [t.numpy() for t in tensors]
        if len({a.dtype for a in arrays}) == 1:
            try:
                return torch.from_numpy(np.stack(arrays))
            except ValueError:  # shapes differ
                pass
    if any(t.shape != first.shape or t.dtype != first.dtype for t in tensors):
        found = sorted({(tuple(t.shape), str(t.dtype)) for t in tensors})
        raise ValueError(f"shapes differ within one batch: {found}")
    out = torch.empty((len(tensors), *first.shape), dtype=first.dtype)
    dst = out.view(torch.uint8).numpy()
    for i, t in enumerate(tensors):
        dst[i] = t.contiguous().view(torch.uint8).numpy()
    return out


def collate(samples: Sequence[Sample], *, dataset_id: str, bucket: Bucket, indices: Sequence[int],
            epoch: int, step: int) -> Batch:
    """Stack ``samples`` (all from ``bucket`` of ``dataset_id``) into a :class:`Batch`."""
    if not samples:
        raise ValueError(f"dataset {dataset_id!r}: cannot collate an empty batch")
    try:
        latents = _stack([s.latents for s in samples])
    except ValueError as exc:
        raise ValueError(f"dataset {dataset_id!r} bucket {bucket[0]}x{bucket[1]} step {step}: "
                         f"latents: {exc}") from None
    try:
        embeds = _stack_embeds(samples)
    except ValueError as exc:
        raise ValueError(f"dataset {dataset_id!r} bucket {bucket[0]}x{bucket[1]} step {step}: "
                         f"{exc}") from None
    sizes = np.array([(*s.original_size, *s.crop_coordinates, *s.target_size)
                      for s in samples], dtype=np.int64).reshape(-1, 3, 2).transpose(1, 0, 2)
    original, crop, target = (torch.from_numpy(x) for x in sizes.copy())
    return Batch(latents=latents, text_embeds=embeds, original_sizes=original,
                 crop_coords=crop, target_sizes=target,
                 captions=[s.caption for s in samples],
                 sample_ids=[f"{dataset_id}:{s.path}" for s in samples],
                 indices=[int(i) for i in indices], dataset_id=dataset_id, bucket=bucket,
                 epoch=epoch, step=step)


def describe(batch: Batch) -> dict[str, Any]:
    """A short, printable summary of a batch (shapes, ids, bucket)."""
    return {"dataset": batch.dataset_id, "bucket": f"{batch.bucket[0]}x{batch.bucket[1]}",
            "epoch": batch.epoch, "step": batch.step, "size": len(batch),
            "latents": tuple(batch.latents.shape),
            "text_embeds": {k: tuple(v.shape) for k, v in batch.text_embeds.items()}}
