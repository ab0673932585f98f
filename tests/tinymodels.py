"""Tiny diffusers and transformers models built from configs (random weights, tokenizers
written here; no downloads), saved with ``save_pretrained`` for the adapter tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def tiny_vae(**config: Any) -> Any:
    """An ``AutoencoderKL`` with four blocks (8x downsampling) and a few channels."""
    from diffusers import AutoencoderKL

    torch.manual_seed(config.pop("seed", 0))
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4,
                         down_block_types=("DownEncoderBlock2D",) * 4,
                         up_block_types=("UpDecoderBlock2D",) * 4,
                         block_out_channels=(4, 8, 8, 8), norm_num_groups=4, layers_per_block=1,
                         sample_size=64, **config)


def clip_tokenizer(folder: Path) -> Any:
    """A CLIP BPE tokenizer over single letters (vocab and merges written to ``folder``)."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in LETTERS:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))


def word_tokenizer() -> Any:
    """A tokenizers-library word-level tokenizer (letters and a few words), as a fast
    transformers tokenizer with T5's special tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = ["<pad>", "</s>", "<unk>", "a", "photo", "of", "cat", "dog", *LETTERS]
    tok = Tokenizer(models.WordLevel({w: n for n, w in enumerate(dict.fromkeys(words))},
                                     unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>",
                                                       special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>", model_max_length=16)


def clip_model(projection: bool, seed: int = 0) -> Any:
    """A two-layer CLIP text model (with projection: ``text_embeds``)."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    config = CLIPTextConfig(vocab_size=2 + 2 * len(LETTERS), hidden_size=32,
                            intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                            max_position_embeddings=16, projection_dim=24, bos_token_id=0,
                            eos_token_id=1, pad_token_id=1)
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def t5_model() -> Any:
    """A one-layer T5 encoder."""
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(1)
    return T5EncoderModel(T5Config(vocab_size=40, d_model=16, d_kv=4, d_ff=24, num_layers=1,
                                   num_heads=2, pad_token_id=0, eos_token_id=1))


def save_pipeline(root: Path, *, second: str) -> Path:
    """A pipeline folder (``model_index.json``, ``vae``, ``text_encoder``/``tokenizer``,
    ``text_encoder_2``/``tokenizer_2``); ``second`` is ``"clip"`` (SDXL) or ``"t5"`` (Flux)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "model_index.json").write_text(json.dumps({"_class_name": "TinyPipeline"}))
    tiny_vae().save_pretrained(root / "vae")
    clip_model(projection=second == "t5").save_pretrained(root / "text_encoder")
    clip_tokenizer(root / "tok_src").save_pretrained(root / "tokenizer")
    if second == "clip":
        clip_model(projection=True, seed=2).save_pretrained(root / "text_encoder_2")
        clip_tokenizer(root / "tok_src").save_pretrained(root / "tokenizer_2")
    else:
        t5_model().save_pretrained(root / "text_encoder_2")
        word_tokenizer().save_pretrained(root / "tokenizer_2")
    return root
