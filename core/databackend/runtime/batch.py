"""Training batches: what a dataset source returns per sample, and how samples are stacked.

A :class:`DatasetSource` turns sample indices into :class:`Sample` records (cached latents, text
embeddings, geometry, caption, path); :func:`collate` stacks them into a :class:`Batch` of torch
tensors ready for a training step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs
import numpy as np
import torch

from databackend.conditioning.entry import ConditioningEntry

if TYPE_CHECKING:
    from databackend.audio.batch import AudioBatch
    from databackend.media.batch import VideoBatch

__all__ = ["Batch", "DatasetSource", "Sample", "collate", "stack_batch"]

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
    """Where the runtime reads one dataset: its buckets and its cached samples.

    A source may also define ``batch(indices, *, epoch, step, bucket) -> Batch`` to build a
    whole batch itself (as :class:`~databackend.runtime.source.CachedSource` does, with
    :func:`stack_batch`); the runtime then calls it instead of ``samples`` and :func:`collate`.
    """

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
    ``conditioning`` holds one :class:`ConditioningEntry` per linked conditioning dataset, in
    config order (empty without conditioning; see docs/conditioning.md). ``source_captions``
    holds the dataset's own captions when conditioning captions may replace them (prompt swap,
    docs/conditioning.md), else None.
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
    conditioning: tuple[ConditioningEntry, ...] = ()
    #: video datasets: frame counts, fps, windows, i2v first-frame latents (docs/video.md)
    video: VideoBatch | None = None
    #: audio datasets and the s2v audio of video batches (docs/audio.md)
    audio: AudioBatch | None = None
    source_captions: list[str] | None = None
    #: the samples' conditioning image embeddings, each encoder output stacked ``[B, ...]``,
    #: when the dataset sets ``conditioning_image_embeds`` (docs/conditioning.md), else None
    conditioning_image_embeds: dict[str, torch.Tensor] | None = None

    def __len__(self) -> int:
        return len(self.sample_ids)

    @property
    def conditioning_latents(self) -> list[Any]:
        """The ``latents`` of each conditioning entry that has them, in config order."""
        return [c.latents for c in self.conditioning if c.latents is not None]

    @property
    def conditioning_pixel_values(self) -> list[torch.Tensor]:
        """The ``pixels`` of each conditioning entry that has them, in config order."""
        return [c.pixels for c in self.conditioning if c.pixels is not None]

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
            target_sizes=move(self.target_sizes),
            conditioning=tuple(c.map(move) for c in self.conditioning),
            video=None if self.video is None else self.video.map(move),
            audio=None if self.audio is None else self.audio.map(move),
            conditioning_image_embeds=None if self.conditioning_image_embeds is None else
            {k: move(v) for k, v in self.conditioning_image_embeds.items()})


def _stack_embeds(embeds: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for name in embeds[0]:
        try:
            values = [e[name] for e in embeds]
        except KeyError:
            raise ValueError(f"text embedding {name!r} is missing for some samples") from None
        try:
            out[name] = _stack(values)
        except ValueError as exc:
            raise ValueError(f"text embedding {name!r}: {exc}") from None
    return out


def _stack(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """``torch.stack`` as single-threaded copies (``np.stack``; bytes for bfloat16).

    ``torch.stack`` splits copies of this size over the intra-op thread pool, which the fetch
    thread would then contend for with the training step (and which stalls for milliseconds on
    a busy CPU); numpy's copy is single-threaded and releases the GIL.
    """
    try:  # CPU tensors of one NumPy dtype and one shape, without autograd
        arrays = [t.numpy() for t in tensors]
        return torch.from_numpy(np.stack(arrays, dtype=arrays[0].dtype, casting="no"))
    except (TypeError, RuntimeError, ValueError):
        pass  # bfloat16, another device, autograd, or mixed dtypes or shapes: below
    first = tensors[0]
    if any(t.shape != first.shape or t.dtype != first.dtype for t in tensors):
        found = sorted({(tuple(t.shape), str(t.dtype)) for t in tensors})
        raise ValueError(f"shapes differ within one batch: {found}")
    if first.ndim == 0 or first.device.type != "cpu":
        return torch.stack(list(tensors))
    out = torch.empty((len(tensors), *first.shape), dtype=first.dtype)
    dst = out.view(torch.uint8).numpy()
    for i, t in enumerate(tensors):
        dst[i] = t.detach().contiguous().view(torch.uint8).numpy()
    return out


def _where(dataset_id: str, bucket: Bucket, step: int) -> str:
    return f"dataset {dataset_id!r} bucket {bucket[0]}x{bucket[1]} step {step}"


def stack_batch(latents: Sequence[torch.Tensor], text_embeds: Sequence[Mapping[str, torch.Tensor]],
                sizes: Sequence[Sequence[int]], *, captions: list[str], sample_ids: list[str],
                indices: list[int], dataset_id: str, bucket: Bucket, epoch: int, step: int
                ) -> Batch:
    """A :class:`Batch` from per-sample columns (what :func:`collate` does for samples).

    ``sizes`` holds one row per sample: original ``(W, H)``, crop ``(top, left)`` and target
    ``(W, H)``, six integers. A source that reads whole batches (the factory's
    :class:`~databackend.runtime.source.CachedSource`) calls this without making samples.
    """
    if not latents:
        raise ValueError(f"dataset {dataset_id!r}: cannot collate an empty batch")
    try:
        stacked = _stack(latents)
    except ValueError as exc:
        raise ValueError(f"{_where(dataset_id, bucket, step)}: latents: {exc}") from None
    try:
        embeds = _stack_embeds(text_embeds)
    except ValueError as exc:
        raise ValueError(f"{_where(dataset_id, bucket, step)}: {exc}") from None
    table = np.array(sizes, dtype=np.int64).reshape(-1, 3, 2).transpose(1, 0, 2).copy()
    return Batch(latents=stacked, text_embeds=embeds, original_sizes=torch.from_numpy(table[0]),
                 crop_coords=torch.from_numpy(table[1]), target_sizes=torch.from_numpy(table[2]),
                 captions=captions, sample_ids=sample_ids, indices=indices,
                 dataset_id=dataset_id, bucket=bucket, epoch=epoch, step=step)


def collate(samples: Sequence[Sample], *, dataset_id: str, bucket: Bucket, indices: Sequence[int],
            epoch: int, step: int) -> Batch:
    """Stack ``samples`` (all from ``bucket`` of ``dataset_id``) into a :class:`Batch`."""
    return stack_batch(
        [s.latents for s in samples], [s.text_embeds for s in samples],
        [(*s.original_size, *s.crop_coordinates, *s.target_size) for s in samples],
        captions=[s.caption for s in samples],
        sample_ids=[f"{dataset_id}:{s.path}" for s in samples],
        indices=[int(i) for i in indices], dataset_id=dataset_id, bucket=bucket, epoch=epoch,
        step=step)


def describe(batch: Batch) -> dict[str, Any]:
    """A short, printable summary of a batch (shapes, ids, bucket)."""
    key: tuple[int, ...] = batch.bucket
    bucket = f"{key[0]}x{key[1]}" + "".join(f"@{v}" for v in key[2:])
    return {"dataset": batch.dataset_id, "bucket": bucket,
            "epoch": batch.epoch, "step": batch.step, "size": len(batch),
            "latents": tuple(batch.latents.shape),
            "text_embeds": {k: tuple(v.shape) for k, v in batch.text_embeds.items()}}
