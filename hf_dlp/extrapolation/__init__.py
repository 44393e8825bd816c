"""Test-time use of Δlog p: selective replacement and extrapolation during `generate`.

Every entry point takes one `ExtrapolationConfig` (plus keyword overrides of its fields); sampling settings come from
`generate`'s `GenerationConfig`. The sweeps over these settings (the paper's Fig. 1c and Fig. 4) live in
`hf_dlp.sweeps`. `ExtrapolationConfig.block_size` switches from the per-token processor to block-verified
(speculative) decoding (`hf_dlp.extrapolation.block`): the other model verifies a block of drafted tokens in one
forward, with the same greedy tokens and the same sampling distribution.
"""

from __future__ import annotations

from ..model_pair import check_same_vocabulary
from .acceptance import BlockSchedule
from .block import BlockExtrapolationDecoder
from .compatibility import SUPPORTED_TRANSFORMERS_VERSIONS, check_transformers_compatibility
from .config import CONFIG_NAME, GENERATOR_ROLES, MAX_BLOCK_SIZE, MAX_GAMMA, SELECTION_RULES, ExtrapolationConfig
from .custom_generate import custom_generate_source, export_custom_generate
from .decoding import check_generation_mode, sampling_tail
from .generate import disable_extrapolation, enable_extrapolation, generate_with_extrapolation
from .lora import AdapterDisabledView, OneForwardLoraSampler, adapter_disabled_view, is_lora_model
from .model_card import EXTRAPOLATION_CARD_TEMPLATE, render_extrapolation_card
from .processor import ExtrapolationLogitsProcessor
from .scorers import CachedModelScorer, NaiveRecomputeScorer, OtherModelScorer, SharedForwardScorer
from .selection import (
    AUTHORS_CRITERIA,
    extrapolate_log_probs,
    from_authors_criteria,
    register_selection_rule,
    unregister_selection_rule,
)
from .step import ExtrapolationStats

__all__ = [
    "AUTHORS_CRITERIA",
    "CONFIG_NAME",
    "EXTRAPOLATION_CARD_TEMPLATE",
    "GENERATOR_ROLES",
    "MAX_BLOCK_SIZE",
    "MAX_GAMMA",
    "SELECTION_RULES",
    "SUPPORTED_TRANSFORMERS_VERSIONS",
    "AdapterDisabledView",
    "BlockExtrapolationDecoder",
    "BlockSchedule",
    "CachedModelScorer",
    "ExtrapolationConfig",
    "ExtrapolationLogitsProcessor",
    "ExtrapolationStats",
    "NaiveRecomputeScorer",
    "OneForwardLoraSampler",
    "OtherModelScorer",
    "SharedForwardScorer",
    "adapter_disabled_view",
    "check_generation_mode",
    "check_same_vocabulary",
    "check_transformers_compatibility",
    "custom_generate_source",
    "disable_extrapolation",
    "enable_extrapolation",
    "export_custom_generate",
    "extrapolate_log_probs",
    "from_authors_criteria",
    "generate_with_extrapolation",
    "is_lora_model",
    "register_selection_rule",
    "render_extrapolation_card",
    "sampling_tail",
    "unregister_selection_rule",
]
