"""The pair arithmetic of a base/RL model pair, in one place: log-probabilities, Δlog p, entropy, the two KLs and
π_extra, and the names of the Δlog p summary statistics.

Every function takes log-probabilities over the last dimension and floors them at `LOG_FLOOR` before any product,
so a token one side gives probability 0 (a `-inf` logit, a processor's mask) contributes 0 to a sum instead of
`0 · -inf = nan`, and Δlog p stays finite. `hf_dlp.analysis` (teacher-forced metrics), `hf_dlp.extrapolation` (the
selection rules and π_extra inside `generate`) and `hf_dlp.training` (the Δlog p monitor) all compute these
quantities here.

- Δlog p(y) = log π_RL(y) − log π_base(y), the paper's signed direction of the RLVR update;
- H(π) = −Σ_v π(v) log π(v);
- KL(p‖q) = Σ_v p(v) (log p(v) − log q(v));
- log π_extra = log_softmax((1 + γ) log π_RL − γ log π_base).

Standard library and torch only: an exported `custom_generate` script carries this module.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch

LOG_FLOOR = -1e4
"""Floor of log-probabilities: exp(-1e4) is 0 in every float type, and |(1 + γ) · floor| <= 1e8 for γ <= 1e4."""

PAIR_METRIC_NAMES: tuple[str, ...] = (
    "base_logp",
    "rl_logp",
    "delta_logp",
    "base_entropy",
    "rl_entropy",
    "kl_rl_base",
    "kl_base_rl",
)
"""The per-token quantities of a pair, in the order `pair_metrics` returns them."""


def normalize_logits_(logits: torch.Tensor, *, with_probs: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Floored log-probabilities computed in place of `logits` (float32 or wider), and the probabilities (one exp).

    Examples:

    >>> log_probs, probs = normalize_logits_(torch.tensor([[0.0, 0.0, float("-inf")]]))
    >>> log_probs.tolist(), probs.tolist()
    ([[-0.6931471824645996, -0.6931471824645996, -10000.0]], [[0.5, 0.5, 0.0]])
    """
    logits.sub_(logits.amax(dim=-1, keepdim=True))
    if not with_probs:
        return logits.sub_(logits.logsumexp(dim=-1, keepdim=True)).clamp_(min=LOG_FLOOR), None
    probs = logits.exp()
    total = probs.sum(dim=-1, keepdim=True)
    probs.div_(total)
    return logits.sub_(total.log_()).clamp_(min=LOG_FLOOR), probs


def token_log_probs(log_probs: torch.Tensor, tokens: torch.LongTensor) -> torch.Tensor:
    """log π(y) of `tokens`, floored at `LOG_FLOOR`: one token per distribution (`tokens` of shape
    `log_probs.shape[:-1]`), or several (`log_probs.shape[:-1] + (k,)`, the result has that shape).

    Examples:

    >>> log_probs = torch.tensor([[0.0, float("-inf")]])
    >>> token_log_probs(log_probs, torch.tensor([1])).tolist(), token_log_probs(log_probs, torch.tensor([[1, 0]])).tolist()
    ([-10000.0], [[-10000.0, 0.0]])
    """
    if tokens.dim() == log_probs.dim():
        return log_probs.gather(-1, tokens).clamp(min=LOG_FLOOR)
    return log_probs.gather(-1, tokens[..., None]).squeeze(-1).clamp(min=LOG_FLOOR)


def delta_logp(log_rl: torch.Tensor, log_base: torch.Tensor, tokens: torch.LongTensor) -> torch.Tensor:
    """Δlog p(y) = log π_RL(y) − log π_base(y) of `tokens` (one or several per position, as `token_log_probs` takes
    them) from the two `(..., vocab)` log-probabilities.

    Examples:

    >>> log_rl, log_base = torch.tensor([[0.8, 0.2]]).log(), torch.tensor([[0.4, 0.6]]).log()
    >>> round(delta_logp(log_rl, log_base, torch.tensor([0])).item(), 4)   # log 2
    0.6931
    """
    return token_log_probs(log_rl, tokens) - token_log_probs(log_base, tokens)


def entropy(log_probs: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of `(..., vocab)` log-probabilities, zero-probability entries contributing 0.

    Examples:

    >>> round(float(entropy(torch.tensor([0.5, 0.5, 0.0]).log())), 4)
    0.6931
    """
    probs = log_probs.exp()
    return -torch.where(probs > 0, probs * log_probs.clamp(min=LOG_FLOOR), 0.0).sum(-1)


def kl_divergence(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p‖q) (nats) of `(..., vocab)` log-probabilities; finite even where q is 0 (q is floored at `LOG_FLOOR`).

    Examples:

    >>> p, q = torch.tensor([0.5, 0.5]).log(), torch.tensor([0.9, 0.1]).log()
    >>> round(float(kl_divergence(p, q)), 4)
    0.5108
    """
    probs = log_p.exp()
    diff = log_p.clamp(min=LOG_FLOOR) - log_q.clamp(min=LOG_FLOOR)
    return torch.where(probs > 0, probs * diff, 0.0).sum(-1)


def _row_dot(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Σ_v first[i, v] · second[i, v] of two `(n, vocab)` tensors as one batched matrix product (no temporary)."""
    return torch.bmm(first.unsqueeze(1), second.unsqueeze(2)).view(-1)


def pair_metrics(
    log_base: torch.Tensor,
    log_rl: torch.Tensor,
    tokens: torch.LongTensor,
    *,
    base_probs: torch.Tensor,
    rl_probs: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Every `PAIR_METRIC_NAMES` quantity at `n` positions, from both models' floored `(n, vocab)` log-probabilities
    and probabilities (`normalize_logits_`), without any further `(n, vocab)` temporary: with
    S(a, b) = Σ_v π_a(v) log π_b(v), H(a) = −S(a, a) and KL(a‖b) = S(a, a) − S(a, b).

    Examples:

    >>> log_base, base_probs = normalize_logits_(torch.tensor([[0.0, 0.0]]))
    >>> log_rl, rl_probs = normalize_logits_(torch.tensor([[2.0, 0.0]]))
    >>> metrics = pair_metrics(log_base, log_rl, torch.tensor([0]), base_probs=base_probs, rl_probs=rl_probs)
    >>> torch.allclose(metrics["kl_rl_base"], kl_divergence(log_rl, log_base))
    True
    >>> torch.allclose(metrics["rl_entropy"], entropy(log_rl)), round(metrics["delta_logp"].item(), 4)
    (True, 0.5662)
    """
    base_logp, rl_logp = token_log_probs(log_base, tokens), token_log_probs(log_rl, tokens)
    base_self, rl_self = _row_dot(base_probs, log_base), _row_dot(rl_probs, log_rl)
    return {
        "base_logp": base_logp,
        "rl_logp": rl_logp,
        "delta_logp": rl_logp - base_logp,
        "base_entropy": -base_self,
        "rl_entropy": -rl_self,
        "kl_rl_base": rl_self - _row_dot(rl_probs, log_base),
        "kl_base_rl": base_self - _row_dot(base_probs, log_rl),
    }


def pair_metrics_from_logits(
    base_logits: torch.Tensor, rl_logits: torch.Tensor, tokens: torch.LongTensor
) -> tuple[torch.Tensor, ...]:
    """Every `PAIR_METRIC_NAMES` quantity, in that order, straight from two `(n, vocab)` logit chunks: the fused form.

    The same arithmetic as `normalize_logits_` + `pair_metrics`, written as one pure function of the logits so that
    `torch.compile` fuses the log-softmax, the exps and the sums over the vocabulary (`compiled_pair_metrics`); eager,
    it is the reference path's result up to float rounding.

    Examples:

    >>> base, rl = torch.tensor([[0.0, 0.0]]), torch.tensor([[2.0, 0.0]])
    >>> fused = pair_metrics_from_logits(base, rl, torch.tensor([0]))
    >>> log_base, base_probs = normalize_logits_(base.clone())
    >>> log_rl, rl_probs = normalize_logits_(rl.clone())
    >>> reference = pair_metrics(log_base, log_rl, torch.tensor([0]), base_probs=base_probs, rl_probs=rl_probs)
    >>> all(torch.allclose(value, reference[name]) for name, value in zip(PAIR_METRIC_NAMES, fused))
    True
    """
    base_logits, rl_logits = base_logits.float(), rl_logits.float()
    log_base = (base_logits - base_logits.logsumexp(-1, keepdim=True)).clamp(min=LOG_FLOOR)
    log_rl = (rl_logits - rl_logits.logsumexp(-1, keepdim=True)).clamp(min=LOG_FLOOR)
    base_probs, rl_probs = log_base.exp(), log_rl.exp()
    base_logp, rl_logp = token_log_probs(log_base, tokens), token_log_probs(log_rl, tokens)
    base_self, rl_self = (base_probs * log_base).sum(-1), (rl_probs * log_rl).sum(-1)
    return (
        base_logp,
        rl_logp,
        rl_logp - base_logp,
        -base_self,
        -rl_self,
        rl_self - (rl_probs * log_base).sum(-1),
        base_self - (base_probs * log_rl).sum(-1),
    )


@functools.cache
def compiled_pair_metrics():
    """`pair_metrics_from_logits` compiled once per process (`torch.compile`, dynamic shapes: chunks vary in length).

    On a GPU, Inductor fuses it into a few kernels that read each logit chunk a handful of times instead of writing
    the four `(n, vocab)` float32 intermediates of the reference path; `hf_dlp.analysis` uses it on CUDA.
    """
    return torch.compile(pair_metrics_from_logits, dynamic=True)


def extrapolate_log_probs(
    log_rl: torch.Tensor, log_base: torch.Tensor, gamma: float, *, allowed: torch.Tensor | None = None
) -> torch.Tensor:
    """log π_extra = log_softmax((1 + γ) log π_RL − γ log π_base) over the last dimension, `-inf` outside `allowed`.

    Args:
        log_rl, log_base (`torch.Tensor`): `(..., vocab)` log-probabilities of the RL and base models; `-inf` entries
            are fine on either side (they are floored at `LOG_FLOOR` before the combination).
        gamma (`float`): extrapolation strength γ >= 0.
        allowed (`torch.Tensor`, *optional*): `(..., vocab)` booleans, the tokens π_extra may put mass on (the
            generator's support, after the masks of other processors); defaults to where π_RL > 0.

    Returns:
        `torch.Tensor`: `(..., vocab)` normalised log-probabilities (float32 or wider), never NaN.

    Examples:

    >>> log_base, log_rl = torch.tensor([0.5, 0.5]).log(), torch.tensor([0.8, 0.2]).log()
    >>> extrapolate_log_probs(log_rl, log_base, gamma=1.0).exp()   # ∝ 0.8²/0.5, 0.2²/0.5
    tensor([0.9412, 0.0588])
    >>> masked_base = torch.tensor([float("-inf"), 0.0])            # the base generates and a processor masked id 0
    >>> extrapolate_log_probs(log_rl, masked_base, gamma=0.0, allowed=masked_base > LOG_FLOOR).exp()
    tensor([0., 1.])
    """
    dtype = torch.promote_types(log_rl.dtype, torch.float32)
    if allowed is None:
        allowed = log_rl > LOG_FLOOR
    rl = log_rl.to(dtype).clamp(min=LOG_FLOOR)
    base = log_base.to(dtype).clamp(min=LOG_FLOOR)
    extra = (rl + gamma * (rl - base)).masked_fill(~allowed, float("-inf"))
    return torch.log_softmax(extra, dim=-1)


# The Δlog p summary statistics, under one set of names wherever they are reported: the analysis's summaries
# (`hf_dlp.analysis.summarize`: `quantiles` and `share_abs_above`, keyed by the value) and the training monitor's
# logged keys (`delta_logp/quantile_<q>`, `delta_logp/share_abs_above_<t>`).
QUANTILE_STAT = "quantile"
"""The q-quantile of Δlog p."""
SHARE_ABS_ABOVE_STAT = "share_abs_above"
"""The share of tokens with |Δlog p| > t (the sparsity of the update)."""


def statistic_key(statistic: str, value: float) -> str:
    """The flat name of one summary statistic at `value` (a quantile or a threshold), as logs and tables show it.

    Examples:

    >>> statistic_key(QUANTILE_STAT, 0.5), statistic_key(SHARE_ABS_ABOVE_STAT, 1.0)
    ('quantile_0.5', 'share_abs_above_1')
    """
    if statistic not in (QUANTILE_STAT, SHARE_ABS_ABOVE_STAT):
        raise ValueError(f"`statistic` must be {QUANTILE_STAT!r} or {SHARE_ABS_ABOVE_STAT!r}, got {statistic!r}.")
    return f"{statistic}_{value:g}"


def statistic_keys(statistic: str, values: Sequence[float]) -> list[str]:
    """`statistic_key` of each value."""
    return [statistic_key(statistic, value) for value in values]


__all__ = [
    "LOG_FLOOR",
    "PAIR_METRIC_NAMES",
    "QUANTILE_STAT",
    "SHARE_ABS_ABOVE_STAT",
    "compiled_pair_metrics",
    "delta_logp",
    "entropy",
    "extrapolate_log_probs",
    "kl_divergence",
    "normalize_logits_",
    "pair_metrics",
    "pair_metrics_from_logits",
    "statistic_key",
    "statistic_keys",
    "token_log_probs",
]
