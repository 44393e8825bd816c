"""Sweeps over the extrapolation settings on a dataset with a verifiable reward: the paper's Fig. 1c and Fig. 4.

- `replacement_sweep`: the base model generates, the RL model guides (γ = 0 by default: "selective replace"); for each
  selection rule and threshold τ, accuracy (Avg@k) against the measured replacement ratio.
- `extrapolation_sweep`: Avg@k over a γ × τ grid for one selection rule (the RL model generates by default).

Both take one `ExtrapolationConfig` (plus keyword overrides of its fields) for what is not swept, and their sampling
as a `GenerationConfig` (plus `generate` keywords), by default `hf_dlp.generation.default_generation_config()`. Every
grid point is validated before the first model runs. Both report the two models' own accuracy as references and save
JSON (with the hf_dlp version) and PNG plots.

Under `accelerate launch` or `torchrun` every cell's sampling batches are shared between the processes
(`hf_dlp.distributed`); the rows equal the one-process run exactly (integer selection counts are summed over the
processes), every process returns the same `SweepResult`, and only the main process writes files and shows the bar.
With an `output_dir`, every finished cell is written as it finishes, so an interrupted sweep resumes from its finished
cells on any number of processes (`hf_dlp.sweeps.cells.CellStore`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from ..arguments import check_number, check_output_dir, check_sequence
from ..distributed import is_main_process, sum_over_processes
from ..evaluation import evaluate_model
from ..extrapolation import ExtrapolationConfig, generate_with_extrapolation
from ..extrapolation.config import SELECTION_RULES, pop_overrides, resolve_config
from ..generation import generation_settings, resolve_generation_config
from ..model_pair import check_pair_devices
from ..rewards import RewardFunction, accuracy_reward
from ..selection_rules import SELECTION_RULE_SPECS, selective_rules
from .cells import CellStore, dataset_identity, model_identity
from .result import SweepKind, SweepResult, SweepRow
from .swaps import SwapCollector

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase

# Threshold grids of the built-in rules for models of the paper's scale (Δlog p in nats, entropy/KL in nats, random a
# probability): each rule's `SelectionRuleSpec.default_taus`, which a registered rule declares too.
SELECTIVE_RULES: tuple[str, ...] = tuple(rule for rule in SELECTION_RULES if rule != "all")
DEFAULT_TAUS: dict[str, tuple[float, ...]] = {
    rule: SELECTION_RULE_SPECS[rule].default_taus for rule in SELECTIVE_RULES
}


class _StatsRecorder:
    """A `generate_fn` for `evaluate_model` that extrapolates and sums the selection counts over batches (and, with
    `record_swaps`, collects what each selected position swapped)."""

    def __init__(self, model, other: dict[str, Any], config: ExtrapolationConfig, tokenizer, record_swaps=False):
        self.model, self.other, self.config, self.tokenizer = model, other, config, tokenizer
        self.selected = self.generated = 0
        self.swaps = SwapCollector(tokenizer) if record_swaps else None

    def __call__(self, **generate_kwargs):
        output, stats = generate_with_extrapolation(
            self.model,
            **self.other,
            config=self.config,
            tokenizer=self.tokenizer,
            return_stats=True,
            record_swaps=self.swaps is not None,
            **generate_kwargs,
        )
        self.selected += sum(stats.num_selected)
        self.generated += sum(stats.num_generated)
        if self.swaps is not None:
            self.swaps.add(output, generate_kwargs["input_ids"].shape[1], stats)
        return output

    @property
    def ratio(self) -> float:
        """Selected over generated tokens, over the batches of every process (integer sums: exact)."""
        selected, generated = sum_over_processes(self.selected), sum_over_processes(self.generated)
        return selected / generated if generated else 0.0


def _check_inputs(dataset: Dataset, num_samples: int, output_dir) -> Path | None:
    from datasets import Dataset

    if not isinstance(dataset, Dataset) or len(dataset) == 0:
        raise ValueError("`dataset` must be a non-empty `datasets.Dataset` with a prompt column and the ground truth.")
    check_number("num_samples", num_samples, integer=True, minimum=1)
    return check_output_dir("output_dir", output_dir)


def _refuse_swept(overrides: dict[str, Any], swept: dict[str, str], where: str) -> None:
    for key, instead in swept.items():
        if key in overrides:
            raise ValueError(f"{where} sweeps `{key}`; give the grid as `{instead}=[...]` instead of `{key}=`.")


def _check_references(references: Mapping[str, float] | None) -> dict[str, float] | None:
    if references is None:
        return None
    if not isinstance(references, Mapping) or set(references) != {"base", "rl"}:
        raise ValueError(
            f"`references` must map 'base' and 'rl' to their Avg@k (another sweep's `references`), got {references!r}."
        )
    return {
        name: check_number(f"references[{name!r}]", references[name], minimum=0, maximum=1) for name in ("base", "rl")
    }


def _sweep_settings(kind, models, generator, grid, dataset, evaluation) -> dict[str, Any]:
    """What every cell of the sweep shares: the evaluation, the extrapolation settings not swept, data and models."""
    reward_fn = evaluation["reward_fn"]
    return {
        "kind": kind,
        "num_samples": evaluation["num_samples"],
        "batch_size": evaluation["batch_size"],
        "seed": evaluation["seed"],
        "reward_fn": getattr(reward_fn, "__name__", "reward"),
        "generator": generator,
        "extrapolation": {
            key: value
            for key, value in grid[0].to_dict().items()
            if key not in ("selection", "tau", "gamma", "temperature", "top_p", "hf_dlp_version")
        },
        "generation": generation_settings(evaluation["generation_config"]),
        "generate_kwargs": sorted(key for key in evaluation if key not in _EVALUATION_KEYS),
        "dataset": dataset_identity(dataset),
        "models": {name: model_identity(model) for name, model in models.items()},
    }


_EVALUATION_KEYS = ("generation_config", "reward_fn", "num_samples", "batch_size", "seed")


def _sweep(
    kind: SweepKind,
    models: dict[str, Any],
    generator: str,
    grid: list[ExtrapolationConfig],
    tokenizer,
    dataset: Dataset,
    evaluation: dict[str, Any],
    progress: bool,
    output_dir: Path | None,
    record_swaps: bool = False,
    references: Mapping[str, float] | None = None,
) -> SweepResult:
    """Evaluate every grid point, then the two models alone; save JSON and PNG into `output_dir` when given.

    Each cell (grid point or reference) is stored in `output_dir/cells/` as it finishes and reused by a rerun with
    the same settings (`CellStore`). Under a launcher every cell's batches are shared between the processes, and
    every process returns the same `SweepResult`; only the main process writes files and shows the progress bar.
    """
    check_pair_devices(base_model=models["base"], rl_model=models["rl"])
    if generator == "rl":
        model, other = models["rl"], {"base_model": models["base"]}
    else:
        model, other = models["base"], {"rl_model": models["rl"]}
    settings = _sweep_settings(kind, models, generator, grid, dataset, evaluation)
    if record_swaps:  # only then, so that cells stored before swaps were recorded are still reused
        settings["record_swaps"] = True
    store = CellStore(output_dir, settings)

    def grid_cell(config: ExtrapolationConfig) -> dict[str, Any]:
        recorder = _StatsRecorder(model, other, config, tokenizer, record_swaps)
        result = evaluate_model(model, tokenizer, dataset, generate_fn=recorder, progress=False, **evaluation)
        row = {
            **config.processor_kwargs(),
            "avg_at_k": result.avg_at_k,
            "pass_at_k": {str(k): v for k, v in result.pass_at_k.items()},
            "replacement_ratio": recorder.ratio,
        }
        if recorder.swaps is not None:
            row["swaps"] = recorder.swaps.summary()
        return row

    def reference(name: str) -> float:
        return evaluate_model(models[name], tokenizer, dataset, progress=False, **evaluation).avg_at_k

    given = references is not None
    with tqdm(
        total=len(grid) + (0 if given else 2),
        desc=f"{kind} sweep",
        unit="cell",
        disable=not progress or not is_main_process(),
    ) as bar:
        rows = []
        for config in grid:
            row = store.run(config.processor_kwargs(), lambda config=config: grid_cell(config))
            rows.append(SweepRow.from_dict(row))
            bar.update()
        if not given:
            references = {}
            for name in ("base", "rl"):
                references[name] = store.run({"reference": name}, lambda name=name: reference(name))
                bar.update()
    public = {name: value for name, value in settings.items() if name not in ("kind", "generate_kwargs")}
    sweep = SweepResult(kind, rows, references, public)
    if output_dir is not None and is_main_process():
        sweep.save(output_dir)
        sweep.plot(output_dir / f"{kind}_sweep.png")
    return sweep


def _evaluation(generation_config, generate_kwargs, reward_fn, num_samples, batch_size, seed) -> dict[str, Any]:
    config, rest = resolve_generation_config(generation_config, **generate_kwargs)
    return dict(
        generation_config=config,
        reward_fn=reward_fn,
        num_samples=num_samples,
        batch_size=batch_size,
        seed=seed,
        **rest,
    )


def _replacement_grid(
    config: ExtrapolationConfig, selections: Sequence[str], taus: Mapping[str, Sequence[float]] | None
) -> list[ExtrapolationConfig]:
    selections = check_sequence("selections", selections, items="selection rules")
    rules = selective_rules()  # the built-in ones and those registered since
    for selection in selections:
        if selection not in rules:
            raise ValueError(f"`selections` entries must be selective rules {rules}, got {selection!r}.")
    given = dict(taus or {})
    for rule in given:
        if rule not in rules:
            raise ValueError(f"`taus` has a grid for {rule!r}, which is not a selective rule {rules}.")
        if rule not in selections:
            raise ValueError(
                f"`taus` has a grid for {rule!r}, which is not in `selections` {selections}; add it there or drop it."
            )
    grids = {
        rule: check_sequence(
            f"taus[{rule!r}]", given.get(rule, SELECTION_RULE_SPECS[rule].default_taus), items="thresholds"
        )
        for rule in selections
    }
    return [config.with_overrides(selection=rule, tau=tau) for rule in selections for tau in grids[rule]]


def replacement_sweep(
    *,
    base_model: PreTrainedModel,
    rl_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    dataset: Dataset,
    config: ExtrapolationConfig | None = None,
    selections: Sequence[str] = ("delta_logp", "kl", "entropy", "random"),
    taus: Mapping[str, Sequence[float]] | None = None,
    reward_fn: RewardFunction = accuracy_reward,
    num_samples: int = 4,
    batch_size: int = 32,
    seed: int = 0,
    progress: bool = True,
    output_dir: str | Path | None = None,
    generation_config: GenerationConfig | None = None,
    record_swaps: bool = False,
    references: Mapping[str, float] | None = None,
    **kwargs: Any,
) -> SweepResult:
    """Accuracy against replacement ratio for each selection rule over a τ grid (paper Fig. 1c).

    The base model generates; at positions each rule selects, the token is re-drawn from the RL model (γ = 0, the
    default here) or from π_extra (γ > 0), restricted to the base's `candidate_top_k` candidates.

    Args:
        base_model, rl_model (`PreTrainedModel`), tokenizer (`PreTrainedTokenizerBase`), dataset (`Dataset`): the
            pair, their tokenizer (left padding) and the problems, all passed by name.
        config (`ExtrapolationConfig`, *optional*): γ and the candidate set; defaults to `ExtrapolationConfig(gamma=0)`.
            Keywords `gamma=`, `candidate_top_k=` override it (`selection`/`tau` are the swept axes).
        selections (`list[str]`), taus (`dict[str, list[float]]`, *optional*): the rules and their τ grids (missing
            rules take `DEFAULT_TAUS`); a grid for an unknown rule or one not in `selections` is refused.
        reward_fn, num_samples, batch_size, seed: as for `evaluate_model`.
        output_dir (`str`, *optional*): writes `replacement_sweep.json` and `replacement_sweep.png` there (checked
            before any compute), and each finished cell to `cells/<key>.json` with its settings: a rerun with the
            same settings reuses the finished cells and computes only the rest (`hf_dlp.sweeps.cells`).
        generation_config (`GenerationConfig`, *optional*), kwargs: the sampling, by default
            `hf_dlp.generation.default_generation_config()`; `max_new_tokens=`, `temperature=`, ... override it.
        references (`dict[str, float]`, *optional*): the two models' own Avg@k (`{"base": ..., "rl": ...}`) measured
            earlier with the same data, sampling, seed and sample count (another sweep's `references`): they are
            reported as given instead of being evaluated again.
        record_swaps (`bool`, *optional*, defaults to `False`): record, at every selected position, the base token,
            the RL token and their Δlog p; each row then holds `swaps`, the most frequent (base → RL) swaps and a few
            replaced responses (`hf_dlp.sweeps.swaps`; `format_swaps_table`, `replaced_responses`).

    Examples:

    >>> from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm, make_arithmetic_dataset
    >>> tok, data = build_char_tokenizer(), make_arithmetic_dataset(num_examples=2)
    >>> base, rl = build_tiny_causal_lm(size="nano", seed=1), build_tiny_causal_lm(size="nano", seed=2)
    >>> result = replacement_sweep(base_model=base, rl_model=rl, tokenizer=tok, dataset=data, selections=["random"],
    ...                            taus={"random": [0.0, 1.0]}, num_samples=1, max_new_tokens=3, progress=False)
    >>> [(row.tau, row.replacement_ratio) for row in result.rows], sorted(result.references)
    ([(0.0, 0.0), (1.0, 1.0)], ['base', 'rl'])
    >>> swapped = replacement_sweep(base_model=base, rl_model=rl, tokenizer=tok, dataset=data, selections=["random"],
    ...     taus={"random": [1.0]}, num_samples=1, max_new_tokens=3, progress=False, record_swaps=True)
    >>> swapped.rows[0].swaps["num_selected"], sorted(swapped.rows[0].swaps)
    (6, ['examples', 'num_changed', 'num_selected', 'top'])
    """
    output = _check_inputs(dataset, num_samples, output_dir)
    references = _check_references(references)
    if not isinstance(record_swaps, bool):
        raise TypeError(f"`record_swaps` must be True or False, got {record_swaps!r}.")
    overrides = pop_overrides(kwargs)
    _refuse_swept(overrides, {"selection": "selections", "tau": "taus"}, "replacement_sweep")
    settings = resolve_config(config, overrides, default=ExtrapolationConfig(gamma=0.0))
    if settings.generator == "rl":
        raise ValueError("`replacement_sweep` has the base model generate; `generator='rl'` contradicts it.")
    grid = _replacement_grid(settings, selections, taus)
    evaluation = _evaluation(generation_config, kwargs, reward_fn, num_samples, batch_size, seed)
    models = {"base": base_model, "rl": rl_model}
    return _sweep(
        "replacement", models, "base", grid, tokenizer, dataset, evaluation, progress, output, record_swaps, references
    )


def extrapolation_sweep(
    *,
    rl_model: PreTrainedModel,
    base_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    dataset: Dataset,
    config: ExtrapolationConfig | None = None,
    gammas: Sequence[float] = (0.0, 0.05, 0.1, 0.2),
    taus: Sequence[float] = (-0.5, -0.35, -0.2),
    reward_fn: RewardFunction = accuracy_reward,
    num_samples: int = 4,
    batch_size: int = 32,
    seed: int = 0,
    progress: bool = True,
    output_dir: str | Path | None = None,
    generation_config: GenerationConfig | None = None,
    references: Mapping[str, float] | None = None,
    **kwargs: Any,
) -> SweepResult:
    """Avg@k over a γ × τ grid for one selection rule (paper Fig. 4 / "extrapolation on π_RL").

    Args:
        rl_model, base_model (`PreTrainedModel`), tokenizer (`PreTrainedTokenizerBase`), dataset (`Dataset`): the
            pair, their tokenizer and the problems, all passed by name.
        config (`ExtrapolationConfig`, *optional*): the selection rule, the candidate set and the generator
            (`generator="rl"`, the default: the RL model generates, guided by the base; `"base"`: the base generates,
            guided by the RL model, the paper's Fig. 4). Keywords `selection=`, `candidate_top_k=`, `generator=`
            override it (`gamma`/`tau` are the swept axes).
        gammas, taus (`list[float]`): the grid (`taus` is ignored for `selection="all"`).
        reward_fn, num_samples, batch_size, seed, output_dir, generation_config, references, kwargs: as for
            `replacement_sweep` (writes `extrapolation_sweep.json` and `.png`).

    Examples:

    >>> from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm, make_arithmetic_dataset
    >>> tok, data = build_char_tokenizer(), make_arithmetic_dataset(num_examples=2)
    >>> base, rl = build_tiny_causal_lm(size="nano", seed=1), build_tiny_causal_lm(size="nano", seed=2)
    >>> result = extrapolation_sweep(rl_model=rl, base_model=base, tokenizer=tok, dataset=data, gammas=[0.0, 0.5],
    ...                              taus=[-0.1], num_samples=1, max_new_tokens=3, progress=False)
    >>> [(row.gamma, row.tau) for row in result.rows]
    [(0.0, -0.1), (0.5, -0.1)]
    """
    output = _check_inputs(dataset, num_samples, output_dir)
    references = _check_references(references)
    overrides = pop_overrides(kwargs)
    _refuse_swept(overrides, {"gamma": "gammas", "tau": "taus"}, "extrapolation_sweep")
    settings = resolve_config(config, overrides)
    gammas = check_sequence("gammas", gammas, items="γ values")
    taus = [None] if settings.selection == "all" else check_sequence("taus", taus, items="thresholds")
    grid = [settings.with_overrides(gamma=gamma, tau=tau) for gamma in gammas for tau in taus]
    evaluation = _evaluation(generation_config, kwargs, reward_fn, num_samples, batch_size, seed)
    models = {"base": base_model, "rl": rl_model}
    generator = settings.generator or "rl"
    return _sweep(
        "extrapolation", models, generator, grid, tokenizer, dataset, evaluation, progress, output, False, references
    )


__all__ = ["DEFAULT_TAUS", "SELECTIVE_RULES", "extrapolation_sweep", "replacement_sweep"]
