"""Training curves of the demo's RLVR runs (accuracy, entropy, length, advantage weights) as one PNG; several seeds
of a method are drawn as their mean with a standard-error band."""

from __future__ import annotations

from pathlib import Path

from .claims import mean_and_stderr
from .results import TrainingHistory

# (log key, panel title, transform). The ±1 reward's mean r gives the training accuracy (r + 1) / 2.
PANELS = (
    ("reward", "training accuracy ((reward + 1) / 2)", lambda value: (value + 1.0) / 2.0),
    ("entropy", "token entropy of rollouts", None),
    ("completions/mean_length", "mean completion length (tokens)", None),
    ("reweight/weight_mean", "mean advantage weight", None),
)


def _smooth(values: list[float], window: int) -> list[float]:
    out = []
    for index in range(len(values)):
        chunk = values[max(0, index - window + 1) : index + 1]
        out.append(sum(chunk) / len(chunk))
    return out


def _series(history: TrainingHistory, run: str, key: str, transform, window: int) -> dict[int, float]:
    """Step → the moving average of `key` (transformed) over the logged steps of `run`."""
    points = history.series(run, key)
    values = [transform(value) if transform else value for value in points.values()]
    return dict(zip(points, _smooth(values, window), strict=True))


def model_label(name: str) -> str:
    """How plots and reports name a demo model: `base`, or the weighting's registered label and the seed.

    Examples:

    >>> model_label("base"), model_label("none"), model_label("low_prob-seed2")
    ('base', 'DAPO (none)', 'low_prob (ours), seed 2')
    """
    from ..training.registry import weighting_label

    if name == "base":
        return name
    method, _, seed = name.partition("-seed")
    return weighting_label(method) + (f", seed {seed}" if seed else "")


def plot_training_curves(history: TrainingHistory, path: str | Path | None = None, window: int = 10):
    """Plot each quantity in `PANELS` (moving average over `window` logged steps): one line per run, or, for a
    method trained with several seeds (`none`, `none-seed1`, ...), the across-seed mean with a band of ± one
    standard error.

    Args:
        history (`TrainingHistory`): the runs' logged steps (`DemoResults.training`).
        path (`str` or `Path`, *optional*): where to write the PNG.

    Examples:

    >>> steps = [{"step": s, "reward": -0.5 + 0.1 * s, "entropy": 0.3} for s in range(1, 4)]
    >>> figure = plot_training_curves(TrainingHistory({"none": steps}))
    >>> len(figure.axes)
    4
    >>> seeds = TrainingHistory({"none": steps, "none-seed1": [{**entry, "reward": 0.0} for entry in steps]})
    >>> reward = plot_training_curves(seeds, window=1).axes[0]
    >>> [line.get_label() for line in reward.lines], len(reward.collections)  # a mean line and its band
    (['DAPO (none) (2 seeds, mean ± s.e.)'], 1)
    """
    from matplotlib.figure import Figure  # no pyplot: the caller's global backend and figure state stay as they are

    figure = Figure(figsize=(4.2 * len(PANELS), 3.4))
    axes = figure.subplots(1, len(PANELS))
    groups = history.by_method()
    colors = {method: f"C{index}" for index, method in enumerate(groups)}  # one color per method in every panel
    for ax, (key, title, transform) in zip(axes, PANELS, strict=True):
        for method, runs in groups.items():
            series = [curve for run in runs if (curve := _series(history, run, key, transform, window))]
            if not series:
                continue
            if len(series) == 1:
                steps = sorted(series[0])
                ax.plot(steps, [series[0][step] for step in steps], label=model_label(runs[0]), color=colors[method])
                continue
            steps = sorted(set.intersection(*(set(curve) for curve in series)))
            means, errors = zip(*(mean_and_stderr([curve[step] for curve in series]) for step in steps), strict=True)
            label = f"{model_label(method)} ({len(series)} seeds, mean ± s.e.)"
            ax.plot(steps, means, label=label, color=colors[method])
            low = [m - e for m, e in zip(means, errors, strict=True)]
            high = [m + e for m, e in zip(means, errors, strict=True)]
            ax.fill_between(steps, low, high, color=colors[method], alpha=0.2, linewidth=0)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    figure.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110)
    return figure
