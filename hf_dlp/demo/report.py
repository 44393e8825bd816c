"""`report.md` for the demo: every figure, a table per experiment, settings, stage times, and the paper beside us."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..evaluation import binomial_stderr
from ..selection_rules import rule_label
from ..sweeps import SweepResult, format_swaps_table
from .claims import (
    UNIT_LABELS,
    Claim,
    TrainingComparison,
    demo_claims,
    method_scores,
    replacement_gains,
    seed_count,
    sweep_samples,
    training_comparisons,
)
from .curves import model_label
from .expected import DECIMALS, HEADLINE_FILE, compare_with_expected, headline_record, load_expected

if TYPE_CHECKING:
    from .results import DemoResults, TrainingHistory

# The paper's numbers (../shared/paper.md; Table 2, Fig. 1c, Fig. 4). Models are 7B-32B; ours are ~100k parameters.
PAPER_TABLE2 = [  # Qwen2.5-Math-7B, AIME24 Avg@32 and average Pass@16 over AIME24/AIME25/AMC
    ("Base", 14.79, 51.52),
    ("DAPO (reweighting none)", 35.73, 57.86),
    ("Ours, low_prob α=0.2", 39.06, 62.33),
]
PAPER_FIG1C = (
    "base 11.46 → RLVR 54.58 (AIME24 Avg@32): Δlog p reaches 53.5 at ~5.3% replaced; KL 49.4, entropy ~42.5 "
    "(at 6.5%), random ~15 (at 5%)"
)
PAPER_FIG4 = [  # (pair, selective replace, RLVR, selective extrapolate), AIME24 Avg@32, base generates
    ("ORZ-32B", 43.33, 46.15, 47.50),
    ("DAPO-32B", 51.67, 52.50, 55.42),
    ("UniReason-14B", 54.06, 54.58, 55.83),
]
METRIC_LABELS = {  # the analysis's metrics (the sweeps' rules are labelled by `hf_dlp.selection_rules.rule_label`)
    "base_logp": "log π_base",
    "rl_logp": "log π_RL",
    "base_entropy": "entropy (base)",
    "rl_entropy": "entropy (RL)",
    "kl_rl_base": "KL(RL‖base)",
    "kl_base_rl": "KL(base‖RL)",
}


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _with_stderr(p: float, n: int) -> str:
    return f"{_pct(p)} ± {_pct(binomial_stderr(p, n))}"


def _comparisons_table(comparisons: list[TrainingComparison]) -> str:
    rows = [[f"{c.first} − {c.second}", ", ".join(f"{100 * d:+.1f}" for d in c.per_seed) if c.paired else "(not paired)",
             f"{100 * c.difference:+.1f} ± {_pct(c.stderr)}", _pct(c.detectable), c.verdict]
            for c in comparisons]  # fmt: skip
    return _table(["difference", "per seed", "mean ± s.e.", "smallest detectable (2 s.e.)", "held"], rows)


def _evaluation_section(results: DemoResults) -> str:
    evaluations = results.evaluation
    any_result = next(iter(evaluations.values()))
    k = any_result.num_samples
    rows = []
    for name, result in evaluations.items():
        n = result.num_problems * k
        rows.append([model_label(name), _with_stderr(result.avg_at_k, n), _pct(result.pass_at_k[1]),
                     _pct(result.pass_at_k[k])])  # fmt: skip
    paper = _table(
        ["paper (Qwen2.5-Math-7B)", "AIME24 Avg@32", "avg Pass@16"], [[name, a, p] for name, a, p in PAPER_TABLE2]
    )
    scores = method_scores(results.evaluation, results.config)
    seeds = max(len(values) for values, _, _ in scores.values())
    text = (
        f"## 3. Evaluation (Avg@{k}, Pass@k; {any_result.num_problems} held-out problems, temperature 1.0, "
        f"top-p {results.config.top_p})\n\n" + _table(["model", f"Avg@{k} (± s.e.)", "Pass@1", f"Pass@{k}"], rows)
    )
    if seeds > 1:
        text += (
            f"\n\nAcross {seeds} training seeds (the training claims are judged on these means; s.e. of the mean "
            "over seeds):\n\n"
            + _table(
                ["model", f"Avg@{k} per seed", "mean ± s.e."],
                [
                    [name, ", ".join(_pct(v) for v in values), f"{_pct(mean)} ± {_pct(stderr)}"]
                    for name, (values, mean, stderr) in scores.items()
                ],
            )
        )
    comparisons = training_comparisons(results.evaluation, results.config)
    text += (
        "\n\nThe training claims (paired seed by seed where both sides were trained with the same seeds):\n\n"
        + _comparisons_table(comparisons)
    )
    text += "\n\nThe paper, for comparison:\n\n" + paper + "\n"
    if "low_prob" in scores and "dominate" in scores:
        text += (
            "\nThe paper's Table 3 (Qwen2.5-Math-7B, AIME24 Avg@32): dominate 36.35, PPL 35.63, ours 39.06; "
            "dominate's training entropy collapses (about 0.06 against about 0.4).\n"
        )
    return text


def _analysis_section(results: DemoResults) -> str:
    analysis = results.analysis
    rows = [
        [
            METRIC_LABELS.get(metric, metric),
            f"{analysis.mean(metric, 'base'):.4f}",
            f"{analysis.mean(metric, 'rl'):.4f}",
            f"{stats.auroc_response:.3f}",
            f"{stats.auroc_token:.3f}",
            f"{stats.overlap_token:.3f}",
        ]
        for metric, stats in analysis.separation.items()
    ]
    text = (
        "## 4. Identify: which metric tells RL-written from base-written text (Fig. 1b)\n\n"
        "![Fig. 1b](analysis/fig1b_histograms.png)\n\n"
        "Token by token, with the tokens RLVR changed most and a τ slider: the [analysis page](analysis/index.html) "
        "(Δlog p along the response: `analysis/delta_logp_positions.png`).\n\n"
        + _table(
            [
                "metric",
                "mean on base-written",
                "mean on RL-written",
                "AUROC (response mean)",
                "AUROC (token)",
                "histogram overlap",
            ],
            rows,
        )
        + "\n\nAUROC 0.5 means the metric cannot tell who wrote a response; overlap 1 means identical histograms. "
        "The paper reports that only Δlog p shifts (RL-written text has a positive tail, base-written a negative one) "
        "while the entropy and KL histograms overlap almost completely.\n"
    )
    return text


def _swaps_text(sweep: SweepResult) -> str:
    """The most frequent (base → RL) token swaps of the Δlog p rule: what the tokens that recover the RL model are."""
    table = format_swaps_table([row for row in sweep.rows if row.selection == "delta_logp"], limit=3)
    if not table:
        return ""
    return (
        "\nMost frequent swaps at the Δlog p-selected positions (base token → the RL model's token, each τ; every rule's "
        "are in `replacement/replacement_sweep.json` and on the [analysis page](analysis/index.html)):\n\n"
        + table
        + "\n"
    )


def _replacement_section(results: DemoResults) -> str:
    sweep = results.replacement
    refs = sweep.references
    n = sweep_samples(results.config)
    rows = [
        [rule_label(r.selection), r.tau, _pct(r.replacement_ratio), _with_stderr(r.avg_at_k, n)] for r in sweep.rows
    ]
    # Accuracy gained per percent of tokens replaced: the efficiency Fig. 1c compares (`hf_dlp.demo.claims`).
    gain = {rule: value for rule, (_, value) in replacement_gains(sweep).items()}
    text = (
        "## 5a. Token replacement: the base model generates, selected positions take the RL model's token (Fig. 1c)\n\n"
        "![Fig. 1c](replacement/replacement_sweep.png)\n\n"
        f"References: base {_with_stderr(refs['base'], n)}, RL {_with_stderr(refs['rl'], n)} (same sampling; "
        f"± one standard error over {n} samples).\n\n"
        + _table(["selection", "τ", "replaced tokens (%)", "accuracy (%, ± s.e.)"], rows)
        + "\n\nBest accuracy gained per percent of tokens replaced: "
        + ", ".join(f"{rule_label(k)} {v * 100:+.2f} pts" for k, v in gain.items())
        + f".\n\nThe paper: {PAPER_FIG1C}.\n"
        + _swaps_text(sweep)
    )
    return text


def _extrapolation_section(results: DemoResults) -> str:
    parts = ["## 5b. Selective extrapolation, γ × τ (Fig. 4)\n"]
    n = sweep_samples(results.config)
    for generator, sweep in results.extrapolation.items():
        refs = sweep.references
        rows = [[r.gamma, r.tau, _pct(r.replacement_ratio), _with_stderr(r.avg_at_k, n)] for r in sweep.rows]
        parts.append(
            f"### generator: {generator} model\n\n![extrapolation, {generator} generates]"
            f"(extrapolation_{generator}/extrapolation_sweep.png)\n\n"
            f"References: base {_with_stderr(refs['base'], n)}, RL {_with_stderr(refs['rl'], n)}.\n\n"
            + _table(["γ", "τ", "selected tokens (%)", "accuracy (%, ± s.e.)"], rows)
            + "\n"
        )
    parts.append(
        "The paper (base generates, AIME24 Avg@32):\n\n"
        + _table(
            ["pair", "selective replace (γ=0)", "RLVR", "selective extrapolate"], [list(row) for row in PAPER_FIG4]
        )
    )
    return "\n".join(parts) + "\n"


_SCALES = {
    "toy": "a ~100k-parameter character-level model",
    "smollm2": "SmolLM2-135M-Instruct (GGUF Q4_1, de-quantized) with LoRA",
}
_SCALES["smollm2-seeds"] = _SCALES["smollm2-fig4"] = _SCALES["smollm2"]


def training_signals(training: TrainingHistory) -> dict[str, float]:
    """Mean rollout entropy and mean token weight over the logged steps of the `low_prob` runs (what reweighting can
    change: with near-certain rollouts the weight 1 + α(1 − p) stays close to 1 for every token)."""
    signals = {}
    for key, label in (("entropy", "rollout entropy"), ("reweight/weight_mean", "mean low_prob weight")):
        value = training.mean(key, method="low_prob")
        if value is not None:
            signals[label] = value
    return signals


def _summary(results: DemoResults, claims: list[Claim]) -> str:
    verdicts = {claim.name: claim.verdict for claim in claims}
    config = results.config
    held = [claim for claim, verdict in verdicts.items() if verdict == "yes"]
    missed = [claim for claim, verdict in verdicts.items() if verdict == "no"]
    unclear = [claim for claim, verdict in verdicts.items() if verdict == "within noise"]
    scale = _SCALES.get(config.preset, f"`{results.base_model}`")
    seeds = seed_count(config)
    text = (
        f"At this scale ({scale}, {config.train_steps} GRPO steps, {seeds} seed{'s' if seeds > 1 else ''}, "
        "small evaluation budgets; an accuracy difference counts only beyond two standard errors), "
        f"{len(held)} of {len(verdicts)} of the paper's claims held"
        + (f": {'; '.join(held)}." if held else ".")
        + (f" Not reproduced here: {'; '.join(missed)}." if missed else "")
        + (f" Too close to call at this budget: {'; '.join(unclear)}." if unclear else "")
    )
    signals = training_signals(results.training)
    if "mean low_prob weight" in signals:
        weight = signals["mean low_prob weight"]
        text += (
            f"\n\nWhy a training claim may not show here: the `low_prob` runs' rollouts had a mean entropy of "
            f"{signals.get('rollout entropy', float('nan')):.3f} and a mean token weight of {weight:.3f}, so "
            f"reweighting changed the average advantage by {100 * (weight - 1):.1f}% (the paper's weights are "
            "about 1.1-1.2). A difference between `low_prob` and DAPO that small needs more steps and seeds than "
            "this budget has; the evaluation's standard errors say how large a difference this run could detect."
        )
    return text


def _kernels_text(environment: dict[str, Any]) -> str:
    kernels = environment.get("cpu_kernels")
    if not kernels:
        return ""
    state = "pinned" if kernels["pinned"] else "not pinned"
    return f", CPU kernels: ATen {kernels['aten']}, MKL_CBWR {kernels['mkl_cbwr']} ({state}, `hf_dlp.cpu_kernels`)"


def _environment_section(results: DemoResults) -> str:
    environment = results.environment
    if not environment:
        return ""
    rows = [[name, f"`{version}`"] for name, version in environment["packages"].items()]
    return (
        f"## Environment\n\nPython {environment['python']}, {environment['platform']}, {environment['cpu_count']} "
        f"CPUs, torch threads: {environment['torch_threads']}{_kernels_text(environment)}. Numbers depend on these "
        "versions and the CPU kernels; `make demo` installs the pinned versions (`constraints.txt`).\n\n"
        + _table(["package", "version"], rows)
        + "\n"
    )


def _environment_difference(expected: dict[str, Any], got: dict[str, Any]) -> str:
    """What differs between the environment of the README's numbers and this run's: the kernels, the packages."""
    differences = []
    kernels = (expected.get("cpu_kernels") or {}).get("aten"), (got.get("cpu_kernels") or {}).get("aten")
    if kernels[0] != kernels[1]:
        differences.append(f"CPU kernels {kernels[0]} there, {kernels[1]} here (`hf_dlp.cpu_kernels`)")
    for package, version in (expected.get("packages") or {}).items():
        if (got.get("packages") or {}).get(package) != version:
            differences.append(f"{package} {version} there, {got['packages'].get(package)} here")
    if not differences:
        return " (same CPU kernels and package versions)"
    return " (differences that can change the numbers: " + "; ".join(differences) + ")"


def _expected_section(record: dict[str, Any], preset: str) -> str:
    """The run's headline numbers beside the README's (`hf_dlp.demo.expected`), or why there are none to compare."""
    comparison = compare_with_expected(record, load_expected(preset))
    if comparison is None:
        return (
            "## The README's numbers\n\nNo shipped numbers for these settings (the README's are for `hf-dlp demo` "
            f"with the `{preset}` preset's defaults); this run's are in `{HEADLINE_FILE}`.\n"
        )
    where = _environment_difference(comparison.environment, record["environment"])
    verdict = "agree" if comparison.agree else "**differ**"
    rows = sorted(comparison.rows, key=lambda row: row[3])  # the differences first

    def show(value: Any) -> str:
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    table = _table(
        ["number", "README", "this run", "same"],
        [[name, show(expected), show(got), "yes" if same else "**no**"] for name, expected, got, same in rows],
    )
    return (
        f"## The README's numbers\n\nThis run and the README {verdict}: {comparison.num_agree} of "
        f"{len(comparison.rows)} numbers are the same to {DECIMALS} decimals{where}.\n\n"
        f"<details><summary>every number, the differences first</summary>\n\n{table}\n\n</details>\n"
    )


def claims_table(claims: list[Claim]) -> str:
    """The claims as a Markdown table: verdict, this run's difference ± s.e., the smallest detectable difference
    (two standard errors) and the paper's number."""
    rows = [[c.name, c.verdict, c.shown("difference"), c.shown("detectable"), UNIT_LABELS[c.unit], c.paper]
            for c in claims]  # fmt: skip
    return _table(["claim", "held here", "difference ± s.e.", "detectable", "unit", "the paper"], rows)


def write_report(results: DemoResults, output_dir: str | Path) -> Path:
    """Write `report.md` (and `headline_numbers.json`) from a demo run's `results` and return the report's path."""
    output_dir = Path(output_dir)
    config = results.config
    sections = [build(results) for build in (_evaluation_section, _analysis_section, _replacement_section,
                                             _extrapolation_section)]  # fmt: skip
    claims = demo_claims(results)
    record = headline_record(results, {claim.name: claim.verdict for claim in claims})
    for c in training_comparisons(results.evaluation, config):
        pair = f"{c.first} − {c.second}"
        record["numbers"].update({f"{pair} difference": c.difference, f"{pair} s.e.": c.stderr})
    record["claims"] = [claim.to_dict() for claim in claims]
    (output_dir / HEADLINE_FILE).write_text(json.dumps(record, indent=2) + "\n")
    stage_rows = [[name, f"{seconds:.1f}"] for name, seconds in results.stage_seconds.items()]
    stage_rows.append(["total", f"{sum(results.stage_seconds.values()):.1f}"])
    settings_rows = [[key, f"`{value}`"] for key, value in config.to_dict().items()]
    training = (
        f"Base model: `{results.base_model}`. RL model: `{config.rl_model}` (given, not trained).\n"
        if config.rl_model
        else f"Base model: `{results.base_model}`. Runs: {', '.join(config.methods)} "
        f"(α = {config.reweight_alpha}).\n\n![training curves](training_curves.png)\n"
    )
    lines = [
        "# hf_dlp demo: the direction of RLVR updates, in miniature",
        "",
        f"hf_dlp {results.hf_dlp_version}, preset `{config.preset}`, device `{results.device}`, seed {config.seed}"
        + (" (quick budget)" if config.quick else "")
        + ".",
        "",
        "## Summary\n\n" + _summary(results, claims) + "\n\n" + claims_table(claims),
        "",
        "## 1-2. Base model and RLVR training (DAPO recipe: ±1 reward, clip 0.2/0.28, token-level loss, no KL)\n\n"
        + training,
        *sections,
        _expected_section(record, config.preset),
        "## Stage times (wall clock, seconds)\n\n" + _table(["stage", "seconds"], stage_rows) + "\n",
        _environment_section(results),
        "## Settings\n\n" + _table(["setting", "value"], settings_rows) + "\n",
    ]
    path = output_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
