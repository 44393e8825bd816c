"""Token selection by batch quantiles of Δlog p or log π_old, and the Δlog p statistics of the training-time monitor.

Δlog p = log π_old − log π_ref is the log-probability the policy has gained (or lost) on each sampled token since the
reference (initial) model. The authors' `algorithm.logp_diff` (their names in brackets) selects response tokens by it
or by the old log-probability, with one quantile parameter q; the threshold Q(q) is the k-th smallest value over the
batch's response tokens with k = int(N · q) (as their `torch.kthvalue(x, int(N * q))`, kept within [1, N]):

| `token_mask_by` | selected tokens | authors' `mask_by` |
| --- | --- | --- |
| `"delta_logp_above"` | Δlog p ≥ Q(q) (q = 0.8: the top 20 %) | `logp` |
| `"delta_logp_below"` | Δlog p ≤ Q(q) | `logp-negative` |
| `"delta_logp_middle"` | Q(1 − q) ≤ Δlog p ≤ Q(q) (q ≥ 0.5) | `logp-middle` |
| `"delta_logp_ends"` | Δlog p ≤ Q(1 − q) or Δlog p ≥ Q(q) (q ≥ 0.5) | `logp-end` |
| `"old_logp_below"` | log π_old ≤ Q(q) (low-probability tokens) | `old` |
| `"old_logp_above"` | log π_old ≥ Q(q) | `old-negative` |
| `"old_prob_below"` | π_old ≤ q (a threshold, not a quantile) | `old-prob` |
| `"old_prob_middle"` | 1 − q ≤ π_old ≤ q (q ≥ 0.5) | `old-prob-middle` |

The quantiles are exact over the tokens of *all* processes, so 1 and N processes select the same tokens: the values
are mapped to order-preserving 32-bit keys and the k-th key is found digit by digit (radix select), summing one
256-bin histogram per digit across processes (`reduce`). Memory stays O(local tokens) and four small all-reduces
replace a gather of every token.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, get_args

import torch

from ..divergence import QUANTILE_STAT, SHARE_ABS_ABOVE_STAT, statistic_keys

TokenMaskBy = Literal[
    "none",
    "delta_logp_above",
    "delta_logp_below",
    "delta_logp_middle",
    "delta_logp_ends",
    "old_logp_below",
    "old_logp_above",
    "old_prob_below",
    "old_prob_middle",
]
"""The values `ReweightedGRPOConfig.token_mask_by` accepts."""

TokenMaskMode = Literal["none", "loss_mask", "reweight"]
"""What a token mask does: nothing but log statistics [`none`], become the loss mask [`clip`], or restrict the
weights to the selected tokens [`reweight`]."""

TOKEN_MASK_BY: tuple[str, ...] = get_args(TokenMaskBy)
TOKEN_MASK_MODES: tuple[str, ...] = get_args(TokenMaskMode)
DELTA_LOGP_MASKS: tuple[str, ...] = tuple(name for name in TOKEN_MASK_BY if name.startswith("delta_logp_"))
"""Masks that need the reference model's log-probs."""
BAND_MASKS: tuple[str, ...] = ("delta_logp_middle", "delta_logp_ends", "old_prob_middle")
"""Masks that use both q and 1 − q, so need q ≥ 0.5."""

AUTHORS_MASK_NAMES: dict[str, str] = {
    "delta_logp_above": "logp",
    "delta_logp_below": "logp-negative",
    "delta_logp_middle": "logp-middle",
    "delta_logp_ends": "logp-end",
    "old_logp_below": "old",
    "old_logp_above": "old-negative",
    "old_prob_below": "old-prob",
    "old_prob_middle": "old-prob-middle",
}
"""Our `token_mask_by` -> the authors' `logp_diff.mask_by`."""
AUTHORS_MODE_NAMES: dict[str, str] = {"none": "none", "loss_mask": "clip", "reweight": "reweight"}
"""Our `token_mask_mode` -> the authors' `logp_diff.method`."""

Reduce = Callable[[torch.Tensor], torch.Tensor]
"""Sums a tensor over processes (e.g. `lambda t: accelerator.reduce(t, reduction="sum")`); identity on one."""


def _identity(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


_SIGN = 1 << 31
_ALL = (1 << 32) - 1


def _order_keys(values: torch.Tensor) -> torch.Tensor:
    """Float32 values as int64 keys in [0, 2³²) that sort like the floats (NaN excluded)."""
    bits = values.float().contiguous().view(torch.int32).to(torch.int64) & _ALL
    return torch.where(bits >= _SIGN, _ALL - bits, bits + _SIGN)


def _from_keys(keys: torch.Tensor) -> torch.Tensor:
    bits = torch.where(keys >= _SIGN, keys - _SIGN, _ALL - keys)
    return torch.where(bits >= _SIGN, bits - (1 << 32), bits).to(torch.int32).view(torch.float32)


def kth_smallest(values: torch.Tensor, ranks: Sequence[int], reduce: Reduce | None = None) -> torch.Tensor:
    """The `ranks`-th smallest (1-indexed) of the float32 values of all processes, exactly (radix select).

    Args:
        values (`torch.Tensor`): this process's values (any shape; flattened, cast to float32, no NaN).
        ranks (`list[int]`): the ranks wanted, each in [1, total count over processes].
        reduce (`Callable`, *optional*): sums an integer tensor over processes; `None` for one process.

    Returns:
        `torch.Tensor` of shape `(len(ranks),)`, float32, on `values`' device.

    Examples:

    >>> import torch
    >>> values = torch.tensor([0.5, -2.0, 3.0, -0.0, 1e-8, -7.5])
    >>> kth_smallest(values, [1, 3, 6])
    tensor([-7.5000, -0.0000,  3.0000])
    >>> torch.equal(kth_smallest(values, [2, 4]), values.sort().values[[1, 3]])
    True
    """
    reduce = reduce or _identity
    keys = _order_keys(values.flatten())
    prefixes = torch.zeros(len(ranks), dtype=torch.int64, device=keys.device)
    remaining = torch.as_tensor(list(ranks), dtype=torch.int64, device=keys.device)
    for shift in (24, 16, 8, 0):
        histograms = reduce(_digit_histograms(keys, prefixes, shift))
        cumulative = histograms.cumsum(dim=1)
        digits = (cumulative < remaining[:, None]).sum(dim=1)  # first bin whose cumulative count reaches the rank
        below = cumulative.gather(1, (digits - 1).clamp(min=0)[:, None]).squeeze(1) * (digits > 0)
        remaining = remaining - below
        prefixes = prefixes | (digits << shift)
    return _from_keys(prefixes)


def _digit_histograms(keys: torch.Tensor, prefixes: torch.Tensor, shift: int) -> torch.Tensor:
    """For each rank's prefix, the histogram `(256,)` of the digit at `shift` among the keys sharing that prefix."""
    digits = (keys >> shift) & 0xFF
    high = keys >> (shift + 8)
    rows = [torch.bincount(digits[high == (prefix >> (shift + 8))], minlength=256) for prefix in prefixes]
    return torch.stack(rows) if rows else torch.zeros(0, 256, dtype=torch.int64, device=keys.device)


def quantile_rank(count: int, quantile: float) -> int:
    """The rank k = int(count · quantile) of the authors' `torch.kthvalue`, kept within [1, count].

    Examples:

    >>> quantile_rank(10, 0.8), quantile_rank(10, 0.0), quantile_rank(3, 1.0)
    (8, 1, 3)
    """
    return min(max(int(count * quantile), 1), count)


def global_count(mask: torch.Tensor, reduce: Reduce | None = None) -> int:
    """Number of true entries of `mask` over all processes."""
    return int((reduce or _identity)(mask.sum().to(torch.int64).reshape(1)).item())


@torch.no_grad()
def select_tokens(
    by: str, values: torch.Tensor, mask: torch.Tensor, quantile: float, reduce: Reduce | None = None
) -> tuple[torch.Tensor, dict[str, float]]:
    """The tokens `token_mask_by=by` selects, and the thresholds used.

    Args:
        by (`str`): one of `TOKEN_MASK_BY` except `"none"`.
        values (`torch.Tensor` of shape `(B, T)`): Δlog p for the `delta_logp_*` masks, log π_old for the others.
        mask (`torch.Tensor` of shape `(B, T)`): the response tokens (1/True) the quantiles run over.
        quantile (`float`): q in [0, 1] (the probability threshold for `old_prob_*`).
        reduce (`Callable`, *optional*): sums over processes (see `kth_smallest`).

    Returns:
        `(selected, thresholds)`: a `(B, T)` bool tensor (false outside `mask`) and `{"threshold": ...}` or
        `{"threshold_low": ..., "threshold_high": ...}` (empty when no process has a response token).

    Examples:

    >>> import torch
    >>> delta = torch.tensor([[0.0, 0.4, -0.2, 9.0], [1.0, -1.0, 0.1, 0.0]])
    >>> mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    >>> selected, thresholds = select_tokens("delta_logp_above", delta, mask, quantile=0.7)
    >>> selected.int().tolist(), thresholds  # 7 tokens, k = int(7 * 0.7) = 4: the 4th smallest is 0.0
    ([[1, 1, 0, 0], [1, 0, 1, 1]], {'threshold': 0.0})
    >>> select_tokens("delta_logp_ends", delta, mask, quantile=0.8)  # ranks 1 and 5: at most -1.0 or at least 0.1
    (tensor([[False,  True, False, False],
            [ True,  True,  True, False]]), {'threshold_low': -1.0, 'threshold_high': 0.10000000149011612})
    """
    mask = mask.bool()
    values = values.detach().float()
    if by in ("old_prob_below", "old_prob_middle"):
        probabilities = values.exp()
        selected = probabilities <= quantile
        if by == "old_prob_middle":
            selected = selected & (probabilities >= 1 - quantile)
        return selected & mask, {"threshold": float(quantile)}
    count = global_count(mask, reduce)
    if count == 0:
        return torch.zeros_like(mask), {}
    active = values[mask]
    if by in BAND_MASKS:
        low, high = kth_smallest(active, [quantile_rank(count, 1 - quantile), quantile_rank(count, quantile)], reduce)
        inside = (values >= low) & (values <= high)
        selected = inside if by == "delta_logp_middle" else (values <= low) | (values >= high)
        return selected & mask, {"threshold_low": low.item(), "threshold_high": high.item()}
    (threshold,) = kth_smallest(active, [quantile_rank(count, quantile)], reduce)
    above = by in ("delta_logp_above", "old_logp_above")
    selected = values >= threshold if above else values <= threshold
    return selected & mask, {"threshold": threshold.item()}


@torch.no_grad()
def delta_logp_statistics(
    delta: torch.Tensor,
    mask: torch.Tensor,
    quantiles: Sequence[float],
    thresholds: Sequence[float],
    reduce: Reduce | None = None,
) -> dict[str, float]:
    """The monitor's statistics of Δlog p over the response tokens of all processes.

    Returns:
        `{"mean", "abs_mean", "quantile_<q>" for each q (k-th smallest, k = int(N q) within [1, N]),
        "share_abs_above_<t>" for each t (share of tokens with |Δlog p| > t)}`, named by
        `hf_dlp.divergence.statistic_key` as the analysis names them; empty when there are no tokens.

    Examples:

    >>> import torch
    >>> delta = torch.tensor([[0.0, 0.5, -2.0], [1.0, 0.0, 7.0]])
    >>> stats = delta_logp_statistics(delta, torch.tensor([[1, 1, 1], [1, 1, 0]]), [0.5, 1.0], [0.4])
    >>> {key: round(value, 4) for key, value in stats.items()}
    {'mean': -0.1, 'abs_mean': 0.7, 'quantile_0.5': 0.0, 'quantile_1': 1.0, 'share_abs_above_0.4': 0.6}
    """
    reduce = reduce or _identity
    mask = mask.bool()
    active = delta.detach()[mask].double()
    exceed = [(active.abs() > threshold).sum().double() for threshold in thresholds]
    count = torch.tensor(active.numel(), dtype=torch.float64, device=active.device)
    totals = reduce(torch.stack([count, active.sum(), active.abs().sum(), *exceed]))
    count = int(totals[0].item())
    if count == 0:
        return {}
    stats = {"mean": (totals[1] / count).item(), "abs_mean": (totals[2] / count).item()}
    values = kth_smallest(active.float(), [quantile_rank(count, q) for q in quantiles], reduce)
    stats.update(zip(statistic_keys(QUANTILE_STAT, quantiles), values.tolist(), strict=True))
    shares = [(n / count).item() for n in totals[3:]]
    stats.update(zip(statistic_keys(SHARE_ABS_ABOVE_STAT, thresholds), shares, strict=True))
    return stats


__all__ = [
    "AUTHORS_MASK_NAMES",
    "AUTHORS_MODE_NAMES",
    "BAND_MASKS",
    "DELTA_LOGP_MASKS",
    "TOKEN_MASK_BY",
    "TOKEN_MASK_MODES",
    "TokenMaskBy",
    "TokenMaskMode",
    "delta_logp_statistics",
    "global_count",
    "kth_smallest",
    "quantile_rank",
    "select_tokens",
]
