"""The demo's headline numbers, and the check of a run against the ones the README shows.

Every demo run writes `headline_numbers.json`: its settings, its environment and a flat table of the numbers the
README quotes (each model's Avg@k and Pass@k, the analysis AUROCs, every sweep cell, the claims' verdicts). The package
ships that file for the runs the README reports (`hf_dlp/demo/expected/<preset>.json`); when a run has the same
settings, the report puts the two side by side and says whether they agree. To update the shipped numbers after a
deliberate change, copy a run's `headline_numbers.json` over the shipped file (`make expected-numbers`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import RUN_LOCAL_FIELDS

if TYPE_CHECKING:
    from .config import DemoConfig
    from .results import DemoResults

EXTRAPOLATION_LABEL = "extrapolation ({generator} generates)"
"""How the headline numbers name an extrapolation sweep (`headline_numbers`, read back by `extrapolation_cells`)."""
_EXTRAPOLATION_CELL = re.compile(
    r"^extrapolation \((?P<generator>\w+) generates\): (?P<selection>\S+) τ=(?P<tau>\S+) γ=(?P<gamma>\S+) "
    r"(?P<what>Avg@k|replaced)$"
)
_EXTRAPOLATION_REFERENCE = re.compile(r"^extrapolation \(\w+ generates\): (?P<model>\w+) reference$")

EXPECTED_DIR = Path(__file__).resolve().parent / "expected"
HEADLINE_FILE = "headline_numbers.json"
DECIMALS = 4
"""Numbers agree when they are equal after rounding to this many decimals (accuracies are exact fractions; the
AUROCs come from float32 metric values, whose last bits may differ between CPUs without changing any verdict)."""


def _comparable_config(config: DemoConfig) -> dict[str, Any]:
    """The settings that decide the numbers (not where the output goes, nor how many worker processes shared the
    work), as JSON has them (tuples as lists)."""
    kept = {key: value for key, value in config.to_dict().items() if key not in RUN_LOCAL_FIELDS}
    return json.loads(json.dumps(kept, default=str))


def headline_numbers(results: DemoResults, verdicts: dict[str, str]) -> dict[str, Any]:
    """The numbers of a demo run the README quotes, as a flat `{name: value}` table.

    Args:
        results (`DemoResults`): the demo's results.
        verdicts (`dict[str, str]`): each claim and whether it held (`"yes"`, `"no"`, `"within noise"`).

    Examples:

    >>> from hf_dlp.demo.config import DemoConfig
    >>> from hf_dlp.demo.results import DemoAnalysis, DemoResults, Separation
    >>> from hf_dlp.evaluation import EvaluationResult
    >>> from hf_dlp.sweeps import SweepResult
    >>> results = DemoResults(
    ...     config=DemoConfig(), device="cpu", base_model="toy_base",
    ...     evaluation={"base": EvaluationResult(0.25, {1: 0.25, 2: 0.5}, num_problems=8, num_samples=2,
    ...                                           correct_counts=[])},
    ...     analysis=DemoAnalysis({}, {"delta_logp": Separation(0.9, 0.6, 0.8)}, {}, "", [], []),
    ...     replacement=SweepResult("replacement", [], {"base": 0.25}), extrapolation={})
    >>> headline_numbers(results, {"RLVR training improved on the base model": "yes"})
    {'Avg@k base': 0.25, 'Pass@2 base': 0.5, 'AUROC (response means) delta_logp': 0.9,
     'replacement: base reference': 0.25, 'claim: RLVR training improved on the base model': 'yes'}
    """
    numbers: dict[str, Any] = {}
    for name, evaluation in results.evaluation.items():
        numbers[f"Avg@k {name}"] = evaluation.avg_at_k
        k = max(evaluation.pass_at_k)
        numbers[f"Pass@{k} {name}"] = evaluation.pass_at_k[k]
    for metric, separation in results.analysis.separation.items():
        numbers[f"AUROC (response means) {metric}"] = separation.auroc_response
    sweeps = [("replacement", results.replacement)]
    sweeps += [(EXTRAPOLATION_LABEL.format(generator=gen), sweep) for gen, sweep in results.extrapolation.items()]
    for label, sweep in sweeps:
        for reference, value in sweep.references.items():
            numbers[f"{label}: {reference} reference"] = value
        for row in sweep.rows:
            cell = f"{label}: {row.selection} τ={row.tau} γ={row.gamma}"
            numbers[f"{cell} Avg@k"] = row.avg_at_k
            numbers[f"{cell} replaced"] = row.replacement_ratio
    numbers.update({f"claim: {claim}": verdict for claim, verdict in verdicts.items()})
    return numbers


def extrapolation_cells(numbers: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """The extrapolation sweeps' cells and the two models' references, read back from headline numbers (the keys
    `headline_numbers` writes): each cell a dict with `generator`, `selection`, `tau`, `gamma`, `avg_at_k` and
    `replacement_ratio`, sorted; the references by model name.

    Examples:

    >>> numbers = {"extrapolation (rl generates): rl reference": 0.5,
    ...            "extrapolation (rl generates): delta_logp τ=-0.3 γ=0.1 Avg@k": 0.55,
    ...            "extrapolation (rl generates): delta_logp τ=-0.3 γ=0.1 replaced": 0.04}
    >>> extrapolation_cells(numbers)
    ([{'generator': 'rl', 'selection': 'delta_logp', 'tau': -0.3, 'gamma': 0.1, 'avg_at_k': 0.55, 'replacement_ratio': 0.04}], {'rl': 0.5})
    """
    cells: dict[tuple, dict[str, Any]] = {}
    references: dict[str, float] = {}
    for key, value in numbers.items():
        reference = _EXTRAPOLATION_REFERENCE.match(key)
        if reference:
            references[reference["model"]] = value
        match = _EXTRAPOLATION_CELL.match(key)
        if match:
            cell = (match["generator"], match["selection"], float(match["tau"]), float(match["gamma"]))
            entry = cells.setdefault(cell, dict(zip(("generator", "selection", "tau", "gamma"), cell, strict=True)))
            entry["avg_at_k" if match["what"] == "Avg@k" else "replacement_ratio"] = value
    return [cells[key] for key in sorted(cells)], references


def headline_record(results: DemoResults, verdicts: dict[str, str]) -> dict[str, Any]:
    """What `headline_numbers.json` holds: the settings, the environment and the numbers."""
    return {
        "hf_dlp_version": results.hf_dlp_version,
        "config": _comparable_config(results.config),
        "environment": results.environment,
        "numbers": headline_numbers(results, verdicts),
    }


def load_expected(preset: str) -> dict[str, Any] | None:
    """The shipped headline record of a preset, or `None` if the package ships none for it."""
    path = EXPECTED_DIR / f"{preset}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _same(expected: Any, got: Any) -> bool:
    if isinstance(expected, float | int) and isinstance(got, float | int):
        return round(float(expected), DECIMALS) == round(float(got), DECIMALS)
    return expected == got


@dataclass
class ExpectedComparison:
    """A run's headline numbers beside the shipped ones.

    Args:
        rows (`list[tuple[str, Any, Any, bool]]`): (name, expected, this run's, agree) for every shipped number.
        environment (`dict`): the environment the shipped numbers were measured in.

    Examples:

    >>> comparison = ExpectedComparison([("Avg@k base", 0.25, 0.25, True), ("Avg@k none", 0.5, 0.4, False)], {})
    >>> comparison.num_agree, comparison.agree
    (1, False)
    """

    rows: list[tuple[str, Any, Any, bool]]
    environment: dict[str, Any]

    @property
    def num_agree(self) -> int:
        return sum(row[3] for row in self.rows)

    @property
    def agree(self) -> bool:
        return self.num_agree == len(self.rows)


def compare_with_expected(record: dict[str, Any], expected: dict[str, Any] | None) -> ExpectedComparison | None:
    """Compare a run's headline record with a shipped one; `None` when there is none or the settings differ.

    Examples:

    >>> shipped = {"config": {"seed": 0}, "environment": {}, "numbers": {"Avg@k base": 0.25}}
    >>> run = {"config": {"seed": 0}, "numbers": {"Avg@k base": 0.25000001}}
    >>> compare_with_expected(run, shipped).agree, compare_with_expected({**run, "config": {"seed": 1}}, shipped)
    (True, None)
    """
    if expected is None or expected["config"] != record["config"]:
        return None
    rows = [
        (name, value, record["numbers"].get(name), _same(value, record["numbers"].get(name)))
        for name, value in expected["numbers"].items()
    ]
    return ExpectedComparison(rows, expected.get("environment") or {})


__all__ = [
    "EXPECTED_DIR",
    "HEADLINE_FILE",
    "ExpectedComparison",
    "compare_with_expected",
    "headline_numbers",
    "headline_record",
    "load_expected",
]
