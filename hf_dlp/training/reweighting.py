"""Advantage reweighting formulas for GRPO, as pure tensor functions.

Each method turns the group-normalised advantage Â into a reweighted advantage Ã = w · Â with a detached,
non-negative weight w computed from the log-probabilities of the sampled tokens under the policy that produced the
rollout (π_old, p = π_old(y_t) below, α = `reweight_alpha`). The authors' names (`algorithm.reweight.method` in
their verl recipe) are in brackets.

Token level:

- `"low_prob"` [`reshape_reversed`] (the paper, Eq. 8): w_t = 1 + α (1 − p), in [1, 1 + α]; up-weights
  low-probability tokens.
- `"dominate"` [`reshape`] (Yang et al. 2025, arXiv 2505.12929, "Advantage Reweighting"): w_t = α p + 1 − α, in
  [1 − α, 1]; down-weights low-probability tokens.
- `"middle"` [`middle`]: w_t = α + (1 − p) p, in [α, α + 1/4]; favours tokens of middling probability.
- `"normalize"` [`normalize`]: w_t = 1 / (1 + α − p), in [1 / (1 + α), 1 / α]; needs α > 0.

Response level (one weight per response, from its log-perplexity ℓ_i = −mean log π_old over its tokens):

- `"ppl_raw"` [`ppl`]: w_i = 1 − α ℓ_i, clamped at 0 from below (the authors do not clamp; a negative weight would
  flip the sign of the advantage).
- `"ppl_norm"` [`ppl-norm`]: w_i = 1 − α z_i, z_i = (ℓ_i − mean) / (std + 1e-6) within the prompt group, with the
  population standard deviation (NumPy's `np.std`, as the authors).
- `"ppl_norm_clamp"` [`ppl-norm-clamp`]: `"ppl_norm"` clamped to [0.8, 1.2].
- `"ppl"` (Deng et al. 2025, arXiv 2508.02260; this library's original form): the authors' `ppl-norm` computed with
  TRL's advantage-normalisation convention instead, the unbiased standard deviation + 1e-4, and optionally clamped
  (`ppl_weight_min` / `ppl_weight_max`; 0.8 / 1.2 give the clamped variant). Within a group of G responses
  |z_i| < (G − 1)/√G, so the weight stays positive whenever α ≤ √G/(G − 1) (`ppl_weight_lower_bound`).

- `"none"`: w = 1 (plain GRPO).

`hf_dlp.training.registry` registers each form under its name: the one place that maps a `reweighting` to its weights.

Shapes: log-probs and masks are `(batch_size, completion_length)`; token weights have the same shape, response
weights are `(batch_size,)`.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch

PplStandardization = Literal["unbiased", "population", "none"]
"""How the `"ppl"` family standardises the log-perplexity within a prompt group (`"none"`: not at all)."""

PPL_STANDARDIZATIONS: tuple[str, ...] = get_args(PplStandardization)

AUTHORS_METHOD_NAMES: dict[str, str] = {
    "low_prob": "reshape_reversed",
    "dominate": "reshape",
    "middle": "middle",
    "normalize": "normalize",
    "ppl_raw": "ppl",
    "ppl_norm": "ppl-norm",
    "ppl_norm_clamp": "ppl-norm-clamp",
}
"""Our name of each weight form -> the authors' `algorithm.reweight.method` (their `ppl` is our `"ppl_raw"`)."""

PPL_NORM_CLAMP = (0.8, 1.2)
"""The authors' clamp of `"ppl_norm_clamp"`."""

_STD_EPSILON = {"unbiased": 1e-4, "population": 1e-6}  # TRL's advantage normalisation / the authors' ppl-norm


def _probabilities(old_logps: torch.Tensor) -> torch.Tensor:
    return old_logps.detach().float().exp()


@torch.no_grad()
def low_prob_weights(old_logps: torch.Tensor, alpha: float) -> torch.Tensor:
    """The paper's token weights w_t = 1 + α (1 − π_old(y_t)), from the sampled tokens' log-probs.

    Args:
        old_logps (`torch.Tensor` of shape `(batch_size, completion_length)`): log π_old of the sampled tokens.
        alpha (`float`): strength α ≥ 0 (0.2 for Qwen2.5-Math-7B, 0.1 for Qwen3-8B-Base in the paper).

    Returns:
        `torch.Tensor` of the same shape, detached, in [1, 1 + α].

    Examples:

    >>> import math, torch
    >>> logps = torch.tensor([[0.0, math.log(0.5), math.log(0.1)]])
    >>> low_prob_weights(logps, alpha=0.2).round(decimals=4)
    tensor([[1.0000, 1.1000, 1.1800]])
    """
    return 1.0 + alpha * (1.0 - _probabilities(old_logps))


@torch.no_grad()
def dominate_weights(old_logps: torch.Tensor, alpha: float) -> torch.Tensor:
    """Yang et al.'s Advantage Reweighting: w_t = α π_old(y_t) + 1 − α, which down-weights low-probability tokens.

    Args:
        old_logps (`torch.Tensor` of shape `(batch_size, completion_length)`): log π_old of the sampled tokens.
        alpha (`float`): strength α in [0, 1].

    Returns:
        `torch.Tensor` of the same shape, detached, in [1 − α, 1].

    Examples:

    >>> import math, torch
    >>> logps = torch.tensor([[0.0, math.log(0.5), math.log(0.1)]])
    >>> dominate_weights(logps, alpha=0.2).round(decimals=4)
    tensor([[1.0000, 0.9000, 0.8200]])
    """
    return alpha * _probabilities(old_logps) + 1.0 - alpha


@torch.no_grad()
def middle_weights(old_logps: torch.Tensor, alpha: float) -> torch.Tensor:
    """The authors' `middle` form: w_t = α + (1 − p) p with p = π_old(y_t), largest (α + 1/4) at p = 1/2.

    Examples:

    >>> import math, torch
    >>> middle_weights(torch.tensor([[0.0, math.log(0.5), math.log(0.1)]]), alpha=0.2).round(decimals=4)
    tensor([[0.2000, 0.4500, 0.2900]])
    """
    probabilities = _probabilities(old_logps)
    return alpha + (1.0 - probabilities) * probabilities


@torch.no_grad()
def normalize_weights(old_logps: torch.Tensor, alpha: float) -> torch.Tensor:
    """The authors' `normalize` form: w_t = 1 / (1 + α − p) with p = π_old(y_t), in [1 / (1 + α), 1 / α] (α > 0).

    Padding positions carry log-prob 0 (p = 1), where the weight is 1 / α: finite for α > 0, and masked out anyway.

    Examples:

    >>> import math, torch
    >>> normalize_weights(torch.tensor([[0.0, math.log(0.5), math.log(0.1)]]), alpha=0.2).round(decimals=4)
    tensor([[5.0000, 1.4286, 0.9091]])
    """
    return 1.0 / (1.0 + alpha - _probabilities(old_logps))


@torch.no_grad()
def ppl_weights(
    old_logps: torch.Tensor,
    mask: torch.Tensor,
    num_generations: int,
    coef: float,
    weight_min: float | None = None,
    weight_max: float | None = None,
    standardize: PplStandardization = "unbiased",
) -> torch.Tensor:
    """Response weights w_i = 1 − c z_i, z_i the group-standardised log-perplexity of response i (`"ppl"` family).

    The batch must hold whole groups in order: rows `[k * num_generations, (k + 1) * num_generations)` answer the
    same prompt (the layout of TRL's generation batch before it is shuffled).

    Args:
        old_logps (`torch.Tensor` of shape `(batch_size, completion_length)`): log π_old of the sampled tokens.
        mask (`torch.Tensor` of shape `(batch_size, completion_length)`): 1 on completion tokens, 0 on padding.
        num_generations (`int`): group size G (at least 2 unless `standardize="none"`); `batch_size` must be a
            multiple of it.
        coef (`float`): strength c ≥ 0.
        weight_min (`float`, *optional*): lower clamp of w (Deng et al.'s and the authors' clamped variant: 0.8).
        weight_max (`float`, *optional*): upper clamp of w (likewise 1.2).
        standardize (`str`, *optional*, defaults to `"unbiased"`): `"unbiased"` (std with Bessel's correction,
            + 1e-4, as TRL normalises advantages: `"ppl"`), `"population"` (`np.std`, + 1e-6, as the authors'
            `ppl-norm`) or `"none"` (z_i = ℓ_i, the raw log-perplexity: the authors' `ppl`).

    Returns:
        `torch.Tensor` of shape `(batch_size,)`, detached.

    Examples:

    >>> import torch
    >>> logps = torch.tensor([[-0.1, -0.1], [-1.0, -1.0], [-0.5, 0.0], [-0.5, 0.0]])
    >>> mask = torch.tensor([[1, 1], [1, 1], [1, 1], [1, 0]])
    >>> ppl_weights(logps, mask, num_generations=2, coef=0.1).round(decimals=4)  # lower perplexity, larger weight
    tensor([1.0707, 0.9293, 1.0707, 0.9293])
    >>> ppl_weights(logps, mask, num_generations=2, coef=0.1, standardize="population").round(decimals=4)
    tensor([1.1000, 0.9000, 1.1000, 0.9000])
    >>> ppl_weights(logps, mask, num_generations=2, coef=0.1, standardize="none").round(decimals=4)
    tensor([0.9900, 0.9000, 0.9750, 0.9500])
    """
    return ppl_weights_from_log_perplexity(
        log_perplexity(old_logps, mask), num_generations, coef, weight_min, weight_max, standardize=standardize
    )


@torch.no_grad()
def log_perplexity(logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Log-perplexity of each response: −(mean log-prob over its masked-in tokens), shape `(batch_size,)`.

    Examples:

    >>> import torch
    >>> log_perplexity(torch.tensor([[-1.0, -3.0], [-0.5, -9.0]]), torch.tensor([[1, 1], [1, 0]]))
    tensor([2.0000, 0.5000])
    """
    mask = mask.to(torch.float32)
    return -(logps.detach().float() * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)


@torch.no_grad()
def ppl_weights_from_log_perplexity(
    log_ppl: torch.Tensor,
    num_generations: int,
    coef: float,
    weight_min: float | None = None,
    weight_max: float | None = None,
    *,
    standardize: PplStandardization = "unbiased",
) -> torch.Tensor:
    """`ppl_weights` from precomputed log-perplexities `(batch_size,)` (whole groups, in order).

    Examples:

    >>> import torch
    >>> ppl_weights_from_log_perplexity(torch.tensor([1.0, 3.0, 2.0, 2.0]), num_generations=2, coef=0.5,
    ...                                 weight_min=0.8).round(decimals=4)
    tensor([1.3535, 0.8000, 1.0000, 1.0000])
    """
    if standardize not in PPL_STANDARDIZATIONS:
        raise ValueError(f"`standardize` must be one of {PPL_STANDARDIZATIONS}, got {standardize!r}.")
    if standardize == "none":
        z = log_ppl.float()
    else:
        if num_generations < 2:
            raise ValueError(
                f"`num_generations` must be at least 2 to standardise within groups, got {num_generations}."
            )
        if log_ppl.shape[0] % num_generations != 0:
            raise ValueError(
                f"The batch size ({log_ppl.shape[0]}) must be a multiple of `num_generations` ({num_generations}): "
                "pass whole prompt groups, in order."
            )
        grouped = log_ppl.float().view(-1, num_generations)
        std = grouped.std(dim=1, keepdim=True, correction=1 if standardize == "unbiased" else 0)
        z = ((grouped - grouped.mean(dim=1, keepdim=True)) / (std + _STD_EPSILON[standardize])).view(-1)
    weights = 1.0 - coef * z
    if weight_min is not None or weight_max is not None:
        weights = weights.clamp(min=weight_min, max=weight_max)
    return weights


def ppl_weight_lower_bound(num_generations: int, coef: float, standardize: PplStandardization = "unbiased") -> float:
    """The lowest group-standardised `"ppl"` weight a group of G responses can give before clamping.

    No standardised value of a sample of G exceeds (G − 1)/√G in size with the unbiased standard deviation, or
    √(G − 1) with the population one (Samuelson's inequality); the epsilon in the denominator only shrinks it. So the
    weights are at least 1 − c (G − 1)/√G (`"ppl"`), resp. 1 − c √(G − 1) (`"ppl_norm"`), reached when one response
    stands apart from G − 1 equal ones.

    Examples:

    >>> round(ppl_weight_lower_bound(num_generations=8, coef=0.2), 4)
    0.505
    >>> round(ppl_weight_lower_bound(num_generations=8, coef=5.0), 2)  # negative: it would flip advantage signs
    -11.37
    >>> round(ppl_weight_lower_bound(num_generations=8, coef=0.2, standardize="population"), 4)
    0.4708
    """
    if standardize == "population":
        return 1.0 - coef * math.sqrt(num_generations - 1)
    return 1.0 - coef * (num_generations - 1) / math.sqrt(num_generations)


def reweight_advantages(
    advantages: torch.Tensor, weights: torch.Tensor, where: torch.Tensor | None = None
) -> torch.Tensor:
    """Ã = w · Â, or Ã = w · Â only where `where` is true and Â elsewhere; a new tensor (the inputs are not modified).

    Args:
        advantages (`torch.Tensor` of shape `(batch_size,)` or `(batch_size, completion_length)`): Â.
        weights (`torch.Tensor` of shape `(batch_size,)` or `(batch_size, completion_length)`): w.
        where (`torch.Tensor` of bools, *optional*): the tokens (`(batch_size, completion_length)`) or responses
            (`(batch_size,)`) to reweight; the others keep their advantage exactly. `None`: all of them.

    Returns:
        `torch.Tensor`: `(batch_size, completion_length)` if any input is per token, else `(batch_size,)`.

    Examples:

    >>> import torch
    >>> reweight_advantages(torch.tensor([1.0, -1.0]), torch.tensor([[1.0, 1.2], [1.0, 1.2]]))
    tensor([[ 1.0000,  1.2000],
            [-1.0000, -1.2000]])
    >>> reweight_advantages(torch.tensor([1.0, -1.0]), torch.tensor([1.5, 1.5]), where=torch.tensor([True, False]))
    tensor([ 1.5000, -1.0000])
    """
    per_token = 2 in (advantages.dim(), weights.dim(), where.dim() if where is not None else 1)
    if per_token:
        advantages, weights = (t.unsqueeze(1) if t.dim() == 1 else t for t in (advantages, weights))
        where = where.unsqueeze(1) if where is not None and where.dim() == 1 else where
    reweighted = advantages * weights.to(advantages.dtype)
    if where is None:
        return reweighted
    return torch.where(where, reweighted, advantages.expand_as(reweighted))


def weight_statistics(weights: torch.Tensor, mask: torch.Tensor, alpha: float) -> torch.Tensor:
    """Sums behind the logged weight statistics, ready for a cross-process `reduce`/`gather`.

    Response weights `(batch_size,)` count once per completion token, like token weights.

    Returns:
        `torch.Tensor` of shape `(5,)`: sum of w, number of tokens, number with w > 1 + α/2, max of w, min of w
        (all over the masked-in tokens; max and min are −inf and +inf when there are none).

    Examples:

    >>> import torch
    >>> w = torch.tensor([[1.0, 1.15, 1.2], [1.05, 1.0, 1.0]])
    >>> weight_statistics(w, torch.tensor([[1, 1, 1], [1, 0, 0]]), alpha=0.2)
    tensor([4.4000, 4.0000, 2.0000, 1.2000, 1.0000])
    """
    weights = weights.detach().float()
    mask = mask.bool()
    if weights.dim() == 1:
        weights = weights.unsqueeze(1)
    active = weights.expand_as(mask)[mask]
    if active.numel() == 0:
        return torch.tensor([0.0, 0.0, 0.0, float("-inf"), float("inf")], device=weights.device)
    return torch.stack(
        [
            active.sum(),
            torch.tensor(float(active.numel()), device=weights.device),
            (active > 1.0 + alpha / 2).float().sum(),
            active.max(),
            active.min(),
        ]
    )


__all__ = [
    "AUTHORS_METHOD_NAMES",
    "PPL_NORM_CLAMP",
    "PPL_STANDARDIZATIONS",
    "PplStandardization",
    "dominate_weights",
    "log_perplexity",
    "low_prob_weights",
    "middle_weights",
    "normalize_weights",
    "ppl_weight_lower_bound",
    "ppl_weights",
    "ppl_weights_from_log_perplexity",
    "reweight_advantages",
    "weight_statistics",
]
