"""`generate_with_extrapolation` and `enable_extrapolation`: extrapolated decoding through plain `generate` calls."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import torch

from ..model_pair import check_same_vocabulary, common_vocab_size
from .config import ExtrapolationConfig, pop_overrides, resolve_config
from .dispatch import run_extrapolation
from .lora import OneForwardLoraSampler, adapter_disabled_view, is_lora_model
from .scorers import OtherModelScorer, SharedForwardScorer

if TYPE_CHECKING:
    from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase


def _prompt_inputs(generate_kwargs: dict[str, Any]) -> tuple[torch.LongTensor, torch.Tensor | None]:
    input_ids = generate_kwargs.pop("input_ids", None)
    inputs = generate_kwargs.pop("inputs", None)
    input_ids = input_ids if input_ids is not None else inputs
    if input_ids is None or not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
        raise ValueError("Pass the prompts as `input_ids` (a (batch, length) tensor of token ids, left padded).")
    return input_ids, generate_kwargs.pop("attention_mask", None)


def _other_side(model, base_model, rl_model, one_forward: bool) -> tuple[dict[str, Any], Any]:
    """(`{"base_model": ...}` or `{"rl_model": ...}`, the `generate` to call)."""
    if base_model is None and rl_model is None:
        if not is_lora_model(model):
            raise ValueError(
                "Give the other model: `base_model=` when `model` is the RL model, `rl_model=` when it is "
                "the base model (or pass a peft LoRA model to use its adapter-disabled weights as base)."
            )
        view = adapter_disabled_view(model)
        if one_forward:
            # generate prepares inputs, processors and stopping criteria; the sampler runs both halves in one forward.
            generate = functools.partial(model.get_base_model().generate, custom_generate=OneForwardLoraSampler(model))
            return {"base_model": SharedForwardScorer(view)}, generate
        return {"base_model": view}, model.__dict__.get("_hf_dlp_original_generate", model.generate)
    if one_forward:
        raise ValueError(
            "`one_forward=True` needs `model` to be a peft LoRA model and no `base_model=`/`rl_model=`: "
            "the base side is then the same weights with the adapter off, batched with the RL rows."
        )
    other = {"base_model": base_model} if base_model is not None else {"rl_model": rl_model}
    return other, model.__dict__.get("_hf_dlp_original_generate", model.generate)


def _valid_vocab_size(model, other: dict[str, Any], tokenizer, other_tokenizer) -> int:
    if tokenizer is not None and other_tokenizer is not None:
        check_same_vocabulary(tokenizer, other_tokenizer)
    ((role, other_model),) = other.items()
    if isinstance(other_model, OtherModelScorer):
        other_model = other_model.model
    base, rl = (other_model, model) if role == "base_model" else (model, other_model)
    vocab_size = len(tokenizer) if tokenizer is not None else None
    return common_vocab_size(base_model=base, rl_model=rl, vocab_size=vocab_size, what="`tokenizer=`")


def generate_with_extrapolation(
    model: PreTrainedModel,
    *,
    base_model: PreTrainedModel | OtherModelScorer | None = None,
    rl_model: PreTrainedModel | OtherModelScorer | None = None,
    config: ExtrapolationConfig | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    other_tokenizer: PreTrainedTokenizerBase | None = None,
    return_stats: bool = False,
    one_forward: bool = False,
    generation_config: GenerationConfig | None = None,
    record_swaps: bool = False,
    **kwargs: Any,
):
    """Run `model.generate` with base-guided selective extrapolation; return what `generate` returns.

    `model` is the generator: pass `base_model=` when it is the RL model, `rl_model=` when it is the base model
    (a model, or an `OtherModelScorer` of it). When `model` is a peft LoRA model and neither is given, the base side
    is the same weights with the adapter disabled (see `hf_dlp.extrapolation.lora`). A fresh
    `ExtrapolationLogitsProcessor` is built for every call from the prompt attention mask and the generation
    settings `generate` resolves; it is appended after the user's processors.

    Args:
        model (`PreTrainedModel`): the generator.
        base_model, rl_model (`PreTrainedModel` or `OtherModelScorer`, *optional*): the other model (exactly one,
            unless LoRA).
        config (`ExtrapolationConfig`, *optional*): γ, selection rule, τ, candidate set; defaults to
            `ExtrapolationConfig()`. Keywords `gamma=`, `selection=`, `tau=`, `candidate_top_k=`, `generator=`,
            `block_size=` override its fields. `block_size=8` (or `"auto"`) runs the block-verified loop
            (`hf_dlp.extrapolation.block`: the generator drafts a block, the other model verifies it in one forward;
            same greedy tokens, same sampling distribution); `None` (default) the per-token processor.
        tokenizer, other_tokenizer (`PreTrainedTokenizerBase`, *optional*): when both are given, their vocabularies
            must be equal; `tokenizer` also says which ids are real (`len(tokenizer)`), so padded output rows are never
            produced. Without it, two output layers of different widths are refused.
        return_stats (`bool`, defaults to `False`): also return the `ExtrapolationStats`.
        one_forward (`bool`, defaults to `False`): for a LoRA `model` without `base_model=`, run the RL rows and the
            base rows in one batched forward (peft mixed-adapter batch, one KV cache) instead of two calls. Same
            outputs; returns token ids only.
        generation_config (`GenerationConfig`, *optional*), kwargs: as for `generate` (`input_ids`, `attention_mask`,
            `max_new_tokens`, `do_sample`, `temperature`, `top_p`, `top_k`, `num_return_sequences`,
            `min_new_tokens`, ...). `top_k=` is `generate`'s own top-k sampling; the candidate set of π_extra is
            `candidate_top_k=`.
        record_swaps (`bool`, defaults to `False`): keep, for each re-drawn position, the generator's candidate, the
            chosen token and their Δlog p in the stats (`ExtrapolationStats.swaps`; selective rules only).

    Returns:
        What `generate` returns, or `(output, ExtrapolationStats)` when `return_stats=True`.

    Examples:

    >>> from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm
    >>> tok = build_char_tokenizer()
    >>> rl, base = build_tiny_causal_lm(size="nano", seed=1), build_tiny_causal_lm(size="nano", seed=2)
    >>> batch = tok(["Q: 1+2?", "Q: 10+7?"], return_tensors="pt", padding=True)
    >>> out, stats = generate_with_extrapolation(rl, base_model=base, config=ExtrapolationConfig(tau=-0.3), gamma=0.1,
    ...     **batch, max_new_tokens=5, do_sample=False, return_stats=True)
    >>> out.shape, len(stats.num_selected), 0.0 <= stats.replacement_ratio <= 1.0
    (torch.Size([2, 13]), 2, True)
    """
    settings = resolve_config(config, pop_overrides(kwargs))
    input_ids, attention_mask = _prompt_inputs(kwargs)
    other, generate = _other_side(model, base_model, rl_model, one_forward)
    valid_vocab_size = _valid_vocab_size(model, other, tokenizer, other_tokenizer)
    if one_forward and settings.block_size is not None:
        raise ValueError(
            f"`one_forward=True` decodes one token per step; it cannot be combined with `block_size="
            f"{settings.block_size!r}`. For a LoRA model use `block_size` without `one_forward`: the base side then "
            "verifies each block in one adapter-disabled forward."
        )
    output, processor = run_extrapolation(
        generate,
        model,
        other,
        settings,
        input_ids=input_ids,
        attention_mask=attention_mask,
        generation_config=generation_config,
        valid_vocab_size=valid_vocab_size,
        record_swaps=record_swaps,
        **kwargs,
    )
    return (output, processor.stats()) if return_stats else output


def enable_extrapolation(
    model: PreTrainedModel,
    *,
    base_model: PreTrainedModel | OtherModelScorer | None = None,
    rl_model: PreTrainedModel | OtherModelScorer | None = None,
    config: ExtrapolationConfig | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    other_tokenizer: PreTrainedTokenizerBase | None = None,
    one_forward: bool = False,
    **overrides: Any,
) -> PreTrainedModel:
    """Make a plain `model.generate(...)` call extrapolate; the last call's statistics land in `model.extrapolation_stats`.

    Takes the other model, the `ExtrapolationConfig` (with keyword overrides) and the tokenizers as
    `generate_with_extrapolation` does, validated now; a `generate` call may override single settings again.
    `disable_extrapolation(model)` restores the original method. Returns `model`.

    Examples:

    >>> from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm
    >>> tok = build_char_tokenizer()
    >>> rl, base = build_tiny_causal_lm(size="nano", seed=1), build_tiny_causal_lm(size="nano", seed=2)
    >>> _ = enable_extrapolation(rl, base_model=base, gamma=0.1, tau=-0.3)
    >>> out = rl.generate(**tok(["Q: 1+2?"], return_tensors="pt"), max_new_tokens=4, min_new_tokens=4)
    >>> rl.extrapolation_stats.num_generated
    [4]
    >>> _ = disable_extrapolation(rl)
    >>> hasattr(rl, "extrapolation_stats")
    False
    """
    if "return_stats" in overrides:
        raise ValueError(
            "`return_stats` is not an option of `enable_extrapolation`: the statistics of each call are "
            "stored in `model.extrapolation_stats`."
        )
    settings = resolve_config(config, pop_overrides(overrides))
    if overrides:
        raise TypeError(f"enable_extrapolation got unexpected keyword argument(s) {sorted(overrides)}.")
    if "_hf_dlp_original_generate" in model.__dict__:
        disable_extrapolation(model)
    fixed = dict(
        base_model=base_model,
        rl_model=rl_model,
        config=settings,
        tokenizer=tokenizer,
        other_tokenizer=other_tokenizer,
        one_forward=one_forward,
    )
    original = model.generate
    model._hf_dlp_instance_generate = "generate" in model.__dict__
    model._hf_dlp_original_generate = original

    @functools.wraps(original)
    def generate(*args, **kwargs):
        if args:
            kwargs["input_ids"] = args[0]
        output, stats = generate_with_extrapolation(model, return_stats=True, **fixed, **kwargs)
        model.extrapolation_stats = stats
        return output

    model.generate = generate
    return model


def disable_extrapolation(model: PreTrainedModel) -> PreTrainedModel:
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
    "disable_extrapolation",
    "enable_extrapolation",
    "generate_with_extrapolation",
]
