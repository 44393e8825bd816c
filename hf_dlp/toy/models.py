"""Tiny causal language models built from a config, for offline tests, examples, benchmarks and the demo."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args

from ..arguments import check_choice, check_number

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerFast

TinyArch = Literal["qwen2", "llama"]
TINY_ARCHS: tuple[str, ...] = get_args(TinyArch)

TinySize = Literal["nano", "micro", "small"]
# (hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads, intermediate_size)
TINY_SIZES: dict[str, tuple[int, int, int, int, int]] = dict(
    zip(get_args(TinySize), [(32, 1, 2, 1, 64), (64, 2, 4, 2, 128), (128, 4, 4, 2, 384)], strict=True)
)


def build_tiny_causal_lm(
    arch: TinyArch = "qwen2",
    size: TinySize = "micro",
    *,
    vocab_size: int | None = None,
    seed: int = 0,
    max_position_embeddings: int = 512,
    tokenizer: PreTrainedTokenizerFast | None = None,
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
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, LlamaConfig, Qwen2Config

    from .tokenizer import build_char_tokenizer

    check_choice("arch", arch, TINY_ARCHS)
    check_choice("size", size, tuple(TINY_SIZES))
    tokenizer = tokenizer if tokenizer is not None else build_char_tokenizer()
    vocab_size = check_number(
        "vocab_size",
        len(tokenizer) if vocab_size is None else vocab_size,
        integer=True,
        minimum=len(tokenizer),
        hint="Use at least the tokenizer's length.",
    )
    seed = check_number("seed", seed, integer=True)
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
