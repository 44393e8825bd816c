"""`SweepResult`: the rows of a sweep (`SweepRow`, one per grid cell), the two models' reference accuracies and the
settings, saved as JSON and loaded back typed (`SweepResult.from_dict`, `SweepResult.load`)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SweepKind = Literal["replacement", "extrapolation"]
SWEEP_KINDS: tuple[str, ...] = get_args(SweepKind)


@dataclass
class SweepRow:
    """One grid cell of a sweep: the extrapolation settings, the accuracy and the share of positions re-drawn.

    Args:
        selection, tau, gamma, candidate_top_k: the cell's `ExtrapolationConfig` settings.
        avg_at_k (`float`): mean accuracy over the `k` samples of every problem.
        replacement_ratio (`float`): share of generated tokens the rule re-drew.
        pass_at_k (`dict[str, float]`): pass@k by k (keys are strings, as JSON stores them).
        swaps (`dict`, *optional*): what the re-draws swapped (`record_swaps=True`; `hf_dlp.sweeps.swaps`).

    Examples:

    >>> row = SweepRow.from_dict({"selection": "delta_logp", "tau": -0.5, "gamma": 0.1, "candidate_top_k": 50,
    ...                           "avg_at_k": 0.4, "pass_at_k": {"1": 0.4}, "replacement_ratio": 0.03})
    >>> row.label, "swaps" in row.to_dict()
    ('delta_logp, τ = -0.5, γ = 0.1', False)
    """

    selection: str
    tau: float | None
    gamma: float
    avg_at_k: float
    replacement_ratio: float
    pass_at_k: dict[str, float] = field(default_factory=dict)
    candidate_top_k: int | None = None
    swaps: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepRow:
        """A row from its JSON form (`to_dict`, a cell file, a saved sweep); unknown keys are an error."""
        known = {spec.name for spec in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"A sweep row has no field(s) {unknown}; its fields are {sorted(known)}.")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (`swaps` only when recorded)."""
        data = asdict(self)
        if self.swaps is None:
            data.pop("swaps")
        return data

    @property
    def label(self) -> str:
        """`"<rule>, τ = <tau>"`, with `", γ = <gamma>"` when γ > 0: how reports and swap tables name the cell."""
        tau = "" if self.tau is None else f", τ = {self.tau:g}"
        return f"{self.selection}{tau}" + (f", γ = {self.gamma:g}" if self.gamma else "")


@dataclass
class SweepResult:
    """Rows of a sweep (one `SweepRow` per setting) plus the reference accuracies of the two models.

    Rows given as dicts (a saved sweep's JSON) are converted to `SweepRow`s.

    Examples:

    >>> result = SweepResult(kind="replacement", rows=[{"selection": "random", "tau": 0.1, "gamma": 0.0,
    ...     "avg_at_k": 0.25, "pass_at_k": {"1": 0.25}, "replacement_ratio": 0.1}], references={"base": 0.1, "rl": 0.5})
    >>> result.best().tau, sorted(result.to_dict())
    (0.1, ['hf_dlp_version', 'kind', 'references', 'rows', 'settings'])
    >>> SweepResult.from_dict(result.to_dict()) == result
    True
    """

    kind: SweepKind
    rows: list[SweepRow]
    references: dict[str, float]
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in SWEEP_KINDS:
            raise ValueError(f"`kind` must be one of {SWEEP_KINDS}, got {self.kind!r}.")
        self.rows = [row if isinstance(row, SweepRow) else SweepRow.from_dict(row) for row in self.rows]

    def best(self) -> SweepRow:
        """The row with the highest Avg@k."""
        return max(self.rows, key=lambda row: row.avg_at_k)

    def to_dict(self) -> dict[str, Any]:
        from hf_dlp import __version__

        return {
            "kind": self.kind,
            "rows": [row.to_dict() for row in self.rows],
            "references": dict(self.references),
            "settings": dict(self.settings),
            "hf_dlp_version": __version__,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepResult:
        """A sweep from its JSON form (`to_dict`, a saved `<kind>_sweep.json`, a demo's `results.json` entry)."""
        return cls(data["kind"], data["rows"], data["references"], data.get("settings", {}))

    @classmethod
    def load(cls, path: str | Path) -> SweepResult:
        """Read a sweep saved by `save` (the `.json` file)."""
        return cls.from_dict(json.loads(Path(path).read_text()))

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


__all__ = ["SWEEP_KINDS", "SweepResult", "SweepRow"]
