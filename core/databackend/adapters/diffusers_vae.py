"""A diffusers VAE as an :class:`~databackend.caches.ImageEncoder` (``databackend[diffusers]``).

One adapter serves ``AutoencoderKL`` and the video VAEs whose ``encode`` returns a latent
distribution (``AutoencoderKLWan``, ``AutoencoderKLHunyuanVideo``, ``AutoencoderKLLTXVideo``,
``AutoencoderKLCogVideoX``, ``AutoencoderKLMochi``, ...): images ``[B, 3, H, W]`` or videos
``[B, 3, T, H, W]`` in ``[-1, 1]`` go in, normalised latents come out:

* with per-channel ``latents_mean``/``latents_std`` (config or arguments):
  ``(z - mean) * scaling_factor / std`` (``scaling_factor`` 1 when the config has none);
* otherwise ``(z - shift_factor) * scaling_factor`` (shift 0 when absent).

``mode="mode"`` takes the distribution's mode (deterministic); ``mode="sample"`` draws
``mean + std * noise`` with noise from a generator seeded by ``(seed, sample key)`` for each
image, so a recompute of one sample gives the same latents whatever batch it is in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from databackend.adapters.identity import config_doc, digest, weights_fingerprint

if TYPE_CHECKING:
    import torch

__all__ = ["DiffusersVAE"]

_MODES = ("mode", "sample")


def _channel_vector(values: Any, like: torch.Tensor) -> torch.Tensor | None:
    import torch

    if values is None:
        return None
    vector = torch.as_tensor(values, dtype=torch.float32, device=like.device)
    return vector.reshape(1, -1, *([1] * (like.ndim - 2)))


class DiffusersVAE:
    """Encode pixels with a diffusers VAE.

    :param vae: the model (``AutoencoderKL.from_pretrained(...)`` or built from a config).
    :param mode: ``"mode"`` or ``"sample"`` of the latent distribution.
    :param seed: the base seed of ``sample`` mode.
    :param dtype: move the model to this dtype (a ``torch.dtype`` or its name); None keeps it.
    :param device: move the model to this device; None keeps it.
    :param slicing: ``enable_slicing()`` (one image at a time inside the model).
    :param tiling: ``enable_tiling()`` (tiled encode for very large images).
    :param scaling_factor: override the config's; likewise ``shift_factor``,
        ``latents_mean`` and ``latents_std``.
    :param revision: any string that should also change the identity (a model revision).
    """

    accepts_keys = True

    def __init__(self, vae: Any, *, mode: str = "mode", seed: int = 0, dtype: Any = None,
                 device: Any = None, slicing: bool = False, tiling: bool = False,
                 scaling_factor: float | None = None, shift_factor: float | None = None,
                 latents_mean: Sequence[float] | None = None,
                 latents_std: Sequence[float] | None = None, revision: str = "") -> None:
        """Prepare the model (device, dtype, eval, slicing/tiling) and compute the identity."""
        import torch

        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}; got {mode!r}")
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        if device is not None or dtype is not None:
            vae = vae.to(device=device, dtype=dtype)
        self.vae = vae.eval()
        if slicing:
            vae.enable_slicing()
        if tiling:
            vae.enable_tiling()
        config = vae.config
        self.mode, self.seed = mode, seed
        self.scaling_factor = _pick(scaling_factor, config, "scaling_factor", 1.0)
        self.shift_factor = _pick(shift_factor, config, "shift_factor", 0.0)
        self.latents_mean = _pick(latents_mean, config, "latents_mean", None)
        self.latents_std = _pick(latents_std, config, "latents_std", None)
        param = next(iter(vae.parameters()))
        self.device, self.input_dtype = param.device, param.dtype
        self.identity = self._identity(revision, slicing, tiling)

    def _identity(self, revision: str, slicing: bool, tiling: bool) -> str:
        name = type(self.vae).__name__
        doc = {"class": f"{type(self.vae).__module__}.{name}", "config": config_doc(self.vae.config),
               "weights": weights_fingerprint(self.vae.state_dict().items()),
               "dtype": str(self.input_dtype), "mode": self.mode, "revision": revision,
               "seed": self.seed if self.mode == "sample" else None, "tiling": tiling,
               "slicing": slicing, "scale": [self.scaling_factor, self.shift_factor,
                                             self.latents_mean, self.latents_std]}
        dtype = str(self.input_dtype).removeprefix("torch.")
        return f"diffusers:{name}:{self.mode}:{dtype}:{digest(doc)}"

    def _noise(self, like: torch.Tensor, keys: Sequence[str] | None) -> torch.Tensor:
        """Standard normal noise shaped like ``like``, one seeded generator per image."""
        import torch

        names = list(keys) if keys is not None else [str(n) for n in range(like.shape[0])]
        out = []
        for name in names:
            seed = int.from_bytes(hashlib.blake2b(f"{self.seed}:{name}".encode(),
                                                  digest_size=8).digest(), "little") >> 1
            gen = torch.Generator().manual_seed(seed)
            out.append(torch.randn(like.shape[1:], generator=gen, dtype=torch.float32))
        return torch.stack(out).to(like.device)

    def __call__(self, pixels: torch.Tensor, keys: Sequence[str] | None = None
                 ) -> torch.Tensor:
        """Latents of ``pixels`` (``[B, 3, H, W]`` or ``[B, 3, T, H, W]`` in [-1, 1]); ``keys``
        (one per image) seed ``sample`` mode."""
        import torch

        with torch.inference_mode():
            encoded = self.vae.encode(pixels.to(self.device, self.input_dtype))
            dist = getattr(encoded, "latent_dist", None)
            if dist is None:  # VAEs without a distribution (e.g. DC-AE) return latents
                z = (encoded.latent if hasattr(encoded, "latent") else encoded[0]).float()
            elif self.mode == "mode":
                z = dist.mode().float()
            else:
                z = dist.mean.float() + dist.std.float() * self._noise(dist.mean, keys)
            return self._normalise(z).to(self.input_dtype)

    def _normalise(self, z: torch.Tensor) -> torch.Tensor:
        mean = _channel_vector(self.latents_mean, z)
        std = _channel_vector(self.latents_std, z)
        out: torch.Tensor = ((z - mean) * self.scaling_factor / std
                             if mean is not None and std is not None
                             else (z - self.shift_factor) * self.scaling_factor)
        return out


def _pick(override: Any, config: Any, name: str, default: Any) -> Any:
    """The override, else the config's value (when set), else ``default``."""
    if override is not None:
        return override
    value = config.get(name) if hasattr(config, "get") else getattr(config, name, None)
    return default if value is None else value
