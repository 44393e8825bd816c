"""From a base/RL model pair and a prompt set to an `AnalysisReport` in one call: sample from both, score everything."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datasets import Dataset

from ..arguments import check_number
from ..generation import Prompt, check_prompts, generation_settings, resolve_generation_config
from ..loading import check_dtype
from ..model_pair import load_model_pair
from .report import AnalysisReport
from .responses import analyze_responses, check_scoring_options, generate_responses

if TYPE_CHECKING:
    from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase


def _prompt_list(prompts: Sequence[Prompt] | Dataset, prompt_column: str) -> list[Prompt]:
    """The prompts as a list: a `Dataset`'s `prompt_column`, or the given list (one string is refused)."""
    if isinstance(prompts, Dataset):
        if prompt_column not in prompts.column_names:
            raise ValueError(
                f"`prompt_column` {prompt_column!r} is not a column of `prompts` ({prompts.column_names})."
            )
        prompts = list(prompts[prompt_column])
    return check_prompts(prompts)


def _check_model_pair(base_model, rl_model, tokenizer) -> None:
    """Refuse a pair of one name and one loaded model, or loaded models without their tokenizer."""
    if isinstance(base_model, str | Path) != isinstance(rl_model, str | Path):
        raise TypeError(
            f"`base_model` and `rl_model` must both be names/paths or both be loaded models, got "
            f"{type(base_model).__name__} and {type(rl_model).__name__}."
        )
    if not isinstance(base_model, str | Path) and tokenizer is None:
        raise ValueError("`tokenizer` is required when `base_model` and `rl_model` are loaded models; pass theirs.")


def analyze_model_pair(
    *,
    base_model: str | Path | PreTrainedModel,
    rl_model: str | Path | PreTrainedModel,
    prompts: Sequence[Prompt] | Dataset,
    tokenizer: PreTrainedTokenizerBase | None = None,
    prompt_column: str = "prompt",
    num_samples: int = 4,
    generation_batch_size: int = 32,
    scoring_batch_size: int = 8,
    logprobs_top_k: int | None = None,
    seed: int = 0,
    dtype: str = "auto",
    device: str | None = None,
    device_map: str | dict[str, Any] | None = None,
    generation_config: GenerationConfig | None = None,
    progress: bool = True,
    **generate_kwargs: Any,
) -> AnalysisReport:
    """Sample `num_samples` responses per prompt from each model, then score all of them with both models.

    Under `accelerate launch` or `torchrun` the sampling and scoring batches are shared between the processes and
    every process returns the same report, equal to the one-process report (same samples, same numbers).

    This reproduces the setting of the paper's Fig. 1b: the report's histograms compare base-written with
    RL-written responses. `base_model` and `rl_model` are model folders or Hub ids (loaded with
    `hf_dlp.model_pair.load_model_pair`, tokenizers compared first), or already loaded models, in which case
    `tokenizer` is required. Every setting is checked before any model loads or samples.

    Args:
        base_model, rl_model (`str`, `Path` or `PreTrainedModel`): the pair, by name or loaded.
        prompts (`list[str | list[dict]]` or `datasets.Dataset`): the prompts (a `Dataset` gives its
            `prompt_column`); one string is refused, wrap it in a list.
        tokenizer (`PreTrainedTokenizerBase`, *optional*): their tokenizer (default: the base model's, when loaded
            by name).
        num_samples (`int`, *optional*, defaults to `4`): responses per prompt and model.
        generation_batch_size, scoring_batch_size (`int`, *optional*): sequences per `generate` call / forward.
        logprobs_top_k (`int`, *optional*): the paper code's top-k approximation (see `compute_token_metrics`).
            Not `top_k=`, which is a sampling setting like the other `generate_kwargs`.
        seed (`int`, *optional*, defaults to `0`): base seed of the sampling.
        dtype, device, device_map: how to load models given by name (see `load_model_pair`; by default each
            process of a launched run takes its own device).
        generation_config (`GenerationConfig`, *optional*): sampling settings; defaults to
            `hf_dlp.generation.default_generation_config()` (temperature 1.0, top-p 0.7, 256 new tokens).
            `generate_kwargs` override single settings (`max_new_tokens=64`, `top_k=20`), as in `generate`.
        progress (`bool`, *optional*, defaults to `True`): show progress bars.

    Returns:
        `AnalysisReport`: whose `settings` record the sampling (`generation_settings` of the resolved config).

    Examples:

    >>> from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm
    >>> tok = build_char_tokenizer()
    >>> base, rl = build_tiny_causal_lm(size="nano", seed=0), build_tiny_causal_lm(size="nano", seed=1)
    >>> report = analyze_model_pair(base_model=base, rl_model=rl, prompts=["Q: 1+1?\\nA: ", "Q: 3+4?\\nA: "],
    ...                             tokenizer=tok, num_samples=2, max_new_tokens=6, progress=False)
    >>> report.num_responses, report.source_names, report.settings["max_new_tokens"]
    (8, ['base', 'rl'], 6)
    """
    _check_model_pair(base_model, rl_model, tokenizer)
    prompts = _prompt_list(prompts, prompt_column)
    num_samples = check_number("num_samples", num_samples, integer=True, minimum=1)
    generation_batch_size = check_number("generation_batch_size", generation_batch_size, integer=True, minimum=1)
    seed = check_number("seed", seed, integer=True)
    options = check_scoring_options(batch_size=scoring_batch_size, logprobs_top_k=logprobs_top_k)
    config, model_kwargs = resolve_generation_config(generation_config, **generate_kwargs)
    if isinstance(base_model, str | Path):
        check_dtype(dtype)
        base_model, rl_model, loaded = load_model_pair(
            base_model=base_model, rl_model=rl_model, dtype=dtype, device=device, device_map=device_map
        )
        tokenizer = tokenizer if tokenizer is not None else loaded
    models = {"base_model": base_model, "rl_model": rl_model, "tokenizer": tokenizer}
    responses = generate_responses(
        **models,
        prompts=prompts,
        num_samples=num_samples,
        batch_size=generation_batch_size,
        seed=seed,
        generation_config=config,
        progress=progress,
        **model_kwargs,
    )
    report = analyze_responses(
        **models,
        dataset=responses,
        batch_size=options["batch_size"],
        logprobs_top_k=options["logprobs_top_k"],
        progress=progress,
    )
    report.settings.update(num_prompts=len(prompts), num_samples=num_samples, seed=seed)
    report.settings.update(generation_settings(config))
    return report
