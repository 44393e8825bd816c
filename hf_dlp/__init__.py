"""hf_dlp: the direction of RLVR updates (signed token-level log-probability differences) as Hugging Face tools.

- Identify: `compute_token_metrics`, `analyze_responses`, `AnalysisReport` (Δlog p vs entropy and KL, per token);
- exploit at test time: `ExtrapolationLogitsProcessor`, `generate_with_extrapolation`, `enable_extrapolation`;
- exploit at training time: `ReweightedGRPOConfig`, `ReweightedGRPOTrainer` (TRL's GRPO with w = 1 + α(1 − π_old)).

Names are imported on first use, so `import hf_dlp` (and the `hf-dlp` CLI) does not pay for TRL's imports up front.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.3.0"

_EXPORTS: dict[str, str] = {
    # analysis
    "AnalysisReport": "hf_dlp.analysis",
    "TokenMetrics": "hf_dlp.analysis",
    "analyze_model_pair": "hf_dlp.analysis",
    "analyze_responses": "hf_dlp.analysis",
    "compute_token_metrics": "hf_dlp.analysis",
    "generate_responses": "hf_dlp.analysis",
    # evaluation and rewards
    "EvaluationResult": "hf_dlp.evaluation",
    "evaluate_model": "hf_dlp.evaluation",
    "pass_at_k": "hf_dlp.evaluation",
    "sample_completions": "hf_dlp.generation",
    "accuracy_reward": "hf_dlp.rewards",
    "format_reward": "hf_dlp.rewards",
    "signed_accuracy_reward": "hf_dlp.rewards",
    # extrapolation
    "ExtrapolationConfig": "hf_dlp.extrapolation",
    "ExtrapolationLogitsProcessor": "hf_dlp.extrapolation",
    "ExtrapolationStats": "hf_dlp.extrapolation",
    "disable_extrapolation": "hf_dlp.extrapolation",
    "enable_extrapolation": "hf_dlp.extrapolation",
    "export_custom_generate": "hf_dlp.extrapolation",
    "generate_with_extrapolation": "hf_dlp.extrapolation",
    # sweeps (Fig. 1c and Fig. 4, built on evaluation and extrapolation)
    "SweepResult": "hf_dlp.sweeps",
    "extrapolation_sweep": "hf_dlp.sweeps",
    "replacement_sweep": "hf_dlp.sweeps",
    # training
    "ReweightedGRPOConfig": "hf_dlp.training",
    "ReweightedGRPOTrainer": "hf_dlp.training",
    "register_token_weighting": "hf_dlp.training",
    "reweighting_methods": "hf_dlp.training",
    "render_model_card": "hf_dlp.training",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hf_dlp' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from .analysis import (
        AnalysisReport,
        TokenMetrics,
        analyze_model_pair,
        analyze_responses,
        compute_token_metrics,
        generate_responses,
    )
    from .evaluation import EvaluationResult, evaluate_model, pass_at_k
    from .extrapolation import (
        ExtrapolationConfig,
        ExtrapolationLogitsProcessor,
        ExtrapolationStats,
        disable_extrapolation,
        enable_extrapolation,
        export_custom_generate,
        generate_with_extrapolation,
    )
    from .generation import sample_completions
    from .rewards import accuracy_reward, format_reward, signed_accuracy_reward
    from .sweeps import SweepResult, extrapolation_sweep, replacement_sweep
    from .training import (
        ReweightedGRPOConfig,
        ReweightedGRPOTrainer,
        register_token_weighting,
        render_model_card,
        reweighting_methods,
    )
