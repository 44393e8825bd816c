"""`run_demo`: the paper in miniature, stage by stage (base model → RLVR training → evaluation → analysis → sweeps).

Each stage records what it was built from (`hf_dlp.demo.stages`): a rerun with the same settings reuses the finished
stages, a stage whose settings changed is redone, and a folder holding a run with other settings is refused unless
`overwrite=True`. The report and `results.json` are written last.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from .config import DemoConfig
from .stages import StageRecords, fingerprint

logger = logging.getLogger(__name__)

# The settings each stage reads (besides the stages it builds on); a change in one of them redoes that stage.
TRAIN_FIELDS = (
    "seed",
    "train_dataset",
    "reweight_alpha",
    "train_steps",
    "prompts_per_step",
    "num_generations",
    "learning_rate",
    "max_completion_length",
)
EVAL_FIELDS = ("seed", "eval_dataset", "eval_problems", "eval_samples", "top_p", "max_completion_length")
ANALYSIS_FIELDS = (
    "seed",
    "eval_dataset",
    "eval_problems",
    "analysis_prompts",
    "analysis_samples",
    "max_completion_length",
)
SWEEP_FIELDS = (
    "seed",
    "eval_dataset",
    "eval_problems",
    "sweep_problems",
    "sweep_samples",
    "top_p",
    "max_completion_length",
    "block_size",
)


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _load_dataset(spec: str, *, num_examples: int, seed: int):
    from ..loading import load_dataset_spec

    return load_dataset_spec(
        spec,
        num_examples=num_examples,
        seed=seed,
        limit=None if spec == "toy" else num_examples,
        required_columns=("prompt",),
    )


def _base_model_path(config: DemoConfig) -> str:
    if config.base_model is not None:
        return config.base_model
    from ..toy import BaseModelSettings, make_toy_base_model

    return str(make_toy_base_model(BaseModelSettings()))


class _Stages:
    """Runs the stages of one demo: reuses a finished stage whose inputs match, times the others."""

    def __init__(self, records: StageRecords, config: DemoConfig):
        self.records, self.config = records, config
        self.seconds: dict[str, float] = {}
        self.reused: list[str] = []
        self.fingerprints: dict[str, str] = {}

    def inputs(self, fields: tuple[str, ...], *upstream: str, **extra: Any) -> dict[str, Any]:
        settings = {name: getattr(self.config, name) for name in fields}
        return {
            **settings,
            **extra,
            "upstream": {name: self.fingerprints[name] for name in upstream},
            "hf_dlp_version": __version__,
        }

    def run(self, name: str, inputs: dict[str, Any], compute: Callable[[], Any], files: tuple[Path, ...] = ()):
        self.fingerprints[name] = fingerprint(inputs)
        record = self.records.result(name, inputs)
        if record is not None:
            logger.info("%s: reused (finished earlier with the same settings)", name)
            self.seconds[name] = record["seconds"]
            self.reused.append(name)
            return record["value"]
        logger.info("%s ...", name)
        self.records.start(name, inputs, list(files))
        start = time.perf_counter()
        value = compute()
        self.seconds[name] = time.perf_counter() - start
        self.records.finish(name, inputs, {"value": value, "seconds": self.seconds[name]})
        logger.info("%s: %.1f s", name, self.seconds[name])
        return value


def train_rl_model(
    config: DemoConfig, method: str, base_path: str, tokenizer, train_dataset, directory: Path
) -> list[dict]:
    """Train one RLVR model with `ReweightedGRPOTrainer` (DAPO-style: ±1 reward, clip-higher, token-level loss)."""
    from transformers import AutoModelForCausalLM

    from ..rewards import signed_accuracy_reward
    from ..training import ReweightedGRPOConfig, ReweightedGRPOTrainer

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
        model=model,
        args=args,
        reward_funcs=[signed_accuracy_reward],
        train_dataset=train_dataset,
        processing_class=tokenizer,
    )
    trainer.train()
    trainer.save_model(str(directory))
    tokenizer.save_pretrained(str(directory))
    history = [entry for entry in trainer.state.log_history if "reward" in entry]
    (directory / "log_history.json").write_text(json.dumps(trainer.state.log_history, indent=2))
    return history


def _generation_config(config: DemoConfig, top_p: float | None):
    from ..generation import default_generation_config

    return default_generation_config(
        max_new_tokens=config.max_completion_length, **({} if top_p is None else {"top_p": top_p})
    )


def _evaluate(model, tokenizer, dataset, config: DemoConfig):
    from ..evaluation import evaluate_model

    return evaluate_model(
        model,
        tokenizer,
        dataset,
        num_samples=config.eval_samples,
        pass_at=sorted({1, config.eval_samples}),
        generation_config=_generation_config(config, config.top_p),
        seed=config.seed,
        batch_size=64,
    ).to_dict()


def _analysis(base_model, rl_model, tokenizer, prompts, config: DemoConfig, folder: Path) -> dict[str, Any]:
    from ..analysis import analyze_responses, generate_responses

    responses = generate_responses(
        base_model=base_model,
        rl_model=rl_model,
        tokenizer=tokenizer,
        prompts=prompts,
        num_samples=config.analysis_samples,
        seed=config.seed,
        generation_config=_generation_config(config, 1.0),
    )
    report = analyze_responses(base_model=base_model, rl_model=rl_model, tokenizer=tokenizer, dataset=responses)
    report.save(folder)
    return {"summary": report.summary(), "separation": report.separation(), "table": report.format_table()}


def _sweeps(stages: _Stages, base_model, rl_model, tokenizer, dataset, output: Path) -> dict[str, Any]:
    from ..sweeps import extrapolation_sweep, replacement_sweep

    config = stages.config
    common = dict(
        base_model=base_model,
        rl_model=rl_model,
        tokenizer=tokenizer,
        dataset=dataset,
        num_samples=config.sweep_samples,
        seed=config.seed,
        block_size=config.block_size,
        generation_config=_generation_config(config, config.top_p),
    )
    results: dict[str, Any] = {}
    inputs = stages.inputs(SWEEP_FIELDS, "train/none", replacement_taus=config.replacement_taus)
    results["replacement"] = stages.run(
        "5a. replacement sweep",
        inputs,
        lambda: replacement_sweep(
            selections=tuple(config.replacement_taus),
            taus=config.replacement_taus,
            output_dir=output / "replacement",
            **common,
        ).to_dict(),
        files=(output / "replacement",),
    )
    results["extrapolation"] = {}
    for generator in ("rl", "base"):
        inputs = stages.inputs(
            SWEEP_FIELDS,
            "train/none",
            generator=generator,
            gammas=config.extrapolation_gammas,
            taus=config.extrapolation_taus,
        )
        results["extrapolation"][generator] = stages.run(
            f"5b. extrapolation sweep ({generator} generates)",
            inputs,
            lambda generator=generator: extrapolation_sweep(
                gammas=config.extrapolation_gammas,
                taus=config.extrapolation_taus,
                generator=generator,
                output_dir=output / f"extrapolation_{generator}",
                **common,
            ).to_dict(),
            files=(output / f"extrapolation_{generator}",),
        )
    return results


def _train_all(stages: _Stages, base_path: str, tokenizer, output: Path) -> dict[str, list[dict]]:
    config = stages.config
    train_dataset = _load_dataset(config.train_dataset, num_examples=4000, seed=config.seed + 17)
    histories = {}
    for method in config.methods:
        directory = output / "models" / method
        inputs = stages.inputs(TRAIN_FIELDS, method=method, base_model=base_path)
        histories[method] = stages.run(
            f"train/{method}",
            inputs,
            lambda method=method, directory=directory: train_rl_model(
                config, method, base_path, tokenizer, train_dataset, directory
            ),
            files=(directory,),
        )
    return histories


def run_demo(config: DemoConfig, *, overwrite: bool = False) -> dict[str, Any]:
    """Run every stage, write `results.json`, the figures and `report.md` into `config.output_dir`; return results.

    A rerun into the same folder with the same settings reuses the stages that finished; `overwrite=True` accepts a
    folder that holds a run with other settings and redoes the stages whose settings changed.

    Examples:

    >>> from hf_dlp.demo import DemoConfig
    >>> DemoConfig().quick_version().train_steps
    6
    """
    from ..loading import load_causal_lm, load_tokenizer
    from .curves import plot_training_curves
    from .report import write_report

    output = Path(config.output_dir)
    run_inputs = {**{k: v for k, v in config.to_dict().items() if k != "output_dir"}, "hf_dlp_version": __version__}
    stages = _Stages(StageRecords(output, run_inputs, overwrite=overwrite), config)
    for stale in (output / "report.md", output / "results.json"):
        stale.unlink(missing_ok=True)  # written again, last, so they never describe another run's stages
    results: dict[str, Any] = {"hf_dlp_version": __version__, "config": config.to_dict(), "device": _device()}
    torch.manual_seed(config.seed)

    start = time.perf_counter()
    base_path = _base_model_path(config)
    base_model, tokenizer = load_causal_lm(base_path, device=_device()), load_tokenizer(base_path)
    stages.seconds["1. base model"] = time.perf_counter() - start
    results["base_model"] = base_path

    histories = _train_all(stages, base_path, tokenizer, output)
    plot_training_curves(histories, output / "training_curves.png")
    results["training"] = histories

    models = {"base": base_model}
    for method in config.methods:
        models[method] = load_causal_lm(output / "models" / method, device=_device())
    rl_model = models["none"]
    eval_dataset = _load_dataset(config.eval_dataset, num_examples=config.eval_problems, seed=config.seed + 1234)
    upstream = [f"train/{method}" for method in config.methods]
    results["evaluation"] = stages.run(
        "3. evaluation",
        stages.inputs(EVAL_FIELDS, *upstream),
        lambda: {name: _evaluate(model, tokenizer, eval_dataset, config) for name, model in models.items()},
    )
    prompts = eval_dataset.select(range(min(config.analysis_prompts, len(eval_dataset))))["prompt"]
    results["analysis"] = stages.run(
        "4. analysis",
        stages.inputs(ANALYSIS_FIELDS, "train/none"),
        lambda: _analysis(base_model, rl_model, tokenizer, prompts, config, output / "analysis"),
        files=(output / "analysis",),
    )
    sweep_dataset = eval_dataset.select(range(min(config.sweep_problems, len(eval_dataset))))
    results.update(_sweeps(stages, base_model, rl_model, tokenizer, sweep_dataset, output))

    results["stage_seconds"] = stages.seconds
    results["reused_stages"] = stages.reused
    results["run_fingerprint"] = stages.records.run_fingerprint
    (output / "results.json").write_text(json.dumps(results, indent=2, default=str))
    path = write_report(results, output)
    stages.records.finish_run()
    logger.info("Report: %s", path)
    return results
