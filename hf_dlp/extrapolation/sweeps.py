"""Sweeps over the extrapolation settings on a dataset with a verifiable reward: the paper's Fig. 1c and Fig. 4.

- `replacement_sweep`: the base model generates, the RL model guides (γ = 0 by default: "selective replace"); for each
  selection rule and threshold τ, accuracy (Avg@k) against the measured replacement ratio.
- `extrapolation_sweep`: Avg@k over a γ × τ grid for one selection rule (the RL model generates by default).

Both report the two models' own accuracy as references and save JSON (with the hf_dlp version) and PNG plots.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from datasets import Dataset
from tqdm.auto import tqdm

from ..evaluation import evaluate_model
from ..rewards import RewardFunction, accuracy_reward
from .generate import generate_with_extrapolation
from .processor import SELECTION_RULES, check_extrapolation_arguments

# Threshold grids per rule for models of the paper's scale (Δlog p in nats, entropy/KL in nats, random a probability).
DEFAULT_TAUS: dict[str, tuple[float, ...]] = {
    "delta_logp": (-2.0, -1.0, -0.5, -0.35, -0.2, -0.1),
    "entropy": (2.0, 1.0, 0.5, 0.25, 0.1),
    "kl": (1.0, 0.5, 0.2, 0.1, 0.05),
    "kl_reverse": (1.0, 0.5, 0.2, 0.1, 0.05),
    "kl_mean": (1.0, 0.5, 0.2, 0.1, 0.05),
    "random": (0.01, 0.05, 0.1, 0.2),
}


@dataclass
class SweepResult:
    """Rows of a sweep (one per setting) plus the reference accuracies of the two models.

    Each row holds `selection`, `tau`, `gamma`, `avg_at_k`, `pass_at_k` and `replacement_ratio`.

    Examples:

    >>> result = SweepResult(kind="replacement", rows=[{"selection": "random", "tau": 0.1, "gamma": 0.0,
    ...     "avg_at_k": 0.25, "pass_at_k": {"1": 0.25}, "replacement_ratio": 0.1}], references={"base": 0.1, "rl": 0.5})
    >>> result.best()["tau"], sorted(result.to_dict())
    (0.1, ['hf_dlp_version', 'kind', 'references', 'rows', 'settings'])
    """

    kind: str
    rows: list[dict[str, Any]]
    references: dict[str, float]
    settings: dict[str, Any] = field(default_factory=dict)

    def best(self) -> dict[str, Any]:
        """The row with the highest Avg@k."""
        return max(self.rows, key=lambda row: row["avg_at_k"])

    def to_dict(self) -> dict[str, Any]:
        from hf_dlp import __version__

        return {**asdict(self), "hf_dlp_version": __version__}

    def save(self, path: str | Path) -> Path:
        """Write JSON to `path` (a `.json` file, or a folder that gets `<kind>_sweep.json`)."""
        path = Path(path)
        if path.suffix != ".json":
            path = path / f"{self.kind}_sweep.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    def plot(self, path: str | Path | None = None):
        """The sweep's figure (`plot_replacement_sweep` or `plot_extrapolation_sweep`); written when `path` is given."""
        from .plots import plot_extrapolation_sweep, plot_replacement_sweep

        plot = plot_replacement_sweep if self.kind == "replacement" else plot_extrapolation_sweep
        return plot(self, path=path)


class _StatsRecorder:
    """A `generate_fn` for `evaluate_model` that extrapolates and sums the selection counts over batches."""

    def __init__(self, model, other_kwargs: dict[str, Any], settings: dict[str, Any], tokenizer):
        self.model, self.other_kwargs, self.settings, self.tokenizer = model, other_kwargs, settings, tokenizer
        self.selected = self.generated = 0

    def __call__(self, **generate_kwargs):
        output, stats = generate_with_extrapolation(
            self.model,
            **self.other_kwargs,
            **self.settings,
            tokenizer=self.tokenizer,
            return_stats=True,
            **generate_kwargs,
        )
        self.selected += sum(stats.num_selected)
        self.generated += sum(stats.num_generated)
        return output

    @property
    def ratio(self) -> float:
        return self.selected / self.generated if self.generated else 0.0


def _check_sweep_inputs(dataset: Dataset, num_samples: int) -> None:
    if not isinstance(dataset, Dataset) or len(dataset) == 0:
        raise ValueError("`dataset` must be a non-empty `datasets.Dataset` with a prompt column and the ground truth.")
    if num_samples < 1:
        raise ValueError(f"`num_samples` must be at least 1, got {num_samples}.")


def _run_grid(generator, other_kwargs, tokenizer, dataset, grid, kind, evaluation, progress) -> list[dict[str, Any]]:
    rows = []
    for selection, tau, gamma, top_k in tqdm(grid, desc=f"{kind} sweep", disable=not progress, unit="setting"):
        recorder = _StatsRecorder(
            generator, other_kwargs, {"gamma": gamma, "selection": selection, "tau": tau, "top_k": top_k}, tokenizer
        )
        result = evaluate_model(generator, tokenizer, dataset, generate_fn=recorder, progress=False, **evaluation)
        rows.append(
            {
                "selection": selection,
                "tau": tau,
                "gamma": gamma,
                "top_k": top_k,
                "avg_at_k": result.avg_at_k,
                "pass_at_k": {str(k): v for k, v in result.pass_at_k.items()},
                "replacement_ratio": recorder.ratio,
            }
        )
    return rows


def _references(base_model, rl_model, tokenizer, dataset, evaluation) -> dict[str, float]:
    return {
        name: evaluate_model(model, tokenizer, dataset, progress=False, **evaluation).avg_at_k
        for name, model in (("base", base_model), ("rl", rl_model))
    }


def replacement_sweep(
    base_model,
    rl_model,
    tokenizer,
    dataset: Dataset,
    *,
    selections: Sequence[str] = ("delta_logp", "kl", "entropy", "random"),
    taus: dict[str, Sequence[float]] | None = None,
    gamma: float = 0.0,
    top_k: int | None = 50,
    reward_fn: RewardFunction = accuracy_reward,
    num_samples: int = 4,
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    top_p: float = 0.7,
    batch_size: int = 32,
    seed: int = 0,
    progress: bool = True,
    output_dir: str | Path | None = None,
) -> SweepResult:
    """Accuracy against replacement ratio for each selection rule over a τ grid (paper Fig. 1c).

    The base model generates; at positions each rule selects, the token is re-drawn from the RL model (γ = 0) or
    from π_extra (γ > 0), restricted to the base's `top_k` candidates, sampled with `temperature` and `top_p`.
    With `output_dir`, writes `replacement_sweep.json` and `replacement_sweep.png` there.

    Examples:

    >>> from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm, make_arithmetic_dataset
    >>> tok, data = build_char_tokenizer(), make_arithmetic_dataset(num_examples=2)
    >>> base, rl = build_tiny_causal_lm(size="nano", seed=1), build_tiny_causal_lm(size="nano", seed=2)
    >>> result = replacement_sweep(base, rl, tok, data, selections=["random"], taus={"random": [0.0, 1.0]},
    ...                            num_samples=1, max_new_tokens=3, progress=False)
    >>> [(row["tau"], row["replacement_ratio"]) for row in result.rows], sorted(result.references)
    ([(0.0, 0.0), (1.0, 1.0)], ['base', 'rl'])
    """
    _check_sweep_inputs(dataset, num_samples)
    taus = {**DEFAULT_TAUS, **(taus or {})}
    for selection in selections:
        if selection not in SELECTION_RULES or selection == "all":
            raise ValueError(f"`selections` entries must be selective rules {SELECTION_RULES[1:]}, got {selection!r}.")
        for tau in taus[selection]:
            check_extrapolation_arguments(gamma, selection, tau, top_k)
    grid = [(selection, float(tau), gamma, top_k) for selection in selections for tau in taus[selection]]
    evaluation = dict(
        num_samples=num_samples,
        reward_fn=reward_fn,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        batch_size=batch_size,
        seed=seed,
    )
    rows = _run_grid(base_model, {"rl_model": rl_model}, tokenizer, dataset, grid, "replacement", evaluation, progress)
    settings = {
        **{k: v for k, v in evaluation.items() if k != "reward_fn"},
        "gamma": gamma,
        "top_k": top_k,
        "reward_fn": getattr(reward_fn, "__name__", "reward"),
        "generator": "base",
    }
    result = SweepResult(
        "replacement", rows, _references(base_model, rl_model, tokenizer, dataset, evaluation), settings
    )
    if output_dir is not None:
        result.save(output_dir)
        result.plot(Path(output_dir) / "replacement_sweep.png")
    return result


def extrapolation_sweep(
    rl_model,
    base_model,
    tokenizer,
    dataset: Dataset,
    *,
    gammas: Sequence[float] = (0.0, 0.05, 0.1, 0.2),
    taus: Sequence[float] = (-0.5, -0.35, -0.2),
    selection: str = "delta_logp",
    generator: str = "rl",
    top_k: int | None = 50,
    reward_fn: RewardFunction = accuracy_reward,
    num_samples: int = 4,
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    top_p: float = 0.7,
    batch_size: int = 32,
    seed: int = 0,
    progress: bool = True,
    output_dir: str | Path | None = None,
) -> SweepResult:
    """Avg@k over a γ × τ grid for one selection rule (paper Fig. 4 / "extrapolation on π_RL").

    `generator="rl"`: the RL model generates, guided by the base; `"base"`: the base generates, guided by the RL model
    (the paper's Fig. 4). With `output_dir`, writes `extrapolation_sweep.json` and `extrapolation_sweep.png` there.

    Examples:

    >>> from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm, make_arithmetic_dataset
    >>> tok, data = build_char_tokenizer(), make_arithmetic_dataset(num_examples=2)
    >>> base, rl = build_tiny_causal_lm(size="nano", seed=1), build_tiny_causal_lm(size="nano", seed=2)
    >>> result = extrapolation_sweep(rl, base, tok, data, gammas=[0.0, 0.5], taus=[-0.1], num_samples=1,
    ...                              max_new_tokens=3, progress=False)
    >>> [(row["gamma"], row["tau"]) for row in result.rows]
    [(0.0, -0.1), (0.5, -0.1)]
    """
    _check_sweep_inputs(dataset, num_samples)
    if generator not in ("rl", "base"):
        raise ValueError(f"`generator` must be 'rl' (RL model generates) or 'base', got {generator!r}.")
    if len(gammas) == 0 or len(taus) == 0:
        raise ValueError(f"`gammas` and `taus` must be non-empty, got gammas={list(gammas)}, taus={list(taus)}.")
    sweep_taus = [None] if selection == "all" else [float(tau) for tau in taus]
    for gamma in gammas:
        for tau in sweep_taus:
            check_extrapolation_arguments(gamma, selection, tau, top_k)
    grid = [(selection, tau, float(gamma), top_k) for gamma in gammas for tau in sweep_taus]
    evaluation = dict(
        num_samples=num_samples,
        reward_fn=reward_fn,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        batch_size=batch_size,
        seed=seed,
    )
    model, other = (
        (rl_model, {"base_model": base_model}) if generator == "rl" else (base_model, {"rl_model": rl_model})
    )
    rows = _run_grid(model, other, tokenizer, dataset, grid, "extrapolation", evaluation, progress)
    settings = {
        **{k: v for k, v in evaluation.items() if k != "reward_fn"},
        "selection": selection,
        "top_k": top_k,
        "reward_fn": getattr(reward_fn, "__name__", "reward"),
        "generator": generator,
    }
    references = _references(base_model, rl_model, tokenizer, dataset, evaluation)
    result = SweepResult("extrapolation", rows, references, settings)
    if output_dir is not None:
        result.save(output_dir)
        result.plot(Path(output_dir) / "extrapolation_sweep.png")
    return result


__all__ = ["DEFAULT_TAUS", "SweepResult", "extrapolation_sweep", "replacement_sweep"]
