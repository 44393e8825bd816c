"""Test-time use of Δlog p: selective replacement and extrapolation during `generate`."""

from ..analysis.vocab import check_same_vocabulary
from .config import CONFIG_NAME, ExtrapolationConfig
from .custom_generate import custom_generate_source, export_custom_generate
from .generate import (
    check_generation_mode,
    disable_extrapolation,
    enable_extrapolation,
    generate_with_extrapolation,
)
from .lora import AdapterDisabledView, adapter_disabled_view, is_lora_model
from .plots import plot_extrapolation_sweep, plot_replacement_sweep
from .processor import (
    SELECTION_RULES,
    ExtrapolationLogitsProcessor,
    ExtrapolationStats,
    check_extrapolation_arguments,
    extrapolate_log_probs,
    sampling_warpers,
)
from .sweeps import DEFAULT_TAUS, SweepResult, extrapolation_sweep, replacement_sweep

__all__ = [
    "CONFIG_NAME",
    "DEFAULT_TAUS",
    "SELECTION_RULES",
    "AdapterDisabledView",
    "ExtrapolationConfig",
    "ExtrapolationLogitsProcessor",
    "ExtrapolationStats",
    "SweepResult",
    "adapter_disabled_view",
    "check_extrapolation_arguments",
    "check_generation_mode",
    "check_same_vocabulary",
    "custom_generate_source",
    "disable_extrapolation",
    "enable_extrapolation",
    "export_custom_generate",
    "extrapolate_log_probs",
    "extrapolation_sweep",
    "generate_with_extrapolation",
    "is_lora_model",
    "plot_extrapolation_sweep",
    "plot_replacement_sweep",
    "replacement_sweep",
    "sampling_warpers",
]
