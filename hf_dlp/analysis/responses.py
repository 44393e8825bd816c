"""Dataset-scale analysis: score (prompt, response) pairs, generate responses from both models, or do it all."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
from datasets import Dataset
from tqdm.auto import tqdm

from ..evaluation import Prompt, render_prompts, sample_completions
from .metrics import METRIC_NAMES, compute_token_metrics
from .report import AnalysisReport
from .vocab import check_same_vocabulary


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


def analyze_responses(
    base_model,
    rl_model,
    tokenizer,
    dataset: Dataset,
    *,
    prompt_column: str = "prompt",
    response_column: str = "response",
    source_column: str | None = "source",
    batch_size: int = 8,
    max_length: int | None = None,
    top_k: int | None = None,
    chunk_size: int | None = None,
    rl_tokenizer=None,
    positive_source: str = "rl",
    negative_source: str = "base",
    progress: bool = True,
) -> AnalysisReport:
    """Score every (prompt, response) row with `compute_token_metrics` and gather the tokens into a report.

    Prompts are rendered as in `hf_dlp.evaluation` (strings as they are, chat message lists through the chat
    template) and tokenized apart from the responses, without special tokens. Rows are batched by length to limit
    padding; the tokenizer's `padding_side` is used, and the report keeps the dataset's order.

    Args:
        base_model, rl_model (`PreTrainedModel`): the base and RLVR models.
        tokenizer (`PreTrainedTokenizerBase`): the tokenizer both models share.
        dataset (`datasets.Dataset`): one row per response, with prompt and response columns.
        prompt_column, response_column (`str`, *optional*): column names (`"prompt"`, `"response"`).
        source_column (`str`, *optional*, defaults to `"source"`): who wrote each response (`"base"`/`"rl"`);
            ignored when the column is missing (every response is then labelled `"all"`).
        batch_size (`int`, *optional*, defaults to `8`): rows per forward pass.
        max_length (`int`, *optional*): cut responses so that prompt + response fit in this many tokens.
        top_k, chunk_size: passed to `compute_token_metrics`.
        rl_tokenizer (`PreTrainedTokenizerBase`, *optional*): the RL model's own tokenizer, checked against
            `tokenizer` with `check_same_vocabulary` (a `ValueError` if they differ).
        positive_source, negative_source (`str`, *optional*): the sources compared by the report's separation.
        progress (`bool`, *optional*, defaults to `True`): show a progress bar.

    Examples:

    >>> from datasets import Dataset
    >>> from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm
    >>> tok = build_char_tokenizer()
    >>> base, rl = build_tiny_causal_lm(size="nano", seed=0), build_tiny_causal_lm(size="nano", seed=1)
    >>> data = Dataset.from_dict({"prompt": ["Q: 1+1?\\nA: ", "Q: 2+5?\\nA: "], "response": ["2", "The answer is 7"],
    ...                           "source": ["base", "rl"]})
    >>> report = analyze_responses(base, rl, tok, data, progress=False)
    >>> report.num_responses, report.num_tokens, sorted(report.separation()["delta_logp"])
    (2, 16, ['auroc_response', 'auroc_token', 'overlap_token'])
    """
    _check_columns(dataset, prompt_column, response_column)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
    if max_length is not None and (not isinstance(max_length, int) or max_length < 2):
        raise ValueError(f"`max_length` must be None or an integer of at least 2, got {max_length!r}.")
    if rl_tokenizer is not None:
        check_same_vocabulary(tokenizer, rl_tokenizer)
    pairs = _encode_pairs(tokenizer, dataset[prompt_column], dataset[response_column], max_length)
    use_sources = source_column is not None and source_column in dataset.column_names
    sources = [str(s) for s in dataset[source_column]] if use_sources else ["all"] * len(dataset)
    pad_id = next((i for i in (tokenizer.pad_token_id, tokenizer.eos_token_id) if i is not None), 0)
    order = sorted(range(len(pairs)), key=lambda row: -(len(pairs[row][0]) + len(pairs[row][1])))
    per_row: list[dict[str, torch.Tensor] | None] = [None] * len(pairs)
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc="scoring responses", unit="batch", disable=not progress):
        rows = order[start : start + batch_size]
        input_ids, attention, completion = _pad_batch([pairs[r] for r in rows], tokenizer.padding_side, pad_id)
        metrics = compute_token_metrics(
            base_model,
            rl_model,
            input_ids,
            attention,
            completion,
            top_k=top_k,
            vocab_size=len(tokenizer),
            chunk_size=chunk_size,
        )
        for index, row in enumerate(rows):
            mask = metrics.mask[index]
            per_row[row] = {name: metrics[name][index][mask] for name in METRIC_NAMES}
    lengths = torch.tensor([len(values["delta_logp"]) for values in per_row])
    settings: dict[str, Any] = {
        "num_rows": len(dataset),
        "top_k": top_k,
        "max_length": max_length,
        "vocab_size": len(tokenizer),
        "base_model": getattr(base_model.config, "_name_or_path", ""),
        "rl_model": getattr(rl_model.config, "_name_or_path", ""),
    }
    return AnalysisReport(
        token_values={name: torch.cat([values[name] for values in per_row]) for name in METRIC_NAMES},
        token_response=torch.repeat_interleave(torch.arange(len(per_row)), lengths),
        sources=sources,
        settings=settings,
        positive_source=positive_source,
        negative_source=negative_source,
    )


def generate_responses(
    base_model,
    rl_model,
    tokenizer,
    prompts: Sequence[Prompt],
    *,
    num_samples: int = 4,
    max_new_tokens: int = 256,
    temperature: float = 1.0,
    top_p: float = 1.0,
    batch_size: int = 32,
    seed: int = 0,
    progress: bool = True,
    **generate_kwargs,
) -> Dataset:
    """Sample `num_samples` responses per prompt from each model with `hf_dlp.evaluation.sample_completions`.

    Empty responses (an immediate end-of-sequence) have no token to score and are dropped with a warning.

    Returns:
        `datasets.Dataset` with columns `prompt`, `response`, `source` (`"base"` or `"rl"`) and `prompt_index`,
        ready for `analyze_responses`.

    Examples:

    >>> from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm
    >>> tok = build_char_tokenizer()
    >>> base, rl = build_tiny_causal_lm(size="nano", seed=0), build_tiny_causal_lm(size="nano", seed=1)
    >>> data = generate_responses(base, rl, tok, ["Q: 1+1?\\nA: "], num_samples=2, max_new_tokens=5, progress=False)
    >>> data.column_names, list(data["source"])
    (['prompt', 'response', 'source', 'prompt_index'], ['base', 'base', 'rl', 'rl'])
    """
    if len(prompts) == 0:
        raise ValueError("`prompts` is empty: give at least one prompt.")
    rows: dict[str, list] = {"prompt": [], "response": [], "source": [], "prompt_index": []}
    sampling = dict(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, do_sample=True)
    sampling.update(generate_kwargs)
    for source, model in (("base", base_model), ("rl", rl_model)):
        completions = sample_completions(
            model,
            tokenizer,
            prompts,
            num_samples=num_samples,
            batch_size=batch_size,
            seed=seed,
            progress=progress,
            **sampling,
        )
        for index, (prompt, group) in enumerate(zip(prompts, completions, strict=True)):
            for response in group:
                rows["prompt"].append(prompt)
                rows["response"].append(response)
                rows["source"].append(source)
                rows["prompt_index"].append(index)
    empty = sum(len(tokenizer(r, add_special_tokens=False).input_ids) == 0 for r in rows["response"])
    if empty:
        warnings.warn(f"Dropped {empty} empty responses (nothing to score).", stacklevel=2)
        keep = [i for i, r in enumerate(rows["response"]) if len(tokenizer(r, add_special_tokens=False).input_ids)]
        rows = {name: [values[i] for i in keep] for name, values in rows.items()}
    if not rows["response"]:
        raise ValueError("Every sampled response was empty; raise `max_new_tokens` or check the models' eos token.")
    return Dataset.from_dict(rows)
