"""What `generate` does that extrapolation must follow exactly, taken from transformers' own machinery.

- `prepare_generation_config`: the settings `generate` will run with (`model._prepare_generation_config`).
- `check_generation_mode`: only greedy decoding and sampling advance one token per row per step; every other mode
  (beam search, assisted and prompt-lookup decoding, contrastive search, DoLa, continuous batching) is refused.
- `sampling_tail`: the processors `generate` applies *after* the user's logits processors (the sampling warpers:
  temperature, top-k, top-p, min-p, typical-p, ε and η cutoffs, top-h, and the watermark and renormalisation), built
  by `generate`'s own `_get_logits_processor` from the resolved `GenerationConfig`, so every setting it honours is
  honoured by the candidate draw too. Processors that run *before* ours (repetition penalties, n-gram blocking,
  `min_new_tokens`, bad words, suppressed tokens, ...) have already shaped the scores the processor receives.
- `draw_next_tokens`: `generate`'s token selection (softmax + one multinomial draw, or argmax).
- `prompt_attention_mask`: the prompt mask, inferred from pad tokens exactly as `generate` infers it when none is given.

The private pieces are guarded by `check_transformers_compatibility()`.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import torch
from transformers import GenerationConfig, GenerationMixin, LogitsProcessor, LogitsProcessorList
from transformers.generation.configuration_utils import GenerationMode

if TYPE_CHECKING:
    from transformers import PreTrainedModel

# Keyword arguments of `generate` whose decoding loop is not one token per row per step.
_UNSUPPORTED_KWARGS = {
    "assistant_model": "assisted decoding",
    "prompt_lookup_num_tokens": "prompt-lookup decoding",
    "assistant_early_exit": "self-speculative decoding",
    "custom_generate": "a custom decoding method",
}
_SUPPORTED_MODES = (GenerationMode.GREEDY_SEARCH, GenerationMode.SAMPLE)


def prepare_generation_config(
    model: PreTrainedModel, generation_config: GenerationConfig | None, generate_kwargs: dict[str, Any]
) -> GenerationConfig:
    """The `GenerationConfig` `model.generate(generation_config=..., **generate_kwargs)` will run with.

    It is `generate`'s own resolution (call keywords > given config > the model's generation config > defaults).

    Examples:

    >>> from hf_dlp.toy import build_tiny_causal_lm
    >>> config = prepare_generation_config(build_tiny_causal_lm(size="nano"), None, {"max_new_tokens": 3})
    >>> config.max_new_tokens, config.eos_token_id
    (3, 5)
    """
    config, _ = model._prepare_generation_config(generation_config, **dict(generate_kwargs))
    return config


def check_generation_mode(
    model: PreTrainedModel | None,
    generation_config: GenerationConfig,
    generate_kwargs: dict[str, Any] | None = None,
    *,
    block_size: int | str | None = None,
) -> None:
    """Raise `ValueError` for decoding modes extrapolation does not support, naming the setting and the fix.

    The one check of the decoding mode, for both paths. `model` (the generator, *optional*) is checked to be
    decoder-only; `generate_kwargs` for modes that are switched on by an argument of `generate` (`assistant_model`,
    `custom_generate`, `streamer`, ...). With a `block_size` (block-verified decoding) it also refuses what the block
    loop cannot follow: streamers, `stop_strings`, classifier-free guidance and `return_dict_in_generate`.

    Examples:

    >>> from transformers import GenerationConfig
    >>> check_generation_mode(None, GenerationConfig(num_beams=2))
    Traceback (most recent call last):
    ...
    ValueError: Extrapolation does not support beam search (`num_beams=2`): the other model's cache is not reordered with the beams. Use `num_beams=1` (greedy or sampling).
    """
    for key, mode in _UNSUPPORTED_KWARGS.items():
        if (generate_kwargs or {}).get(key) not in (None, False):
            raise ValueError(
                f"Extrapolation does not support {mode} (`{key}` is set): its processor calls do not "
                f"advance one token per row. Remove `{key}`."
            )
    if model is not None and getattr(model.config, "is_encoder_decoder", False):
        raise ValueError(
            f"Extrapolation supports decoder-only causal LMs; {type(model).__name__} is an encoder-decoder "
            "model. Use a decoder-only RL/base pair."
        )
    if (generation_config.num_beams or 1) > 1:
        raise ValueError(
            f"Extrapolation does not support beam search (`num_beams={generation_config.num_beams}`): the "
            "other model's cache is not reordered with the beams. Use `num_beams=1` (greedy or sampling)."
        )
    if generation_config.cache_implementation == "paged":
        raise ValueError(
            "Extrapolation does not support continuous batching (`cache_implementation='paged'`): the "
            "processor keeps per-row state. Use the default dynamic cache."
        )
    if generation_config.use_cache is False:
        raise ValueError(
            "Extrapolation needs `use_cache=True`; the other model's incremental cache follows the main "
            "loop one token at a time."
        )
    mode = generation_config.get_generation_mode((generate_kwargs or {}).get("assistant_model"))
    if mode not in _SUPPORTED_MODES:
        raise ValueError(
            f"Extrapolation supports greedy decoding and sampling only; these settings select {mode.value!r} "
            "(e.g. `penalty_alpha` for contrastive search, `dola_layers`, `prompt_lookup_num_tokens`, "
            "`force_words_ids`). Remove them."
        )
    if block_size is not None:
        _check_block_mode(generation_config, generate_kwargs or {})


def _check_block_mode(generation_config: GenerationConfig, generate_kwargs: dict[str, Any]) -> None:
    """What block-verified decoding cannot follow, each with the setting and the fix."""
    if generate_kwargs.get("streamer") is not None:
        raise ValueError(
            "Block-verified extrapolation does not stream tokens; drop `streamer=` or use `block_size=None`."
        )
    if generation_config.stop_strings:
        raise ValueError(
            "Block-verified extrapolation cannot follow `stop_strings` (`generate` gives a `custom_generate` callable "
            "no tokenizer to match them with). Stop on token ids (`eos_token_id=[...]`) or use `block_size=None`."
        )
    if generation_config.guidance_scale not in (None, 1, 1.0):
        raise ValueError(
            f"Block-verified extrapolation cannot rewind classifier-free guidance (`guidance_scale="
            f"{generation_config.guidance_scale}`), whose processor keeps its own cache. Use `block_size=None`."
        )
    if generation_config.return_dict_in_generate:
        raise ValueError(
            "Block-verified extrapolation returns token ids only; set `return_dict_in_generate=False` or use "
            "`block_size=None`."
        )


def _owner(model) -> GenerationMixin:
    # `GenerationMixin`'s helpers read only the model's config; a wrapper (a peft model, `AdapterDisabledView`) lends
    # them the transformers model inside it.
    if isinstance(model, GenerationMixin) or not hasattr(model, "get_base_model"):
        return model
    return model.get_base_model()


def with_special_tokens(
    generation_config: GenerationConfig, model: PreTrainedModel, device: torch.device
) -> GenerationConfig:
    """A copy of the config with the eos/pad tensors `generate` adds before building its processors."""
    config = copy.deepcopy(generation_config)
    GenerationMixin._prepare_special_tokens(_owner(model), config, kwargs_has_attention_mask=True, device=device)
    return config


class _Marker(LogitsProcessor):
    """Stands for the extrapolation processor in a processor list, to find what `generate` applies after it."""

    def __call__(self, input_ids, scores):
        return scores


def sampling_tail(
    generation_config: GenerationConfig,
    model: PreTrainedModel,
    input_ids: torch.LongTensor,
    attention_mask: torch.Tensor,
) -> LogitsProcessorList:
    """The processors `generate` applies after the user's logits processors, built by `generate` itself.

    Args:
        generation_config (`GenerationConfig`): the resolved settings, with the special-token tensors
            (`with_special_tokens`).
        model (`PreTrainedModel`): a model of the pair (only its `config` is read).
        input_ids (`torch.LongTensor`), attention_mask (`torch.Tensor`): the expanded prompts `generate` starts from.

    Examples:

    >>> import torch
    >>> from transformers import GenerationConfig
    >>> from hf_dlp.toy import build_tiny_causal_lm
    >>> model, ids = build_tiny_causal_lm(size="nano"), torch.tensor([[6, 7]])
    >>> config = with_special_tokens(GenerationConfig(do_sample=True, typical_p=0.9, min_new_tokens=2), model, ids.device)
    >>> [type(p).__name__ for p in sampling_tail(config, model, ids, torch.ones_like(ids))]
    ['TypicalLogitsWarper']
    """
    marker = _Marker()
    processors = GenerationMixin._get_logits_processor(
        _owner(model),
        generation_config=generation_config,
        input_ids_seq_length=input_ids.shape[1],
        encoder_input_ids=input_ids,
        logits_processor=LogitsProcessorList([marker]),
        device=input_ids.device,
        model_kwargs={"attention_mask": attention_mask},
    )
    index = next(i for i, processor in enumerate(processors) if processor is marker)
    return LogitsProcessorList(processors[index + 1 :])


def draw_next_tokens(
    scores: torch.Tensor, *, do_sample: bool, generator: torch.Generator | None = None
) -> torch.LongTensor:
    """`generate`'s token selection on processed scores: one multinomial draw from their softmax, or the argmax.

    With `generator=None` the draw uses (and advances) the global random state exactly as `generate`'s does.

    Examples:

    >>> draw_next_tokens(torch.tensor([[0.0, 2.0, 1.0]]), do_sample=False)
    tensor([1])
    """
    if do_sample:
        probs = torch.nn.functional.softmax(scores, dim=-1)
        return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(1)
    return torch.argmax(scores, dim=-1)


def prompt_attention_mask(
    input_ids: torch.LongTensor,
    attention_mask: torch.Tensor | None,
    generation_config: GenerationConfig,
    model: PreTrainedModel,
) -> torch.LongTensor:
    """The prompts' mask: the given one, or the one `generate` infers (pad tokens masked when pad differs from eos).

    Examples:

    >>> import torch
    >>> from transformers import GenerationConfig
    >>> from hf_dlp.toy import build_tiny_causal_lm
    >>> model = build_tiny_causal_lm(size="nano")
    >>> config = with_special_tokens(GenerationConfig(pad_token_id=0, eos_token_id=5), model, torch.device("cpu"))
    >>> prompt_attention_mask(torch.tensor([[0, 7], [6, 7]]), None, config, model).tolist()
    [[0, 1], [1, 1]]
    """
    if attention_mask is not None:
        return attention_mask.to(input_ids.device).long()
    mask = GenerationMixin._prepare_attention_mask_for_generation(_owner(model), input_ids, generation_config, {})
    return mask.long()


__all__ = [
    "check_generation_mode",
    "draw_next_tokens",
    "prepare_generation_config",
    "prompt_attention_mask",
    "sampling_tail",
    "with_special_tokens",
]
