"""`generate_with_extrapolation` and `enable_extrapolation`: extrapolated decoding through plain `generate` calls."""

from __future__ import annotations

import functools
from typing import Any

import torch
from transformers import GenerationConfig, LogitsProcessorList

from ..analysis.vocab import check_same_vocabulary
from .lora import OneForwardLoraSampler, SharedForwardProcessor, adapter_disabled_view, is_lora_model
from .processor import (
    ExtrapolationLogitsProcessor,
    ExtrapolationStats,
    SelectionRule,
    check_extrapolation_arguments,
)

# Generation settings whose decoding loop reorders, rewinds or batches rows in ways a side cache cannot follow.
_UNSUPPORTED_KWARGS = {
    "assistant_model": "assisted decoding",
    "prompt_lookup_num_tokens": "prompt-lookup decoding",
    "assistant_early_exit": "self-speculative decoding",
    "custom_generate": "a custom decoding method",
}


def _resolve_generation_config(model, generation_config: GenerationConfig | None, kwargs: dict[str, Any]):
    # `_prepare_generation_config` is the resolution `generate` itself uses (kwargs > given config > model's > global
    # defaults), so the processor draws candidates with exactly the sampling settings `generate` will use.
    config, _ = model._prepare_generation_config(generation_config, **kwargs)
    return config


def check_generation_mode(model, generation_config: GenerationConfig, generate_kwargs: dict[str, Any]) -> None:
    """Raise `ValueError` for decoding modes extrapolation does not support.

    Beam search, assisted / prompt-lookup decoding, continuous batching (`cache_implementation="paged"`), custom
    decoding methods, encoder-decoder models and right-padded prompts are rejected with the reason and the fix.

    Examples:

    >>> from transformers import GenerationConfig
    >>> from hf_dlp.toy import build_tiny_causal_lm
    >>> check_generation_mode(build_tiny_causal_lm(size="nano"), GenerationConfig(num_beams=2), {})
    Traceback (most recent call last):
    ...
    ValueError: Extrapolation does not support beam search (`num_beams=2`): the other model's cache is not reordered with the beams. Use `num_beams=1` (greedy or sampling).
    """
    for key, mode in _UNSUPPORTED_KWARGS.items():
        if generate_kwargs.get(key) not in (None, False):
            raise ValueError(
                f"Extrapolation does not support {mode} (`{key}` is set): its processor calls do not "
                "advance one token per row. Remove `{key}`.".replace("{key}", key)
            )
    if getattr(model.config, "is_encoder_decoder", False):
        raise ValueError(
            f"Extrapolation supports decoder-only causal LMs; {type(model).__name__} is an encoder-decoder "
            "model. Use a decoder-only RL/base pair."
        )
    if (generation_config.num_beams or 1) > 1:
        raise ValueError(
            f"Extrapolation does not support beam search (`num_beams={generation_config.num_beams}`): the "
            "other model's cache is not reordered with the beams. Use `num_beams=1` (greedy or sampling)."
        )
    if generation_config.prompt_lookup_num_tokens is not None:
        raise ValueError(
            "Extrapolation does not support prompt-lookup decoding (`prompt_lookup_num_tokens` is set). "
            "Remove `prompt_lookup_num_tokens`."
        )
    if generation_config.cache_implementation == "paged":
        raise ValueError(
            "Extrapolation does not support continuous batching (`cache_implementation='paged'`): the "
            "processor keeps per-row state. Use the default dynamic cache."
        )
    if not generation_config.use_cache:
        raise ValueError(
            "Extrapolation needs `use_cache=True`; the other model's incremental cache follows the main "
            "loop one token at a time."
        )


def generate_with_extrapolation(
    model,
    *,
    base_model=None,
    rl_model=None,
    gamma: float = 0.0,
    selection: SelectionRule = "all",
    tau: float | None = None,
    top_k: int | None = None,
    tokenizer=None,
    other_tokenizer=None,
    return_stats: bool = False,
    one_forward: bool = False,
    generation_config: GenerationConfig | None = None,
    **generate_kwargs,
):
    """Run `model.generate` with base-guided selective extrapolation; return what `generate` returns.

    `model` is the generator: pass `base_model=` when it is the RL model, `rl_model=` when it is the base model. When
    `model` is a peft LoRA model and neither is given, the base side is the same weights with the adapter disabled
    (see `hf_dlp.extrapolation.lora`). A fresh `ExtrapolationLogitsProcessor` is built for every call from the prompt
    attention mask and the generation settings `generate` resolves; it is appended after the user's processors.

    Args:
        model (`PreTrainedModel`): the generator.
        base_model, rl_model (`PreTrainedModel`, *optional*): the other model (exactly one, unless LoRA).
        gamma, selection, tau, top_k: see `ExtrapolationLogitsProcessor`. `top_k` is the π_extra candidate set (the
            generator's top-k); `generate`'s own top-k sampling goes in `generation_config=GenerationConfig(top_k=...)`.
        tokenizer, other_tokenizer (*optional*): when both are given, their vocabularies must be equal;
            `tokenizer` also bounds the valid ids (`len(tokenizer)`), so padded embedding rows are never produced.
        return_stats (`bool`, defaults to `False`): also return the `ExtrapolationStats`.
        one_forward (`bool`, defaults to `False`): for a LoRA `model` without `base_model=`, run the RL rows and the
            base rows in one batched forward (peft mixed-adapter batch, one KV cache) instead of two calls. Same
            outputs; returns token ids only.
        generation_config, generate_kwargs: as for `generate` (`input_ids`, `attention_mask`, `max_new_tokens`,
            `do_sample`, `temperature`, `top_p`, `num_return_sequences`, `min_new_tokens`, ...).

    Returns:
        What `generate` returns, or `(output, ExtrapolationStats)` when `return_stats=True`.

    Examples:

    >>> from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm
    >>> tok = build_char_tokenizer()
    >>> rl, base = build_tiny_causal_lm(size="nano", seed=1), build_tiny_causal_lm(size="nano", seed=2)
    >>> batch = tok(["Q: 1+2?", "Q: 10+7?"], return_tensors="pt", padding=True)
    >>> out, stats = generate_with_extrapolation(rl, base_model=base, gamma=0.1, selection="delta_logp", tau=-0.3,
    ...     **batch, max_new_tokens=5, do_sample=False, return_stats=True)
    >>> out.shape, len(stats.num_selected), 0.0 <= stats.replacement_ratio <= 1.0
    (torch.Size([2, 13]), 2, True)
    """
    input_ids = generate_kwargs.pop("input_ids", None)
    inputs = generate_kwargs.pop("inputs", None)
    input_ids = input_ids if input_ids is not None else inputs
    if input_ids is None or not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
        raise ValueError("Pass the prompts as `input_ids` (a (batch, length) tensor of token ids, left padded).")
    attention_mask = generate_kwargs.pop("attention_mask", None)
    lora_base = base_model is None and rl_model is None
    if lora_base:
        if not is_lora_model(model):
            raise ValueError(
                "Give the other model: `base_model=` when `model` is the RL model, `rl_model=` when it is "
                "the base model (or pass a peft LoRA model to use its adapter-disabled weights as base)."
            )
        base_model = adapter_disabled_view(model)
    if one_forward and not lora_base:
        raise ValueError(
            "`one_forward=True` needs `model` to be a peft LoRA model and no `base_model=`/`rl_model=`: "
            "the base side is then the same weights with the adapter off, batched with the RL rows."
        )
    if tokenizer is not None and other_tokenizer is not None:
        check_same_vocabulary(tokenizer, other_tokenizer)
    user_processors = generate_kwargs.pop("logits_processor", None) or []
    config = _resolve_generation_config(model, generation_config, dict(generate_kwargs))
    check_generation_mode(model, config, generate_kwargs)
    if attention_mask is not None and not bool(attention_mask[:, -1].all()):
        raise ValueError(
            "The prompts are right padded (`attention_mask[:, -1]` has zeros); decoder-only generation "
            "needs left padding. Set `tokenizer.padding_side = 'left'`."
        )
    processor_class = SharedForwardProcessor if one_forward else ExtrapolationLogitsProcessor
    processor = processor_class(
        base_model=base_model,
        rl_model=rl_model,
        gamma=gamma,
        selection=selection,
        tau=tau,
        top_k=top_k,
        prompt_attention_mask=attention_mask,
        generation_config=config,
        valid_vocab_size=len(tokenizer) if tokenizer is not None else None,
    )
    if one_forward:
        # The callable gets generate's prepared inputs, processors and stopping criteria, and drives both halves.
        generate = model.get_base_model().generate
        generate_kwargs["custom_generate"] = OneForwardLoraSampler(model)
    else:
        generate = model.__dict__.get("_hf_dlp_original_generate", model.generate)
    output = generate(
        input_ids=input_ids,
        attention_mask=attention_mask,
        generation_config=generation_config,
        logits_processor=LogitsProcessorList([*user_processors, processor]),
        **generate_kwargs,
    )
    return (output, processor.stats()) if return_stats else output


def enable_extrapolation(model, **extrapolation_kwargs):
    """Make a plain `model.generate(...)` call extrapolate; the last call's statistics land in `model.extrapolation_stats`.

    Takes the keyword arguments of `generate_with_extrapolation` (`base_model=` or `rl_model=`, `gamma`, `selection`,
    `tau`, `top_k`, `tokenizer`); `disable_extrapolation(model)` restores the original method. Returns `model`.

    Examples:

    >>> from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm
    >>> tok = build_char_tokenizer()
    >>> rl, base = build_tiny_causal_lm(size="nano", seed=1), build_tiny_causal_lm(size="nano", seed=2)
    >>> _ = enable_extrapolation(rl, base_model=base, gamma=0.1, selection="delta_logp", tau=-0.3)
    >>> out = rl.generate(**tok(["Q: 1+2?"], return_tensors="pt"), max_new_tokens=4, min_new_tokens=4)
    >>> rl.extrapolation_stats.num_generated
    [4]
    >>> _ = disable_extrapolation(rl)
    >>> hasattr(rl, "extrapolation_stats")
    False
    """
    if "return_stats" in extrapolation_kwargs:
        raise ValueError(
            "`return_stats` is not an option of `enable_extrapolation`: the statistics of each call are "
            "stored in `model.extrapolation_stats`."
        )
    if "_hf_dlp_original_generate" in model.__dict__:
        disable_extrapolation(model)
    # Fail now rather than at the first generate call.
    check_extrapolation_arguments(
        extrapolation_kwargs.get("gamma", 0.0),
        extrapolation_kwargs.get("selection", "all"),
        extrapolation_kwargs.get("tau"),
        extrapolation_kwargs.get("top_k"),
    )
    original = model.generate
    model._hf_dlp_instance_generate = "generate" in model.__dict__
    model._hf_dlp_original_generate = original

    @functools.wraps(original)
    def generate(*args, **kwargs):
        if args:
            kwargs["input_ids"] = args[0]
        output, stats = generate_with_extrapolation(model, return_stats=True, **extrapolation_kwargs, **kwargs)
        model.extrapolation_stats = stats
        return output

    model.generate = generate
    return model


def disable_extrapolation(model):
    """Undo `enable_extrapolation`: restore the model's own `generate`. Returns `model`.

    Examples:

    >>> from hf_dlp.toy import build_tiny_causal_lm
    >>> model = build_tiny_causal_lm(size="nano")
    >>> _ = disable_extrapolation(enable_extrapolation(model, base_model=build_tiny_causal_lm(size="nano", seed=3)))
    >>> "generate" in vars(model), "_hf_dlp_original_generate" in vars(model)
    (False, False)
    """
    original = model.__dict__.pop("_hf_dlp_original_generate", None)
    had_instance_generate = model.__dict__.pop("_hf_dlp_instance_generate", False)
    if original is not None:
        model.__dict__.pop("generate", None)
        if had_instance_generate:  # e.g. a custom_generate loaded by from_pretrained: put it back
            model.generate = original
    model.__dict__.pop("extrapolation_stats", None)
    return model


__all__ = [
    "ExtrapolationStats",
    "check_generation_mode",
    "disable_extrapolation",
    "enable_extrapolation",
    "generate_with_extrapolation",
]
