"""`ReweightedGRPOConfig`: TRL's `GRPOConfig` plus the reweighting, token-mask and monitor fields of
`ReweightedGRPOTrainer`."""

from __future__ import annotations

import warnings
from collections.abc import Sized
from dataclasses import dataclass, field
from typing import Literal, get_args

from trl import GRPOConfig

from ..arguments import check_choice, check_number, check_sequence
from .registry import (
    OFF,
    canonical_weighting_name,
    get_token_weighting,
    import_weighting_modules,
    reweighting_methods,
)
from .reweighting import ppl_weight_lower_bound
from .token_masks import BAND_MASKS, TOKEN_MASK_BY, TOKEN_MASK_MODES, TokenMaskBy, TokenMaskMode

MAX_REWEIGHT_ALPHA = 1e4
"""Largest `reweight_alpha` accepted: far above any useful strength, far below float32 overflow of the weights."""

AdvantageSign = Literal["all", "positive", "negative"]
"""Which advantages `reweight_advantage_sign` lets the weights touch (the authors' `adv_mask` none/positive/negative)."""
ADVANTAGE_SIGNS: tuple[str, ...] = get_args(AdvantageSign)

_STANDARDIZED_PPL = {"ppl": "unbiased", "ppl_norm": "population"}  # ppl forms whose weights can go negative


@dataclass
class ReweightedGRPOConfig(GRPOConfig):
    r"""
    Configuration class for [`ReweightedGRPOTrainer`]: every [`~trl.GRPOConfig`] field, plus the fields below.

    The trainer multiplies each advantage by a detached weight before TRL's loss, Ã = w · Â, where w is computed from
    π_old, the probability of the sampled token under the policy that produced the rollout. Like its parent, the
    class works with [`~trl.TrlParser`], so every field can be set from the command line or a YAML `--config`.
    Every field is checked here, once, when the config is built: a built-in weight can never be negative or
    non-finite. The authors' names (their verl recipe's `algorithm.reweight` / `algorithm.logp_diff`) are in brackets.

    Parameters:
        > Parameters that control the advantage reweighting

        reweighting (`str`, *optional*, defaults to `"low_prob"`):
            Which weight to apply (`hf_dlp.training.reweighting` has the formulas; p = π_old(y_t), α =
            `reweight_alpha`). Built-in values [`method`]:

                - `"low_prob"` [`reshape_reversed`]: the paper's w_t = 1 + α (1 − p), which up-weights
                  low-probability tokens ([Beyond Magnitude](https://huggingface.co/papers/2603.22117), Eq. 8).
                - `"dominate"` [`reshape`]: w_t = α p + 1 − α, which down-weights them
                  ([Yang et al. 2025](https://huggingface.co/papers/2505.12929)).
                - `"middle"` [`middle`]: w_t = α + (1 − p) p. `"normalize"` [`normalize`]: w_t = 1 / (1 + α − p).
                - `"ppl"`: one weight per response, w_i = 1 − α z_i with z_i the log-perplexity standardised within
                  its prompt group with TRL's unbiased std + 1e-4
                  ([Deng et al. 2025](https://huggingface.co/papers/2508.02260)); it is the authors' `ppl-norm` up to
                  that std convention, and their `ppl-norm-clamp` with `ppl_weight_min`/`ppl_weight_max` 0.8/1.2.
                - `"ppl_raw"` [`ppl`]: w_i = 1 − α ℓ_i, ℓ_i the raw log-perplexity (clamped at 0).
                - `"ppl_norm"` [`ppl-norm`]: as `"ppl"` with the population std + 1e-6, exactly as the authors.
                - `"ppl_norm_clamp"` [`ppl-norm-clamp`]: `"ppl_norm"` clamped to [0.8, 1.2].
                - `"none"`: no reweighting; the trainer is then exactly [`~trl.GRPOTrainer`].

            The authors' names `reshape_reversed`, `reshape`, `ppl-norm` and `ppl-norm-clamp` are accepted and
            replaced by ours. Any name registered with `hf_dlp.register_token_weighting` works too, as does an import
            path `module.function` (TRL's convention for reward functions).
        import_modules (`list[str]`, *optional*):
            Modules (or `.py` files) imported before `reweighting` is checked, so that the weightings they register
            can be named in the same recipe (`import_modules: [my_weights]`). The current folder is importable.
        reweight_alpha (`float`, *optional*, defaults to `0.2`):
            Strength α [`constant`]. The paper uses 0.2 for Qwen2.5-Math-7B and 0.1 for Qwen3-8B-Base. A finite
            number ≥ 0; ≤ 1 for `"dominate"`; > 0 for `"normalize"`; for `"ppl"` at most √G/(G − 1) (`"ppl_norm"`:
            1/√(G − 1)) for groups of G = `num_generations` unless `ppl_weight_min` clamps the weights, since a larger
            α can give negative weights that flip the sign of the advantage.
        reweight_advantage_sign (`str`, *optional*, defaults to `"all"`):
            Which tokens the weights touch [`adv_mask`]: `"all"` [`none`], or only those with a `"positive"` or
            `"negative"` advantage; the others keep their advantage exactly.
        ppl_weight_min (`float`, *optional*):
            Lower clamp (≥ 0) of the `"ppl"` family's weights (the clamped variant uses 0.8).
        ppl_weight_max (`float`, *optional*):
            Upper clamp of the `"ppl"` family's weights (the clamped variant uses 1.2).

        > Parameters that control the token masks [`algorithm.logp_diff`]

        token_mask_by (`str`, *optional*, defaults to `"none"`):
            How tokens are selected [`mask_by`] (`hf_dlp.training.token_masks` has the table): by a batch quantile of
            Δlog p = log π_old − log π_ref (`"delta_logp_above"` [`logp`], `"delta_logp_below"` [`logp-negative`],
            `"delta_logp_middle"` [`logp-middle`], `"delta_logp_ends"` [`logp-end`]), by a batch quantile of
            log π_old (`"old_logp_below"` [`old`], `"old_logp_above"` [`old-negative`]) or by a threshold on π_old
            (`"old_prob_below"` [`old-prob`], `"old_prob_middle"` [`old-prob-middle`]). The quantiles run over the
            response tokens of the whole generation batch on all processes. (The authors' `entropy` is TRL's
            `top_entropy_quantile`.) Selections are logged as `token_mask/*`.
        token_mask_quantile (`float`, *optional*, defaults to `0.8`):
            q [`quantile`] in [0, 1]: the threshold is the q-quantile (q = 0.8 with `"delta_logp_above"` keeps the top
            20 %); the band masks use q and 1 − q (so q ≥ 0.5); `old_prob_*` compare π_old with q itself.
        token_mask_mode (`str`, *optional*, defaults to `"none"`):
            What the selection does [`method`]: `"none"` only logs it, `"loss_mask"` [`clip`] makes it the loss mask
            (other tokens get no gradient), `"reweight"` [`reweight`] applies the weights only inside it.
        token_mask_start_step (`int`, *optional*, defaults to `1`):
            First training step (counted from 1) whose batches are masked [`start_step`].

        > Parameters that control the Δlog p monitor

        delta_logp_monitor (`bool`, *optional*, defaults to `False`):
            Log Δlog p = log π_old − log π_ref over each generation batch's response tokens: `delta_logp/mean`,
            `delta_logp/abs_mean`, `delta_logp/quantile_<q>` and `delta_logp/share_abs_above_<t>` (what the authors'
            main runs record with `logp_diff.method='none'`). With `beta=0` a reference model is loaded for it (for a
            LoRA policy the adapter is disabled instead: no second copy).
        delta_logp_quantiles (`list[float]`, *optional*, defaults to `[0.05, 0.25, 0.5, 0.75, 0.95]`):
            Quantiles of Δlog p to log (exact over all processes).
        delta_logp_thresholds (`list[float]`, *optional*, defaults to `[0.1, 0.3, 1.0]`):
            Thresholds t ≥ 0 for the share of tokens with |Δlog p| > t.

        > Parameters that control DAPO's dynamic sampling

        dynamic_sampling (`bool`, *optional*, defaults to `False`):
            Replace prompt groups without learning signal (all completions rewarded alike, hence zero advantages) by
            groups with signal from further generation rounds, as DAPO does; refill prompts come from a second pass
            over the training set. Text-only batches; every prompt group must sit on one process.
        dynamic_sampling_max_rounds (`int`, *optional*, defaults to `10`):
            Most extra generation rounds per batch; groups still without signal then stay in the batch.

    Examples:

    >>> from hf_dlp.training import ReweightedGRPOConfig
    >>> config = ReweightedGRPOConfig(output_dir="out", reweight_alpha=0.1, use_cpu=True, report_to="none")
    >>> config.reweighting, config.reweight_alpha, config.loss_type
    ('low_prob', 0.1, 'dapo')
    >>> ReweightedGRPOConfig(output_dir="out", reweighting="reshape", use_cpu=True, report_to="none").reweighting
    'dominate'
    >>> ReweightedGRPOConfig(output_dir="out", reweight_alpha=float("inf"), use_cpu=True, report_to="none")
    Traceback (most recent call last):
    ...
    ValueError: `reweight_alpha` must be a finite number, got inf. Use a small positive value such as 0.2 (0 turns the reweighting off).
    """

    # Parameters that control the advantage reweighting
    reweighting: str = field(
        default="low_prob",
        metadata={
            "help": f"Advantage reweighting: one of {reweighting_methods()} ('low_prob' is the paper's 1 + alpha * "
            "(1 - p_old)), the authors' names reshape_reversed/reshape/ppl-norm/ppl-norm-clamp, a name registered "
            "with hf_dlp.register_token_weighting, or an import path module.function.",
        },
    )
    import_modules: list[str] | None = field(
        default=None,
        metadata={"help": "Modules or .py files to import first, e.g. ones that register token weightings."},
    )
    reweight_alpha: float = field(
        default=0.2,
        metadata={
            "help": "Strength alpha of the reweighting; finite and >= 0, <= 1 for 'dominate', > 0 for 'normalize', "
            "and for 'ppl'/'ppl_norm' small enough that no weight turns negative unless ppl_weight_min is set. The "
            "paper uses 0.2 for Qwen2.5-Math-7B and 0.1 for Qwen3-8B-Base.",
        },
    )
    reweight_advantage_sign: AdvantageSign = field(
        default="all",
        metadata={"help": "Reweight the tokens with 'all' advantages, or only 'positive' or 'negative' ones."},
    )
    ppl_weight_min: float | None = field(
        default=None, metadata={"help": "Lower clamp (>= 0) of the 'ppl' family's weights (clamped variant: 0.8)."}
    )
    ppl_weight_max: float | None = field(
        default=None, metadata={"help": "Upper clamp of the 'ppl' family's weights (clamped variant: 1.2)."}
    )

    # Parameters that control the token masks
    token_mask_by: TokenMaskBy = field(
        default="none",
        metadata={"help": "Select tokens by a batch quantile of delta log p or old log p, or a threshold on p_old."},
    )
    token_mask_quantile: float = field(
        default=0.8,
        metadata={"help": "q in [0, 1]: the q-quantile threshold (>= 0.5 for bands), or the p_old threshold."},
    )
    token_mask_mode: TokenMaskMode = field(
        default="none",
        metadata={"help": "'none' (log only), 'loss_mask' (train only on the selection) or 'reweight' (weights only "
                  "inside it)."},
    )  # fmt: skip
    token_mask_start_step: int = field(
        default=1, metadata={"help": "First training step (from 1) whose batches are masked."}
    )

    # Parameters that control the Δlog p monitor
    delta_logp_monitor: bool = field(
        default=False,
        metadata={"help": "Log mean, quantiles and threshold shares of delta log p = log p_old - log p_ref."},
    )
    delta_logp_quantiles: list[float] = field(
        default_factory=lambda: [0.05, 0.25, 0.5, 0.75, 0.95],
        metadata={"help": "Quantiles of delta log p the monitor logs."},
    )
    delta_logp_thresholds: list[float] = field(
        default_factory=lambda: [0.1, 0.3, 1.0],
        metadata={"help": "Thresholds t for the monitor's share of tokens with |delta log p| > t."},
    )

    # Parameters that control DAPO's dynamic sampling
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
        if self.import_modules is not None:
            self.import_modules = check_sequence("import_modules", self.import_modules, items="module names")
            import_weighting_modules(self.import_modules)
        self._check_reweighting()
        self._check_ppl_fields()
        self._check_token_mask_fields()
        self._check_monitor_fields()
        self._check_dynamic_sampling_fields()

    @property
    def needs_reference_model(self) -> bool:
        """Whether the Δlog p monitor or a Δlog p token mask needs the reference model's log-probs."""
        return self.delta_logp_monitor or self.token_mask_by.startswith("delta_logp_")

    def _check_reweighting(self) -> None:
        if not isinstance(self.reweighting, str):
            raise ValueError(f"`reweighting` must be a string, got {self.reweighting!r}.")
        self.reweighting = canonical_weighting_name(self.reweighting)
        self.reweight_alpha = check_number(
            "reweight_alpha",
            self.reweight_alpha,
            minimum=0.0,
            maximum=MAX_REWEIGHT_ALPHA,
            hint="Use a small positive value such as 0.2 (0 turns the reweighting off).",
        )
        if self.reweighting == "dominate" and self.reweight_alpha > 1.0:
            raise ValueError(
                f"`reweight_alpha` must be <= 1 with reweighting='dominate', got {self.reweight_alpha}: the weight "
                "alpha * p + 1 - alpha would turn negative and flip the sign of the advantage."
            )
        if self.reweighting == "normalize" and self.reweight_alpha == 0:
            raise ValueError(
                "`reweight_alpha` must be > 0 with reweighting='normalize', got 0: the weight 1 / (1 + alpha - p) is "
                "infinite for p = 1. Use e.g. 0.1 (weights up to 1 / alpha)."
            )
        check_choice("reweight_advantage_sign", self.reweight_advantage_sign, ADVANTAGE_SIGNS)
        if self.reweighting == OFF and self.reweight_advantage_sign != "all":
            warnings.warn(
                f"`reweight_advantage_sign` ({self.reweight_advantage_sign!r}) has no effect with reweighting='none'.",
                UserWarning,
                stacklevel=4,
            )

    def _check_dynamic_sampling_fields(self) -> None:
        self.dynamic_sampling_max_rounds = check_number(
            "dynamic_sampling_max_rounds",
            self.dynamic_sampling_max_rounds,
            integer=True,
            minimum=1,
            hint="Set `dynamic_sampling=False` to turn dynamic sampling off.",
        )
        if not self.dynamic_sampling:
            return
        local_batch = self.per_device_train_batch_size * self.steps_per_generation
        if local_batch % self.num_generations != 0:
            raise ValueError(
                f"`dynamic_sampling` replaces whole prompt groups on each process, so the per-process generation "
                f"batch (per_device_train_batch_size * steps_per_generation = {local_batch}) must be a multiple of "
                f"`num_generations` ({self.num_generations}). Adjust one of them."
            )

    def _check_token_mask_fields(self) -> None:
        check_choice("token_mask_by", self.token_mask_by, TOKEN_MASK_BY)
        check_choice("token_mask_mode", self.token_mask_mode, TOKEN_MASK_MODES)
        self.token_mask_quantile = check_number("token_mask_quantile", self.token_mask_quantile, minimum=0, maximum=1)
        self.token_mask_start_step = check_number(
            "token_mask_start_step",
            self.token_mask_start_step,
            integer=True,
            minimum=1,
            hint="1 masks from the start.",
        )
        if self.token_mask_by in BAND_MASKS and self.token_mask_quantile < 0.5:
            raise ValueError(
                f"token_mask_by={self.token_mask_by!r} selects by the band between the (1 - q)- and q-quantiles, so "
                f"`token_mask_quantile` must be >= 0.5, got {self.token_mask_quantile} (e.g. 0.7 is the middle 40 %)."
            )
        if self.token_mask_mode != "none" and self.token_mask_by == "none":
            raise ValueError(
                f"token_mask_mode={self.token_mask_mode!r} needs tokens to act on: set `token_mask_by` (e.g. "
                "'delta_logp_above'), or leave `token_mask_mode` at 'none'."
            )
        if self.token_mask_mode == "reweight" and self.reweighting == OFF:
            warnings.warn(
                "token_mask_mode='reweight' restricts the weights to the selected tokens, but reweighting='none' has "
                "no weights: the mask has no effect. Use token_mask_mode='loss_mask', or choose a `reweighting`.",
                UserWarning,
                stacklevel=4,
            )

    def _check_monitor_fields(self) -> None:
        names = {"delta_logp_quantiles": (0.0, 1.0), "delta_logp_thresholds": (0.0, None)}
        for name, (low, high) in names.items():
            values = check_sequence(name, getattr(self, name), items="numbers", allow_empty=True)
            setattr(
                self, name, [check_number(f"{name}[{i}]", v, minimum=low, maximum=high) for i, v in enumerate(values)]
            )

    def _check_ppl_fields(self) -> None:
        for name in ("ppl_weight_min", "ppl_weight_max"):
            setattr(self, name, check_number(name, getattr(self, name), allow_none=True))
        if self.reweighting == OFF or get_token_weighting(self.reweighting).level == "token":
            for name in ("ppl_weight_min", "ppl_weight_max"):
                if getattr(self, name) is not None:
                    warnings.warn(
                        f"`{name}` ({getattr(self, name)}) is only used with the response-level weightings "
                        f"{reweighting_methods('response')} and is ignored with reweighting={self.reweighting!r}.",
                        UserWarning,
                        stacklevel=4,
                    )
            return
        groups = {"num_generations": self.num_generations, "num_generations_eval": self.num_generations_eval}
        groups = {name: value for name, value in groups.items() if value is not None}
        for name, value in groups.items():
            if value < 2:
                raise ValueError(
                    f"reweighting={self.reweighting!r} works on prompt groups, so `{name}` must be at least 2, got "
                    f"{value}. Sample several completions per prompt, or choose another reweighting."
                )
        if self.ppl_weight_min is not None and self.ppl_weight_min < 0:
            raise ValueError(
                f"`ppl_weight_min` must be >= 0, got {self.ppl_weight_min}: a negative weight flips the advantage."
            )
        if self.ppl_weight_min is not None and self.ppl_weight_max is not None:
            if self.ppl_weight_min > self.ppl_weight_max:
                raise ValueError(
                    f"`ppl_weight_min` ({self.ppl_weight_min}) must not exceed `ppl_weight_max` ({self.ppl_weight_max})."
                )
        if self.ppl_weight_min is None and self.reweighting in _STANDARDIZED_PPL:
            self._check_ppl_weights_stay_positive(groups)

    def _check_ppl_weights_stay_positive(self, groups: dict[str, int]) -> None:
        name, size = max(groups.items(), key=lambda item: item[1])  # larger groups reach further from their mean
        standardize = _STANDARDIZED_PPL[self.reweighting]
        lowest = ppl_weight_lower_bound(size, self.reweight_alpha, standardize)
        if lowest < 0:
            largest = (size**0.5) / (size - 1) if standardize == "unbiased" else 1 / (size - 1) ** 0.5
            raise ValueError(
                f"reweighting={self.reweighting!r} with `reweight_alpha`={self.reweight_alpha} and groups of {size} "
                f"(`{name}`) can give weights down to {lowest:.3g}, and a negative weight flips the sign of the "
                f"advantage. Use `reweight_alpha` <= {largest:.4g}, or set `ppl_weight_min` (>= 0, e.g. 0.8) to clamp "
                "the weights."
            )


def check_enough_prompts(dataset: Sized, training_args: ReweightedGRPOConfig) -> None:
    """Refuse a training set that cannot fill one generation batch (TRL would train 0 steps and exit quietly).

    Examples:

    >>> from types import SimpleNamespace
    >>> args = SimpleNamespace(generation_batch_size=16, num_generations=4, max_steps=-1, num_train_epochs=1)
    >>> check_enough_prompts(list(range(3)), args)
    Traceback (most recent call last):
    ...
    ValueError: The training set has 3 prompts, but one generation batch takes 4 (generation_batch_size 16 / num_generations 4): training would take 0 steps. Add rows, or lower `per_device_train_batch_size` or `steps_per_generation`.
    """
    needed = training_args.generation_batch_size // training_args.num_generations
    if len(dataset) < needed:
        raise ValueError(
            f"The training set has {len(dataset)} prompts, but one generation batch takes {needed} "
            f"(generation_batch_size {training_args.generation_batch_size} / num_generations "
            f"{training_args.num_generations}): training would take 0 steps. Add rows, or lower "
            "`per_device_train_batch_size` or `steps_per_generation`."
        )
    if training_args.max_steps <= 0 and training_args.num_train_epochs <= 0:
        raise ValueError(
            f"`max_steps` ({training_args.max_steps}) and `num_train_epochs` ({training_args.num_train_epochs}) "
            "leave nothing to train; set one of them to a positive value."
        )


__all__ = ["ADVANTAGE_SIGNS", "MAX_REWEIGHT_ALPHA", "AdvantageSign", "ReweightedGRPOConfig", "check_enough_prompts"]
