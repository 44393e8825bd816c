"""Tiny causal language models built from a config, for offline tests, examples, benchmarks and the demo."""

from __future__ import annotations

from typing import Literal

import torch
from transformers import AutoModelForCausalLM, GenerationConfig, LlamaConfig, PreTrainedModel, Qwen2Config

from .tokenizer import build_char_tokenizer

TinyArch = Literal["qwen2", "llama"]
TINY_ARCHS: tuple[str, ...] = ("qwen2", "llama")

# (hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads, intermediate_size)
TINY_SIZES: dict[str, tuple[int, int, int, int, int]] = {
    "nano": (32, 1, 2, 1, 64),
    "micro": (64, 2, 4, 2, 128),
    "small": (128, 4, 4, 2, 384),
}


def build_tiny_causal_lm(
    arch: TinyArch = "qwen2",
    size: str = "micro",
    *,
    vocab_size: int | None = None,
    seed: int = 0,
    max_position_embeddings: int = 512,
    tokenizer=None,
) -> PreTrainedModel:
    """Build a tiny randomly initialised Qwen2 or Llama causal LM that matches the toy tokenizer.

    Args:
        arch (`str`, *optional*, defaults to `"qwen2"`):
            `"qwen2"` or `"llama"`.
        size (`str`, *optional*, defaults to `"micro"`):
            One of `TINY_SIZES` (`"nano"`, `"micro"`, `"small"`).
        vocab_size (`int`, *optional*):
            Rows of the embedding matrix. Defaults to the tokenizer's length; a larger value adds padding rows,
            as real checkpoints do (Qwen2.5 pads 151,665 tokens to 152,064 rows).
        seed (`int`, *optional*, defaults to `0`):
            Seed of the weight initialisation; the same seed gives the same weights.
        max_position_embeddings (`int`, *optional*, defaults to `512`):
            Longest sequence the model accepts.
        tokenizer (`PreTrainedTokenizerFast`, *optional*):
            The tokenizer whose special token ids go into the config; defaults to the toy tokenizer.

    Examples:

    >>> from hf_dlp.toy import build_tiny_causal_lm
    >>> model = build_tiny_causal_lm("llama", "nano", vocab_size=128)
    >>> model.config.model_type, model.config.vocab_size, model.generation_config.pad_token_id
    ('llama', 128, 0)
    """
    if arch not in TINY_ARCHS:
        raise ValueError(f"`arch` must be one of {TINY_ARCHS}, got {arch!r}.")
    if size not in TINY_SIZES:
        raise ValueError(f"`size` must be one of {tuple(TINY_SIZES)}, got {size!r}.")
    tokenizer = tokenizer if tokenizer is not None else build_char_tokenizer()
    vocab_size = len(tokenizer) if vocab_size is None else vocab_size
    if vocab_size < len(tokenizer):
        raise ValueError(
            f"`vocab_size` ({vocab_size}) is smaller than the tokenizer ({len(tokenizer)} tokens); "
            "use at least the tokenizer's length."
        )
    hidden, layers, heads, kv_heads, intermediate = TINY_SIZES[size]
    config_class = Qwen2Config if arch == "qwen2" else LlamaConfig
    config = config_class(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        intermediate_size=intermediate,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        do_sample=True,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        max_new_tokens=32,
    )
    return model.eval()
