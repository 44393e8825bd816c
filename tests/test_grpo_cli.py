"""`hf-dlp train --config`, the example script, recipes, model card and `push_to_hub` (up to the network call)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from huggingface_hub import ModelCard

from hf_dlp.cli import main as cli_main
from hf_dlp.commands.train import TrainScriptArguments, build_reward_funcs, load_train_dataset, make_parser
from hf_dlp.evaluation import EvaluationResult
from hf_dlp.grpo_config import ReweightedGRPOConfig
from hf_dlp.model_card import render_model_card

ROOT = Path(__file__).resolve().parent.parent
TOY_RECIPE = ROOT / "examples" / "toy_recipe.yaml"
DAPO_RECIPE = ROOT / "examples" / "dapo_recipe.yaml"
FAST = ["max_steps", "2", "logging_steps", "1", "toy_num_examples", "8", "eval_num_problems", "4",
        "eval_num_samples", "2", "per_device_train_batch_size", "8", "num_generations", "4"]  # fmt: skip


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
    overrides = [*FAST, "output_dir", str(tmp_path / "run"), "model_name_or_path", str(toy_base_model_dir),
                 "push_to_hub", "true", "hub_model_id", "someone/toy-reweighted"]  # fmt: skip
    argv = ["train", "--config", str(TOY_RECIPE)]
    for name, value in zip(overrides[::2], overrides[1::2], strict=True):
        argv += ["--set", name, value]
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
            "v_proj", *[f"--{v}" if i % 2 == 0 else v for i, v in enumerate(FAST)], "--eval_num_problems", "0"]  # fmt: skip
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
    with pytest.raises(ValueError, match=r"Column 'problem' is not in the dataset"):
        load_train_dataset(TrainScriptArguments(dataset_name=str(folder), prompt_column="problem"))
    with pytest.raises(
        ValueError, match=r"`overlong_buffer` \(64\) must be smaller than `max_completion_length` \(32\)"
    ):
        build_reward_funcs(TrainScriptArguments(overlong_buffer=64), max_completion_length=32)
    with pytest.raises(ValueError, match="Unknown reward function 'accurate'"):
        build_reward_funcs(TrainScriptArguments(reward_funcs=["accurate"]), max_completion_length=32)


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
    with pytest.raises(TypeError, match=r"`evaluation\['x'\]` must be an EvaluationResult, got dict"):
        render_model_card(args, evaluation={"x": {"avg": 1}})
    with pytest.raises(TypeError, match="`evaluation` must be an EvaluationResult or a dict of them"):
        render_model_card(args, evaluation=[result])
