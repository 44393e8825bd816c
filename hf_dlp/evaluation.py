"""Sampling-based evaluation: Avg@k (mean accuracy over k samples per problem) and the unbiased Pass@k estimator."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from tqdm.auto import tqdm

from . import __version__
from .rewards import RewardFunction, accuracy_reward

# A generation function: `(input_ids, attention_mask, **generate_kwargs) -> sequences` (prompt + new tokens), the
# contract of `model.generate`. Extrapolated decoding plugs in here.
GenerateFunction = Callable[..., torch.LongTensor]

Prompt = str | list[dict[str, Any]]


def pass_at_k(num_samples: int, num_correct: int, k: int) -> float:
    """Unbiased Pass@k estimator (Chen et al., 2021): 1 − C(n−c, k) / C(n, k).

    Examples:

    >>> round(pass_at_k(num_samples=4, num_correct=1, k=2), 4)   # 1 - C(3,2)/C(4,2) = 1 - 3/6
    0.5
    >>> pass_at_k(4, 0, 2), pass_at_k(4, 3, 2)
    (0.0, 1.0)
    """
    if not 0 <= num_correct <= num_samples:
        raise ValueError(f"`num_correct` ({num_correct}) must be between 0 and `num_samples` ({num_samples}).")
    if not 1 <= k <= num_samples:
        raise ValueError(f"`k` ({k}) must be between 1 and `num_samples` ({num_samples}); draw more samples.")
    if num_samples - num_correct < k:
        return 1.0
    # The product form avoids huge binomial coefficients.
    return 1.0 - math.prod(1.0 - k / n for n in range(num_samples - num_correct + 1, num_samples + 1))


def render_prompts(tokenizer, prompts: Sequence[Prompt]) -> list[str]:
    """Turn prompts into model input text: strings pass through, chat message lists go through the chat template."""
    if len(prompts) == 0:
        raise ValueError("`prompts` is empty: give at least one prompt.")
    rendered = []
    for prompt in prompts:
        if isinstance(prompt, str):
            rendered.append(prompt)
        else:
            rendered.append(tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True))
    return rendered


def _check_left_padding(tokenizer) -> None:
    if tokenizer.padding_side != "left":
        raise ValueError(
            f"Batched generation needs left padding, but `tokenizer.padding_side` is {tokenizer.padding_side!r}. "
            "Set `tokenizer.padding_side = 'left'`."
        )
    if tokenizer.pad_token_id is None:
        raise ValueError("The tokenizer has no pad token; set `tokenizer.pad_token = tokenizer.eos_token`.")


@torch.inference_mode()
def sample_completions(
    model,
    tokenizer,
    prompts: Sequence[Prompt],
    *,
    num_samples: int = 1,
    batch_size: int = 32,
    seed: int = 0,
    generate_fn: GenerateFunction | None = None,
    progress: bool = True,
    **generate_kwargs,
) -> list[list[str]]:
    """Sample `num_samples` completions for every prompt, in batches of at most `batch_size` sequences.

    Each batch is seeded with `seed + batch_index`, so results do not depend on what ran before.

    Args:
        model (`PreTrainedModel`): the model to sample from.
        tokenizer (`PreTrainedTokenizerBase`): its tokenizer, with left padding.
        prompts (`list[str | list[dict]]`): plain prompts, or chat message lists (rendered with the chat template).
        num_samples (`int`, *optional*, defaults to `1`): completions per prompt.
        batch_size (`int`, *optional*, defaults to `32`): sequences per `generate` call.
        seed (`int`, *optional*, defaults to `0`): base seed.
        generate_fn (`Callable`, *optional*): replaces `model.generate`, e.g. extrapolated decoding.
        progress (`bool`, *optional*, defaults to `True`): show a progress bar.
        generate_kwargs: passed to `generate` (`max_new_tokens`, `do_sample`, `temperature`, `top_p`, ...).

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
    if num_samples < 1:
        raise ValueError(f"`num_samples` must be at least 1, got {num_samples}.")
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be at least 1, got {batch_size}.")
    _check_left_padding(tokenizer)
    texts = [text for text in render_prompts(tokenizer, prompts) for _ in range(num_samples)]
    generate = generate_fn if generate_fn is not None else model.generate
    device = next(model.parameters()).device
    decoded: list[str] = []
    starts = range(0, len(texts), batch_size)
    for batch_index, start in enumerate(tqdm(starts, desc="sampling", disable=not progress, unit="batch")):
        batch = tokenizer(texts[start : start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        batch = batch.to(device)
        torch.manual_seed(seed + batch_index)
        sequences = generate(input_ids=batch.input_ids, attention_mask=batch.attention_mask, **generate_kwargs)
        new_tokens = sequences[:, batch.input_ids.shape[1] :]
        decoded.extend(tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
    return [decoded[i : i + num_samples] for i in range(0, len(decoded), num_samples)]


@dataclass
class EvaluationResult:
    """Result of `evaluate_model`: Avg@k, Pass@k and the per-problem counts behind them."""

    avg_at_k: float
    pass_at_k: dict[int, float]
    num_problems: int
    num_samples: int
    correct_counts: list[int]
    settings: dict[str, Any] = field(default_factory=dict)
    completions: list[list[str]] | None = None

    @property
    def accuracy(self) -> float:
        return self.avg_at_k

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["pass_at_k"] = {str(k): value for k, value in self.pass_at_k.items()}
        data[f"avg@{self.num_samples}"] = self.avg_at_k
        data["hf_dlp_version"] = __version__
        return data

    def save(self, path: str | Path) -> Path:
        """Write the result as JSON to `path` (a file name, or a folder that gets `evaluation.json`)."""
        path = Path(path)
        if path.suffix != ".json":
            path = path / "evaluation.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path


def evaluate_model(
    model,
    tokenizer,
    dataset: Dataset,
    *,
    num_samples: int = 4,
    pass_at: Sequence[int] | None = None,
    reward_fn: RewardFunction = accuracy_reward,
    prompt_column: str = "prompt",
    batch_size: int = 32,
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    generate_fn: GenerateFunction | None = None,
    keep_completions: bool = False,
    progress: bool = True,
    **generate_kwargs,
) -> EvaluationResult:
    """Evaluate a model on a dataset by sampling: Avg@k over `num_samples` samples per problem, and Pass@k.

    A completion counts as correct when `reward_fn` gives it a reward above 0 (so both 1/0 and ±1 rewards work).
    All dataset columns other than the prompt are passed to `reward_fn` as keyword arguments, as TRL does.

    Examples:

    >>> from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm, make_arithmetic_dataset
    >>> tok, model = build_char_tokenizer(), build_tiny_causal_lm(size="nano")
    >>> result = evaluate_model(model, tok, make_arithmetic_dataset(num_examples=2), num_samples=2,
    ...                         max_new_tokens=4, progress=False)
    >>> result.avg_at_k, sorted(result.pass_at_k)   # an untrained model is never right
    (0.0, [1, 2])
    """
    if len(dataset) == 0:
        raise ValueError("`dataset` is empty: nothing to evaluate.")
    if prompt_column not in dataset.column_names:
        raise ValueError(f"`prompt_column` {prompt_column!r} is not a dataset column ({dataset.column_names}).")
    pass_at = sorted(set(pass_at if pass_at is not None else (1, num_samples)))
    for k in pass_at:
        if not 1 <= k <= num_samples:
            raise ValueError(f"Pass@{k} needs `num_samples` >= {k}, got {num_samples}.")
    sampling = dict(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, **generate_kwargs)
    sampling.setdefault("do_sample", True)
    completions = sample_completions(
        model,
        tokenizer,
        dataset[prompt_column],
        num_samples=num_samples,
        batch_size=batch_size,
        seed=seed,
        generate_fn=generate_fn,
        progress=progress,
        **sampling,
    )
    columns = {name: dataset[name] for name in dataset.column_names if name != prompt_column}
    flat = [completion for group in completions for completion in group]
    repeated = {name: [value for value in values for _ in range(num_samples)] for name, values in columns.items()}
    rewards = reward_fn(flat, **repeated)
    correct = [reward is not None and reward > 0 for reward in rewards]
    counts = [sum(correct[i : i + num_samples]) for i in range(0, len(correct), num_samples)]
    avg = sum(counts) / (len(counts) * num_samples)
    passes = {k: sum(pass_at_k(num_samples, c, k) for c in counts) / len(counts) for k in pass_at}
    settings = {"num_samples": num_samples, "seed": seed, "reward_fn": getattr(reward_fn, "__name__", "reward")}
    settings.update({key: value for key, value in sampling.items() if isinstance(value, (int, float, str, bool))})
    return EvaluationResult(
        avg_at_k=avg,
        pass_at_k=passes,
        num_problems=len(counts),
        num_samples=num_samples,
        correct_counts=counts,
        settings=settings,
        completions=completions if keep_completions else None,
    )


MATH_ACCURACY_METRIC_PATH = str(Path(__file__).parent / "metrics" / "math_accuracy")
"""Local path of the `evaluate` metric: `evaluate.load(MATH_ACCURACY_METRIC_PATH)`, no download."""
