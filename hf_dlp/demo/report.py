"""`report.md` for the demo: every figure, a table per experiment, settings, stage times, and the paper beside us."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

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
METRIC_LABELS = {
    # selection rules of the sweeps
    "delta_logp": "Δlog p",
    "kl": "KL(RL‖base)",
    "kl_reverse": "KL(base‖RL)",
    "kl_mean": "mean KL",
    "entropy": "entropy",
    "random": "random",
    # metrics of the analysis
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


def _stderr(p: float, n: int) -> float:
    return math.sqrt(max(p * (1 - p), 1e-12) / max(n, 1))


def _compare(first: float, second: float, n_first: int, n_second: int) -> str:
    """ "yes" if `first` beats `second` by more than two standard errors of the difference, "no" if it loses by
    more, "within noise" otherwise (accuracies over `n` samples each)."""
    margin = 2 * math.sqrt(_stderr(first, n_first) ** 2 + _stderr(second, n_second) ** 2)
    if first - second > margin:
        return "yes"
    return "no" if second - first > margin else "within noise"


def _evaluation_section(results: dict[str, Any]) -> tuple[str, dict[str, bool]]:
    evaluations = results["evaluation"]
    any_result = next(iter(evaluations.values()))
    k = any_result["num_samples"]
    rows = []
    for name, result in evaluations.items():
        n = result["num_problems"] * k
        rows.append(
            [
                name,
                f"{_pct(result['avg_at_k'])} ± {_pct(_stderr(result['avg_at_k'], n))}",
                _pct(result["pass_at_k"]["1"]),
                _pct(result["pass_at_k"][str(k)]),
            ]
        )
    paper = _table(
        ["paper (Qwen2.5-Math-7B)", "AIME24 Avg@32", "avg Pass@16"], [[name, a, p] for name, a, p in PAPER_TABLE2]
    )
    text = (
        f"## 3. Evaluation (Avg@{k}, Pass@k; {any_result['num_problems']} held-out problems, temperature 1.0, "
        f"top-p {results['config']['top_p']})\n\n"
        + _table(["model", f"Avg@{k} (± s.e.)", "Pass@1", f"Pass@{k}"], rows)
        + "\n\nThe paper, for comparison:\n\n"
        + paper
        + "\n"
    )
    avg = {name: result["avg_at_k"] for name, result in evaluations.items()}
    n = any_result["num_problems"] * k
    verdicts = {"RLVR training improved on the base model": _compare(avg["none"], avg["base"], n, n)}
    if "low_prob" in avg:
        verdicts["low-probability reweighting beat the DAPO baseline"] = _compare(avg["low_prob"], avg["none"], n, n)
    if "low_prob" in avg and "dominate" in avg:
        verdicts["low-probability reweighting beat the 'dominate' reweighting"] = _compare(
            avg["low_prob"], avg["dominate"], n, n
        )
        text += (
            "\nThe paper's Table 3 (Qwen2.5-Math-7B, AIME24 Avg@32): dominate 36.35, PPL 35.63, ours 39.06; "
            "dominate's training entropy collapses (about 0.06 against about 0.4).\n"
        )
    return text, verdicts


def _analysis_section(results: dict[str, Any]) -> tuple[str, dict[str, bool]]:
    separation = results["analysis"]["separation"]
    summary = results["analysis"]["summary"]
    rows = [
        [
            METRIC_LABELS.get(metric, metric),
            f"{summary[metric]['base']['mean']:.4f}",
            f"{summary[metric]['rl']['mean']:.4f}",
            f"{stats['auroc_response']:.3f}",
            f"{stats['auroc_token']:.3f}",
            f"{stats['overlap_token']:.3f}",
        ]
        for metric, stats in separation.items()
    ]
    distance = {metric: abs(stats["auroc_response"] - 0.5) for metric, stats in separation.items()}
    magnitude = [m for m in ("base_entropy", "rl_entropy", "kl_rl_base", "kl_base_rl") if m in distance]
    text = (
        "## 4. Identify: which metric tells RL-written from base-written text (Fig. 1b)\n\n"
        "![Fig. 1b](analysis/fig1b_histograms.png)\n\n"
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
    verdict = {
        "Δlog p separates the sources better than entropy and KL": "yes"
        if all(distance["delta_logp"] > distance[m] for m in magnitude)
        else "no"
    }
    return text, verdict


def _replacement_section(results: dict[str, Any]) -> tuple[str, dict[str, bool]]:
    sweep = results["replacement"]
    refs = sweep["references"]
    rows = [
        [
            METRIC_LABELS.get(r["selection"], r["selection"]),
            r["tau"],
            _pct(r["replacement_ratio"]),
            _pct(r["avg_at_k"]),
        ]
        for r in sweep["rows"]
    ]
    gain = {}
    for row in sweep["rows"]:
        # Accuracy gained per percent of tokens replaced: the efficiency Fig. 1c compares.
        if row["replacement_ratio"] > 0:
            value = (row["avg_at_k"] - refs["base"]) / (100 * row["replacement_ratio"])
            gain[row["selection"]] = max(gain.get(row["selection"], -math.inf), value)
    text = (
        "## 5a. Token replacement: the base model generates, selected positions take the RL model's token (Fig. 1c)\n\n"
        "![Fig. 1c](replacement/replacement_sweep.png)\n\n"
        f"References: base {_pct(refs['base'])}, RL {_pct(refs['rl'])} (same sampling).\n\n"
        + _table(["selection", "τ", "replaced tokens (%)", "accuracy (%)"], rows)
        + "\n\nBest accuracy gained per percent of tokens replaced: "
        + ", ".join(f"{METRIC_LABELS.get(k, k)} {v * 100:+.2f} pts" for k, v in gain.items())
        + f".\n\nThe paper: {PAPER_FIG1C}.\n"
    )
    others = [k for k in gain if k != "delta_logp"]
    fewest = "delta_logp" in gain and all(gain["delta_logp"] >= gain[k] for k in others)
    verdict = {"Δlog p selection recovers RL accuracy with the fewest replacements": "yes" if fewest else "no"}
    return text, verdict


def _extrapolation_section(results: dict[str, Any]) -> tuple[str, dict[str, bool]]:
    parts, verdicts = ["## 5b. Selective extrapolation, γ × τ (Fig. 4)\n"], {}
    for generator, sweep in results["extrapolation"].items():
        refs = sweep["references"]
        rows = [[r["gamma"], r["tau"], _pct(r["replacement_ratio"]), _pct(r["avg_at_k"])] for r in sweep["rows"]]
        extrapolated = [r for r in sweep["rows"] if r["gamma"] > 0]
        best = max(extrapolated, key=lambda r: r["avg_at_k"]) if extrapolated else None
        parts.append(
            f"### generator: {generator} model\n\n![extrapolation, {generator} generates]"
            f"(extrapolation_{generator}/extrapolation_sweep.png)\n\n"
            f"References: base {_pct(refs['base'])}, RL {_pct(refs['rl'])}.\n\n"
            + _table(["γ", "τ", "selected tokens (%)", "accuracy (%)"], rows)
            + "\n"
        )
        if best is not None:
            n = results["config"]["sweep_problems"] * results["config"]["sweep_samples"]
            verdicts[f"the best γ > 0 beat the RL model ({generator} generates)"] = _compare(
                best["avg_at_k"], refs["rl"], n, n
            )
    parts.append(
        "The paper (base generates, AIME24 Avg@32):\n\n"
        + _table(
            ["pair", "selective replace (γ=0)", "RLVR", "selective extrapolate"], [list(row) for row in PAPER_FIG4]
        )
    )
    return "\n".join(parts) + "\n", verdicts


def write_report(results: dict[str, Any], output_dir: str | Path) -> Path:
    """Write `report.md` from the demo's `results` (as saved in `results.json`) and return its path."""
    output_dir = Path(output_dir)
    config = results["config"]
    sections, verdicts = [], {}
    for build in (_evaluation_section, _analysis_section, _replacement_section, _extrapolation_section):
        text, verdict = build(results)
        sections.append(text)
        verdicts.update(verdict)
    held = [claim for claim, verdict in verdicts.items() if verdict == "yes"]
    missed = [claim for claim, verdict in verdicts.items() if verdict == "no"]
    unclear = [claim for claim, verdict in verdicts.items() if verdict == "within noise"]
    honest = (
        f"At this scale (a ~100k-parameter model, {config['train_steps']} GRPO steps, small evaluation budgets; an "
        "accuracy difference counts only beyond two standard errors), "
        f"{len(held)} of {len(verdicts)} of the paper's claims held"
        + (f": {'; '.join(held)}." if held else ".")
        + (f" Not reproduced here: {'; '.join(missed)}." if missed else "")
        + (f" Too close to call at this budget: {'; '.join(unclear)}." if unclear else "")
    )
    stage_rows = [[name, f"{seconds:.1f}"] for name, seconds in results["stage_seconds"].items()]
    stage_rows.append(["total", f"{sum(results['stage_seconds'].values()):.1f}"])
    settings_rows = [[key, f"`{value}`"] for key, value in config.items()]
    lines = [
        "# hf_dlp demo: the direction of RLVR updates, in miniature",
        "",
        f"hf_dlp {results['hf_dlp_version']}, device `{results['device']}`, seed {config['seed']}"
        + (" (quick budget)" if config["quick"] else "")
        + ".",
        "",
        "## Summary\n\n" + honest + "\n\n" + _table(["claim", "held here"], [[c, v] for c, v in verdicts.items()]),
        "",
        "## 1-2. Base model and RLVR training (DAPO recipe: ±1 reward, clip 0.2/0.28, token-level loss, no KL)\n\n"
        f"Base model: `{results['base_model']}`. Runs: {', '.join(config['methods'])} "
        f"(α = {config['reweight_alpha']}).\n\n![training curves](training_curves.png)\n",
        *sections,
        "## Stage times (wall clock, seconds)\n\n" + _table(["stage", "seconds"], stage_rows) + "\n",
        "## Settings\n\n" + _table(["setting", "value"], settings_rows) + "\n",
    ]
    path = output_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
