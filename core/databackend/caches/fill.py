"""The latent fill's encoder side: uint8 batches to the encoder's device, OOM halving, timing.

Pixels travel as ``[H, W, 3]`` uint8 from the decoders; :func:`device_pixels` stacks a batch
(in pinned memory when the encoder is on CUDA, copied with ``non_blocking``) and normalises it
to ``[-1, 1]`` on the encoder's device, in the encoder's ``input_dtype`` (float32 unless the
encoder says otherwise; ``torch.uint8``: not normalised, the encoder gets ``[B, 3, H, W]`` uint8
in channels-last memory and normalises itself, e.g. fused into its first layer).
:class:`EncodeRunner` calls the encoder; an out-of-memory error halves the batch and retries
(down to one image), and later batches stay at the reduced size.

Optional encoder attributes the fill reads: ``device`` (a ``torch.device`` or string),
``input_dtype`` (a ``torch.dtype``), ``accepts_keys`` (True: called as
``encoder(pixels, keys=[...])`` with one stable key per image, for per-sample seeding).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    import torch

__all__ = ["EncodeRunner", "FillTimes", "device_pixels", "is_oom", "normalise"]


@attrs.define
class FillTimes:
    """Counters of one fill: seconds inside the encoder, seconds the encoder side waited for
    decoded pixels (``first_wait_seconds`` of them for the first batch, the pipeline's
    start-up), out-of-memory retries, images encoded."""

    encode_seconds: float = 0.0
    wait_seconds: float = 0.0
    first_wait_seconds: float | None = None
    oom_retries: int = 0
    images: int = 0


def normalise(u8: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``[B, H, W, 3]`` uint8 -> contiguous ``[B, 3, H, W]`` in ``[-1, 1]`` (float32 math, the
    same values as :func:`databackend.caches.imaging.to_pixels`), cast to ``dtype``;
    ``dtype=torch.uint8``: the ``[B, 3, H, W]`` view of ``u8`` as it is (channels-last)."""
    import torch

    if dtype == torch.uint8:
        return u8.permute(0, 3, 1, 2)
    pixels = u8.permute(0, 3, 1, 2).contiguous().to(torch.float32)
    pixels *= 1 / 127.5
    pixels -= 1.0
    return pixels if dtype is None or dtype == torch.float32 else pixels.to(dtype)


def _device(encoder: Any) -> torch.device:
    import torch

    return torch.device(getattr(encoder, "device", None) or "cpu")


def device_pixels(arrays: Sequence[Any], encoder: Any) -> torch.Tensor:
    """Stack same-size ``[H, W, 3]`` uint8 arrays and normalise them on the encoder's device."""
    import numpy as np
    import torch

    device = _device(encoder)
    if device.type == "cuda":
        first = arrays[0]
        host = torch.empty((len(arrays), *first.shape), dtype=torch.uint8, pin_memory=True)
        for n, array in enumerate(arrays):
            host[n].copy_(torch.from_numpy(np.ascontiguousarray(array)))
        u8 = host.to(device, non_blocking=True)
    else:
        u8 = torch.from_numpy(np.stack(arrays))
    return normalise(u8, getattr(encoder, "input_dtype", None))


def is_oom(exc: BaseException) -> bool:
    """Whether ``exc`` is an out-of-memory error of torch (CUDA or other devices)."""
    import torch

    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    return isinstance(exc, (RuntimeError, MemoryError)) and "out of memory" in str(exc).lower()


def _free(encoder: Any) -> None:
    import torch

    if _device(encoder).type == "cuda":
        torch.cuda.empty_cache()


class EncodeRunner:
    """Calls an image encoder on uint8 batches: device transfer, OOM halving, timing.

    :param encoder: the image encoder.
    :param check: ``check(out, count)`` validates an encoder output for ``count`` images.
    """

    def __init__(self, encoder: Any, check: Callable[[Any, int], None]) -> None:
        """Bind the encoder; ``times`` collects the counters."""
        self.encoder, self.check = encoder, check
        self.times = FillTimes()
        self.cap: int | None = None  # batch size after an out-of-memory error
        self.accepts_keys = bool(getattr(encoder, "accepts_keys", False))

    def __call__(self, arrays: Sequence[Any], keys: Sequence[str]) -> list[torch.Tensor]:
        """Latents ``[C, h, w]`` (CPU) of each array, in order."""
        out: list[torch.Tensor] = []
        step = self.cap or len(arrays)
        for n in range(0, len(arrays), step):
            out += self._retrying(arrays[n:n + step], keys[n:n + step])
        return out

    def _retrying(self, arrays: Sequence[Any], keys: Sequence[str]) -> list[torch.Tensor]:
        try:
            return self._once(arrays, keys)
        except Exception as exc:
            if not is_oom(exc) or len(arrays) < 2:
                raise
        _free(self.encoder)
        self.times.oom_retries += 1
        half = len(arrays) // 2
        self.cap = min(self.cap or half, half)
        return self._retrying(arrays[:half], keys[:half]) + self._retrying(arrays[half:],
                                                                           keys[half:])

    def _once(self, arrays: Sequence[Any], keys: Sequence[str]) -> list[torch.Tensor]:
        start = time.perf_counter()
        pixels = device_pixels(arrays, self.encoder)
        out = (self.encoder(pixels, keys=list(keys)) if self.accepts_keys
               else self.encoder(pixels))
        self.check(out, len(arrays))
        latents = list(out.detach().cpu())
        self.times.encode_seconds += time.perf_counter() - start
        self.times.images += len(arrays)
        return latents
