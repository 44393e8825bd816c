"""`run_demo`: the paper in miniature, stage by stage (base model → RLVR training → evaluation → analysis → sweeps)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from .config import DemoConfig


class StageTimer:
    """Wall time of each named stage, in the order they ran."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        print(f"\n=== {name} ===", flush=True)
        start = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - start
        print(f"=== {name}: {self.seconds[name]:.1f} s ===", flush=True)


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _load_dataset(spec: str, *, num_examples: int, seed: int):
    from ..loading import load_dataset_spec

    return load_dataset_spec(spec, num_examples=num_examples, seed=seed, limit=None if spec == "toy" else num_examples)


def _base_model_path(config: DemoConfig) -> str:
    if config.base_model is not None:
        return config.base_model
    from ..toy import BaseModelSettings, make_toy_base_model

    return str(make_toy_base_model(BaseModelSettings()))




def train_rl_model(config: DemoConfig, method: str, base_path: str, tokenizer, train_dataset, directory: Path) -> list[dict]:
    """Train one RLVR model with `ReweightedGRPOTrainer` (DAPO-style: ±1 reward, clip-higher, token-level loss)."""
    from transformers import AutoModelForCausalLM

    from ..grpo_config import ReweightedGRPOConfig
    from ..grpo_trainer import ReweightedGRPOTrainer
    from ..rewards import signed_accuracy_reward

    args = ReweightedGRPOConfig(
        output_dir=str(directory),
        reweighting=method,
        reweight_alpha=config.reweight_alpha,
        max_steps=config.train_steps,
        per_device_train_batch_size=config.prompts_per_step * config.num_generations,
        num_generations=config.num_generations,
        max_completion_length=config.max_completion_length,
        learning_rate=config.learning_rate,
        lr_scheduler_type="constant",
        warmup_steps=0,
        loss_type="dapo",
        beta=0.0,
        epsilon=0.2,
        epsilon_high=0.28,
        temperature=1.0,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=config.seed,
        use_cpu=_device() == "cpu",
        bf16=False,
        gradient_checkpointing=False,  # tiny models: recomputation costs more than the memory it saves
    )
    model = AutoModelForCausalLM.from_pretrained(base_path)
    trainer = ReweightedGRPOTrainer(
        model=model, args=args, reward_funcs=[signed_accuracy_reward], train_dataset=train_dataset,
        processing_class=tokenizer,
    )
    trainer.train()
    trainer.save_model(str(directory))
    tokenizer.save_pretrained(str(directory))
    history = [entry for entry in trainer.state.log_history if "reward" in entry]
    (directory / "log_history.json").write_text(json.dumps(trainer.state.log_history, indent=2))
    return history


def _evaluate(model, tokenizer, dataset, config: DemoConfig):
    from ..evaluation import evaluate_model

    return evaluate_model(
        model, tokenizer, dataset, num_samples=config.eval_samples, pass_at=sorted({1, config.eval_samples}),
        max_new_tokens=config.max_completion_length, temperature=1.0, top_p=config.top_p, seed=config.seed,
        batch_size=64,
    )


def run_demo(config: DemoConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every stage, write `results.json`, the figures and `report.md` into `config.output_dir`; return results.

    Examples:

    >>> from hf_dlp.demo import DemoConfig
    >>> DemoConfig().quick_version().train_steps
    6
    """
    from ..analysis import analyze_responses, generate_responses
    from ..extrapolation import extrapolation_sweep, replacement_sweep
    from ..loading import load_causal_lm, load_tokenizer
    from .curves import plot_training_curves
    from .report import write_report

    output = Path(config.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    timer = StageTimer()
    results: dict[str, Any] = {"hf_dlp_version": __version__, "config": config.to_dict(), "device": _device()}
    torch.manual_seed(config.seed)

    with timer.stage("1. base model"):
        base_path = _base_model_path(config)
        base_model, tokenizer = load_causal_lm(base_path, device=_device()), load_tokenizer(base_path)
        results["base_model"] = base_path

    with timer.stage("2. RLVR training"):
        train_dataset = _load_dataset(config.train_dataset, num_examples=4000, seed=config.seed + 17)
        histories = {}
        for method in config.methods:
            histories[method] = train_rl_model(
                config, method, base_path, tokenizer, train_dataset, output / "models" / method
            )
        plot_training_curves(histories, output / "training_curves.png")
        results["training"] = {method: history for method, history in histories.items()}

    models = {"base": base_model}
    for method in config.methods:
        models[method] = load_causal_lm(output / "models" / method, device=_device())
    rl_model = models["none"]

    with timer.stage("3. evaluation"):
        eval_dataset = _load_dataset(config.eval_dataset, num_examples=config.eval_problems, seed=config.seed + 1234)
        evaluations = {name: _evaluate(model, tokenizer, eval_dataset, config) for name, model in models.items()}
        results["evaluation"] = {name: result.to_dict() for name, result in evaluations.items()}

    with timer.stage("4. analysis"):
        prompts = eval_dataset.select(range(min(config.analysis_prompts, len(eval_dataset))))["prompt"]
        responses = generate_responses(
            base_model, rl_model, tokenizer, prompts, num_samples=config.analysis_samples,
            max_new_tokens=config.max_completion_length, seed=config.seed,
        )
        report = analyze_responses(base_model, rl_model, tokenizer, responses)
        report.save(output / "analysis")
        results["analysis"] = {"summary": report.summary(), "separation": report.separation(),
                               "table": report.format_table()}

    sweep_dataset = eval_dataset.select(range(min(config.sweep_problems, len(eval_dataset))))
    sweep_kwargs = dict(num_samples=config.sweep_samples, max_new_tokens=config.max_completion_length,
                        top_p=config.top_p, seed=config.seed)
    with timer.stage("5a. replacement sweep"):
        replacement = replacement_sweep(
            base_model, rl_model, tokenizer, sweep_dataset, selections=tuple(config.replacement_taus),
            taus=config.replacement_taus, output_dir=output / "replacement", **sweep_kwargs,
        )
        results["replacement"] = replacement.to_dict()

    with timer.stage("5b. extrapolation sweep"):
        results["extrapolation"] = {}
        for generator in ("rl", "base"):
            sweep = extrapolation_sweep(
                rl_model, base_model, tokenizer, sweep_dataset, gammas=config.extrapolation_gammas,
                taus=config.extrapolation_taus, generator=generator,
                output_dir=output / f"extrapolation_{generator}", **sweep_kwargs,
            )
            results["extrapolation"][generator] = sweep.to_dict()

    results["stage_seconds"] = timer.seconds
    (output / "results.json").write_text(json.dumps(results, indent=2, default=str))
    path = write_report(results, output)
    log(f"\nReport: {path}")
    return results
