"""Reweighted GRPO on TRL: the config, the trainer, the weight formulas and their registry, token masks, the Δlog p
monitor, DAPO's dynamic sampling, the model card and the training script behind `hf-dlp train` and
`examples/train_grpo_reweighted.py`.

- `ReweightedGRPOConfig` / `ReweightedGRPOTrainer`: TRL's `GRPOConfig` / `GRPOTrainer` with each advantage multiplied
  by a detached weight (the paper's w = 1 + α (1 − π_old), every form of the authors' code, or your own), optionally
  only for one advantage sign or inside a token mask, with a training-time Δlog p monitor;
- `AdvantageReweighter`: the reweighting of one run, from weights to Ã, built once from its config;
- `register_token_weighting`: add a weighting by name (`hf_dlp.training.registry`); `hf_dlp.training.reweighting`:
  the built-in weights as pure tensor functions; `hf_dlp.training.token_masks`: the batch-quantile token selections;
  `hf_dlp.training.dynamic_sampling`: DAPO's refill of prompt groups without signal;
- `render_model_card`: the Hub model card of a run; `TrainScriptArguments` / `run_training`: the recipe-driven script
  (validate everything, load, train, save, evaluate, push).
"""

from .config import ADVANTAGE_SIGNS, ReweightedGRPOConfig
from .dynamic_sampling import groups_with_signal, replace_groups
from .model_card import MODEL_CARD_TEMPLATE, render_model_card
from .registry import (
    TokenWeighting,
    get_token_weighting,
    register_token_weighting,
    reweighting_methods,
    token_weighting_names,
    weighting_label,
)
from .reweighter import AdvantageReweighter
from .reweighting import (
    dominate_weights,
    low_prob_weights,
    middle_weights,
    normalize_weights,
    ppl_weights,
    reweight_advantages,
)
from .script import TrainScriptArguments, run_training
from .token_masks import TOKEN_MASK_BY, TOKEN_MASK_MODES, delta_logp_statistics, select_tokens
from .trainer import SUPPORTED_TRL_VERSIONS, ReweightedGRPOTrainer, check_trl_compatibility

__all__ = [
    "ADVANTAGE_SIGNS",
    "AdvantageReweighter",
    "MODEL_CARD_TEMPLATE",
    "SUPPORTED_TRL_VERSIONS",
    "TOKEN_MASK_BY",
    "TOKEN_MASK_MODES",
    "ReweightedGRPOConfig",
    "ReweightedGRPOTrainer",
    "TokenWeighting",
    "TrainScriptArguments",
    "check_trl_compatibility",
    "delta_logp_statistics",
    "dominate_weights",
    "get_token_weighting",
    "groups_with_signal",
    "low_prob_weights",
    "middle_weights",
    "normalize_weights",
    "ppl_weights",
    "register_token_weighting",
    "render_model_card",
    "replace_groups",
    "reweight_advantages",
    "reweighting_methods",
    "run_training",
    "select_tokens",
    "token_weighting_names",
    "weighting_label",
]
