"""transformers text encoders as :class:`~databackend.caches.TextEncoder`\\ s
(``databackend[transformers]``).

:class:`TransformersTextEncoder` wraps one tokenizer + model (CLIP, T5, ...): captions are
padded to ``max_length`` and truncated, ``hidden_state`` picks the layer (None: the last
hidden state; ``-2``: the penultimate, as SDXL uses), and the pooled output is the model's
``text_embeds`` (projection models) or ``pooler_output`` when it has one.
:class:`TextEncoderSet` combines several into one embedding dict: SDXL's two CLIPs
(:meth:`TextEncoderSet.sdxl`) and Flux's CLIP + T5 (:meth:`TextEncoderSet.flux`).

Outputs (CPU tensors): ``prompt_embeds`` ``[B, L, D]``, ``attention_mask`` ``[B, L]`` and,
when there is one, ``pooled_prompt_embeds`` ``[B, D']``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from databackend.adapters.identity import config_doc, digest, weights_fingerprint

if TYPE_CHECKING:
    import torch

__all__ = ["TextEncoderSet", "TransformersTextEncoder", "tokenizer_fingerprint"]

_POOLED = ("auto", "text_embeds", "pooler_output", None)


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A digest of a tokenizer's class, vocabulary and special tokens."""
    hasher = hashlib.blake2b(digest_size=12)
    hasher.update(type(tokenizer).__name__.encode())
    for token, number in sorted(tokenizer.get_vocab().items()):
        hasher.update(f"{token}\0{number}\n".encode())
    hasher.update(repr(sorted(getattr(tokenizer, "special_tokens_map", {}).items())).encode())
    return hasher.hexdigest()


class TransformersTextEncoder:
    """Encode captions with a transformers tokenizer and model.

    :param tokenizer: the tokenizer (``AutoTokenizer.from_pretrained(...)``).
    :param model: the text model (``CLIPTextModel``, ``CLIPTextModelWithProjection``,
        ``T5EncoderModel``, ...).
    :param max_length: tokens per caption (None: the smallest of the tokenizer's
        ``model_max_length``, the model's ``max_position_embeddings`` and 512).
    :param hidden_state: None for ``last_hidden_state``, else an index into ``hidden_states``.
    :param pooled: ``"auto"``, ``"text_embeds"``, ``"pooler_output"`` or None (no pooled).
    :param dtype: / :param device: move the model there; None keeps it.
    :param revision: any string that should also change the identity.
    """

    def __init__(self, tokenizer: Any, model: Any, *, max_length: int | None = None,
                 hidden_state: int | None = None, pooled: str | None = "auto",
                 dtype: Any = None, device: Any = None, revision: str = "") -> None:
        """Prepare the model and compute the identity."""
        import torch

        if pooled not in _POOLED:
            raise ValueError(f"pooled must be one of {_POOLED}; got {pooled!r}")
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        if device is not None or dtype is not None:
            model = model.to(device=device, dtype=dtype)
        self.tokenizer, self.model = tokenizer, model.eval()
        limits = (getattr(tokenizer, "model_max_length", None),
                  getattr(model.config, "max_position_embeddings", None), 512)
        self.max_length = max_length or min(int(n) for n in limits if n)
        self.hidden_state, self.pooled = hidden_state, pooled
        param = next(iter(model.parameters()))
        self.device, self.dtype = param.device, param.dtype
        doc = {"class": f"{type(model).__module__}.{type(model).__name__}",
               "config": config_doc(model.config), "tokenizer": tokenizer_fingerprint(tokenizer),
               "weights": weights_fingerprint(model.state_dict().items()),
               "dtype": str(self.dtype), "max_length": self.max_length,
               "hidden_state": hidden_state, "pooled": pooled, "revision": revision}
        self.identity = (f"transformers:{type(model).__name__}:{self.max_length}:"
                         f"{str(self.dtype).removeprefix('torch.')}:{digest(doc)}")

    def _pooled(self, out: Any) -> torch.Tensor | None:
        names = ("text_embeds", "pooler_output") if self.pooled == "auto" else (self.pooled,)
        for name in names:
            if name is not None and getattr(out, name, None) is not None:
                return out[name]  # type: ignore[no-any-return]
        return None

    def __call__(self, captions: list[str]) -> dict[str, torch.Tensor]:
        """``prompt_embeds``, ``attention_mask`` and (when there is one) the pooled output."""
        import torch

        tokens = self.tokenizer(list(captions), padding="max_length", truncation=True,
                                max_length=self.max_length, return_tensors="pt")
        ids, mask = tokens["input_ids"].to(self.device), tokens["attention_mask"]
        with torch.inference_mode():
            out = self.model(input_ids=ids, output_hidden_states=self.hidden_state is not None)
        embeds = (out.last_hidden_state if self.hidden_state is None
                  else out.hidden_states[self.hidden_state])
        result = {"prompt_embeds": embeds.cpu(), "attention_mask": mask.cpu()}
        pooled = self._pooled(out)
        if pooled is not None:
            result["pooled_prompt_embeds"] = pooled.cpu()
        return result


class TextEncoderSet:
    """Several text encoders combined into one embedding dict.

    :param encoders: the members (any :class:`~databackend.caches.TextEncoder`).
    :param prompt: ``"concat"`` (every member's ``prompt_embeds`` joined on the last
        dimension, the first member's mask) or the index of the member that provides
        ``prompt_embeds`` and ``attention_mask``.
    :param pooled: the index of the member whose pooled output is used, or None.
    """

    def __init__(self, encoders: Sequence[Any], *, prompt: str | int = "concat",
                 pooled: int | None = -1) -> None:
        """Combine ``encoders``; the identity names every member's."""
        if not encoders:
            raise ValueError("a TextEncoderSet needs at least one encoder")
        self.encoders, self.prompt, self.pooled = list(encoders), prompt, pooled
        members = "+".join(e.identity for e in self.encoders)
        self.identity = f"set:{prompt}:{pooled}:{digest({'members': members})}"

    @classmethod
    def sdxl(cls, clip_l: Any, clip_g: Any) -> TextEncoderSet:
        """SDXL: penultimate states of both CLIPs concatenated, pooled from the second."""
        return cls([clip_l, clip_g], prompt="concat", pooled=1)

    @classmethod
    def flux(cls, clip: Any, t5: Any) -> TextEncoderSet:
        """Flux: ``prompt_embeds`` and mask from T5, pooled from CLIP."""
        return cls([clip, t5], prompt=1, pooled=0)

    def __call__(self, captions: list[str]) -> dict[str, torch.Tensor]:
        """Run every member and combine their outputs."""
        import torch

        outs = [encoder(captions) for encoder in self.encoders]
        if self.prompt == "concat":
            result = {"prompt_embeds": torch.cat([o["prompt_embeds"] for o in outs], dim=-1),
                      "attention_mask": outs[0]["attention_mask"]}
        else:
            chosen = outs[int(self.prompt)]
            result = {"prompt_embeds": chosen["prompt_embeds"],
                      "attention_mask": chosen["attention_mask"]}
        if self.pooled is not None:
            result["pooled_prompt_embeds"] = outs[self.pooled]["pooled_prompt_embeds"]
        return result
