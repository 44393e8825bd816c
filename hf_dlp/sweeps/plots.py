"""Figures of the sweeps: they build a `matplotlib.figure.Figure` directly (no pyplot, the global backend is never
switched), return it, and write it only when given a path."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .result import SweepResult

_LABELS = {
    "delta_logp": "Δlog p",
    "delta_logp_positive": "Δlog p (positive)",
    "entropy": "entropy",
    "other_entropy": "other model's entropy",
    "kl": "KL(RL‖base)",
    "kl_reverse": "KL(base‖RL)",
    "kl_mean": "mean KL",
    "random": "random",
}


def _new_figure(size=(5.5, 4.0)):
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, layout="constrained")
    return figure, figure.add_subplot()


def _draw_references(ax, references: dict[str, float]) -> None:
    for name, style in (("base", ":"), ("rl", "--")):
        if name in references:
            ax.axhline(
                100 * references[name],
                color="grey",
                linestyle=style,
                label=f"{name.upper() if name == 'rl' else 'Base'}: {100 * references[name]:.2f}",
            )


def _save(figure, path: str | Path | None):
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=120)
    return figure


def plot_replacement_sweep(result: SweepResult, path: str | Path | None = None) -> Figure:
    """Avg@k (%) against replacement ratio (%), one line per selection rule, with the two models as references.

    Examples:

    >>> from hf_dlp.sweeps import SweepResult
    >>> rows = [{"selection": "random", "tau": t, "gamma": 0.0, "avg_at_k": t / 2, "replacement_ratio": t}
    ...         for t in (0.1, 0.2)]
    >>> figure = plot_replacement_sweep(SweepResult("replacement", rows, {"base": 0.1, "rl": 0.5}))
    >>> figure.axes[0].get_xlabel()
    'RL token replacement ratio (%)'
    """
    figure, ax = _new_figure()
    for selection in dict.fromkeys(row["selection"] for row in result.rows):
        rows = sorted(
            (row for row in result.rows if row["selection"] == selection), key=lambda row: row["replacement_ratio"]
        )
        ax.plot(
            [100 * row["replacement_ratio"] for row in rows],
            [100 * row["avg_at_k"] for row in rows],
            marker="o",
            label=_LABELS.get(selection, selection),
        )
    _draw_references(ax, result.references)
    ax.set_xlabel("RL token replacement ratio (%)")
    ax.set_ylabel("Avg@k (%)")
    ax.set_title("Selective replacement: accuracy vs. tokens replaced")
    ax.legend(fontsize="small")
    return _save(figure, path)


def plot_extrapolation_sweep(result: SweepResult, path: str | Path | None = None) -> Figure:
    """Avg@k (%) against γ, one line per τ, with the two models as references.

    Examples:

    >>> from hf_dlp.sweeps import SweepResult
    >>> rows = [{"selection": "delta_logp", "tau": -0.3, "gamma": g, "avg_at_k": 0.5 + g, "replacement_ratio": 0.05}
    ...         for g in (0.0, 0.1)]
    >>> figure = plot_extrapolation_sweep(SweepResult("extrapolation", rows, {"base": 0.1, "rl": 0.5}))
    >>> figure.axes[0].get_xlabel()
    'γ (extrapolation strength)'
    """
    figure, ax = _new_figure()
    for tau in dict.fromkeys(row["tau"] for row in result.rows):
        rows = sorted((row for row in result.rows if row["tau"] == tau), key=lambda row: row["gamma"])
        ratio = sum(row["replacement_ratio"] for row in rows) / len(rows)
        label = "all positions" if tau is None else f"τ = {tau:g} (~{100 * ratio:.1f}% selected)"
        ax.plot([row["gamma"] for row in rows], [100 * row["avg_at_k"] for row in rows], marker="o", label=label)
    _draw_references(ax, result.references)
    ax.set_xlabel("γ (extrapolation strength)")
    ax.set_ylabel("Avg@k (%)")
    ax.set_title("Selective extrapolation along Δlog p")
    ax.legend(fontsize="small")
    return _save(figure, path)


__all__ = ["plot_extrapolation_sweep", "plot_replacement_sweep"]
