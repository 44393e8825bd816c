"""The demo's results, typed: `DemoResults` is a run's `results.json` (what `run_demo` returns, and what `report.md`,
the claims and the headline numbers are rendered from). It holds the training runs' logged steps
(`TrainingHistory`), every model's `EvaluationResult`, the analysis stage's result (`DemoAnalysis`, one `Separation`
per metric) and the sweeps' `SweepResult`s.

Each type's `to_dict()` writes exactly the JSON form the stage records (`hf_dlp.demo.stages`) and `results.json`
hold, and `from_dict()` reads it back, so a stage finished by an earlier run is reused as it was saved.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..evaluation import EvaluationResult
from ..sweeps.result import SweepResult
from .config import DemoConfig

if TYPE_CHECKING:
    from ..analysis import AnalysisReport

RESULTS_FILE = "results.json"


def _check_keys(what: str, data: Any, keys: tuple[str, ...]) -> None:
    """`data` must be a dict with exactly `keys` (the JSON form of `what`); else an error naming what differs."""
    if not isinstance(data, dict):
        raise TypeError(f"`data` must be a dict (the JSON form of {what}), got {type(data).__name__}.")
    missing, unknown = [key for key in keys if key not in data], sorted(set(data) - set(keys))
    if missing or unknown:
        raise ValueError(
            f"`data` is not the JSON form of {what}: missing keys {missing}, unknown keys {unknown}. It was written "
            "by another hf_dlp version; rerun `hf-dlp demo` with this version to write it again."
        )


def _run_method(run: str) -> str:
    """`low_prob-seed2` → `low_prob`: the method of a training run (`hf_dlp.demo.pipeline.model_folder` names them)."""
    return run.split("-seed")[0]


@dataclass
class TrainingHistory:
    """The logged steps of the demo's RLVR training runs, by run name (`none`, `low_prob`, `low_prob-seed1`, ...): each
    run's `trainer.state.log_history` entries that carry a reward (`hf_dlp.demo.training.train_rl_model`), one dict
    per logged step (`step`, `reward`, `entropy`, `reweight/weight_mean`, ...).

    Args:
        runs (`dict[str, list[dict[str, Any]]]`, *optional*): run name → logged steps; empty when a given RL model
            replaced training.

    Examples:

    >>> history = TrainingHistory({"low_prob": [{"step": 1, "reward": -0.5, "entropy": 0.4}, {"step": 2, "reward": 0}],
    ...                            "low_prob-seed1": [{"step": 1, "reward": 0.5, "entropy": 0.2}]})
    >>> history.by_method(), history.series("low_prob", "reward")
    ({'low_prob': ['low_prob', 'low_prob-seed1']}, {1: -0.5, 2: 0.0})
    >>> round(history.mean("entropy", method="low_prob"), 3), history.mean("entropy", method="none")
    (0.3, None)
    >>> TrainingHistory.from_dict(history.to_dict()) == history
    True
    """

    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def by_method(self) -> dict[str, list[str]]:
        """The run names grouped by method (`none`, `none-seed1` → `none`), in the runs' order."""
        groups: dict[str, list[str]] = {}
        for run in self.runs:
            groups.setdefault(_run_method(run), []).append(run)
        return groups

    def series(self, run: str, key: str) -> dict[int, float]:
        """Step → value of `key` over the logged steps of `run` that hold it (an entry without `step` counts as the
        step after its position)."""
        steps = enumerate(self.runs[run])
        return {entry.get("step", index + 1): float(entry[key]) for index, entry in steps if key in entry}

    def mean(self, key: str, *, method: str | None = None) -> float | None:
        """The mean of `key` over every logged step that holds it, of the runs of `method` (all runs when `None`);
        `None` when no step logged it."""
        runs = [steps for run, steps in self.runs.items() if method is None or _run_method(run) == method]
        values = [entry[key] for steps in runs for entry in steps if key in entry]
        return sum(values) / len(values) if values else None

    def to_dict(self) -> dict[str, list[dict[str, Any]]]:
        """The JSON form: `results.json`'s `"training"` entry."""
        return {run: [dict(entry) for entry in steps] for run, steps in self.runs.items()}

    @classmethod
    def from_dict(cls, data: dict[str, list[dict[str, Any]]]) -> TrainingHistory:
        """The histories from their JSON form (`to_dict`, `results.json`'s `"training"` entry)."""
        if not isinstance(data, dict) or not all(isinstance(steps, list) for steps in data.values()):
            raise TypeError("`data` must map each run name to its list of logged steps (`TrainingHistory.to_dict()`).")
        return cls({run: [dict(entry) for entry in steps] for run, steps in data.items()})


@dataclass
class Separation:
    """How well one metric tells RL-written from base-written text (`hf_dlp.analysis.AnalysisReport.separation`).

    Args:
        auroc_response (`float`): AUROC of the per-response means, the RL model's responses as positives (0.5: no
            separation).
        auroc_token (`float`): the same over single tokens.
        overlap_token (`float`): overlap of the two token histograms (1: identical).

    Examples:

    >>> separation = Separation(auroc_response=0.25, auroc_token=0.6, overlap_token=0.8)
    >>> separation.distance  # inversely separating counts as separating
    0.25
    """

    auroc_response: float
    auroc_token: float
    overlap_token: float

    @property
    def distance(self) -> float:
        """How far the response-level AUROC is from 0.5, in either direction."""
        return abs(self.auroc_response - 0.5)


_ANALYSIS_KEYS = ("summary", "separation", "token_tables", "table", "rewards", "prompts")


@dataclass
class DemoAnalysis:
    """The demo's analysis stage (`4. analysis`): Fig. 1b on the first evaluation problems, the base and the RL model
    each writing responses that both models score.

    Args:
        summary (`dict[str, dict[str, dict[str, Any]]]`): `{metric: {source: statistics}}`, sources `"all"`, `"rl"` and
            `"base"` (`AnalysisReport.summary`).
        separation (`dict[str, Separation]`): per metric, how well it tells the two sources apart.
        token_tables (`dict[str, Any]`): the tokens RLVR changed most (`AnalysisReport.token_table`).
        table (`str`): the text table of means and separations (`AnalysisReport.format_table(tokens=False)`).
        rewards (`list[float]`): each analysed response's reward (the analysis page's correctness filter).
        prompts (`list[str]`): what the analysis page shows above each response.

    Examples:

    >>> analysis = DemoAnalysis.from_dict({
    ...     "summary": {"delta_logp": {"rl": {"mean": 0.2}, "base": {"mean": -0.1}}},
    ...     "separation": {"delta_logp": {"auroc_response": 0.9, "auroc_token": 0.6, "overlap_token": 0.8}},
    ...     "token_tables": {}, "table": "", "rewards": [1.0], "prompts": ["1+1="]})
    >>> analysis.separation["delta_logp"].auroc_response, analysis.mean("delta_logp", "base")
    (0.9, -0.1)
    >>> DemoAnalysis.from_dict(analysis.to_dict()) == analysis
    True
    """

    summary: dict[str, dict[str, dict[str, Any]]]
    separation: dict[str, Separation]
    token_tables: dict[str, Any]
    table: str
    rewards: list[float]
    prompts: list[str]

    @classmethod
    def from_report(cls, report: AnalysisReport, *, rewards: list[float], prompts: list[str]) -> DemoAnalysis:
        """The stage's result from the `AnalysisReport` of both models' responses (their `rewards` and `prompts`)."""
        return cls.from_dict(
            {
                "summary": report.summary(),
                "separation": report.separation(),
                "token_tables": report.token_table(),
                "table": report.format_table(tokens=False),
                "rewards": rewards,
                "prompts": prompts,
            }
        )

    def mean(self, metric: str, source: str) -> float:
        """The mean of `metric` on the responses `source` (`"rl"`, `"base"` or `"all"`) wrote."""
        return self.summary[metric][source]["mean"]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the stage record's value and `results.json`'s `"analysis"` entry."""
        return {
            "summary": self.summary,
            "separation": {metric: asdict(stats) for metric, stats in self.separation.items()},
            "token_tables": self.token_tables,
            "table": self.table,
            "rewards": list(self.rewards),
            "prompts": list(self.prompts),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DemoAnalysis:
        """The analysis from its JSON form (`to_dict`, the stage record, `results.json`'s `"analysis"` entry)."""
        _check_keys("the demo's analysis", data, _ANALYSIS_KEYS)
        separation = {metric: Separation(**stats) for metric, stats in data["separation"].items()}
        return cls(**{**data, "separation": separation})


RESULT_KEYS = (
    "hf_dlp_version",
    "config",
    "device",
    "environment",
    "base_model",
    "training",
    "evaluation",
    "analysis",
    "replacement",
    "extrapolation",
    "stage_seconds",
    "reused_stages",
    "run_fingerprint",
)
"""The keys of `results.json`, in the order it writes them."""


@dataclass
class DemoResults:
    """Everything one demo run measured: what `run_demo` returns, `results.json` holds, and the report, the claims
    and the headline numbers are computed from.

    Args:
        config (`DemoConfig`): the run's settings.
        device (`str`): where the models ran (`"cpu"`, `"cuda:0"`).
        base_model (`str`): the base model's folder.
        evaluation (`dict[str, EvaluationResult]`): per model (`base`, `none`, `low_prob`, `low_prob-seed1`, ...).
        analysis (`DemoAnalysis`): Fig. 1b.
        replacement (`SweepResult`): the token-replacement sweep (Fig. 1c).
        extrapolation (`dict[str, SweepResult]`): the γ × τ sweep by generator (`"rl"`, `"base"`; Fig. 4).
        training (`TrainingHistory`, *optional*): the training runs' logged steps (empty when `config.rl_model` gave
            the RL model).
        environment (`dict[str, Any]`, *optional*): package versions, Python, CPU and threads (`pipeline.environment`).
        stage_seconds (`dict[str, float]`, *optional*): wall-clock seconds per stage (a reused stage's from its run).
        reused_stages (`list[str]`, *optional*): the stages this run took from an earlier one.
        run_fingerprint (`str`, *optional*): the fingerprint of the run's settings (`hf_dlp.demo.stages`).
        hf_dlp_version (`str`, *optional*, defaults to this version): the version that ran it.

    The evaluations and sweeps are stamped, in `to_dict()`, with the version that writes them.

    Examples:

    >>> from hf_dlp.sweeps import SweepResult
    >>> analysis = DemoAnalysis(summary={}, separation={}, token_tables={}, table="", rewards=[], prompts=[])
    >>> results = DemoResults(config=DemoConfig(), device="cpu", base_model="toy_base", evaluation={},
    ...     analysis=analysis, replacement=SweepResult("replacement", [], {"base": 0.2, "rl": 0.5}), extrapolation={})
    >>> list(results.to_dict())[:5]
    ['hf_dlp_version', 'config', 'device', 'environment', 'base_model']
    >>> DemoResults.from_dict(results.to_dict()) == results, results.replacement.references["rl"]
    (True, 0.5)
    """

    config: DemoConfig
    device: str
    base_model: str
    evaluation: dict[str, EvaluationResult]
    analysis: DemoAnalysis
    replacement: SweepResult
    extrapolation: dict[str, SweepResult]
    training: TrainingHistory = field(default_factory=TrainingHistory)
    environment: dict[str, Any] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    reused_stages: list[str] = field(default_factory=list)
    run_fingerprint: str = ""
    hf_dlp_version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, key for key what `results.json` holds (`RESULT_KEYS`)."""
        data = {
            "hf_dlp_version": self.hf_dlp_version,
            "config": self.config.to_dict(),
            "device": self.device,
            "environment": self.environment,
            "base_model": self.base_model,
            "training": self.training.to_dict(),
            "evaluation": {name: result.to_dict() for name, result in self.evaluation.items()},
            "analysis": self.analysis.to_dict(),
            "replacement": self.replacement.to_dict(),
            "extrapolation": {generator: sweep.to_dict() for generator, sweep in self.extrapolation.items()},
            "stage_seconds": dict(self.stage_seconds),
            "reused_stages": list(self.reused_stages),
            "run_fingerprint": self.run_fingerprint,
        }
        return {key: data[key] for key in RESULT_KEYS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DemoResults:
        """The results from their JSON form (`to_dict`, a loaded `results.json`)."""
        _check_keys("a demo's results (`results.json`)", data, RESULT_KEYS)
        _check_keys("a `DemoConfig`", data["config"], tuple(spec.name for spec in fields(DemoConfig)))
        return cls(
            **{key: data[key] for key in ("hf_dlp_version", "device", "environment", "base_model", "run_fingerprint")},
            config=DemoConfig(**data["config"]),
            training=TrainingHistory.from_dict(data["training"]),
            evaluation={name: EvaluationResult.from_dict(saved) for name, saved in data["evaluation"].items()},
            analysis=DemoAnalysis.from_dict(data["analysis"]),
            replacement=SweepResult.from_dict(data["replacement"]),
            extrapolation={
                generator: SweepResult.from_dict(saved) for generator, saved in data["extrapolation"].items()
            },
            stage_seconds=dict(data["stage_seconds"]),
            reused_stages=list(data["reused_stages"]),
        )

    def save(self, path: str | Path) -> Path:
        """Write the JSON form to `path` (a `.json` file, or a folder that gets `results.json`); return the file."""
        path = Path(path)
        if path.suffix != ".json":
            path = path / RESULTS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, default=str))
        return path

    @classmethod
    def load(cls, path: str | Path) -> DemoResults:
        """Read the results `save` wrote (a `results.json` file, or the demo's output folder that holds it)."""
        path = Path(path)
        if path.is_dir():
            path = path / RESULTS_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"`path` ({str(path)!r}) is no demo results file; pass a run's `results.json` or its `--output_dir`."
            )
        return cls.from_dict(json.loads(path.read_text()))


__all__ = ["RESULTS_FILE", "DemoAnalysis", "DemoResults", "Separation", "TrainingHistory"]
