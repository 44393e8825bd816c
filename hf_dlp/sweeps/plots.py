"""Figures of the sweeps: they build a `matplotlib.figure.Figure` directly (no pyplot, the global backend is never
switched), return it, and write it only when given a path."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..evaluation import binomial_stderr
from ..selection_rules import rule_label

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .result import SweepResult


def _new_figure(size=(5.5, 4.0)):
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, layout="constrained")
    return figure, figure.add_subplot()


def _samples(result: SweepResult) -> int | None:
    """Sequences behind each accuracy (problems × samples), when the result's settings say."""
    settings = result.settings or {}
    rows = (settings.get("dataset") or {}).get("num_rows")
    return rows * settings["num_samples"] if rows and settings.get("num_samples") else None


def _stderr(accuracy: float, samples: int | None) -> float:
    """One binomial standard error, in percent (0 when the sample count is unknown)."""
    return 100 * binomial_stderr(accuracy, samples) if samples else 0.0


def _draw_references(ax, references: dict[str, float], samples: int | None = None) -> None:
    for name, style in (("base", ":"), ("rl", "--")):
        if name in references:
            value = 100 * references[name]
            ax.axhline(
                value, color="grey", linestyle=style, label=f"{name.upper() if name == 'rl' else 'Base'}: {value:.2f}"
            )
            if samples:  # ± one standard error
                error = _stderr(references[name], samples)
                ax.axhspan(value - error, value + error, color="grey", alpha=0.08, linewidth=0)


def _draw_points(ax, xs: list[float], accuracies: list[float], samples: int | None, label: str) -> None:
    """A line through the points, with ± one standard error bars when the sample count is known."""
    ys = [100 * accuracy for accuracy in accuracies]
    errors = [_stderr(accuracy, samples) for accuracy in accuracies] if samples else None
    ax.errorbar(xs, ys, yerr=errors, marker="o", capsize=3 if errors else 0, label=label)


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
    >>> rows = [{"selection": "random", "tau": t, "gamma": 0.0, "avg_at_k": t / 2, "pass_at_k": {},
    ...          "replacement_ratio": t} for t in (0.1, 0.2)]
    >>> figure = plot_replacement_sweep(SweepResult("replacement", rows, {"base": 0.1, "rl": 0.5}))
    >>> figure.axes[0].get_xlabel()
    'RL token replacement ratio (%)'
    """
    figure, ax = _new_figure()
    samples = _samples(result)
    for selection in dict.fromkeys(row.selection for row in result.rows):
        rows = sorted(
            (row for row in result.rows if row.selection == selection), key=lambda row: row.replacement_ratio
        )
        ratios = [100 * row.replacement_ratio for row in rows]
        _draw_points(ax, ratios, [row.avg_at_k for row in rows], samples, rule_label(selection))
    _draw_references(ax, result.references, samples)
    ax.set_xlabel("RL token replacement ratio (%)")
    ax.set_ylabel("Avg@k (%)")
    ax.set_title("Selective replacement: accuracy vs. tokens replaced")
    ax.legend(fontsize="small")
    return _save(figure, path)


def plot_extrapolation_sweep(result: SweepResult, path: str | Path | None = None) -> Figure:
    """Avg@k (%) against γ, one line per τ, with the two models as references; ± one binomial standard error
    (bars, and bands around the references) when the result's settings give the problem and sample counts.

    Examples:

    >>> from hf_dlp.sweeps import SweepResult
    >>> rows = [{"selection": "delta_logp", "tau": -0.3, "gamma": g, "avg_at_k": 0.5 + g, "pass_at_k": {},
    ...          "replacement_ratio": 0.05} for g in (0.0, 0.1)]
    >>> figure = plot_extrapolation_sweep(SweepResult("extrapolation", rows, {"base": 0.1, "rl": 0.5}))
    >>> figure.axes[0].get_xlabel()
    'γ (extrapolation strength)'
    >>> counted = SweepResult("extrapolation", rows, {"rl": 0.5}, {"num_samples": 4, "dataset": {"num_rows": 25}})
    >>> len(plot_extrapolation_sweep(counted).axes[0].patches)  # the RL reference's ± s.e. band
    1
    """
    figure, ax = _new_figure()
    samples = _samples(result)
    for tau in dict.fromkeys(row.tau for row in result.rows):
        rows = sorted((row for row in result.rows if row.tau == tau), key=lambda row: row.gamma)
        ratio = sum(row.replacement_ratio for row in rows) / len(rows)
        label = "all positions" if tau is None else f"τ = {tau:g} (~{100 * ratio:.1f}% selected)"
        _draw_points(ax, [row.gamma for row in rows], [row.avg_at_k for row in rows], samples, label)
    _draw_references(ax, result.references, samples)
    ax.set_xlabel("γ (extrapolation strength)")
    ax.set_ylabel("Avg@k (%)")
    ax.set_title("Selective extrapolation along Δlog p")
    ax.legend(fontsize="small")
    return _save(figure, path)


__all__ = ["plot_extrapolation_sweep", "plot_replacement_sweep"]
