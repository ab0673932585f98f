"""The audio encoder protocol (the trainer passes its audio VAE) and a deterministic stand-in.

An :class:`AudioEncoder` is a :class:`~databackend.media.encoders.MediaEncoder` with a fixed
input format: waveforms ``[B, channels, N]`` float32 in ``[-1, 1]`` at ``sample_rate`` ->
latents ``[B, D, T]``. ``identity`` names the model (it is part of every cache key);
``sample_rate`` and ``channels`` say what the cache resamples and mixes every clip to.

:class:`ReferenceAudioEncoder` is a **stand-in** (not a model): one fixed-seed strided 1-D
convolution (``hop`` samples per latent frame) and a tanh, clip by clip, so a result never
depends on the batch. For tests, benchmarks and the demo.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

__all__ = ["AudioEncoder", "ReferenceAudioEncoder", "latent_length"]


@runtime_checkable
class AudioEncoder(Protocol):
    """Waveforms ``[B, channels, N]`` at ``sample_rate`` -> latents ``[B, D, T]``."""

    identity: str
    sample_rate: int
    channels: int

    def __call__(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Encode a batch of same-length clips."""


def latent_length(valid: int, total: int, frames: int) -> int:
    """Latent frames that cover ``valid`` of ``total`` input samples encoded to ``frames``
    latent frames (the rest is zero padding)."""
    if total <= 0:
        return 0
    return min(frames, -(-valid * frames // total))


class ReferenceAudioEncoder:
    """A deterministic stand-in audio encoder (see the module docstring)."""

    def __init__(self, sample_rate: int = 16000, channels: int = 1, *, hop: int = 320,
                 dim: int = 8, dtype: str = "float16", seed: int = 0) -> None:
        """Build the fixed-seed kernel; ``hop`` samples per latent frame, ``dim`` features."""
        import torch

        if sample_rate < 1 or channels < 1 or hop < 1 or dim < 1:
            raise ValueError("sample_rate, channels, hop and dim must be >= 1")
        gen = torch.Generator().manual_seed(seed)
        self.kernel = torch.randn(dim, channels, hop, generator=gen) / (channels * hop) ** 0.5
        self.sample_rate, self.channels, self.hop, self.dim = sample_rate, channels, hop, dim
        self.dtype = getattr(torch, dtype)
        self.identity = (f"reference-audio:v1:sr{sample_rate}:c{channels}:h{hop}:d{dim}:"
                         f"{dtype}:seed{seed}")

    def __call__(self, waveforms: torch.Tensor) -> torch.Tensor:
        """``[B, channels, N]`` -> ``[B, dim, ceil(N / hop)]`` (the tail zero-padded)."""
        import torch
        from torch.nn import functional

        if waveforms.ndim != 3 or waveforms.shape[1] != self.channels:
            raise ValueError(f"waveforms must be [B, {self.channels}, N]; got "
                             f"{tuple(waveforms.shape)}")
        pad = -waveforms.shape[2] % self.hop
        out = []
        with torch.inference_mode():
            for clip in torch.split(waveforms.float(), 1):
                x = functional.pad(clip, (0, pad))
                out.append(torch.tanh(functional.conv1d(x, self.kernel, stride=self.hop)))
        return torch.cat(out).to(self.dtype)
