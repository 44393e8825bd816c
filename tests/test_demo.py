import json

import pytest

from hf_dlp.cli import main
from hf_dlp.demo import DemoConfig

FIGURES = [
    "training_curves.png",
    "analysis/fig1b_histograms.png",
    "replacement/replacement_sweep.png",
    "extrapolation_rl/extrapolation_sweep.png",
    "extrapolation_base/extrapolation_sweep.png",
]


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    output = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--quick", "--output-dir", str(output), "--seed", "3"]) == 0
    return output, json.loads((output / "results.json").read_text()), (output / "report.md").read_text()


def test_quick_demo_writes_report_figures_and_models(quick_demo):
    output, results, report = quick_demo
    for figure in FIGURES:
        assert (output / figure).stat().st_size > 1000, figure
        assert f"]({figure})" in report, figure
    for method in ("none", "low_prob"):
        assert (output / "models" / method / "config.json").exists()
        assert len(results["training"][method]) == results["config"]["train_steps"]
    assert results["config"]["quick"] and results["config"]["seed"] == 3


def test_report_numbers_match_the_json_results(quick_demo):
    _, results, report = quick_demo
    for name, evaluation in results["evaluation"].items():
        k = evaluation["num_samples"]
        row = next(line for line in report.splitlines() if line.startswith(f"| {name} |"))
        assert f"{100 * evaluation['avg_at_k']:.1f} ±" in row
        assert f"| {100 * evaluation['pass_at_k'][str(k)]:.1f} |" in row + " "
    delta = results["analysis"]["separation"]["delta_logp"]
    assert f"{delta['auroc_response']:.3f}" in report
    for row in results["replacement"]["rows"]:
        assert f"| {row['tau']} | {100 * row['replacement_ratio']:.1f} | {100 * row['avg_at_k']:.1f} |" in report
    for stage, seconds in results["stage_seconds"].items():
        assert f"| {stage} | {seconds:.1f} |" in report
    assert "claims held" in report


def test_demo_config_validation():
    with pytest.raises(ValueError, match="must start with 'none'"):
        DemoConfig(methods=("low_prob",))
    with pytest.raises(ValueError, match="unknown reweightings"):
        DemoConfig(methods=("none", "fancy"))
    with pytest.raises(ValueError, match="`num_generations`"):
        DemoConfig(num_generations=1)
