"""`AdvantageReweighter`: the reweighting of one training run, built once from its `ReweightedGRPOConfig`.

It owns every step between a weighting function and TRL's loss, with explicit inputs and outputs:

- `weights(old_log_probs, advantages, mask, evaluation=...)`: the weighting's detached weights, checked (shape, and
  for user weightings finite and non-negative). Response-level weightings run it once per generation batch, on whole
  prompt groups; token-level ones on each micro-batch.
- `step(old_log_probs, advantages, mask, response_weights=..., token_mask=...)`: Ã = w · Â inside the sign gate
  (`reweight_advantage_sign`) and the token mask, and the weights the tokens effectively get (1 outside), for the
  logged statistics.

The weighting is looked up in the registry once, when the reweighter is built. `ReweightedGRPOTrainer` builds one
(`trainer.reweighter`) and calls it from its loss hook and its generation-batch step.
"""

from __future__ import annotations

from typing import Any

import torch

from .registry import OFF, TokenWeighting, WeightFunction, get_token_weighting
from .reweighting import reweight_advantages


class _EvaluationView:
    """The config as a weighting sees it in evaluation: `num_generations` is the evaluation group size."""

    def __init__(self, config: Any, num_generations: int):
        self._config, self.num_generations = config, num_generations

    def __getattr__(self, name: str) -> Any:
        return getattr(self._config, name)


class AdvantageReweighter:
    """Ã = w · Â for one run: the weighting resolved once from `config` (or `weight_fn`), its checks, the sign gate
    and the token mask.

    Args:
        config (`ReweightedGRPOConfig`): the run's configuration (`reweighting`, `reweight_alpha`,
            `reweight_advantage_sign`, and whatever fields a weighting reads).
        weight_fn (`Callable`, *optional*): a token-level weighting `(old_log_probs, advantages, masks, config) ->
            weights` used instead of `config.reweighting`.
        num_generations_eval (`int`, *optional*): the evaluation group size a response-level weighting sees in
            evaluation (defaults to `config.num_generations`).

    Examples:

    >>> import math, torch
    >>> from types import SimpleNamespace
    >>> config = SimpleNamespace(reweighting="low_prob", reweight_alpha=0.2, reweight_advantage_sign="positive")
    >>> reweighter = AdvantageReweighter(config)
    >>> reweighter.weighting.name, reweighter.level
    ('low_prob', 'token')
    >>> old = torch.tensor([[0.0, math.log(0.5)], [0.0, math.log(0.5)]])
    >>> advantages, weights = reweighter.step(old, torch.tensor([1.0, -1.0]), torch.ones(2, 2))
    >>> advantages   # only the positive advantage is reweighted: w = 1 + 0.2 (1 − p)
    tensor([[ 1.0000,  1.1000],
            [-1.0000, -1.0000]])
    >>> AdvantageReweighter(SimpleNamespace(reweighting="none")).weighting is None
    True
    """

    def __init__(self, config: Any, weight_fn: WeightFunction | None = None, num_generations_eval: int | None = None):
        if weight_fn is not None and not callable(weight_fn):
            raise TypeError(
                f"`weight_fn` must be a callable (old_log_probs, advantages, masks, config), got {weight_fn!r}."
            )
        self.config = config
        self.num_generations_eval = num_generations_eval
        if weight_fn is not None:
            self.weighting: TokenWeighting | None = TokenWeighting(
                getattr(weight_fn, "__name__", "weight_fn"), weight_fn
            )
        else:
            self.weighting = None if config.reweighting == OFF else get_token_weighting(config.reweighting)

    @property
    def level(self) -> str | None:
        """`"token"`, `"response"`, or `None` when the advantages are left as they are."""
        return None if self.weighting is None else self.weighting.level

    def weighting_config(self, *, evaluation: bool = False) -> Any:
        """What the weighting function receives as `config` (in evaluation, `num_generations` is the eval one)."""
        if not evaluation:
            return self.config
        size = self.num_generations_eval or getattr(self.config, "num_generations", None)
        return _EvaluationView(self.config, size)

    def weights(
        self,
        old_log_probs: torch.Tensor,
        advantages: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        *,
        evaluation: bool = False,
    ) -> torch.Tensor:
        """The weighting's checked weights: `(B, T)` for a token-level one, `(B,)` for a response-level one.

        Args:
            old_log_probs (`torch.Tensor` of shape `(B, T)`): log π_old of the sampled tokens.
            advantages (`torch.Tensor` of shape `(B,)` or `(B, T)`, *optional*): Â (ones when not given).
            mask (`torch.Tensor` of shape `(B, T)`, *optional*): the loss tokens (all when not given).
            evaluation (`bool`, *optional*): the weighting sees the evaluation group size.
        """
        if self.weighting is None:
            raise ValueError("reweighting='none' has no weights: it leaves the advantages as they are.")
        if advantages is None:
            advantages = torch.ones(old_log_probs.shape[0], device=old_log_probs.device)
        if mask is None:
            mask = torch.ones_like(old_log_probs, dtype=torch.long)
        raw = self.weighting(old_log_probs, advantages, mask, self.weighting_config(evaluation=evaluation))
        return self.check(raw, old_log_probs)

    def check(self, weights: Any, old_log_probs: torch.Tensor) -> torch.Tensor:
        """`weights` detached, or an error: the wrong shape for any weighting, non-finite or negative values for a
        user's (a negative weight flips the advantage)."""
        rows, width = old_log_probs.shape
        name = self.weighting.name
        if not isinstance(weights, torch.Tensor) or tuple(weights.shape) not in ((rows,), (rows, 1), (rows, width)):
            shape = tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights).__name__
            raise ValueError(
                f"The weighting {name!r} must return a tensor of shape ({rows}, {width}) (one weight per token) or "
                f"({rows},) (one per response), got {shape}."
            )
        weights = weights.detach()
        if not self.weighting.builtin and not bool(torch.isfinite(weights).all() and (weights >= 0).all()):
            raise ValueError(
                f"The weighting {name!r} returned negative or non-finite weights (min {weights.min().item():.4g}): a "
                "negative weight flips the advantage. Clamp them, e.g. `.clamp(min=0)`."
            )
        return weights

    def step(
        self,
        old_log_probs: torch.Tensor,
        advantages: torch.Tensor,
        mask: torch.Tensor,
        *,
        response_weights: torch.Tensor | None = None,
        token_mask: torch.Tensor | None = None,
        evaluation: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Ã = w · Â where the sign gate and `token_mask` allow (Â elsewhere), and the weights the tokens get.

        Args:
            old_log_probs (`torch.Tensor` of shape `(B, T)`): log π_old of the sampled tokens.
            advantages (`torch.Tensor` of shape `(B,)` or `(B, T)`): Â.
            mask (`torch.Tensor` of shape `(B, T)`): the loss tokens.
            response_weights (`torch.Tensor` of shape `(B,)`, *optional*): a response-level weighting's weights,
                computed on the whole generation batch (required for one).
            token_mask (`torch.Tensor` of shape `(B, T)`, *optional*): the tokens that may be reweighted.

        Returns:
            `(advantages, weights)`: the `(B, T)` (or `(B,)`) reweighted advantages, and the weights with 1 where
            the gate or the mask left a token alone.
        """
        weights = response_weights
        if weights is None:
            if self.level == "response":
                raise ValueError(
                    f"reweighting={self.weighting.name!r} weighs whole responses, so its weights come from the whole "
                    "generation batch (`response_weights`); none were given."
                )
            weights = self.weights(old_log_probs, advantages, mask, evaluation=evaluation)
        region = token_mask
        sign = getattr(self.config, "reweight_advantage_sign", "all")
        if sign != "all":
            gate = advantages > 0 if sign == "positive" else advantages < 0
            gate = gate.unsqueeze(1) if gate.dim() == 1 else gate
            region = gate if region is None else region & gate
        reweighted = reweight_advantages(advantages, weights, region)
        if region is not None:
            weights = weights if weights.dim() == 2 else weights.unsqueeze(1)
            weights = torch.where(region, weights, torch.ones_like(weights))
        return reweighted, weights


__all__ = ["AdvantageReweighter"]
