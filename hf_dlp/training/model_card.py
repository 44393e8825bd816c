"""Model cards for checkpoints trained with `ReweightedGRPOTrainer`, rendered from `templates/reweighted_grpo.md`.

The card carries valid Hub metadata (`huggingface_hub.ModelCardData`: base model, datasets, tags, and a
`model-index` with the evaluation results), the method and its α, the training recipe, the evaluation table, how to
generate (plainly and with the paper's test-time extrapolation) and how to cite the paper.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import transformers
import trl
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .. import __version__
from ..evaluation import EvaluationResult
from .registry import OFF, TokenWeighting, get_token_weighting, token_weighting_names

if TYPE_CHECKING:
    from .config import ReweightedGRPOConfig

MODEL_CARD_TEMPLATE = Path(__file__).resolve().parent / "templates" / "reweighted_grpo.md"
"""The Jinja template of the card (front matter + Markdown), shipped as package data of `hf_dlp.training`."""

_NONE = ("Plain GRPO: the advantages are not reweighted.", "Ã = Â")

METHOD_FORMULAS: dict[str, tuple[str, str]] = {
    "none": _NONE,
    **{
        name: (weighting.description, weighting.formula)
        for name in token_weighting_names()
        if (weighting := get_token_weighting(name)).builtin
    },
}
"""(description, formula) of each built-in `reweighting`, as the card shows them."""

_METHOD_FIELDS = (  # shown in the card's recipe when they differ from their defaults
    "reweight_advantage_sign",
    "token_mask_by",
    "token_mask_quantile",
    "token_mask_mode",
    "token_mask_start_step",
    "delta_logp_monitor",
)

_RECIPE_FIELDS = (
    "loss_type",
    "learning_rate",
    "num_generations",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "steps_per_generation",
    "num_iterations",
    "max_completion_length",
    "temperature",
    "top_p",
    "epsilon",
    "epsilon_high",
    "beta",
    "scale_rewards",
    "max_steps",
    "num_train_epochs",
    "seed",
)


_EVALUATION_KEYS = ("avg_at_k", "pass_at_k", "num_problems", "num_samples")


def _evaluation_row(name: str, result: Any) -> dict[str, Any]:
    """One table row from an `EvaluationResult` or its saved form (`EvaluationResult.to_dict()`, a `results.json`
    evaluation entry): a mapping with at least `_EVALUATION_KEYS`."""
    if isinstance(result, EvaluationResult):
        result = result.to_dict()
    if not isinstance(result, Mapping) or not set(_EVALUATION_KEYS) <= set(result):
        raise TypeError(
            f"`evaluation[{name!r}]` must be an EvaluationResult or a dict with the keys {_EVALUATION_KEYS} (as "
            f"`EvaluationResult.to_dict()` writes it), got {result!r:.200}."
        )
    return {"name": name, **{key: result[key] for key in _EVALUATION_KEYS},
            "pass_at_k": {int(k): v for k, v in result["pass_at_k"].items()}}  # fmt: skip


def _evaluation_rows(evaluation: Any) -> list[dict[str, Any]]:
    if evaluation is None:
        return []
    if isinstance(evaluation, EvaluationResult) or (
        isinstance(evaluation, Mapping) and set(_EVALUATION_KEYS) <= set(evaluation)
    ):
        evaluation = {"evaluation": evaluation}
    if not isinstance(evaluation, Mapping):
        raise TypeError(
            f"`evaluation` must be an EvaluationResult or a dict of them by dataset name, got {type(evaluation).__name__}."
        )
    return [_evaluation_row(name, result) for name, result in evaluation.items()]


def _eval_results(rows: list[dict[str, Any]]) -> list[EvalResult]:
    results = []
    for row in rows:
        common = dict(task_type="text-generation", dataset_type=row["name"], dataset_name=row["name"])
        results.append(
            EvalResult(
                metric_type="accuracy", metric_name=f"Avg@{row['num_samples']}", metric_value=row["avg_at_k"], **common
            )
        )
        for k, value in sorted(row["pass_at_k"].items()):
            results.append(EvalResult(metric_type="pass@k", metric_name=f"Pass@{k}", metric_value=value, **common))
    return results


def _method(args: ReweightedGRPOConfig, weighting: TokenWeighting | None) -> tuple[str, str, str]:
    """(name, description, formula) of the run's weighting, built-in, registered or a trainer's `weight_fn`."""
    if weighting is None and args.reweighting == OFF:
        return (OFF, *_NONE)
    weighting = weighting or get_token_weighting(args.reweighting)
    description = weighting.description or f"A user-defined weighting, `{weighting.name}`."
    return weighting.name, description, weighting.formula or f"Ã = w · Â, w from `{weighting.name}`"


def _recipe(args: ReweightedGRPOConfig) -> list[tuple[str, Any]]:
    defaults = {f.name: f.default for f in fields(args)}
    recipe = [(name, getattr(args, name)) for name in _RECIPE_FIELDS if hasattr(args, name)]
    return recipe + [
        (name, getattr(args, name))
        for name in _METHOD_FIELDS
        if getattr(args, name, defaults.get(name)) != defaults.get(name)
    ]


def render_model_card(
    args: ReweightedGRPOConfig,
    *,
    base_model: str | None = None,
    model_name: str | None = None,
    hub_model_id: str | None = None,
    dataset_name: str | Sequence[str] | None = None,
    evaluation: EvaluationResult | Mapping[str, Any] | None = None,
    tags: Sequence[str] = (),
    template_path: str | Path | None = None,
    weighting: TokenWeighting | None = None,
) -> ModelCard:
    """Render the model card of a `ReweightedGRPOTrainer` run.

    Args:
        args (`ReweightedGRPOConfig`): the training configuration (method, α and recipe are read from it).
        base_model (`str`, *optional*): Hub id of the starting model (left out of the metadata when `None`).
        model_name (`str`, *optional*): the card's title; defaults to the last part of `hub_model_id` or of
            `args.output_dir`.
        hub_model_id (`str`, *optional*): where the model is pushed (used in the usage snippet).
        dataset_name (`str` or `list[str]`, *optional*): training dataset id(s), for the metadata.
        evaluation (`EvaluationResult` or `dict[str, EvaluationResult]`, *optional*): results to report, keyed by
            dataset name; they also go to the `model-index` metadata. A saved result (`EvaluationResult.to_dict()`,
            or any mapping with `avg_at_k`, `pass_at_k`, `num_problems` and `num_samples`) works in place of one.
        tags (`list[str]`, *optional*): Hub tags.
        template_path (`str` or `Path`, *optional*): a Jinja template; defaults to `MODEL_CARD_TEMPLATE`.
        weighting (`TokenWeighting`, *optional*): the weighting used instead of `args.reweighting` (a trainer's
            `weight_fn`); its docstring and formula describe the method.

    Returns:
        `huggingface_hub.ModelCard` (save it with `card.save(path)`).

    Examples:

    >>> from hf_dlp.evaluation import EvaluationResult
    >>> from hf_dlp.training import ReweightedGRPOConfig
    >>> args = ReweightedGRPOConfig(output_dir="toy-run", reweight_alpha=0.2, use_cpu=True, report_to="none")
    >>> result = EvaluationResult(avg_at_k=0.25, pass_at_k={1: 0.25, 4: 0.6}, num_problems=8, num_samples=4,
    ...                           correct_counts=[1] * 8)
    >>> card = render_model_card(args, base_model="Qwen/Qwen2.5-Math-7B", evaluation={"aime24": result},
    ...                          tags=["hf_dlp"])
    >>> card.data.base_model, card.data.model_name, len(card.data.eval_results)
    ('Qwen/Qwen2.5-Math-7B', 'toy-run', 3)
    >>> "Ã_t = [1 + α (1 − π_old(y_t))] · Â" in card.text
    True
    """
    rows = _evaluation_rows(evaluation)
    if model_name is None:
        model_name = (hub_model_id or str(args.output_dir)).rstrip("/").split("/")[-1]
    datasets = [dataset_name] if isinstance(dataset_name, str) else list(dataset_name or [])
    card_data = ModelCardData(
        base_model=base_model,
        datasets=datasets or None,
        library_name="transformers",
        model_name=model_name,
        pipeline_tag="text-generation",
        tags=sorted({"generated_from_trainer", "grpo", "reinforcement-learning", *tags}),
        eval_results=_eval_results(rows) or None,
    )
    name, description, formula = _method(args, weighting)
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path or MODEL_CARD_TEMPLATE),
        model_name=model_name,
        base_model=base_model,
        hub_model_id=hub_model_id,
        datasets=datasets,
        method_description=description,
        method_formula=formula,
        reweighting=name,
        reweight_alpha=args.reweight_alpha,
        recipe=_recipe(args),
        evaluations=rows,
        pass_ks=sorted({k for row in rows for k in row["pass_at_k"]}),
        hf_dlp_version=__version__,
        trl_version=trl.__version__,
        transformers_version=transformers.__version__,
        torch_version=torch.__version__,
    )


__all__ = ["METHOD_FORMULAS", "MODEL_CARD_TEMPLATE", "render_model_card"]
