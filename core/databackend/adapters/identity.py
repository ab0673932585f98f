"""Encoder identities derived from what changes the output: class, config, weights, dtype.

:func:`weights_fingerprint` hashes every tensor's name, dtype and shape plus a fixed sample of
its values (:data:`SAMPLES` evenly spaced elements, first and last included), so computing it
reads a few kilobytes per tensor, never every byte of a multi-gigabyte model. Fine-tuning
moves (nearly) every element of the tensors it touches, so swapped weights change the
fingerprint; an edit confined to elements between the sampled ones would not (name a
``revision`` in the adapter for such weights).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["SAMPLES", "config_doc", "digest", "weights_fingerprint"]

#: Elements sampled per tensor.
SAMPLES = 64
#: Config keys that name where or with what a model was saved, not what it computes.
_VOLATILE = {"_name_or_path", "_diffusers_version", "transformers_version", "torch_dtype",
             "dtype", "_commit_hash", "_use_default_values"}


def config_doc(config: Any) -> dict[str, Any]:
    """A model config (diffusers ``FrozenDict`` or transformers ``PretrainedConfig``) as a
    plain dict without the keys that do not change outputs (paths, versions, dtype)."""
    raw = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    return {k: v for k, v in raw.items() if k not in _VOLATILE}


def _sample(tensor: Any) -> bytes:
    import torch

    flat = tensor.detach().reshape(-1)
    count = flat.numel()
    if count == 0:
        return b""
    picks = torch.linspace(0, count - 1, min(count, SAMPLES), device=flat.device).long()
    return bytes(flat[picks].to("cpu", torch.float64).numpy().tobytes())


def weights_fingerprint(named_tensors: Iterable[tuple[str, Any]]) -> str:
    """BLAKE2b over each tensor's name, dtype, shape and :data:`SAMPLES` sampled values."""
    hasher = hashlib.blake2b(digest_size=16)
    for name, tensor in named_tensors:
        hasher.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        hasher.update(_sample(tensor))
    return hasher.hexdigest()


def digest(parts: Mapping[str, Any]) -> str:
    """A short hex digest of a JSON document (sorted keys; unknown values as ``str``)."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()
