"""The paper's Fig. 1b: per-token density histograms (log y-axis) of base-written vs RL-written responses."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..arguments import check_number, check_sequence
from .metrics import METRIC_NAMES

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .report import AnalysisReport

FIG1B_METRICS: tuple[str, ...] = ("base_entropy", "kl_rl_base", "delta_logp")
"""The three panels of Fig. 1b: entropy, KL(π_RL‖π_base) and Δlog p."""

METRIC_LABELS: dict[str, str] = {
    "base_logp": r"$\log \pi_{base}(y_t)$",
    "rl_logp": r"$\log \pi_{RL}(y_t)$",
    "delta_logp": r"$\Delta \log p = \log \pi_{RL} - \log \pi_{base}$",
    "base_entropy": r"Entropy $H(\pi_{base})$",
    "rl_entropy": r"Entropy $H(\pi_{RL})$",
    "kl_rl_base": r"KL$(\pi_{RL} \Vert \pi_{base})$",
    "kl_base_rl": r"KL$(\pi_{base} \Vert \pi_{RL})$",
}

_SOURCE_COLORS = {"base": "tab:blue", "rl": "tab:red"}


def plot_metric_histograms(
    report: AnalysisReport,
    metrics: Sequence[str] = FIG1B_METRICS,
    *,
    sources: Sequence[str] | None = None,
    bins: int = 60,
    path: str | Path | None = None,
) -> Figure:
    """One panel per metric: density histograms of the per-token values, one per source, on a log y-axis.

    With the default metrics and sources `"base"`/`"rl"` this is the layout of the paper's Fig. 1b, where only
    Δlog p shows opposite tails for RL-written (positive) and base-written (negative) responses.

    Args:
        report (`AnalysisReport`): the scored responses.
        metrics (`Sequence[str]`, *optional*, defaults to `FIG1B_METRICS`): metrics to draw, one panel each.
        sources (`Sequence[str]`, *optional*): sources to overlay; defaults to every source of the report.
        bins (`int`, *optional*, defaults to `60`): equal-width bins per panel, shared by the sources.
        path (`str` or `Path`, *optional*): where to write the PNG; nothing is written without it.

    Returns:
        `matplotlib.figure.Figure`: the figure (not shown; close it or let it be collected).

    Examples:

    >>> import torch
    >>> from hf_dlp.analysis.report import AnalysisReport
    >>> values = {name: torch.linspace(-1, 1, 6) for name in METRIC_NAMES}
    >>> report = AnalysisReport(values, torch.tensor([0, 0, 0, 1, 1, 1]), ["base", "rl"])
    >>> figure = plot_metric_histograms(report)
    >>> len(figure.axes), figure.axes[2].get_yscale()
    (3, 'log')
    """
    from matplotlib.figure import Figure  # a bare Figure: no pyplot state, the global backend is untouched

    metrics = check_sequence("metrics", metrics, items="metric names")
    unknown = [metric for metric in metrics if metric not in METRIC_NAMES]
    if unknown:
        raise ValueError(f"`metrics` holds unknown names {unknown}; choose from {METRIC_NAMES}.")
    sources = check_sequence("sources", sources, items="sources") if sources is not None else report.source_names
    missing = [source for source in sources if source not in report.source_names]
    if missing:
        raise ValueError(f"`sources` {missing} wrote no response; the report's sources are {report.source_names}.")
    bins = check_number("bins", bins, integer=True, minimum=1)
    figure = Figure(figsize=(4.2 * len(metrics), 3.4), layout="constrained")
    axes = figure.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics, strict=True):
        per_source = {source: report.values(metric, source).double().numpy() for source in sources}
        pooled = np.concatenate(list(per_source.values()))
        low, high = float(pooled.min()), float(pooled.max())
        edges = np.linspace(low, high if high > low else low + 1.0, bins + 1)
        for index, (source, values) in enumerate(per_source.items()):
            color = _SOURCE_COLORS.get(source, f"C{index + 2}")
            ax.hist(
                values,
                bins=edges,
                density=True,
                histtype="stepfilled",
                alpha=0.35,
                color=color,
                label=f"{source}-written ({values.size} tokens)",
            )
            ax.hist(values, bins=edges, density=True, histtype="step", color=color)
        ax.set_yscale("log")
        ax.set_xlabel(METRIC_LABELS[metric])
        ax.set_ylabel("density")
    axes[0].legend(fontsize="small")
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=120)
    return figure


def plot_position_profile(
    report: AnalysisReport, *, tau: float | None = None, path: str | Path | None = None
) -> Figure:
    """Δlog p along the response: mean Δlog p (top) and the share with Δlog p <= τ (bottom), by relative position
    (10 bins, left) and by absolute position (right), one line per source (`tokens.position_profile`).

    Examples:

    >>> import torch
    >>> from hf_dlp.analysis.report import AnalysisReport
    >>> values = {name: torch.linspace(-1, 1, 6) for name in METRIC_NAMES}
    >>> figure = plot_position_profile(AnalysisReport(values, torch.tensor([0, 0, 0, 1, 1, 1]), ["base", "rl"]))
    >>> len(figure.axes), figure.axes[0].get_xlabel()
    (4, 'relative position in the response')
    """
    from matplotlib.figure import Figure

    from .tokens import DEFAULT_TAU, position_profile

    profile = position_profile(report, tau=DEFAULT_TAU if tau is None else tau)
    figure = Figure(figsize=(10, 6), layout="constrained")
    axes = figure.subplots(2, 2, squeeze=False)
    for column, (kind, label) in enumerate(
        (("relative", "relative position in the response"), ("absolute", "token index in the response"))
    ):
        edges = profile[kind]["edges"]
        centres = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=True)]
        for index, source in enumerate(report.source_names):
            color = _SOURCE_COLORS.get(source, f"C{index + 2}")
            stats = profile[kind][source]
            nan = float("nan")
            for row, key in enumerate(("mean_delta_logp", "share_selected")):
                values = [nan if v is None else (100 * v if row else v) for v in stats[key]]
                axes[row][column].plot(centres, values, marker="o", color=color, label=f"{source}-written")
        axes[0][column].axhline(0.0, color="grey", linewidth=0.8)
        axes[0][column].set_ylabel("mean Δlog p")
        axes[0][column].set_title("mean Δlog p", fontsize="medium")
        axes[1][column].set_ylabel("selected (%)")
        axes[1][column].set_title(f"share with Δlog p <= {profile['tau']:g}", fontsize="medium")
        axes[0][column].set_xlabel(label)
        axes[1][column].set_xlabel(label)
    axes[0][0].legend(fontsize="small")
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110)
    return figure
