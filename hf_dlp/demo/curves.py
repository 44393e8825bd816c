"""Training curves of the demo's RLVR runs (accuracy, entropy, length, advantage weights) as one PNG."""

from __future__ import annotations

from pathlib import Path

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


def plot_training_curves(histories: dict[str, list[dict]], path: str | Path | None = None, window: int = 10):
    """Plot one line per run for each quantity in `PANELS` (moving average over `window` logged steps).

    Args:
        histories (`dict[str, list[dict]]`): run name → `trainer.state.log_history` entries that hold a `reward`.
        path (`str` or `Path`, *optional*): where to write the PNG.

    Examples:

    >>> history = [{"step": s, "reward": -0.5 + 0.1 * s, "entropy": 0.3} for s in range(1, 4)]
    >>> figure = plot_training_curves({"none": history})
    >>> len(figure.axes)
    4
    """
    from matplotlib.figure import Figure  # no pyplot: the caller's global backend and figure state stay as they are

    figure = Figure(figsize=(4.2 * len(PANELS), 3.4))
    axes = figure.subplots(1, len(PANELS))
    colors = {name: f"C{index}" for index, name in enumerate(histories)}  # one color per run in every panel
    for ax, (key, title, transform) in zip(axes, PANELS, strict=True):
        for name, history in histories.items():
            points = [(entry.get("step", i + 1), entry[key]) for i, entry in enumerate(history) if key in entry]
            if not points:
                continue
            steps, values = zip(*points, strict=True)
            values = [transform(float(v)) if transform else float(v) for v in values]
            ax.plot(steps, _smooth(values, window), label=name, color=colors[name])
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
