"""Matplotlib-free statistics of per-token metric values: summaries, sparsity, AUROC and histogram overlap."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..arguments import check_number
from ..divergence import SHARE_ABS_ABOVE_STAT

DEFAULT_QUANTILES: tuple[float, ...] = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
"""Quantiles reported by `summarize`."""

DEFAULT_THRESHOLDS: tuple[float, ...] = (0.1, 0.5, 1.0, 2.0)
"""|Δlog p| thresholds of the sparsity shares: the paper's τ values sit between −0.3 and −0.4."""

ArrayLike = torch.Tensor | np.ndarray | Sequence[float]


def _as_array(name: str, values: ArrayLike) -> np.ndarray:
    array = values.detach().cpu().double().numpy() if isinstance(values, torch.Tensor) else np.asarray(values, float)
    if array.ndim != 1:
        raise ValueError(f"`{name}` must be one-dimensional, got shape {array.shape}.")
    if array.size == 0:
        raise ValueError(f"`{name}` is empty: there is nothing to summarise.")
    return array


def summarize(
    values: ArrayLike, quantiles: Sequence[float] = DEFAULT_QUANTILES, thresholds: Sequence[float] = ()
) -> dict[str, Any]:
    """Count, mean, standard deviation, extremes and quantiles of `values`; with `thresholds`, the share of values
    whose magnitude exceeds each threshold (`share_abs_above`, the sparsity of Δlog p; the training monitor logs the same
    shares as `delta_logp/share_abs_above_<t>`, `hf_dlp.divergence.statistic_key`).

    Examples:

    >>> stats = summarize([0.0, 0.0, 0.0, -3.0, 5.0], quantiles=(0.5,), thresholds=(1.0, 4.0))
    >>> stats["count"], stats["mean"], stats["quantiles"], stats["share_abs_above"]
    (5, 0.4, {'0.5': 0.0}, {'1.0': 0.4, '4.0': 0.2})
    """
    array = _as_array("values", values)
    if any(not 0.0 <= q <= 1.0 for q in quantiles):
        raise ValueError(f"`quantiles` must lie in [0, 1], got {list(quantiles)}.")
    result: dict[str, Any] = {
        "count": int(array.size),
        "mean": float(array.mean()),
        "std": float(array.std()),
        "min": float(array.min()),
        "max": float(array.max()),
        "quantiles": {str(q): float(v) for q, v in zip(quantiles, np.quantile(array, list(quantiles)), strict=True)},
    }
    if thresholds:
        magnitude = np.abs(array)
        result[SHARE_ABS_ABOVE_STAT] = {str(t): float((magnitude > t).mean()) for t in thresholds}
    return result


def auroc(positive: ArrayLike, negative: ArrayLike) -> float:
    """Area under the ROC curve of a score that should be larger on `positive` than on `negative` samples.

    It is P(score of a random positive > score of a random negative), ties counting one half (the Mann-Whitney U
    statistic over the product of the sample sizes): 0.5 means no separation, 1.0 perfect separation, and values
    below 0.5 separation in the opposite direction.

    Examples:

    >>> auroc([2.0, 3.0, 4.0], [0.0, 1.0, 2.0])   # one tie out of nine pairs
    0.9444444444444444
    >>> auroc([1.0, 1.0], [1.0, 1.0])
    0.5
    """
    pos, neg = _as_array("positive", positive), _as_array("negative", negative)
    pooled = np.concatenate([pos, neg])
    _, inverse, counts = np.unique(pooled, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    average_rank = ends - (counts - 1) / 2.0  # 1-based ranks, ties share their mean rank
    rank_sum = average_rank[inverse[: pos.size]].sum()
    return float((rank_sum - pos.size * (pos.size + 1) / 2.0) / (pos.size * neg.size))


def overlap_coefficient(first: ArrayLike, second: ArrayLike, bins: int = 100) -> float:
    """Overlap of two histograms on shared bins: the sum over bins of the smaller of the two probability masses.

    1.0 means identical histograms and 0.0 disjoint ones. The `bins` equal-width bins span the pooled range.

    Examples:

    >>> overlap_coefficient([0.0, 1.0, 2.0, 3.0], [2.0, 3.0, 4.0, 5.0], bins=3)
    0.5
    """
    a, b = _as_array("first", first), _as_array("second", second)
    bins = check_number("bins", bins, integer=True, minimum=1)
    low, high = min(a.min(), b.min()), max(a.max(), b.max())
    if low == high:
        return 1.0
    edges = np.linspace(low, high, bins + 1)
    mass_a = np.histogram(a, edges)[0] / a.size
    mass_b = np.histogram(b, edges)[0] / b.size
    return float(np.minimum(mass_a, mass_b).sum())
