"""Dataset-scale analysis: score (prompt, response) pairs, or sample responses from both models first."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from datasets import Dataset

from ..arguments import check_number
from ..distributed import distributed_map
from ..generation import Prompt, check_prompts, render_prompts, resolve_generation_config, sample_completions
from ..model_pair import check_same_vocabulary
from .metrics import METRIC_NAMES, _check_logprobs_top_k, compute_token_metrics
from .report import AnalysisReport

if TYPE_CHECKING:
    from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase


def check_scoring_options(
    *, batch_size: Any = 8, max_length: Any = None, logprobs_top_k: Any = None, chunk_size: Any = None
) -> dict[str, int | None]:
    """Validate the scoring settings of `analyze_responses` (before any model loads); return them as Python ints.

    Examples:

    >>> import numpy as np
    >>> check_scoring_options(batch_size=np.int64(4), logprobs_top_k=50)
    {'batch_size': 4, 'max_length': None, 'logprobs_top_k': 50, 'chunk_size': None}
    """
    return {
        "batch_size": check_number("batch_size", batch_size, integer=True, minimum=1),
        "max_length": check_number(
            "max_length", max_length, integer=True, minimum=2, allow_none=True, hint="Leave it unset to keep it all."
        ),
        "logprobs_top_k": _check_logprobs_top_k(logprobs_top_k),
        "chunk_size": check_number("chunk_size", chunk_size, integer=True, minimum=1, allow_none=True),
    }


def _encode_pairs(tokenizer, prompts: Sequence[Prompt], responses: Sequence[str], max_length: int | None):
    """Token ids of each prompt and response, tokenized apart so the boundary is exact; responses cut to fit."""
    prompt_ids = tokenizer(render_prompts(tokenizer, prompts), add_special_tokens=False).input_ids
    response_ids = tokenizer(list(responses), add_special_tokens=False).input_ids
    pairs = []
    for row, (prompt, response) in enumerate(zip(prompt_ids, response_ids, strict=True)):
        if len(response) == 0:
            raise ValueError(f"Row {row} has an empty response: there is no token to score. Filter it out first.")
        if max_length is not None:
            if len(prompt) >= max_length:
                raise ValueError(
                    f"Row {row}: the prompt alone has {len(prompt)} tokens, which leaves no room under `max_length` "
                    f"({max_length}); raise `max_length`."
                )
            response = response[: max_length - len(prompt)]
        pairs.append((prompt, response))
    return pairs


def _pad_batch(pairs, padding_side: str, pad_id: int):
    """Padded `input_ids`, `attention_mask` and `completion_mask` for a list of (prompt ids, response ids)."""
    width = max(len(p) + len(r) for p, r in pairs)
    input_ids = torch.full((len(pairs), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(pairs), width), dtype=torch.long)
    completion = torch.zeros((len(pairs), width), dtype=torch.long)
    for row, (prompt, response) in enumerate(pairs):
        length = len(prompt) + len(response)
        start = width - length if padding_side == "left" else 0
        input_ids[row, start : start + length] = torch.tensor(prompt + response)
        attention[row, start : start + length] = 1
        completion[row, start + len(prompt) : start + length] = 1
    return input_ids, attention, completion


def _check_columns(dataset: Dataset, prompt_column: str, response_column: str) -> None:
    if not isinstance(dataset, Dataset):
        raise TypeError(f"`dataset` must be a datasets.Dataset, got {type(dataset).__name__}.")
    if len(dataset) == 0:
        raise ValueError("`dataset` is empty: give at least one (prompt, response) row.")
    for argument, column in (("prompt_column", prompt_column), ("response_column", response_column)):
        if column not in dataset.column_names:
            raise ValueError(f"`{argument}` {column!r} is not a column of `dataset` ({dataset.column_names}).")


def _score_rows(models, tokenizer, pairs, options: dict[str, Any], vocab_size: int, progress: bool):
    """Per-row metric values (CPU tensors) of every (prompt ids, response ids) pair, batched longest first.

    The batches are fixed by the data (the rows sorted by length, then cut every `batch_size`), and shared between
    the processes of a launched run (`hf_dlp.distributed`), so every row is scored in the same batch, with the same
    padding, whatever the number of processes: the values equal the one-process run exactly.
    """
    pad_id = next((i for i in (tokenizer.pad_token_id, tokenizer.eos_token_id) if i is not None), 0)
    order = sorted(range(len(pairs)), key=lambda row: -(len(pairs[row][0]) + len(pairs[row][1])))
    batch_size = options["batch_size"]

    def score_batch(batch_index: int) -> list[dict[str, torch.Tensor]]:
        rows = order[batch_index * batch_size : (batch_index + 1) * batch_size]
        input_ids, attention, completion = _pad_batch([pairs[r] for r in rows], tokenizer.padding_side, pad_id)
        metrics = compute_token_metrics(
            base_model=models[0],
            rl_model=models[1],
            input_ids=input_ids,
            attention_mask=attention,
            completion_mask=completion,
            logprobs_top_k=options["logprobs_top_k"],
            vocab_size=vocab_size,
            chunk_size=options["chunk_size"],
        )
        mask = metrics.mask.cpu()
        return [
            {
                **{name: metrics[name][index][metrics.mask[index]].cpu() for name in METRIC_NAMES},
                "token_ids": input_ids[index][mask[index]],
            }
            for index in range(len(rows))
        ]

    num_batches = -(-len(order) // batch_size)
    batches = distributed_map(score_batch, num_batches, progress=progress, description="scoring responses")
    per_row: list[dict[str, torch.Tensor] | None] = [None] * len(pairs)
    for row, values in zip(order, (values for batch in batches for values in batch), strict=True):
        per_row[row] = values
    return per_row


def analyze_responses(
    *,
    base_model: PreTrainedModel,
    rl_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    dataset: Dataset,
    prompt_column: str = "prompt",
    response_column: str = "response",
    source_column: str | None = "source",
    batch_size: int = 8,
    max_length: int | None = None,
    logprobs_top_k: int | None = None,
    chunk_size: int | None = None,
    rl_tokenizer: PreTrainedTokenizerBase | None = None,
    positive_source: str = "rl",
    negative_source: str = "base",
    progress: bool = True,
) -> AnalysisReport:
    """Score every (prompt, response) row with `compute_token_metrics` and gather the tokens into a report.

    Prompts are rendered as in `hf_dlp.generation` (strings as they are, chat message lists through the chat
    template) and tokenized apart from the responses, without special tokens. Rows are batched by length to limit
    padding; the tokenizer's `padding_side` is used, and the report keeps the dataset's order. The report also records
    the id of every scored token and the decoded text of each id (`token_ids`, `token_text`), for its token tables and
    page. Every argument is passed by name.

    Args:
        base_model, rl_model (`PreTrainedModel`): the base and RLVR models.
        tokenizer (`PreTrainedTokenizerBase`): the tokenizer both models share; `len(tokenizer)` ids are scored
            (padding rows of the output layers beyond it are dropped).
        dataset (`datasets.Dataset`): one row per response, with prompt and response columns.
        prompt_column, response_column (`str`, *optional*): column names (`"prompt"`, `"response"`).
        source_column (`str`, *optional*, defaults to `"source"`): who wrote each response (`"base"`/`"rl"`);
            ignored when the column is missing (every response is then labelled `"all"`).
        batch_size (`int`, *optional*, defaults to `8`): rows per forward pass.
        max_length (`int`, *optional*): cut responses so that prompt + response fit in this many tokens.
        logprobs_top_k, chunk_size: passed to `compute_token_metrics`.
        rl_tokenizer (`PreTrainedTokenizerBase`, *optional*): the RL model's own tokenizer, checked against
            `tokenizer` with `check_same_vocabulary` (a `ValueError` if they differ); the ids both know are scored.
        positive_source, negative_source (`str`, *optional*): the sources compared by the report's separation.
        progress (`bool`, *optional*, defaults to `True`): show a progress bar.

    Examples:

    >>> from datasets import Dataset
    >>> from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm
    >>> tok = build_char_tokenizer()
    >>> base, rl = build_tiny_causal_lm(size="nano", seed=0), build_tiny_causal_lm(size="nano", seed=1)
    >>> data = Dataset.from_dict({"prompt": ["Q: 1+1?\\nA: ", "Q: 2+5?\\nA: "], "response": ["2", "The answer is 7"],
    ...                           "source": ["base", "rl"]})
    >>> report = analyze_responses(base_model=base, rl_model=rl, tokenizer=tok, dataset=data, progress=False)
    >>> report.num_responses, report.num_tokens, sorted(report.separation()["delta_logp"])
    (2, 16, ['auroc_response', 'auroc_token', 'overlap_token'])
    """
    _check_columns(dataset, prompt_column, response_column)
    options = check_scoring_options(
        batch_size=batch_size, max_length=max_length, logprobs_top_k=logprobs_top_k, chunk_size=chunk_size
    )
    vocab_size = len(tokenizer) if rl_tokenizer is None else check_same_vocabulary(tokenizer, rl_tokenizer)
    pairs = _encode_pairs(tokenizer, dataset[prompt_column], dataset[response_column], options["max_length"])
    use_sources = source_column is not None and source_column in dataset.column_names
    sources = [str(s) for s in dataset[source_column]] if use_sources else ["all"] * len(dataset)
    per_row = _score_rows((base_model, rl_model), tokenizer, pairs, options, vocab_size, progress)
    lengths = torch.tensor([len(values["delta_logp"]) for values in per_row])
    settings: dict[str, Any] = {
        "num_rows": len(dataset),
        "logprobs_top_k": options["logprobs_top_k"],
        "max_length": options["max_length"],
        "vocab_size": vocab_size,
        "base_model": getattr(base_model.config, "_name_or_path", ""),
        "rl_model": getattr(rl_model.config, "_name_or_path", ""),
    }
    token_ids = torch.cat([values["token_ids"] for values in per_row])
    return AnalysisReport(
        token_values={name: torch.cat([values[name] for values in per_row]) for name in METRIC_NAMES},
        token_response=torch.repeat_interleave(torch.arange(len(per_row)), lengths),
        sources=sources,
        settings=settings,
        positive_source=positive_source,
        negative_source=negative_source,
        token_ids=token_ids,
        token_text={i: tokenizer.decode([i]) for i in torch.unique(token_ids).tolist()},
    )


def _drop_empty_responses(rows: dict[str, list], tokenizer) -> dict[str, list]:
    keep = [i for i, text in enumerate(rows["response"]) if tokenizer(text, add_special_tokens=False).input_ids]
    if len(keep) < len(rows["response"]):
        warnings.warn(f"Dropped {len(rows['response']) - len(keep)} empty responses (nothing to score).", stacklevel=3)
    if not keep:
        raise ValueError("Every sampled response was empty; raise `max_new_tokens` or check the models' eos token.")
    return {name: [values[i] for i in keep] for name, values in rows.items()}


def generate_responses(
    *,
    base_model: PreTrainedModel,
    rl_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Prompt],
    num_samples: int = 4,
    batch_size: int = 32,
    seed: int = 0,
    generation_config: GenerationConfig | None = None,
    progress: bool = True,
    **generate_kwargs: Any,
) -> Dataset:
    """Sample `num_samples` responses per prompt from each model with `hf_dlp.generation.sample_completions`.

    Sampling follows `generation_config` (default: `hf_dlp.generation.default_generation_config()`, the paper's
    temperature 1.0 and top-p 0.7, 256 new tokens), with `generate_kwargs` overriding single settings
    (`max_new_tokens=64`), as in `generate`. Both models sample with the same settings and seeds. Empty responses
    (an immediate end-of-sequence) have no token to score and are dropped with a warning.

    Returns:
        `datasets.Dataset` with columns `prompt`, `response`, `source` (`"base"` or `"rl"`) and `prompt_index`,
        ready for `analyze_responses`.

    Examples:

    >>> from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm
    >>> tok = build_char_tokenizer()
    >>> base, rl = build_tiny_causal_lm(size="nano", seed=0), build_tiny_causal_lm(size="nano", seed=1)
    >>> data = generate_responses(base_model=base, rl_model=rl, tokenizer=tok, prompts=["Q: 1+1?\\nA: "],
    ...                           num_samples=2, max_new_tokens=5, progress=False)
    >>> data.column_names, list(data["source"])
    (['prompt', 'response', 'source', 'prompt_index'], ['base', 'base', 'rl', 'rl'])
    """
    prompts = check_prompts(prompts)
    num_samples = check_number("num_samples", num_samples, integer=True, minimum=1)
    config, model_kwargs = resolve_generation_config(generation_config, **generate_kwargs)
    rows: dict[str, list] = {"prompt": [], "response": [], "source": [], "prompt_index": []}
    for source, model in (("base", base_model), ("rl", rl_model)):
        completions = sample_completions(
            model,
            tokenizer,
            prompts,
            num_samples=num_samples,
            batch_size=batch_size,
            seed=seed,
            generation_config=config,
            progress=progress,
            **model_kwargs,
        )
        for index, (prompt, group) in enumerate(zip(prompts, completions, strict=True)):
            for response in group:
                rows["prompt"].append(prompt)
                rows["response"].append(response)
                rows["source"].append(source)
                rows["prompt_index"].append(index)
    return Dataset.from_dict(_drop_empty_responses(rows, tokenizer))
