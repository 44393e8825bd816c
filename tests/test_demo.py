import json
import shutil

import pytest

from hf_dlp.cli import main
from hf_dlp.demo import DemoConfig, run_demo

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
    with pytest.raises(ValueError, match=r"`methods` must be one of .*got 'fancy'"):
        DemoConfig(methods=("none", "fancy"))
    with pytest.raises(ValueError, match="`methods` must be a list of reweighting methods, got the string"):
        DemoConfig(methods="none")
    with pytest.raises(ValueError, match="`num_generations` must be an integer >= 2"):
        DemoConfig(num_generations=1)
    with pytest.raises(ValueError, match="`top_p` must be a number <= 1"):
        DemoConfig(top_p=1.5)


def test_a_rerun_with_the_same_settings_reuses_every_finished_stage(quick_demo):
    output, results, _ = quick_demo
    config = DemoConfig(**{**results["config"], "methods": tuple(results["config"]["methods"])})
    again = run_demo(config)
    assert set(again["reused_stages"]) == set(results["stage_seconds"]) - {"1. base model"}
    assert again["evaluation"] == results["evaluation"]
    assert again["run_fingerprint"] == results["run_fingerprint"]


def test_a_run_with_other_settings_is_refused_before_any_work(quick_demo):
    output, results, _ = quick_demo
    config = DemoConfig(**{**results["config"], "methods": tuple(results["config"]["methods"]), "seed": 4})
    before = {path: path.stat().st_mtime_ns for path in output.rglob("*") if path.is_file()}
    with pytest.raises(ValueError, match=r"other settings \(seed: 3 there, 4 now\).*--overwrite"):
        run_demo(config)
    assert {path: path.stat().st_mtime_ns for path in output.rglob("*") if path.is_file()} == before


def test_overwrite_redoes_only_the_stages_whose_settings_changed(quick_demo, tmp_path):
    output, results, _ = quick_demo
    copy = tmp_path / "demo"
    shutil.copytree(output, copy)
    settings = {**results["config"], "methods": tuple(results["config"]["methods"]), "output_dir": str(copy)}
    changed = run_demo(DemoConfig(**{**settings, "sweep_samples": 2}), overwrite=True)
    sweeps = {name for name in changed["stage_seconds"] if name.startswith("5")}
    assert set(changed["reused_stages"]) == set(changed["stage_seconds"]) - sweeps - {"1. base model"}
    assert changed["replacement"]["settings"]["num_samples"] == 2
    assert json.loads((copy / "run.json").read_text())["status"] == "finished"
    assert json.loads((copy / "results.json").read_text())["run_fingerprint"] == changed["run_fingerprint"]


def test_an_interrupted_run_resumes_without_mixing(tmp_path, monkeypatch):
    from hf_dlp.demo import pipeline

    config = DemoConfig(output_dir=str(tmp_path / "demo"), seed=5).quick_version()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "_analysis", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_demo(config)
    assert not (tmp_path / "demo" / "report.md").exists()
    assert json.loads((tmp_path / "demo" / "run.json").read_text())["status"] == "running"
    monkeypatch.undo()
    resumed = run_demo(config)
    assert {"train/none", "train/low_prob", "3. evaluation"} <= set(resumed["reused_stages"])
    assert "4. analysis" not in resumed["reused_stages"]
    assert (tmp_path / "demo" / "report.md").exists()
