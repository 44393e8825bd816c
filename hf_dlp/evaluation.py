"""Sampling-based evaluation: Avg@k (mean accuracy over k samples per problem) and the unbiased Pass@k estimator.

Sampling goes through `hf_dlp.generation.sample_completions` with one `GenerationConfig` (default:
`hf_dlp.generation.default_generation_config()`, the paper's temperature 1.0 and top-p 0.7, 256 new tokens).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .arguments import check_number, check_sequence
from .generation import GenerateFunction, generation_settings, resolve_generation_config, sample_completions
from .rewards import RewardFunction, accuracy_reward, check_reward_columns

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase


def binomial_stderr(accuracy: float, samples: int) -> float:
    """The binomial standard error of an accuracy over `samples` independent samples (never exactly 0, so that a
    verdict built on it stays defined at accuracy 0 or 1).

    Examples:

    >>> round(binomial_stderr(0.5, 100), 3)
    0.05
    """
    return math.sqrt(max(accuracy * (1 - accuracy), 1e-12) / max(samples, 1))


def pass_at_k(num_samples: int, num_correct: int, k: int) -> float:
    """Unbiased Pass@k estimator (Chen et al., 2021): 1 − C(n−c, k) / C(n, k).

    Examples:

    >>> round(pass_at_k(num_samples=4, num_correct=1, k=2), 4)   # 1 - C(3,2)/C(4,2) = 1 - 3/6
    0.5
    >>> pass_at_k(4, 0, 2), pass_at_k(4, 3, 2)
    (0.0, 1.0)
    """
    num_samples = check_number("num_samples", num_samples, integer=True, minimum=1)
    num_correct = check_number("num_correct", num_correct, integer=True)
    k = check_number("k", k, integer=True)
    if not 0 <= num_correct <= num_samples:
        raise ValueError(f"`num_correct` ({num_correct}) must be between 0 and `num_samples` ({num_samples}).")
    if not 1 <= k <= num_samples:
        raise ValueError(f"`k` ({k}) must be between 1 and `num_samples` ({num_samples}); draw more samples.")
    if num_samples - num_correct < k:
        return 1.0
    # The product form avoids huge binomial coefficients.
    return 1.0 - math.prod(1.0 - k / n for n in range(num_samples - num_correct + 1, num_samples + 1))


@dataclass
class EvaluationResult:
    """Result of `evaluate_model`: Avg@k, Pass@k and the per-problem counts behind them.

    Args:
        avg_at_k (`float`): mean accuracy over all `num_samples` samples of every problem (Avg@k).
        pass_at_k (`dict[int, float]`): the unbiased Pass@k estimate for each requested k.
        num_problems, num_samples (`int`): problems evaluated, samples drawn per problem.
        correct_counts (`list[int]`): correct samples of each problem.
        settings (`dict[str, Any]`, *optional*): how the result was made (seed, reward, sampling settings).
        completions (`list[list[str]]`, *optional*): the sampled completions, when kept.

    Examples:

    >>> result = EvaluationResult(avg_at_k=0.5, pass_at_k={1: 0.5, 2: 0.75}, num_problems=2, num_samples=2,
    ...                           correct_counts=[2, 0])
    >>> result.accuracy, result.to_dict()["avg@2"], result.to_dict()["pass_at_k"]
    (0.5, 0.5, {'1': 0.5, '2': 0.75})
    >>> EvaluationResult.from_dict(result.to_dict()) == result
    True
    """

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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvaluationResult:
        """A result from its JSON form (`to_dict`, `evaluation.json`, a demo's `results.json` entry): Pass@k keys
        back to integers; the `avg@<k>` alias and the version stamp are dropped."""
        known = {spec.name for spec in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        values["pass_at_k"] = {int(k): value for k, value in data["pass_at_k"].items()}
        values.setdefault("correct_counts", [])
        return cls(**values)

    def save(self, path: str | Path) -> Path:
        """Write the result as JSON to `path` (a file name, or a folder that gets `evaluation.json`)."""
        path = Path(path)
        if path.suffix != ".json":
            path = path / "evaluation.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path


def _check_evaluation_inputs(dataset: Dataset, prompt_column: str, num_samples: Any, pass_at: Any) -> tuple:
    """Validate the data set and the sample counts; return `(num_samples, sorted pass_at)`."""
    from datasets import Dataset

    if not isinstance(dataset, Dataset):
        raise TypeError(f"`dataset` must be a datasets.Dataset, got {type(dataset).__name__}.")
    if len(dataset) == 0:
        raise ValueError("`dataset` is empty: nothing to evaluate.")
    if prompt_column not in dataset.column_names:
        raise ValueError(f"`prompt_column` {prompt_column!r} is not a dataset column ({dataset.column_names}).")
    num_samples = check_number("num_samples", num_samples, integer=True, minimum=1)
    ks = (1, num_samples) if pass_at is None else check_sequence("pass_at", pass_at, items="values of k")
    ks = sorted({check_number("pass_at", k, integer=True, minimum=1) for k in ks})
    for k in ks:
        if k > num_samples:
            raise ValueError(f"Pass@{k} needs `num_samples` >= {k}, got {num_samples}.")
    return num_samples, ks


def evaluate_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    dataset: Dataset,
    *,
    num_samples: int = 4,
    pass_at: Sequence[int] | None = None,
    reward_fn: RewardFunction = accuracy_reward,
    prompt_column: str = "prompt",
    batch_size: int = 32,
    seed: int = 0,
    generation_config: GenerationConfig | None = None,
    generate_fn: GenerateFunction | None = None,
    keep_completions: bool = False,
    progress: bool = True,
    **generate_kwargs: Any,
) -> EvaluationResult:
    """Evaluate a model on a dataset by sampling: Avg@k over `num_samples` samples per problem, and Pass@k.

    A completion counts as correct when `reward_fn` gives it a reward above 0 (so both 1/0 and ±1 rewards work).
    All dataset columns other than the prompt are passed to `reward_fn` as keyword arguments, as TRL does; a reward
    that declares `ground_truth_columns` (the `hf_dlp.rewards` accuracy rewards) has them checked before sampling.

    Under `accelerate launch` or `torchrun` the sampling batches are shared between the processes and gathered in
    order (`hf_dlp.generation.sample_completions`), so every process gets the same result, equal to a one-process
    run; the rewards are computed on every process. Save the result from the main process only
    (`hf_dlp.distributed.is_main_process()`).

    Args:
        model (`PreTrainedModel`), tokenizer (`PreTrainedTokenizerBase`, left padding): what to evaluate.
        dataset (`datasets.Dataset`): problems, with a `prompt_column` and the columns `reward_fn` reads.
        num_samples (`int`, *optional*, defaults to `4`): samples per problem (the k of Avg@k).
        pass_at (`list[int]`, *optional*): the k values of Pass@k; defaults to `[1, num_samples]`.
        reward_fn (`Callable`, *optional*, defaults to `accuracy_reward`): a TRL-style reward function.
        batch_size (`int`, *optional*, defaults to `32`): sequences per `generate` call.
        seed (`int`, *optional*, defaults to `0`): base seed of the sampling.
        generation_config (`GenerationConfig`, *optional*): sampling settings; defaults to
            `hf_dlp.generation.default_generation_config()`. `generate_kwargs` override single settings
            (`max_new_tokens=64, temperature=0.7`), as in `generate`; other keywords go to `generate` as they are.
        generate_fn (`Callable`, *optional*): replaces `model.generate`, e.g. extrapolated decoding.
        keep_completions (`bool`, *optional*, defaults to `False`): keep the sampled texts in the result.
        progress (`bool`, *optional*, defaults to `True`): show a progress bar.

    Examples:

    >>> from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm, make_arithmetic_dataset
    >>> tok, model = build_char_tokenizer(), build_tiny_causal_lm(size="nano")
    >>> result = evaluate_model(model, tok, make_arithmetic_dataset(num_examples=2), num_samples=2,
    ...                         max_new_tokens=4, progress=False)
    >>> result.avg_at_k, sorted(result.pass_at_k), result.settings["max_new_tokens"]   # never right, untrained
    (0.0, [1, 2], 4)
    """
    num_samples, pass_at = _check_evaluation_inputs(dataset, prompt_column, num_samples, pass_at)
    check_reward_columns(reward_fn, dataset.column_names)
    config, model_kwargs = resolve_generation_config(generation_config, **generate_kwargs)
    completions = sample_completions(
        model,
        tokenizer,
        list(dataset[prompt_column]),
        num_samples=num_samples,
        batch_size=batch_size,
        seed=seed,
        generation_config=config,
        generate_fn=generate_fn,
        progress=progress,
        **model_kwargs,
    )
    columns = {name: dataset[name] for name in dataset.column_names if name != prompt_column}
    flat = [completion for group in completions for completion in group]
    repeated = {name: [value for value in values for _ in range(num_samples)] for name, values in columns.items()}
    rewards = reward_fn(flat, **repeated)
    correct = [reward is not None and reward > 0 for reward in rewards]
    counts = [sum(correct[i : i + num_samples]) for i in range(0, len(correct), num_samples)]
    settings = {"num_samples": num_samples, "seed": seed, "reward_fn": getattr(reward_fn, "__name__", "reward")}
    settings.update(generation_settings(config))
    return EvaluationResult(
        avg_at_k=sum(counts) / (len(counts) * num_samples),
        pass_at_k={k: sum(pass_at_k(num_samples, c, k) for c in counts) / len(counts) for k in pass_at},
        num_problems=len(counts),
        num_samples=num_samples,
        correct_counts=counts,
        settings=settings,
        completions=completions if keep_completions else None,
    )


MATH_ACCURACY_METRIC_PATH = str(Path(__file__).parent / "metrics" / "math_accuracy")
"""Local path of the `evaluate` metric: `evaluate.load(MATH_ACCURACY_METRIC_PATH)`, no download."""

__all__ = ["MATH_ACCURACY_METRIC_PATH", "EvaluationResult", "binomial_stderr", "evaluate_model", "pass_at_k"]
