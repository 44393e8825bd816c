"""`SweepResult`: the rows of a sweep, the two models' reference accuracies and the settings, saved as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SweepKind = Literal["replacement", "extrapolation"]
SWEEP_KINDS: tuple[str, ...] = get_args(SweepKind)


@dataclass
class SweepResult:
    """Rows of a sweep (one per setting) plus the reference accuracies of the two models.

    Each row holds `selection`, `tau`, `gamma`, `candidate_top_k`, `avg_at_k`, `pass_at_k` and `replacement_ratio`.

    Examples:

    >>> result = SweepResult(kind="replacement", rows=[{"selection": "random", "tau": 0.1, "gamma": 0.0,
    ...     "avg_at_k": 0.25, "pass_at_k": {"1": 0.25}, "replacement_ratio": 0.1}], references={"base": 0.1, "rl": 0.5})
    >>> result.best()["tau"], sorted(result.to_dict())
    (0.1, ['hf_dlp_version', 'kind', 'references', 'rows', 'settings'])
    """

    kind: SweepKind
    rows: list[dict[str, Any]]
    references: dict[str, float]
    settings: dict[str, Any] = field(default_factory=dict)

    def best(self) -> dict[str, Any]:
        """The row with the highest Avg@k."""
        return max(self.rows, key=lambda row: row["avg_at_k"])

    def to_dict(self) -> dict[str, Any]:
        from hf_dlp import __version__

        return {**asdict(self), "hf_dlp_version": __version__}

    def save(self, path: str | Path) -> Path:
        """Write JSON to `path` (a `.json` file, or a folder that gets `<kind>_sweep.json`)."""
        path = Path(path)
        if path.suffix != ".json":
            path = path / f"{self.kind}_sweep.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    def plot(self, path: str | Path | None = None) -> Figure:
        """The sweep's figure (`plot_replacement_sweep` or `plot_extrapolation_sweep`); written when `path` is given."""
        from .plots import plot_extrapolation_sweep, plot_replacement_sweep

        plot = plot_replacement_sweep if self.kind == "replacement" else plot_extrapolation_sweep
        return plot(self, path=path)


__all__ = ["SWEEP_KINDS", "SweepResult"]
