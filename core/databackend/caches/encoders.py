"""Encoder protocols (the trainer supplies the models) and CPU reference encoders.

The core never imports a model library: a trainer passes any object that satisfies
:class:`TextEncoder` or :class:`ImageEncoder`. Each has an ``identity`` string (model name,
revision, dtype, ...) that becomes part of every cache key, so changing the model makes old
entries misses instead of silently stale hits.

:class:`ReferenceTextEncoder` and :class:`ReferenceVAE` are deterministic **stand-ins** with
the output shapes of real encoders, for tests, benchmarks and the demo. They are not models.
"""

from __future__ import annotations

import hashlib
import importlib
import re
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

__all__ = ["ImageEncoder", "ReferenceTextEncoder", "ReferenceVAE", "TextEncoder",
           "load_encoder"]

_TOKEN = re.compile(r"\w+|[^\w\s]")


@runtime_checkable
class TextEncoder(Protocol):
    """Captions -> named tensors, batched (first dimension = number of captions).

    Typical outputs: ``prompt_embeds`` ``[B, 77, D]``, ``pooled_prompt_embeds`` ``[B, D']``,
    ``attention_mask`` ``[B, 77]``. ``identity`` names the model and everything that changes
    its output.
    """

    identity: str

    def __call__(self, captions: list[str]) -> dict[str, torch.Tensor]:
        """Encode a batch of captions."""


@runtime_checkable
class ImageEncoder(Protocol):
    """A VAE encoder: pixels ``[B, 3, H, W]`` in ``[-1, 1]`` -> latents ``[B, C, H/8, W/8]``."""

    identity: str

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        """Encode a batch of same-size images."""


def _generator(seed: int) -> torch.Generator:
    import torch

    return torch.Generator().manual_seed(seed)


class ReferenceTextEncoder:
    """A deterministic stand-in text encoder (not a model): hashed tokens -> embeddings.

    Words and punctuation are hashed (BLAKE2b) into a fixed-seed embedding table, plus
    position embeddings; ``attention_mask`` marks BOS, the tokens and EOS. With ``pooled`` set,
    ``pooled_prompt_embeds`` is the masked mean projected to ``pooled`` features.
    """

    def __init__(self, width: int = 768, seq_len: int = 77, pooled: int | None = None, *,
                 vocab: int = 4096, dtype: str = "float16", seed: int = 0) -> None:
        """Build the fixed-seed tables; ``dtype`` is the output dtype's name."""
        import torch

        gen = _generator(seed)
        self.width, self.seq_len, self.pooled, self.vocab = width, seq_len, pooled, vocab
        self.dtype = getattr(torch, dtype)
        self.table = torch.randn(vocab + 3, width, generator=gen)  # + pad, bos, eos
        self.positions = torch.randn(seq_len, width, generator=gen) * 0.1
        self.projection = (torch.randn(width, pooled, generator=gen) / width**0.5
                           if pooled else None)
        self.identity = (f"reference-text:v1:w{width}:s{seq_len}:p{pooled or 0}:"
                         f"v{vocab}:{dtype}:seed{seed}")

    def tokens(self, caption: str) -> list[int]:
        """BOS, hashed tokens (truncated to fit), EOS, then padding to ``seq_len``."""
        ids = [int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "little")
               % self.vocab for t in _TOKEN.findall(caption.lower())][: self.seq_len - 2]
        pad, bos, eos = self.vocab, self.vocab + 1, self.vocab + 2
        return [bos, *ids, eos] + [pad] * (self.seq_len - len(ids) - 2)

    def __call__(self, captions: list[str]) -> dict[str, torch.Tensor]:
        """``prompt_embeds`` [B, seq_len, width], ``attention_mask`` [B, seq_len], pooled."""
        import torch

        ids = torch.tensor([self.tokens(c) for c in captions], dtype=torch.long)
        mask = (ids != self.vocab).to(torch.int64)
        embeds = torch.tanh(self.table[ids] + self.positions)
        out = {"prompt_embeds": embeds.to(self.dtype), "attention_mask": mask}
        if self.projection is not None:
            weights = mask.unsqueeze(-1).to(embeds.dtype)
            mean = (embeds * weights).sum(1) / weights.sum(1)
            out["pooled_prompt_embeds"] = (mean @ self.projection).to(self.dtype)
        return out


class ReferenceVAE:
    """A deterministic stand-in VAE encoder (not a model) with a real VAE's output shape.

    Three fixed-seed 3x3 convolutions with stride 2 (3 -> 32 -> 64 -> ``channels``, SiLU
    between) map ``[B, 3, H, W]`` to ``[B, channels, H/8, W/8]``; ``channels`` is 4 (SD/SDXL)
    or 16 (SD3/Flux). Images are encoded one by one, so a result never depends on the batch.
    Cheap on a CPU for small images, yet costly enough at 1024 px that benchmarks measure a
    pipeline, not an empty function.
    """

    def __init__(self, channels: int = 4, *, dtype: str = "float16", seed: int = 0) -> None:
        """Build the fixed-seed convolutions; ``dtype`` is the latents' dtype name."""
        import torch

        if channels not in (4, 16):
            raise ValueError(f"channels must be 4 or 16; got {channels}")
        gen = _generator(seed)
        shapes = ((32, 3), (64, 32), (channels, 64))
        self.weights = [torch.randn(o, i, 3, 3, generator=gen) / (i * 9) ** 0.5
                        for o, i in shapes]
        self.channels, self.dtype = channels, getattr(torch, dtype)
        self.identity = f"reference-vae:v1:c{channels}:{dtype}:seed{seed}"

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        """Encode ``[B, 3, H, W]`` (H and W multiples of 8) to ``[B, C, H/8, W/8]``."""
        import torch
        from torch.nn import functional

        if pixels.ndim != 4 or pixels.shape[1] != 3 or pixels.shape[2] % 8 or pixels.shape[3] % 8:
            raise ValueError(f"pixels must be [B, 3, H, W] with H, W multiples of 8; "
                             f"got {tuple(pixels.shape)}")
        out = []
        with torch.inference_mode():
            for image in torch.split(pixels.float(), 1):  # one by one: batch-invariant
                x = image
                for n, weight in enumerate(self.weights):
                    x = functional.conv2d(x, weight, stride=2, padding=1)
                    if n < len(self.weights) - 1:
                        x = functional.silu(x)
                out.append(x)
        return torch.cat(out).to(self.dtype)


def load_encoder(spec: str, kind: str | None = None, **options: Any) -> Any:
    """Resolve a local model folder or ``module:callable`` (``pkg.mod:Factory`` or
    ``pkg.mod:obj.attr``).

    A folder in the ``save_pretrained`` layout (``config.json`` or ``model_index.json``)
    becomes an adapter (:func:`databackend.adapters.folders.load_folder`; ``kind`` is
    ``"image"`` or ``"text"``, ``options`` such as ``dtype``, ``device``, ``mode`` go to it).
    Otherwise an object that already has an ``identity`` is returned as is, or it is called
    with no arguments and the result returned. Raises ``ValueError`` for a malformed spec and
    ``ImportError``/``AttributeError`` when it names nothing.
    """
    from databackend.adapters.folders import is_model_folder, load_folder

    if is_model_folder(spec):
        if kind not in ("image", "text"):
            raise ValueError(f"encoder folder {spec!r}: say whether it is an image or a text "
                             "encoder (kind)")
        return load_folder(spec, kind, **options)
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"encoder {spec!r} must look like module:callable")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj if hasattr(obj, "identity") and not isinstance(obj, type) else obj()
