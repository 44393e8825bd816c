"""`ReweightedGRPOConfig`: TRL's `GRPOConfig` plus the advantage-reweighting fields of `ReweightedGRPOTrainer`."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Literal

from trl import GRPOConfig

from .reweighting import REWEIGHTING_METHODS


@dataclass
class ReweightedGRPOConfig(GRPOConfig):
    r"""
    Configuration class for [`ReweightedGRPOTrainer`]: every [`~trl.GRPOConfig`] field, plus the reweighting below.

    The trainer multiplies each advantage by a detached weight before TRL's loss, Ã = w · Â, where w is computed from
    π_old, the probability of the sampled token under the policy that produced the rollout. Like its parent, the
    class works with [`~trl.TrlParser`], so every field can be set from the command line or a YAML `--config`.

    Parameters:
        > Parameters that control the advantage reweighting

        reweighting (`str`, *optional*, defaults to `"low_prob"`):
            Which weight to apply. Possible values are:

                - `"low_prob"`: the paper's w_t = 1 + α (1 − π_old(y_t)), which up-weights low-probability tokens
                  ([Beyond Magnitude](https://huggingface.co/papers/2603.22117), Eq. 8).
                - `"dominate"`: w_t = α π_old(y_t) + 1 − α, which down-weights them
                  ([Yang et al. 2025](https://huggingface.co/papers/2505.12929)).
                - `"ppl"`: one weight per response, w_i = 1 − α z_i with z_i the log-perplexity standardised within
                  its prompt group ([Deng et al. 2025](https://huggingface.co/papers/2508.02260)).
                - `"none"`: no reweighting; the trainer is then exactly [`~trl.GRPOTrainer`].
        reweight_alpha (`float`, *optional*, defaults to `0.2`):
            Strength α of the reweighting (c for `"ppl"`). The paper uses 0.2 for Qwen2.5-Math-7B and 0.1 for
            Qwen3-8B-Base. Must be ≥ 0, and ≤ 1 for `"dominate"` (its weight must stay non-negative).
        ppl_weight_min (`float`, *optional*):
            Lower clamp of the `"ppl"` weight (Deng et al.'s clamped variant uses 0.8). Only used with `"ppl"`.
        ppl_weight_max (`float`, *optional*):
            Upper clamp of the `"ppl"` weight (Deng et al.'s clamped variant uses 1.2). Only used with `"ppl"`.

        > Parameters that control DAPO's dynamic sampling

        dynamic_sampling (`bool`, *optional*, defaults to `False`):
            Replace prompt groups without learning signal (all completions rewarded alike, hence zero advantages) by
            groups with signal from further generation rounds, as DAPO does; refill prompts come from a second pass
            over the training set. Text-only batches; every prompt group must sit on one process.
        dynamic_sampling_max_rounds (`int`, *optional*, defaults to `10`):
            Most extra generation rounds per batch; groups still without signal then stay in the batch.

    Examples:

    >>> from hf_dlp.grpo_config import ReweightedGRPOConfig
    >>> config = ReweightedGRPOConfig(output_dir="out", reweight_alpha=0.1, use_cpu=True, report_to="none")
    >>> config.reweighting, config.reweight_alpha, config.loss_type
    ('low_prob', 0.1, 'dapo')
    """

    # Parameters that control the advantage reweighting
    reweighting: Literal["none", "low_prob", "dominate", "ppl"] = field(
        default="low_prob",
        metadata={
            "help": "Advantage reweighting: 'low_prob' (the paper: 1 + alpha * (1 - p_old)), 'dominate' (Yang et al.: "
            "alpha * p_old + 1 - alpha), 'ppl' (Deng et al.: 1 - alpha * z, z the group-standardised log-perplexity "
            "of the response) or 'none' (plain GRPO).",
        },
    )
    reweight_alpha: float = field(
        default=0.2,
        metadata={
            "help": "Strength alpha of the reweighting (c for 'ppl'); >= 0, and <= 1 for 'dominate'. The paper uses "
            "0.2 for Qwen2.5-Math-7B and 0.1 for Qwen3-8B-Base.",
        },
    )
    ppl_weight_min: float | None = field(
        default=None,
        metadata={
            "help": "Lower clamp of the 'ppl' weight (Deng et al.'s clamped variant: 0.8). Only used with 'ppl'."
        },
    )
    ppl_weight_max: float | None = field(
        default=None,
        metadata={
            "help": "Upper clamp of the 'ppl' weight (Deng et al.'s clamped variant: 1.2). Only used with 'ppl'."
        },
    )

    dynamic_sampling: bool = field(
        default=False,
        metadata={
            "help": "DAPO's dynamic sampling: replace prompt groups whose completions all got the same reward (zero "
            "advantage, no gradient) with groups from further generation rounds before training on the batch.",
        },
    )
    dynamic_sampling_max_rounds: int = field(
        default=10,
        metadata={"help": "Most extra generation rounds per batch with `dynamic_sampling` (DAPO: 10)."},
    )

    def __post_init__(self):
        super().__post_init__()
        if self.reweighting not in REWEIGHTING_METHODS:
            raise ValueError(
                f"`reweighting` must be one of {REWEIGHTING_METHODS}, got {self.reweighting!r}. Use 'low_prob' for the "
                "paper's method or 'none' for plain GRPO."
            )
        if not self.reweight_alpha >= 0.0:  # also catches NaN
            raise ValueError(
                f"`reweight_alpha` must be >= 0, got {self.reweight_alpha}. Set it to a small positive value such as "
                "0.2 (or 0 to turn the reweighting off)."
            )
        if self.reweighting == "dominate" and self.reweight_alpha > 1.0:
            raise ValueError(
                f"`reweight_alpha` must be <= 1 with reweighting='dominate', got {self.reweight_alpha}: the weight "
                "alpha * p + 1 - alpha would turn negative and flip the sign of the advantage."
            )
        self._check_ppl_fields()
        self._check_dynamic_sampling_fields()

    def _check_dynamic_sampling_fields(self) -> None:
        if not self.dynamic_sampling:
            return
        if self.dynamic_sampling_max_rounds < 1:
            raise ValueError(
                f"`dynamic_sampling_max_rounds` must be at least 1, got {self.dynamic_sampling_max_rounds}; "
                "set `dynamic_sampling=False` to turn dynamic sampling off."
            )
        local_batch = self.per_device_train_batch_size * self.steps_per_generation
        if local_batch % self.num_generations != 0:
            raise ValueError(
                f"`dynamic_sampling` replaces whole prompt groups on each process, so the per-process generation "
                f"batch (per_device_train_batch_size * steps_per_generation = {local_batch}) must be a multiple of "
                f"`num_generations` ({self.num_generations}). Adjust one of them."
            )

    def _check_ppl_fields(self) -> None:
        clamps = {"ppl_weight_min": self.ppl_weight_min, "ppl_weight_max": self.ppl_weight_max}
        if self.reweighting != "ppl":
            for name, value in clamps.items():
                if value is not None:
                    warnings.warn(
                        f"`{name}` ({value}) is only used with reweighting='ppl' and is ignored with "
                        f"reweighting={self.reweighting!r}.",
                        UserWarning,
                        stacklevel=3,
                    )
            return
        groups = {"num_generations": self.num_generations, "num_generations_eval": self.num_generations_eval}
        for name, value in groups.items():
            if value is not None and value < 2:
                raise ValueError(
                    f"reweighting='ppl' standardises the log-perplexity within each prompt group, so `{name}` must be "
                    f"at least 2, got {value}. Sample several completions per prompt, or choose another reweighting."
                )
        if self.ppl_weight_min is not None and self.ppl_weight_min < 0:
            raise ValueError(
                f"`ppl_weight_min` must be >= 0, got {self.ppl_weight_min}: a negative weight flips the advantage."
            )
        if (
            self.ppl_weight_min is not None
            and self.ppl_weight_max is not None
            and self.ppl_weight_min > self.ppl_weight_max
        ):
            raise ValueError(
                f"`ppl_weight_min` ({self.ppl_weight_min}) must not exceed `ppl_weight_max` ({self.ppl_weight_max})."
            )
