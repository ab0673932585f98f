"""Audio in the runtime: batches of an audio dataset, and audio attached to video batches.

:class:`AudioSource` is the :class:`~databackend.runtime.source.CachedSource` of an audio
dataset: ``Batch.latents`` ``[B, D, T]`` (one duration bucket, so one ``T``) and
``Batch.audio`` (:class:`~databackend.audio.batch.AudioBatch`: latent ``lengths`` and
``lyrics``). The size fields hold SimpleTuner's placeholders: ``original_sizes`` = (clip
samples, channels), ``target_sizes`` = (bucket samples, channels), native rate.

:class:`S2VSource` wraps a video dataset's source and attaches the audio of each clip from its
``s2v_datasets`` (SimpleTuner's s2v pairing) as ``Batch.audio`` with ``latents``, ``lengths``
and ``mask``. A clip's audio is the audio dataset's sample with the same path
(``source_from_video``), else the one with the same relative path and stem (subfolders kept,
unlike SimpleTuner, which flattens them).
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from databackend.audio.batch import AudioBatch
from databackend.audio.config import settings_of
from databackend.audio.encoders import latent_length
from databackend.audio.lyrics import lyrics_format, read_lyrics
from databackend.runtime.batch import Batch, Sample
from databackend.runtime.source import CachedSource

if TYPE_CHECKING:
    import torch

__all__ = ["AudioSource", "S2VSource", "pad_stack"]

Bucket = Any


def pad_stack(latents: Sequence[torch.Tensor | None], lengths: Sequence[int]
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """``([B, D, T_max], lengths [B])``: latents zero-padded along time (None: all zeros)."""
    import torch

    first = next(t for t in latents if t is not None)
    longest = max(int(t.shape[-1]) for t in latents if t is not None)
    out = torch.zeros((len(latents), *first.shape[:-1], longest), dtype=first.dtype)
    for k, t in enumerate(latents):
        if t is not None:
            out[k, ..., :t.shape[-1]] = t
    return out, torch.tensor(list(lengths), dtype=torch.int64)


class AudioSource(CachedSource):
    """Batches of one audio dataset (see the module docstring)."""

    def __init__(self, dataset_id: str, index: Any, latents: Any, texts: Any, *,
                 seed: int = 0, buckets: Mapping[Any, np.ndarray] | None = None,
                 first_frames: Any = None) -> None:
        """As :class:`CachedSource` (``first_frames`` is accepted for the media signature)."""
        super().__init__(dataset_id, index, latents, texts, seed=seed, buckets=buckets)
        self._lyrics: list[str | None] | None = None
        #: the :class:`~databackend.audio.cache.AudioLatentCache` (``latents``)
        self.cache: Any = latents

    def lyrics(self, i: int) -> str | None:
        """Clip ``i``'s lyrics sidecar (read through the storage once, for every clip)."""
        if self._lyrics is None:
            meta: Any = self.cache.source
            settings = settings_of(meta.dataset)
            fmt = lyrics_format(settings, model_family=meta.context.options.model_family,
                                caption_strategy=meta.caption_settings.strategy)
            self._lyrics = read_lyrics(meta.storage, list(self.index.paths), settings, fmt)
        return self._lyrics[i]

    def lengths(self, indices: Sequence[int], frames: int) -> list[int]:
        """Latent frames of each clip that are audio, of ``frames``."""
        cache = self.cache
        rate = int(cache.encoder.sample_rate) if cache.encoder is not None else 1
        return [latent_length(cache.valid(i, rate), cache.total(i, rate), frames)
                if cache.encoder is not None else frames for i in indices]

    def batch(self, indices: list[int], *, epoch: int, step: int, bucket: Any) -> Batch:
        """The stacked batch with ``Batch.audio`` (lengths and lyrics)."""
        import torch

        batch = super().batch(indices, epoch=epoch, step=step, bucket=bucket)
        lengths = torch.tensor(self.lengths(indices, int(batch.latents.shape[-1])),
                               dtype=torch.int64)
        table: Any = self.index
        window = torch.from_numpy(np.asarray(table.window_table)[indices, :2]
                                  .astype(np.int64))
        return attrs.evolve(batch, audio=AudioBatch(
            lengths=lengths, lyrics=[self.lyrics(i) for i in indices], window=window))


class S2VSource:
    """A video dataset's source with the audio of its ``s2v_datasets`` attached."""

    def __init__(self, inner: Any, audio: Sequence[AudioSource]) -> None:
        """``inner`` is the video source; ``audio`` the paired audio sources, in order (the
        first one that has a clip's audio gives it)."""
        self.inner, self.audio = inner, list(audio)
        self.dataset_id: str = inner.dataset_id
        self._stems: list[dict[str, int] | None] = [None] * len(self.audio)

    def buckets(self) -> Mapping[Bucket, np.ndarray]:
        """The video source's buckets."""
        return self.inner.buckets()  # type: ignore[no-any-return]

    def samples(self, indices: Sequence[int], *, epoch: int, step: int) -> list[Sample]:
        """The video source's samples (audio is attached to whole batches)."""
        return self.inner.samples(indices, epoch=epoch, step=step)  # type: ignore[no-any-return]

    def find(self, video_path: str) -> tuple[AudioSource, int] | None:
        """The audio source and clip index paired with ``video_path``, or None."""
        stem = posixpath.splitext(video_path)[0]
        for k, source in enumerate(self.audio):
            index: Any = source.index
            pos = index.position(video_path)
            if pos is None:
                pos = self._stem_table(k).get(stem)
            if pos is not None:
                return source, int(pos)
        return None

    def _stem_table(self, k: int) -> dict[str, int]:
        """Stem -> first clip of audio source ``k`` (built once, on the first lookup by
        stem; a per-batch scan of every path cost O(clips) per sample)."""
        table = self._stems[k]
        if table is None:
            table = {}
            for pos, path in enumerate(self.audio[k].index.paths):
                table.setdefault(posixpath.splitext(str(path))[0], pos)
            self._stems[k] = table
        return table

    def batch(self, indices: list[int], *, epoch: int, step: int, bucket: Any) -> Batch:
        """The video batch with ``Batch.audio`` (``latents``, ``lengths``, ``mask``)."""
        import torch

        batch: Batch = self.inner.batch(indices, epoch=epoch, step=step, bucket=bucket)
        pairs = [self.find(s.split(":", 1)[1]) for s in batch.sample_ids]
        latents: list[torch.Tensor | None] = []
        lengths: list[int] = []
        for pair in pairs:
            if pair is None:
                latents.append(None)
                lengths.append(0)
                continue
            source, i = pair
            found = source.cache.tensors([i])[0]
            latents.append(found)
            lengths.append(source.lengths([i], int(found.shape[-1]))[0])
        mask = torch.tensor([p is not None for p in pairs], dtype=torch.int64)
        if not any(t is not None for t in latents):
            return attrs.evolve(batch, audio=AudioBatch(lengths=torch.zeros_like(mask),
                                                        mask=mask))
        stacked, lens = pad_stack(latents, lengths)
        return attrs.evolve(batch, audio=AudioBatch(lengths=lens, latents=stacked, mask=mask))
