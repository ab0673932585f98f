"""Build an adapter from a local model folder (the ``save_pretrained`` layout).

* image: a diffusers model folder (``config.json`` with ``_class_name``) or a pipeline folder
  (``model_index.json``) whose ``vae/`` is one;
* text: a transformers model folder (``config.json`` with ``model_type``, tokenizer files beside
  it), or a pipeline folder: ``text_encoder``/``tokenizer`` alone (SD 1.x/2.x), with
  ``text_encoder_2``/``tokenizer_2`` a CLIP (SDXL: penultimate states concatenated, pooled from
  the second) or a T5 (Flux: T5 states, CLIP pooled).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from databackend.errors import ConfigError

__all__ = ["is_model_folder", "load_folder"]

_T5_TYPES = {"t5", "umt5", "mt5"}


def is_model_folder(spec: str) -> bool:
    """Whether ``spec`` names a folder with a ``config.json`` or ``model_index.json``."""
    path = Path(spec)
    return path.is_dir() and any((path / n).is_file() for n in ("config.json",
                                                                  "model_index.json"))


def _config(folder: Path) -> dict[str, Any]:
    try:
        found = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise ConfigError([f"model folder {str(folder)!r}: cannot read config.json: {exc}"]
                          ) from exc
    if not isinstance(found, dict):
        raise ConfigError([f"model folder {str(folder)!r}: config.json is not a JSON object"])
    return found


def _model_class(module: Any, name: Any) -> Any:
    """The public model class ``name`` of ``module`` (None unless it has ``from_pretrained``):
    a name from config.json never reaches anything else."""
    if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
        return None
    cls = getattr(module, name, None)
    return cls if isinstance(cls, type) and hasattr(cls, "from_pretrained") else None


def _dtype(options: dict[str, Any]) -> dict[str, Any]:
    """``torch_dtype`` for ``from_pretrained`` (loads in that dtype, keeping the modules a
    model wants in float32 there)."""
    import torch

    dtype = options.get("dtype")
    return {"torch_dtype": getattr(torch, dtype) if isinstance(dtype, str) else dtype} \
        if dtype else {}


def load_vae(folder: Path, **options: Any) -> Any:
    """A :class:`DiffusersVAE` from a diffusers model or pipeline folder."""
    import diffusers

    from databackend.adapters.diffusers_vae import DiffusersVAE

    if (folder / "model_index.json").is_file():
        folder = folder / "vae"
    name = _config(folder).get("_class_name")
    cls = _model_class(diffusers, name)
    if cls is None:
        raise ConfigError([f"image encoder folder {str(folder)!r}: config.json names no "
                           f"diffusers model class (_class_name={name!r})"])
    return DiffusersVAE(cls.from_pretrained(str(folder), **_dtype(options)), **options)


def _text_model(folder: Path, tokenizer_folder: Path, **options: Any) -> Any:
    import transformers

    from databackend.adapters.transformers_text import TransformersTextEncoder

    config = _config(folder)
    archs = config.get("architectures")
    arch = archs[0] if isinstance(archs, list) and archs else "AutoModel"
    cls = _model_class(transformers, arch) or transformers.AutoModel
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(tokenizer_folder))
    model = cls.from_pretrained(str(folder), **_dtype(options))
    return TransformersTextEncoder(tokenizer, model, **options)


def load_text(folder: Path, **options: Any) -> Any:
    """A text encoder (or a set) from a transformers model folder or a pipeline folder."""
    from databackend.adapters.transformers_text import TextEncoderSet

    if not (folder / "model_index.json").is_file():
        return _text_model(folder, folder, **options)
    first = folder / "text_encoder"
    second = folder / "text_encoder_2"
    if (folder / "text_encoder_3").is_dir():
        raise ConfigError([f"text encoder folder {str(folder)!r} has three text encoders (SD3); "
                           "build a TextEncoderSet in Python"])
    if not second.is_dir():
        return _text_model(first, folder / "tokenizer", **options)
    if _config(second).get("model_type") in _T5_TYPES:
        clip = _text_model(first, folder / "tokenizer", **options)
        t5 = _text_model(second, folder / "tokenizer_2", pooled=None, **options)
        return TextEncoderSet.flux(clip, t5)
    return TextEncoderSet.sdxl(
        _text_model(first, folder / "tokenizer", hidden_state=-2, pooled=None, **options),
        _text_model(second, folder / "tokenizer_2", hidden_state=-2, pooled="text_embeds",
                    **options))


def load_folder(spec: str, kind: str, **options: Any) -> Any:
    """The adapter for the model folder ``spec``; ``kind`` is ``"image"`` or ``"text"``.

    ``options``: ``dtype``, ``device`` for both; ``mode``, ``seed``, ``slicing``, ``tiling`` for
    VAEs (text encoders ignore them). Raises :class:`ConfigError` when the folder is not a model
    of that kind, ``ImportError`` when the library is not installed.
    """
    folder = Path(spec)
    if kind == "image":
        return load_vae(folder, **options)
    text_options = {k: v for k, v in options.items() if k in ("dtype", "device")}
    return load_text(folder, **text_options)
