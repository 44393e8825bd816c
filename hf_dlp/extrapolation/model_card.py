"""The model card of an extrapolation checkpoint: what `export_custom_generate` ships, its settings, how to call it
and, when given, what it measured (`render_extrapolation_card`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import transformers
from huggingface_hub import ModelCard, ModelCardData

from .. import __version__
from ..selection_rules import SELECTION_RULE_SPECS
from .config import ExtrapolationConfig

EXTRAPOLATION_CARD_TEMPLATE = Path(__file__).parent / "templates" / "extrapolation.md"
"""The packaged Jinja template of the card."""

_RESULT_KEYS = ("generator", "selection", "tau", "gamma", "replacement_ratio", "avg_at_k")


def render_extrapolation_card(
    config: ExtrapolationConfig,
    *,
    model_name: str,
    hub_model_id: str | None = None,
    results: Sequence[Mapping[str, Any]] = (),
    references: Mapping[str, float] | None = None,
    reference_stderrs: Mapping[str, float] | None = None,
    results_note: str = "",
    tags: Sequence[str] = (),
) -> ModelCard:
    """Render the card of a checkpoint exported with `export_custom_generate(folder, config)`.

    Args:
        config (`ExtrapolationConfig`): the checkpoint's settings; `config.base_model_name_or_path` is the other
            model the card links to.
        model_name (`str`): the card's title.
        hub_model_id (`str`, *optional*): where the checkpoint is pushed (used in the usage snippet).
        results (list of dicts, *optional*): measured cells, each with `generator`, `selection`, `tau`, `gamma`,
            `replacement_ratio` and `avg_at_k` (a `SweepRow.to_dict()` plus its `generator`), and optionally
            `stderr`, the standard error of `avg_at_k` (shown as ± s.e.).
        references (`dict`, *optional*): Avg@k of the models alone on the same problems (`{"base": ..., "rl": ...}`).
        reference_stderrs (`dict`, *optional*): their standard errors, by the same names.
        results_note (`str`, *optional*): a sentence above the results table (where they come from, what they show).
        tags (`list[str]`, *optional*): Hub tags.

    Returns:
        `huggingface_hub.ModelCard` (save it with `card.save(path)`).

    Examples:

    >>> config = ExtrapolationConfig(base_model_name_or_path="Qwen/Qwen2.5-32B", gamma=0.05, tau=-0.3)
    >>> card = render_extrapolation_card(config, model_name="dapo-32b-extrapolated", results=[dict(generator="rl",
    ...     selection="delta_logp", tau=-0.3, gamma=0.05, replacement_ratio=0.04, avg_at_k=0.55)],
    ...     references={"rl": 0.525})
    >>> "| `gamma` | 0.05 |" in card.text, "| rl | `delta_logp` | -0.3 | 0.05 | 4.00% | 55.0 |" in card.text
    (True, True)
    >>> card.data.base_model, "custom_generate" in card.data.tags
    ('Qwen/Qwen2.5-32B', True)
    """
    if not isinstance(config, ExtrapolationConfig):
        raise TypeError(f"`config` must be an ExtrapolationConfig, got {type(config).__name__}.")
    rows = []
    for index, result in enumerate(results):
        missing = [key for key in _RESULT_KEYS if key not in result]
        if missing:
            raise ValueError(f"`results[{index}]` lacks {missing}; each result needs {list(_RESULT_KEYS)}.")
        rows.append({**{key: result[key] for key in _RESULT_KEYS}, "stderr": result.get("stderr")})
    references = dict(references or {})
    spec = SELECTION_RULE_SPECS[config.selection]
    generator = config.generator or "rl"
    card_data = ModelCardData(
        base_model=config.base_model_name_or_path,
        library_name="transformers",
        model_name=model_name,
        pipeline_tag="text-generation",
        tags=sorted({"hf_dlp", "extrapolation", "custom_generate", *tags}),
    )
    settings = [
        ("gamma", config.gamma),
        ("selection", config.selection),
        ("tau", config.tau),
        ("candidate_top_k", config.candidate_top_k),
        ("generator", generator),
        ("block_size", config.block_size),
    ]
    return ModelCard.from_template(
        card_data,
        template_path=str(EXTRAPOLATION_CARD_TEMPLATE),
        model_name=model_name,
        hub_model_id=hub_model_id,
        other_role="base" if generator == "rl" else "RL",
        other_kwarg="base_model" if generator == "rl" else "rl_model",
        other_model=config.base_model_name_or_path,
        settings=settings,
        rule_text=f"Rule `{config.selection}`: {spec.formula}.",
        results=rows,
        results_note=results_note,
        references=sorted(references.items()),
        reference_stderr=dict(reference_stderrs or {}),
        hf_dlp_version=__version__,
        transformers_version=transformers.__version__,
        torch_version=torch.__version__,
    )


__all__ = ["EXTRAPOLATION_CARD_TEMPLATE", "render_extrapolation_card"]
