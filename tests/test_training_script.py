"""`hf-dlp train --config`, the example script, recipes, model card and `push_to_hub` (up to the network call), and
the checks the training script runs before any model loads (resume, overwrite, empty or short data, columns)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from huggingface_hub import ModelCard

from hf_dlp.cli import main as cli_main
from hf_dlp.evaluation import EvaluationResult
from hf_dlp.training import ReweightedGRPOConfig, render_model_card
from hf_dlp.training.script import (
    TrainScriptArguments,
    build_reward_funcs,
    check_enough_prompts,
    load_train_dataset,
    main,
    make_parser,
    resolve_checkpoint,
)

ROOT = Path(__file__).resolve().parent.parent
TOY_RECIPE = ROOT / "examples" / "toy_recipe.yaml"
DAPO_RECIPE = ROOT / "examples" / "dapo_recipe.yaml"
CUSTOM_RECIPE = ROOT / "examples" / "custom_weighting_recipe.yaml"
FAST = ["--max_steps", "2", "--logging_steps", "1", "--toy_num_examples", "8", "--eval_num_problems", "4",
        "--eval_num_samples", "2", "--per_device_train_batch_size", "8", "--num_generations", "4"]  # fmt: skip
# The random tiny model (`tiny_model_dir`) with short completions: for the runs that test the script's checks.
TINY = ["--per_device_train_batch_size", "4", "--num_generations", "4", "--max_completion_length", "8",
        "--toy_num_examples", "8", "--logging_steps", "1", "--use_cpu", "true", "--bf16", "false",
        "--report_to", "none", "--disable_tqdm", "true", "--gradient_checkpointing", "false"]  # fmt: skip


class FakeHubApi:
    """Stands in for `huggingface_hub.HfApi` at the network boundary and records what would be sent."""

    def __init__(self):
        self.uploads = []

    def create_repo(self, repo_id, **kwargs):
        return SimpleNamespace(repo_id=repo_id)

    def upload_folder(self, repo_id, folder_path, **kwargs):
        readme = Path(folder_path) / "README.md"
        self.uploads.append({"repo_id": repo_id, "files": sorted(p.name for p in Path(folder_path).iterdir()),
                             "readme": readme.read_text() if readme.exists() else None, **kwargs})  # fmt: skip
        return SimpleNamespace(commit_url="https://huggingface.co/fake/commit")


def test_cli_trains_toy_recipe_and_pushes(toy_base_model_dir, tmp_path, monkeypatch, capsys):
    import transformers.trainer

    fake = FakeHubApi()
    monkeypatch.setattr(transformers.trainer, "hf_api", lambda: fake)
    argv = ["train", "--config", str(TOY_RECIPE), *FAST, "--output_dir", str(tmp_path / "run"),
            "--model_name_or_path", str(toy_base_model_dir), "--push_to_hub", "true",
            "--hub_model_id", "someone/toy-reweighted"]  # fmt: skip
    assert cli_main(argv) == 0
    assert "train_loss=" in capsys.readouterr().out

    final = fake.uploads[-1]
    assert final["repo_id"] == "someone/toy-reweighted"
    assert {"README.md", "model.safetensors", "tokenizer.json"} <= set(final["files"])
    card = ModelCard(final["readme"])  # parses and validates the YAML metadata
    assert {"hf_dlp", "reweighted-grpo", "trl", "grpo"} <= set(card.data.tags)
    assert card.data.model_name == "toy-reweighted"
    assert card.data.eval_results[0].metric_name == "Avg@2"
    assert card.data.eval_results[0].dataset_name == "toy-easy"
    assert 0.0 <= card.data.eval_results[0].metric_value <= 1.0
    assert "| `low_prob` | 0.2 |" in card.text and "@inproceedings{huang2026beyond" in card.text
    assert "someone/toy-reweighted" in card.text  # the usage snippet loads the pushed model


def test_example_script_runs_with_same_fields(toy_base_model_dir, tmp_path):
    spec = importlib.util.spec_from_file_location(
        "train_grpo_reweighted", ROOT / "examples" / "train_grpo_reweighted.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    argv = ["--config", str(TOY_RECIPE), "--output_dir", str(tmp_path), "--model_name_or_path", str(toy_base_model_dir),
            "--reweighting", "dominate", "--use_peft", "true", "--lora_r", "4", "--lora_target_modules", "q_proj",
            "v_proj", *FAST, "--eval_num_problems", "0"]  # fmt: skip
    trainer = module.main(argv)
    assert trainer.args.reweighting == "dominate"
    assert any("lora" in name for name, p in trainer.model.named_parameters() if p.requires_grad)
    assert (tmp_path / "adapter_model.safetensors").exists() and (tmp_path / "README.md").exists()
    logs = trainer.state.log_history[0]
    assert 0.8 <= logs["reweight/weight_min"] <= logs["reweight/weight_max"] <= 1.0


def test_dapo_recipe_parses_to_the_papers_settings():
    cpu_flags = "--use_cpu true --bf16 false --use_vllm false --report_to none".split()
    script_args, config, model_args = make_parser().parse_args_and_config(["--config", str(DAPO_RECIPE), *cpu_flags])
    assert (config.reweighting, config.reweight_alpha, config.loss_type) == ("low_prob", 0.2, "dapo")
    assert (config.dynamic_sampling, config.dynamic_sampling_max_rounds) == (True, 10)
    assert config.delta_logp_monitor and config.needs_reference_model and 0.2 in config.delta_logp_quantiles
    assert (config.epsilon, config.epsilon_high, config.beta, config.learning_rate) == (0.2, 0.28, 0.0, 1e-6)
    assert (config.num_generations, config.max_completion_length, config.temperature) == (16, 8192, 1.0)
    assert (config.weight_decay, config.max_grad_norm, config.warmup_steps) == (0.1, 1.0, 10)
    assert model_args.model_name_or_path == "Qwen/Qwen2.5-Math-7B"
    assert script_args.reward_funcs == ["accuracy_pm1"] and script_args.overlong_buffer == 4096
    rewards = build_reward_funcs(script_args, config.max_completion_length)
    assert [r.__name__ for r in rewards] == ["accuracy_reward_pm1", "soft_overlong_punishment_reward"]
    # 8 GPUs x 4 completions x 256 steps per generation = 512 prompts x 16 responses per rollout batch.
    assert config.per_device_train_batch_size * 8 * config.steps_per_generation == 512 * 16
    assert set(yaml.safe_load(DAPO_RECIPE.read_text())) <= _known_fields()


def _known_fields() -> set[str]:
    from dataclasses import fields

    from trl import ModelConfig

    return {f.name for cls in (TrainScriptArguments, ReweightedGRPOConfig, ModelConfig) for f in fields(cls)}


def test_dataset_conversion_and_errors(tmp_path):
    from datasets import Dataset

    folder = tmp_path / "data"
    Dataset.from_dict({"question": ["1+1?"], "reward_model": [{"ground_truth": "2"}]}).save_to_disk(folder)
    args = TrainScriptArguments(
        dataset_name=str(folder), prompt_column="question", answer_column="reward_model.ground_truth"
    )
    row = load_train_dataset(args)[0]
    assert (row["prompt"], row["answer"]) == ("1+1?", "2")
    with pytest.raises(ValueError, match=r"Dataset '.*' has no column 'problem' \(its columns: \['question'"):
        load_train_dataset(TrainScriptArguments(dataset_name=str(folder), prompt_column="problem"))
    with pytest.raises(ValueError, match=r"`answer_column` 'reward_model.truth': a row has no 'truth'"):
        load_train_dataset(
            TrainScriptArguments(
                dataset_name=str(folder), prompt_column="question", answer_column="reward_model.truth"
            )
        )
    with pytest.raises(
        ValueError, match=r"`overlong_buffer` \(64\) must be smaller than `max_completion_length` \(32\)"
    ):
        build_reward_funcs(TrainScriptArguments(overlong_buffer=64), max_completion_length=32)
    with pytest.raises(ValueError, match="Unknown reward function 'accurate'"):
        TrainScriptArguments(reward_funcs=["accurate"])  # at parse time, before anything loads
    with pytest.raises(ValueError, match=r"`reward_funcs` must be a list of reward function names, got the string"):
        TrainScriptArguments(reward_funcs="accuracy")
    with pytest.raises(ValueError, match=r"`toy_level` must be one of \('easy', 'medium', 'hard'\), got 'expert'"):
        TrainScriptArguments(toy_level="expert")
    with pytest.raises(ValueError, match=r"`toy_num_examples` must be an integer >= 1, got 0"):
        TrainScriptArguments(toy_num_examples=0)


def test_model_card_metadata_and_errors(tmp_path):
    args = ReweightedGRPOConfig(output_dir=str(tmp_path / "my-run"), reweighting="ppl", reweight_alpha=0.1,
                                use_cpu=True, bf16=False, report_to="none")  # fmt: skip
    result = EvaluationResult(avg_at_k=0.5, pass_at_k={1: 0.5, 8: 0.9}, num_problems=30, num_samples=8,
                              correct_counts=[4] * 30)  # fmt: skip
    card = render_model_card(args, base_model="Qwen/Qwen3-8B-Base", dataset_name="open-r1/DAPO-Math-17k-Processed",
                             evaluation={"aime24": result, "amc": result}, tags=["extra"])  # fmt: skip
    path = tmp_path / "README.md"
    card.save(path)
    loaded = ModelCard.load(path)
    assert loaded.data.base_model == "Qwen/Qwen3-8B-Base"
    assert loaded.data.datasets == ["open-r1/DAPO-Math-17k-Processed"]
    assert loaded.data.model_name == "my-run"
    assert [(r.dataset_name, r.metric_name) for r in loaded.data.eval_results] == [
        ("aime24", "Avg@8"), ("aime24", "Pass@1"), ("aime24", "Pass@8"),
        ("amc", "Avg@8"), ("amc", "Pass@1"), ("amc", "Pass@8"),
    ]  # fmt: skip
    assert "| aime24 | 30 | 8 | 0.5000 | 0.5000 | 0.9000 |" in loaded.text
    assert "group-standardised log-perplexity" in loaded.text and "| `ppl` | 0.1 |" in loaded.text
    assert "huggingface.co/Qwen/Qwen3-8B-Base" in loaded.text
    saved = render_model_card(args, base_model="Qwen/Qwen3-8B-Base", dataset_name="open-r1/DAPO-Math-17k-Processed",
                              evaluation={"aime24": result.to_dict(), "amc": result}, tags=["extra"])  # fmt: skip
    assert str(saved) == str(card)  # a saved result (`to_dict()`, results.json) renders as the object does
    with pytest.raises(TypeError, match=r"`evaluation\['x'\]` must be an EvaluationResult or a dict with the keys"):
        render_model_card(args, evaluation={"x": {"avg": 1}})
    with pytest.raises(TypeError, match="`evaluation` must be an EvaluationResult or a dict of them"):
        render_model_card(args, evaluation=[result])


@pytest.fixture()
def no_model_loads(monkeypatch):
    """Fail the test if the training script gets as far as building the trainer (which loads the model)."""
    from hf_dlp.training.trainer import ReweightedGRPOTrainer

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(ReweightedGRPOTrainer, "__init__", refuse)


def _saved_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_eval_on_a_non_toy_dataset_is_refused_before_training(tmp_path, tiny_model_dir, no_model_loads):
    """`eval_num_problems` on a non-toy dataset used to raise after `train()`, losing the run."""
    from datasets import Dataset

    Dataset.from_dict({"prompt": ["1+1="] * 8, "answer": ["2"] * 8}).save_to_disk(tmp_path / "data")
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"`eval_num_problems` \(2\) evaluates on held-out toy problems"):
        main([*TINY, "--dataset_name", str(tmp_path / "data"), "--eval_num_problems", "2", "--max_steps", "1",
              "--model_name_or_path", str(tiny_model_dir), "--output_dir", str(out)])  # fmt: skip
    assert _saved_files(out) == []


@pytest.mark.parametrize(
    ("rows", "flags", "match"),
    [
        ({"prompt": ["1+1="] * 8}, [], r"has no column 'answer'"),
        # Defect 8: a training set too small for one generation batch (here 2 prompts x 4 completions) trained 0
        # steps, exited 0 and saved the untrained model with a model card.
        ({"prompt": ["1+1="], "answer": ["2"]}, ["--per_device_train_batch_size", "8"],
         r"The training set has 1 prompts, but one generation batch takes 2 .* 0 steps"),
    ],
)  # fmt: skip
def test_data_that_cannot_train_is_refused_before_the_model_loads(
    tmp_path, tiny_model_dir, no_model_loads, rows, flags, match
):
    from datasets import Dataset, Features, Value

    features = Features({name: Value("string") for name in rows})
    Dataset.from_dict(rows, features=features).save_to_disk(tmp_path / "data")
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=match):
        main([*TINY, *flags, "--dataset_name", str(tmp_path / "data"), "--max_steps", "1",
              "--model_name_or_path", str(tiny_model_dir), "--output_dir", str(out)])  # fmt: skip
    assert "README.md" not in _saved_files(out) and "model.safetensors" not in _saved_files(out)


def test_resume_from_checkpoint_and_no_silent_overwrite(tmp_path, tiny_model_dir):
    """Defect 8: `hf-dlp train` ignored `resume_from_checkpoint` and overwrote existing checkpoints from step 0."""
    out = tmp_path / "run"
    common = [*TINY, "--model_name_or_path", str(tiny_model_dir), "--output_dir", str(out), "--save_strategy",
              "steps", "--save_steps", "1", "--loss_type", "bnpo", "--seed", "0"]  # fmt: skip
    first = main([*common, "--max_steps", "2"])
    assert {"checkpoint-1", "checkpoint-2", "README.md"} <= set(_saved_files(out))
    first_losses = {log["step"]: log["loss"] for log in first.state.log_history if "loss" in log}

    with pytest.raises(ValueError, match=r"already holds checkpoints \(the last is checkpoint-2\).*"
                       r"`resume_from_checkpoint: true`.*new `output_dir`"):  # fmt: skip
        main([*common, "--max_steps", "3"])
    assert _saved_files(out / "checkpoint-2") and "checkpoint-3" not in _saved_files(out)

    resumed = main([*common, "--max_steps", "3", "--resume_from_checkpoint", "true"])
    assert resumed.state.global_step == 3 and "checkpoint-3" in _saved_files(out)
    losses = {log["step"]: log["loss"] for log in resumed.state.log_history if "loss" in log}
    assert set(losses) == {1, 2, 3}  # steps 1-2 come from the checkpoint's trainer state, step 3 is new
    assert all(losses[step] == first_losses[step] for step in (1, 2))
    assert resumed.args.resume_from_checkpoint == str(out / "checkpoint-2")

    with pytest.raises(FileNotFoundError, match=r"`resume_from_checkpoint`: the checkpoint folder '.*nope' does not"):
        main([*common, "--max_steps", "3", "--resume_from_checkpoint", str(tmp_path / "nope")])


def test_empty_training_set_or_no_steps_is_refused():
    from datasets import Dataset

    args = ReweightedGRPOConfig(output_dir="unused", use_cpu=True, bf16=False, report_to="none",
                                per_device_train_batch_size=4, num_generations=4)  # fmt: skip
    with pytest.raises(ValueError, match=r"The training set has 0 prompts, but one generation batch takes 1"):
        check_enough_prompts(Dataset.from_dict({"prompt": []}), args)
    args.num_train_epochs = 0
    with pytest.raises(ValueError, match=r"`max_steps` \(-1\) and `num_train_epochs` \(0\) leave nothing to train"):
        check_enough_prompts(Dataset.from_dict({"prompt": ["a"] * 4}), args)


def test_resolve_checkpoint_forms(tmp_path):
    assert resolve_checkpoint(tmp_path / "new", None) is None
    assert resolve_checkpoint(tmp_path, "false") is None
    with pytest.raises(ValueError, match=r"`resume_from_checkpoint` is true, but `output_dir` .* holds no checkpoint"):
        resolve_checkpoint(tmp_path, True)
    for step in (5, 40):
        (tmp_path / f"checkpoint-{step}").mkdir()
    assert Path(resolve_checkpoint(tmp_path, True)).name == "checkpoint-40"  # by step, not by name
    assert resolve_checkpoint(tmp_path / "elsewhere", str(tmp_path / "checkpoint-5")) == str(tmp_path / "checkpoint-5")


def test_train_command_passes_flags_through_and_stays_light():
    """The `train` subcommand takes TRL-style flags after the recipe; `--set FIELD VALUE` is gone (hf_dlp 0.3.0)."""
    import subprocess
    import sys

    from hf_dlp.cli import make_parser as cli_parser
    from hf_dlp.commands.train import training_argv

    parser, _ = cli_parser()
    args = parser.parse_args(["train", "--config", "r.yaml", "--max_steps", "5", "--reward_funcs", "a", "b"])
    assert training_argv(args) == ["--config", "r.yaml", "--max_steps", "5", "--reward_funcs", "a", "b"]
    args = parser.parse_args(["train", "--config", str(TOY_RECIPE), "--set", "seed", "3"])
    with pytest.raises(ValueError, match=r"not used by the HfArgumentParser: \['--set', 'seed', '3'\]"):
        make_parser().parse_args_and_config(training_argv(args))
    code = "import sys, hf_dlp.commands.train as t; t.add_arguments(__import__('argparse').ArgumentParser()); " \
           "print(sorted(m for m in ('torch', 'transformers', 'trl') if m in sys.modules))"  # fmt: skip
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "[]"


def test_model_card_template_is_a_real_file_of_the_package():
    import hf_dlp.training
    from hf_dlp.training import MODEL_CARD_TEMPLATE

    assert MODEL_CARD_TEMPLATE.is_file() and not MODEL_CARD_TEMPLATE.is_symlink()
    assert MODEL_CARD_TEMPLATE.parent == Path(hf_dlp.training.__file__).parent / "templates"


def test_dataset_config_reaches_the_loader(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(*args, **kwargs):
        calls.append((args, kwargs))
        return datasets.Dataset.from_dict({"prompt": ["1+1="], "answer": ["2"]})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    load_train_dataset(TrainScriptArguments(dataset_name="owner/math", dataset_config="en"))
    ((args, kwargs),) = calls
    assert "en" in args or kwargs.get("name") == "en"


def test_model_revision_reaches_the_tokenizer(monkeypatch):
    import transformers
    from trl import ModelConfig

    from hf_dlp.toy import build_char_tokenizer
    from hf_dlp.training.script import resolve_model

    calls = []

    def fake_from_pretrained(*args, **kwargs):
        calls.append(kwargs)
        return build_char_tokenizer()

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", fake_from_pretrained)
    resolve_model(ModelConfig(model_name_or_path="owner/model", model_revision="v1"))
    assert calls[-1].get("revision") == "v1"


def test_user_registered_weighting_trains_from_a_yaml_recipe(tiny_model_dir, tmp_path, monkeypatch, capsys):
    """`hf-dlp train` on a recipe whose `import_modules` registers the weighting named in `reweighting`."""
    import math

    import torch

    import hf_dlp.training.script as script

    trainers = []
    run = script.run_training
    monkeypatch.setattr(script, "run_training", lambda *args: trainers.append(run(*args)) or trainers[-1])
    monkeypatch.chdir(ROOT)  # the recipe names examples/custom_weights.py relative to the repository root
    argv = ["train", "--config", str(CUSTOM_RECIPE), *TINY, "--max_steps", "2", "--model_name_or_path",
            str(tiny_model_dir), "--output_dir", str(tmp_path / "run")]  # fmt: skip
    assert cli_main(argv) == 0
    assert "train_loss=" in capsys.readouterr().out
    (trainer,) = trainers
    assert (trainer.args.reweighting, trainer.args.import_modules) == (
        "squared_low_prob",
        ["examples/custom_weights.py"],
    )
    logps = torch.log(torch.tensor([[1.0, 0.5, 0.1]]))
    expected = torch.tensor([[1.0, 1 + 0.3 * 0.25, 1 + 0.3 * 0.81]])
    torch.testing.assert_close(trainer.compute_token_weights(logps), expected)
    logs = [log for log in trainer.state.log_history if "reweight/weight_mean" in log]
    assert logs and all(1.0 <= log["reweight/weight_min"] <= log["reweight/weight_max"] <= 1.3 for log in logs)
    assert any(log["reweight/weight_max"] > 1.0 for log in logs)
    assert all(math.isfinite(log["delta_logp/mean"]) for log in logs)  # the recipe turns the monitor on
    card = (tmp_path / "run" / "README.md").read_text()
    assert "| `squared_low_prob` | 0.3 | Ã_t = [1 + α (1 − π_old(y_t))²] · Â |" in card
    assert "| `delta_logp_monitor` | True |" in card
