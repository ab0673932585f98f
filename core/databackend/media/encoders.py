"""Media encoder protocols (the trainer passes the models) and a deterministic video stand-in.

Every encoder has an ``identity`` string that names the model and everything that changes its
output; it is part of each cache key. :class:`MediaEncoder` is the common shape (one batched
call, a tensor out); :class:`VideoEncoder` fixes the video layout. An audio encoder is another
:class:`MediaEncoder` (waveforms in, latents out) with its own layout documented beside it.

:class:`ReferenceVideoVAE` is a **stand-in** (not a model) with a causal video VAE's shapes:
the first frame alone, then every ``temporal`` frames, each encoded spatially by the image
stand-in :class:`~databackend.caches.encoders.ReferenceVAE`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

__all__ = ["MediaEncoder", "ReferenceVideoVAE", "VideoEncoder", "latent_frames"]


@runtime_checkable
class MediaEncoder(Protocol):
    """One batched call from media tensors to latents; ``identity`` goes into cache keys."""

    identity: str

    def __call__(self, media: torch.Tensor) -> torch.Tensor:
        """Encode a batch of same-shape media tensors."""


@runtime_checkable
class VideoEncoder(Protocol):
    """Frames ``[B, 3, F, H, W]`` in ``[-1, 1]`` -> latents ``[B, C, F', h, w]``."""

    identity: str

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """Encode a batch of same-size clips."""


def latent_frames(frames: int, temporal: int) -> int:
    """``F'`` of a causal video VAE: the first frame alone, then one per ``temporal`` frames
    (a partial last group counts)."""
    return 1 + -(-(frames - 1) // temporal) if frames > 0 else 0


class ReferenceVideoVAE:
    """A deterministic stand-in video VAE (see the module docstring).

    Output ``[B, channels, latent_frames(F, temporal), H/8, W/8]``; clips are encoded one by
    one, so a result never depends on the batch.
    """

    def __init__(self, channels: int = 16, *, temporal: int = 4, dtype: str = "float16",
                 seed: int = 0) -> None:
        """``channels`` 4 or 16; ``temporal`` frames per latent frame after the first."""
        from databackend.caches.encoders import ReferenceVAE

        if temporal < 1:
            raise ValueError(f"temporal must be >= 1; got {temporal}")
        self.image = ReferenceVAE(channels, dtype="float32", seed=seed)
        self.temporal, self.channels = temporal, channels
        import torch

        self.dtype = getattr(torch, dtype)
        self.identity = f"reference-video-vae:v1:c{channels}:t{temporal}:{dtype}:seed{seed}"

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """Encode ``[B, 3, F, H, W]`` (H, W multiples of 8) to ``[B, C, F', H/8, W/8]``."""
        import torch

        if frames.ndim != 5 or frames.shape[1] != 3:
            raise ValueError(f"frames must be [B, 3, F, H, W]; got {tuple(frames.shape)}")
        out = []
        for clip in torch.split(frames.float(), 1):
            per_frame = self.image(clip[0].permute(1, 0, 2, 3))  # [F, C, h, w]
            groups = [per_frame[:1]] + [
                per_frame[s:s + self.temporal].mean(0, keepdim=True)
                for s in range(1, per_frame.shape[0], self.temporal)]
            out.append(torch.cat(groups).permute(1, 0, 2, 3))  # [C, F', h, w]
        return torch.stack(out).to(self.dtype)
