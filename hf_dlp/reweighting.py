"""Advantage reweighting formulas for GRPO, as pure tensor functions.

Each method turns the group-normalised advantage Â into a reweighted advantage Ã = w · Â with a detached,
non-negative weight w computed from the log-probabilities of the sampled tokens under the policy that produced the
rollout (π_old):

- `"low_prob"` (the paper, Eq. 8): w_t = 1 + α (1 − π_old(y_t)), in [1, 1 + α]; up-weights low-probability tokens.
- `"dominate"` (Yang et al. 2025, arXiv 2505.12929, "Advantage Reweighting"): w_t = α π_old(y_t) + 1 − α, in
  [1 − α, 1]; down-weights low-probability tokens.
- `"ppl"` (Deng et al. 2025, arXiv 2508.02260): one weight per response, w_i = 1 − c z_i, with z_i the log-perplexity
  of response i (−mean log π_old over its tokens) standardised within its prompt group; optionally clamped.
- `"none"`: w = 1 (plain GRPO).

Shapes: log-probs and masks are `(batch_size, completion_length)`; token weights have the same shape, response
weights are `(batch_size,)`.
"""

from __future__ import annotations

import torch

REWEIGHTING_METHODS: tuple[str, ...] = ("none", "low_prob", "dominate", "ppl")
"""The values `ReweightedGRPOConfig.reweighting` accepts."""

TOKEN_LEVEL_METHODS: tuple[str, ...] = ("low_prob", "dominate")
"""Methods whose weight depends on each token (the others give one weight per response)."""

_STD_EPSILON = 1e-4  # as TRL's advantage normalisation: (x - mean) / (std + 1e-4)


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
    return 1.0 + alpha * (1.0 - old_logps.detach().float().exp())


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
    return alpha * old_logps.detach().float().exp() + 1.0 - alpha


@torch.no_grad()
def ppl_weights(
    old_logps: torch.Tensor,
    mask: torch.Tensor,
    num_generations: int,
    coef: float,
    weight_min: float | None = None,
    weight_max: float | None = None,
) -> torch.Tensor:
    """Deng et al.'s response weights w_i = 1 − c z_i, z_i the group-standardised log-perplexity of response i.

    The batch must hold whole groups in order: rows `[k * num_generations, (k + 1) * num_generations)` answer the
    same prompt (the layout of TRL's generation batch before it is shuffled). The standard deviation is the unbiased
    one, plus 1e-4, as in TRL's advantage normalisation.

    Args:
        old_logps (`torch.Tensor` of shape `(batch_size, completion_length)`): log π_old of the sampled tokens.
        mask (`torch.Tensor` of shape `(batch_size, completion_length)`): 1 on completion tokens, 0 on padding.
        num_generations (`int`): group size G (at least 2); `batch_size` must be a multiple of it.
        coef (`float`): strength c ≥ 0.
        weight_min (`float`, *optional*): lower clamp of w (Deng et al.'s clamped variant uses 0.8).
        weight_max (`float`, *optional*): upper clamp of w (Deng et al.'s clamped variant uses 1.2).

    Returns:
        `torch.Tensor` of shape `(batch_size,)`, detached.

    Examples:

    >>> import torch
    >>> logps = torch.tensor([[-0.1, -0.1], [-1.0, -1.0], [-0.5, 0.0], [-0.5, 0.0]])
    >>> mask = torch.tensor([[1, 1], [1, 1], [1, 1], [1, 0]])
    >>> ppl_weights(logps, mask, num_generations=2, coef=0.1).round(decimals=4)  # lower perplexity, larger weight
    tensor([1.0707, 0.9293, 1.0707, 0.9293])
    """
    return ppl_weights_from_log_perplexity(
        log_perplexity(old_logps, mask), num_generations, coef, weight_min=weight_min, weight_max=weight_max
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
) -> torch.Tensor:
    """`ppl_weights` from precomputed log-perplexities `(batch_size,)` (whole groups, in order).

    Examples:

    >>> import torch
    >>> ppl_weights_from_log_perplexity(torch.tensor([1.0, 3.0, 2.0, 2.0]), num_generations=2, coef=0.5,
    ...                                 weight_min=0.8).round(decimals=4)
    tensor([1.3535, 0.8000, 1.0000, 1.0000])
    """
    if num_generations < 2:
        raise ValueError(f"`num_generations` must be at least 2 to standardise within groups, got {num_generations}.")
    if log_ppl.shape[0] % num_generations != 0:
        raise ValueError(
            f"The batch size ({log_ppl.shape[0]}) must be a multiple of `num_generations` ({num_generations}): "
            "pass whole prompt groups, in order."
        )
    grouped = log_ppl.float().view(-1, num_generations)
    z = (grouped - grouped.mean(dim=1, keepdim=True)) / (grouped.std(dim=1, keepdim=True) + _STD_EPSILON)
    weights = (1.0 - coef * z).view(-1)
    if weight_min is not None or weight_max is not None:
        weights = weights.clamp(min=weight_min, max=weight_max)
    return weights


def token_weights(method: str, old_logps: torch.Tensor, alpha: float) -> torch.Tensor:
    """Token weights of a token-level method (`"low_prob"`, `"dominate"`), or ones for `"none"`.

    Examples:

    >>> import torch
    >>> token_weights("none", torch.full((1, 2), -2.0), alpha=0.2)
    tensor([[1., 1.]])
    >>> token_weights("low_prob", torch.full((1, 2), -2.0), alpha=0.2).round(decimals=3)
    tensor([[1.1730, 1.1730]])
    """
    if method == "none":
        return torch.ones_like(old_logps, dtype=torch.float32)
    if method == "low_prob":
        return low_prob_weights(old_logps, alpha)
    if method == "dominate":
        return dominate_weights(old_logps, alpha)
    raise ValueError(f"`method` must be one of {('none', *TOKEN_LEVEL_METHODS)} for token weights, got {method!r}.")


def reweight_advantages(advantages: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Ã = w · Â, returned as a new tensor (the inputs are not modified).

    Args:
        advantages (`torch.Tensor` of shape `(batch_size,)` or `(batch_size, completion_length)`): Â.
        weights (`torch.Tensor` of shape `(batch_size,)` or `(batch_size, completion_length)`): w.

    Returns:
        `torch.Tensor`: `(batch_size, completion_length)` if either input is per token, else `(batch_size,)`.

    Examples:

    >>> import torch
    >>> reweight_advantages(torch.tensor([1.0, -1.0]), torch.tensor([[1.0, 1.2], [1.0, 1.2]]))
    tensor([[ 1.0000,  1.2000],
            [-1.0000, -1.2000]])
    """
    if advantages.dim() == 1 and weights.dim() == 2:
        advantages = advantages.unsqueeze(1)
    elif advantages.dim() == 2 and weights.dim() == 1:
        weights = weights.unsqueeze(1)
    return advantages * weights.to(advantages.dtype)


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
        weights = weights.unsqueeze(1).expand_as(mask)
    active = weights[mask]
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
