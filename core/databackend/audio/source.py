"""Audio in the runtime: batches of an audio dataset, and audio attached to video batches.

:class:`AudioSource` is the runtime source of an audio dataset. Its :class:`Batch` has
``latents`` ``[B, D, T]`` (one duration bucket, so one ``T``), ``audio_lengths`` ``[B]`` (latent
frames that are audio, not padding), ``lyrics``, and SimpleTuner's placeholders for the size
fields: ``original_sizes`` = (clip samples, channels), ``crop_coords`` = (window start, 0),
``target_sizes`` = (bucket samples, channels), all in native samples.

:class:`S2VSource` wraps a video dataset's source and attaches the audio of each clip from its
``s2v_datasets`` (SimpleTuner's s2v pairing): ``audio_latents`` ``[B, D, T]`` (zero-padded to the
longest in the batch), ``audio_lengths`` and ``audio_mask`` ``[B]`` (1 where the clip has audio,
0 where it has none: its latents are zeros). A clip's audio is the audio dataset's sample with
the same path (``source_from_video``), else the one with the same relative path and stem
(subfolders kept, unlike SimpleTuner, which flattens them).
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import numpy as np

from databackend.audio.encoders import latent_length
from databackend.runtime.batch import Batch, Sample, stack_batch
from databackend.runtime.seeding import uniform

if TYPE_CHECKING:
    import torch

    from databackend.audio.cache import AudioCache, AudioLatent
    from databackend.audio.metadata import AudioMetadataBackend

__all__ = ["AudioSource", "S2VSource", "pad_stack"]

Bucket = tuple[int, int]


class _Texts(Protocol):
    def get_many(self, captions: Sequence[str]) -> list[Any]:
        """Embeddings of ``captions``."""


def pad_stack(items: Sequence[AudioLatent]) -> tuple[torch.Tensor, torch.Tensor]:
    """``([B, D, T_max], lengths [B])``: latents zero-padded along time, and the latent frames
    of each that are audio."""
    import torch

    longest = max(int(a.latents.shape[-1]) for a in items)
    out = torch.zeros((len(items), *items[0].latents.shape[:-1], longest),
                      dtype=items[0].latents.dtype)
    lengths = []
    for k, a in enumerate(items):
        t = int(a.latents.shape[-1])
        out[k, ..., :t] = a.latents
        lengths.append(latent_length(a.valid, a.total, t))
    return out, torch.tensor(lengths, dtype=torch.int64)


class AudioSource:
    """Batches of one audio dataset from its index, audio cache and text cache."""

    def __init__(self, dataset_id: str, meta: AudioMetadataBackend, cache: AudioCache,
                 texts: _Texts, *, seed: int = 0) -> None:
        """Bind the parts; nothing is read until a batch is asked for."""
        self.dataset_id, self.meta, self.cache, self.texts = dataset_id, meta, cache, texts
        self.seed = seed
        #: buckets to use instead of the index's (clips that failed to load left out)
        self.override: Mapping[Bucket, np.ndarray] | None = None

    def buckets(self) -> Mapping[Bucket, np.ndarray]:
        """``(bucket ms, 0) -> clip indices``."""
        return self.override if self.override is not None else self.meta.index.buckets()

    def caption(self, i: int, *, epoch: int, step: int) -> str:
        """The caption clip ``i`` uses at ``(epoch, step)`` (one of several: a pure function
        of the seed, dataset, epoch, step and clip)."""
        caps = self.meta.index.captions_of(i)
        if len(caps) <= 1:
            return caps[0] if caps else ""
        return caps[int(uniform(self.seed, "caption", self.dataset_id, epoch, step, i)
                        * len(caps))]

    def _sizes(self, i: int) -> tuple[int, int, int, int, int, int]:
        row, plan = self.meta.index.row(i), self.cache.plan(i)
        bucket = round(plan.bucket_ms * row.sample_rate / 1000)
        return (row.frames, row.channels, plan.window.start, 0, bucket, row.channels)

    def samples(self, indices: Sequence[int], *, epoch: int, step: int) -> list[Sample]:
        """One :class:`Sample` per clip (latents ``[D, T]``)."""
        captions = [self.caption(i, epoch=epoch, step=step) for i in indices]
        latents = self.cache.get_many(indices)
        embeds = self.texts.get_many(captions)
        out = []
        for i, a, e, c in zip(indices, latents, embeds, captions, strict=True):
            s = self._sizes(i)
            out.append(Sample(latents=a.latents, text_embeds=e, original_size=s[0:2],
                              crop_coordinates=s[2:4], target_size=s[4:6], caption=c,
                              path=self.meta.index.paths[i]))
        return out

    def batch(self, indices: list[int], *, epoch: int, step: int, bucket: Bucket) -> Batch:
        """The stacked batch of ``indices`` with their latent lengths and lyrics."""
        captions = [self.caption(i, epoch=epoch, step=step) for i in indices]
        found = self.cache.get_many(indices)
        latents, lengths = pad_stack(found)
        rows = [self.meta.index.row(i) for i in indices]
        batch = stack_batch(
            list(latents), self.texts.get_many(captions), [self._sizes(i) for i in indices],
            captions=captions, sample_ids=[f"{self.dataset_id}:{r.path}" for r in rows],
            indices=list(indices), dataset_id=self.dataset_id, bucket=bucket, epoch=epoch,
            step=step)
        return attrs.evolve(batch, audio_lengths=lengths, lyrics=[r.lyrics for r in rows])


class S2VSource:
    """A video dataset's source with the audio of its ``s2v_datasets`` attached."""

    def __init__(self, inner: Any, audio: Sequence[AudioSource]) -> None:
        """``inner`` is the video source; ``audio`` the paired audio sources, in order (the
        first one that has a clip's audio gives it)."""
        self.inner, self.audio = inner, list(audio)
        self.dataset_id: str = inner.dataset_id

    def buckets(self) -> Mapping[Bucket, np.ndarray]:
        """The video source's buckets."""
        return self.inner.buckets()  # type: ignore[no-any-return]

    def samples(self, indices: Sequence[int], *, epoch: int, step: int) -> list[Sample]:
        """The video source's samples (audio is attached to whole batches)."""
        return self.inner.samples(indices, epoch=epoch, step=step)  # type: ignore[no-any-return]

    def find(self, video_path: str) -> tuple[AudioSource, int] | None:
        """The audio source and clip index paired with ``video_path``, or None."""
        stem = posixpath.splitext(video_path)[0]
        for source in self.audio:
            index = source.meta.index
            pos = index.position(video_path)
            if pos is None:
                pos = next((index.position(p) for p in index.paths
                            if posixpath.splitext(p)[0] == stem), None)
            if pos is not None:
                return source, pos
        return None

    def batch(self, indices: list[int], *, epoch: int, step: int, bucket: Bucket) -> Batch:
        """The video batch with ``audio_latents``, ``audio_lengths`` and ``audio_mask``."""
        import torch

        batch: Batch = self.inner.batch(indices, epoch=epoch, step=step, bucket=bucket)
        paths = [s.split(":", 1)[1] for s in batch.sample_ids]
        pairs = [self.find(p) for p in paths]
        found = [None if pair is None else pair[0].cache.get_many([pair[1]])[0]
                 for pair in pairs]
        present = [f for f in found if f is not None]
        mask = torch.tensor([f is not None for f in found], dtype=torch.int64)
        if not present:
            return attrs.evolve(batch, audio_mask=mask)
        zero = present[0]._replace(latents=present[0].latents.new_zeros(
            present[0].latents.shape), valid=0)
        latents, lengths = pad_stack([f if f is not None else zero for f in found])
        return attrs.evolve(batch, audio_latents=latents, audio_lengths=lengths,
                            audio_mask=mask)
