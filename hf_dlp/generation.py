"""Prompts in, sampled completions out: the generation foundation shared by evaluation, analysis and the sweeps.

Sampling settings travel as one `transformers.GenerationConfig`. Every hf_dlp function that samples takes
`generation_config=` (plus `**generate_kwargs` overrides, as `generate` does) and starts from one documented default,
`default_generation_config()`: the paper's evaluation sampling (temperature 1.0, top-p 0.7) with 256 new tokens.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .arguments import check_number, check_sequence

if TYPE_CHECKING:
    import torch
    from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase

# A prompt: plain text, or a list of chat messages (`{"role": ..., "content": ...}`) rendered with the chat template.
Prompt = str | list[dict[str, Any]]

# A generation function: `(input_ids, attention_mask, generation_config, **model_kwargs) -> sequences` (prompt + new
# tokens), the contract of `model.generate`. Extrapolated decoding plugs in here.
GenerateFunction = Callable[..., "torch.LongTensor"]

DEFAULT_SAMPLING: dict[str, Any] = {"do_sample": True, "temperature": 1.0, "top_p": 0.7, "max_new_tokens": 256}
"""The default sampling of every hf_dlp entry point: the paper's evaluation setting, 256 new tokens."""

# Numeric `GenerationConfig` fields, stored as plain Python numbers (numpy or tensor scalars are accepted).
_FLOAT_SETTINGS = ("temperature", "top_p", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff", "repetition_penalty")
_INT_SETTINGS = ("max_new_tokens", "min_new_tokens", "top_k", "num_beams", "num_return_sequences")

# (setting, transformers warper that `generate` builds from it when sampling, value at which it builds none).
_SAMPLING_WARPERS = (
    ("temperature", "TemperatureLogitsWarper", 1.0),
    ("top_k", "TopKLogitsWarper", 0),
    ("top_p", "TopPLogitsWarper", 1.0),
    ("min_p", "MinPLogitsWarper", None),
    ("typical_p", "TypicalLogitsWarper", 1.0),
    ("epsilon_cutoff", "EpsilonLogitsWarper", 0.0),
    ("eta_cutoff", "EtaLogitsWarper", 0.0),
)


def default_generation_config(**overrides: Any) -> GenerationConfig:
    """A fresh `GenerationConfig` with hf_dlp's default sampling (`DEFAULT_SAMPLING`), updated with `overrides`.

    Examples:

    >>> config = default_generation_config(max_new_tokens=32)
    >>> config.do_sample, config.temperature, config.top_p, config.max_new_tokens
    (True, 1.0, 0.7, 32)
    """
    from transformers import GenerationConfig

    return GenerationConfig(**{**DEFAULT_SAMPLING, **overrides})


def resolve_generation_config(
    generation_config: GenerationConfig | None = None, **generate_kwargs: Any
) -> tuple[GenerationConfig, dict[str, Any]]:
    """Merge a `GenerationConfig` (default: `default_generation_config()`) with keyword overrides, as `generate` does.

    Returns a new config (the given one is not modified) and the keyword arguments that are not generation settings
    (model inputs such as `logits_processor`), which go to `generate` as they are. The config is validated here,
    so a bad setting fails before any model runs: `GenerationConfig.validate(strict=True)`, then the sampling
    warpers `generate` builds (so `temperature=-1` or `top_p=1.5` is refused). Numeric settings given as numpy or
    tensor scalars are stored as Python numbers. `do_sample=False` over the default gives greedy decoding.

    Examples:

    >>> from transformers import GenerationConfig
    >>> config, rest = resolve_generation_config(GenerationConfig(do_sample=True, top_p=0.9), max_new_tokens=8,
    ...                                          logits_processor=None)
    >>> config.top_p, config.max_new_tokens, sorted(rest)
    (0.9, 8, ['logits_processor'])
    >>> resolve_generation_config(do_sample=False)[0].top_p is None
    True
    >>> resolve_generation_config(top_p=1.5)
    Traceback (most recent call last):
    ...
    ValueError: `top_p=1.5` is not a valid sampling setting: `top_p` has to be a float > 0 and < 1, but is 1.5
    """
    from transformers import GenerationConfig

    if generation_config is None and generate_kwargs.get("do_sample") is False:
        # Greedy over the default: keep its length, drop the sampling-only settings (strict validation refuses them).
        config = GenerationConfig(max_new_tokens=DEFAULT_SAMPLING["max_new_tokens"])
    elif generation_config is None:
        config = default_generation_config()
    elif isinstance(generation_config, GenerationConfig):
        config = copy.deepcopy(generation_config)
    else:
        raise TypeError(
            f"`generation_config` must be a transformers.GenerationConfig, got {type(generation_config).__name__}; "
            "build one with `GenerationConfig(do_sample=True, top_p=0.7, ...)` or pass the settings as keywords."
        )
    for name in (*_FLOAT_SETTINGS, *_INT_SETTINGS):  # `update` validates: numbers are checked before it
        if generate_kwargs.get(name) is not None:
            generate_kwargs[name] = check_number(name, generate_kwargs[name], integer=name in _INT_SETTINGS)
        elif getattr(config, name, None) is not None:
            setattr(config, name, check_number(name, getattr(config, name), integer=name in _INT_SETTINGS))
    rest = config.update(**generate_kwargs)
    config.validate(strict=True)
    if config.max_new_tokens is not None:
        check_number("max_new_tokens", config.max_new_tokens, integer=True, minimum=1)
    _check_sampling_warpers(config)
    return config, rest


def _check_sampling_warpers(config: GenerationConfig) -> None:
    """Build the sampling warpers `generate` would build, so that a value they refuse (`temperature=-1`, `top_p=1.5`,
    which `generate` would refuse or silently ignore) fails here, before any model runs."""
    import transformers

    if not config.do_sample:
        return
    for name, warper, neutral in _SAMPLING_WARPERS:
        value = getattr(config, name, None)
        if value is None or value == neutral:
            continue
        try:
            getattr(transformers, warper)(value)
        except ValueError as error:
            raise ValueError(f"`{name}={value!r}` is not a valid sampling setting: {error}") from None


def check_prompts(prompts: Any, *, argument: str = "prompts") -> list[Prompt]:
    """Return the prompts as a list; refuse one string (it would be read one character at a time) or an empty list.

    Examples:

    >>> check_prompts(("Q: 1+1?", [{"role": "user", "content": "hi"}]))[1]
    [{'role': 'user', 'content': 'hi'}]
    >>> check_prompts("Q: 1+1?")
    Traceback (most recent call last):
    ...
    ValueError: `prompts` must be a list of prompts, got the string 'Q: 1+1?'; wrap it in a list: ['Q: 1+1?'].
    """
    prompts = check_sequence(argument, prompts, items="prompts")
    for index, prompt in enumerate(prompts):
        if not isinstance(prompt, str) and not (
            isinstance(prompt, Sequence) and all(isinstance(message, dict) for message in prompt)
        ):
            raise ValueError(
                f"`{argument}[{index}]` must be a string or a list of chat messages (dicts with 'role' and "
                f"'content'), got {type(prompt).__name__}."
            )
    return prompts


def render_prompts(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[Prompt]) -> list[str]:
    """Turn prompts into model input text: strings pass through, chat message lists go through the chat template.

    Examples:

    >>> from hf_dlp.toy import build_char_tokenizer
    >>> render_prompts(build_char_tokenizer(), ["Q: 1+1?", [{"role": "user", "content": "hi"}]])[1]
    '<|im_start|>user\\nhi<|im_end|>\\n<|im_start|>assistant\\n'
    """
    rendered = []
    for prompt in check_prompts(prompts):
        if isinstance(prompt, str):
            rendered.append(prompt)
        else:
            rendered.append(tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True))
    return rendered


def check_left_padding(tokenizer: PreTrainedTokenizerBase) -> None:
    """Refuse a tokenizer that would right-pad a batch for generation, or has no pad token.

    Examples:

    >>> from hf_dlp.toy import build_char_tokenizer
    >>> check_left_padding(build_char_tokenizer(padding_side="right"))
    Traceback (most recent call last):
    ...
    ValueError: Batched generation needs left padding, but `tokenizer.padding_side` is 'right'. Set `tokenizer.padding_side = 'left'`.
    """
    if tokenizer.padding_side != "left":
        raise ValueError(
            f"Batched generation needs left padding, but `tokenizer.padding_side` is {tokenizer.padding_side!r}. "
            "Set `tokenizer.padding_side = 'left'`."
        )
    if tokenizer.pad_token_id is None:
        raise ValueError("The tokenizer has no pad token; set `tokenizer.pad_token = tokenizer.eos_token`.")


def sample_completions(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Prompt],
    *,
    num_samples: int = 1,
    batch_size: int = 32,
    seed: int = 0,
    generation_config: GenerationConfig | None = None,
    generate_fn: GenerateFunction | None = None,
    progress: bool = True,
    **generate_kwargs: Any,
) -> list[list[str]]:
    """Sample `num_samples` completions for every prompt, in batches of at most `batch_size` sequences.

    Each batch is seeded with `seed + batch_index`, so results do not depend on what ran before. Under
    `accelerate launch` or `torchrun` the batches are shared between the processes (`hf_dlp.distributed`) and
    gathered in order on every process: the completions are the same for 1, 2 or N processes (bit-identical on the
    same hardware), and a progress bar shows on the main process only.

    Args:
        model (`PreTrainedModel`): the model to sample from.
        tokenizer (`PreTrainedTokenizerBase`): its tokenizer, with left padding.
        prompts (`list[str | list[dict]]`): plain prompts, or chat message lists (rendered with the chat template).
        num_samples (`int`, *optional*, defaults to `1`): completions per prompt.
        batch_size (`int`, *optional*, defaults to `32`): sequences per `generate` call.
        seed (`int`, *optional*, defaults to `0`): base seed.
        generation_config (`GenerationConfig`, *optional*): sampling settings; defaults to
            `default_generation_config()`. `generate_kwargs` override single settings, as in `generate`.
        generate_fn (`Callable`, *optional*): replaces `model.generate`, e.g. extrapolated decoding.
        progress (`bool`, *optional*, defaults to `True`): show a progress bar.

    Returns:
        `list[list[str]]`: for each prompt, its completions (special tokens removed).

    Examples:

    >>> from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm
    >>> tok, model = build_char_tokenizer(), build_tiny_causal_lm(size="nano")
    >>> out = sample_completions(model, tok, ["Q: 1+1?\\nA: ", "Q: 2+2?\\nA: "], num_samples=3, max_new_tokens=4,
    ...                          progress=False)
    >>> len(out), [len(c) for c in out]
    (2, [3, 3])
    """
    import torch

    from .distributed import distributed_map

    num_samples = check_number("num_samples", num_samples, integer=True, minimum=1)
    batch_size = check_number("batch_size", batch_size, integer=True, minimum=1)
    seed = check_number("seed", seed, integer=True)
    config, model_kwargs = resolve_generation_config(generation_config, **generate_kwargs)
    check_left_padding(tokenizer)
    texts = [text for text in render_prompts(tokenizer, prompts) for _ in range(num_samples)]
    generate = generate_fn if generate_fn is not None else model.generate
    device = next(model.parameters()).device

    def run_batch(batch_index: int) -> list[str]:
        start = batch_index * batch_size
        batch = tokenizer(
            texts[start : start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False
        ).to(device)
        torch.manual_seed(seed + batch_index)
        with torch.inference_mode():
            sequences = generate(
                input_ids=batch.input_ids,
                attention_mask=batch.attention_mask,
                generation_config=config,
                **model_kwargs,
            )
        return tokenizer.batch_decode(sequences[:, batch.input_ids.shape[1] :], skip_special_tokens=True)

    num_batches = -(-len(texts) // batch_size)
    batches = distributed_map(run_batch, num_batches, progress=progress, description="sampling")
    decoded = [text for batch in batches for text in batch]
    return [decoded[i : i + num_samples] for i in range(0, len(decoded), num_samples)]


def generation_settings(config: GenerationConfig) -> dict[str, Any]:
    """The sampling settings of a config that differ from transformers' defaults, for reports and JSON.

    Examples:

    >>> generation_settings(default_generation_config())
    {'do_sample': True, 'max_new_tokens': 256, 'temperature': 1.0, 'top_p': 0.7}
    """
    settings = config.to_diff_dict()
    settings.pop("transformers_version", None)
    return dict(sorted(settings.items()))


__all__ = [
    "DEFAULT_SAMPLING",
    "GenerateFunction",
    "Prompt",
    "check_left_padding",
    "check_prompts",
    "default_generation_config",
    "generation_settings",
    "render_prompts",
    "resolve_generation_config",
    "sample_completions",
]
