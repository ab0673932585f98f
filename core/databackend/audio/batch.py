"""What an audio batch carries besides its latents, and the audio attached to video batches.

:class:`AudioBatch` is ``Batch.audio``:

* batches of an audio dataset: ``lengths`` ``[B]`` (latent frames that are audio, not the
  zero padding of clips shorter than their bucket) and ``lyrics``; the latents themselves
  are ``Batch.latents`` ``[B, D, T]``, and ``window`` ``[B, 2]`` is the (start, length) each
  clip was cut at, in its native samples;
* batches of a video dataset with ``s2v_datasets``: ``latents`` ``[B, D, T]`` (the paired
  audio, zero-padded to the longest in the batch), ``lengths`` and ``mask`` ``[B]`` (1 where
  the clip has audio; 0 where it has none and its latents are zeros).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    import torch

__all__ = ["AudioBatch"]


@attrs.frozen(kw_only=True)
class AudioBatch:
    """Per-sample audio values of one batch (see the module docstring)."""

    lengths: torch.Tensor
    lyrics: list[str | None] | None = None
    window: torch.Tensor | None = None
    latents: torch.Tensor | None = None
    mask: torch.Tensor | None = None

    def map(self, move: Callable[[torch.Tensor], torch.Tensor]) -> AudioBatch:
        """A copy with every tensor passed through ``move`` (device moves, pinning)."""
        return attrs.evolve(self, lengths=move(self.lengths),
                            window=None if self.window is None else move(self.window),
                            latents=None if self.latents is None else move(self.latents),
                            mask=None if self.mask is None else move(self.mask))
