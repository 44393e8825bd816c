"""`run_demo`: the paper in miniature, stage by stage (base model → RLVR training → evaluation → analysis → sweeps).

Each stage records what it was built from (`hf_dlp.demo.stages`): a rerun with the same settings reuses the finished
stages, a stage whose settings changed is redone, and a folder holding a run with other settings is refused unless
`overwrite=True`. The report and `results.json` are written last.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..cpu_kernels import cpu_kernels, pin_cpu_kernels
from ..distributed import default_device, is_main_process, num_processes
from ..evaluation import EvaluationResult
from ..extrapolation.config import GENERATOR_ROLES
from ..sweeps.result import SweepResult
from .config import RUN_LOCAL_FIELDS, DemoConfig
from .results import RESULTS_FILE, DemoAnalysis, DemoResults, TrainingHistory
from .stages import StageJob, StageRecords, StageRunner, fingerprint

logger = logging.getLogger(__name__)

# The settings each stage reads (besides the stages it builds on); a change in one of them redoes that stage.
TRAIN_FIELDS = (
    "seed",
    "train_dataset",
    "question_column",
    "answer_column",
    "dataset_config",
    "reweight_alpha",
    "train_steps",
    "prompts_per_step",
    "num_generations",
    "learning_rate",
    "max_completion_length",
    "lora_rank",
    "lora_alpha",
    "dtype",
)
# What every stage on the evaluation problems reads: which problems, how long the answers, how models run.
_EVAL_DATA_FIELDS = (
    "seed",
    "eval_dataset",
    "eval_split",
    "question_column",
    "answer_column",
    "dataset_config",
    "eval_problems",
    "max_completion_length",
    "dtype",
    "eval_batch_size",
)
EVAL_FIELDS = (*_EVAL_DATA_FIELDS, "eval_samples", "top_p")
ANALYSIS_FIELDS = (*_EVAL_DATA_FIELDS, "analysis_prompts", "analysis_samples")
SWEEP_FIELDS = (*_EVAL_DATA_FIELDS, "sweep_problems", "sweep_samples", "top_p", "block_size")


def _log_expected(output: Path, preset: str) -> None:
    """One terminal line: whether this run reproduced the numbers the README shows for these settings."""
    from .expected import HEADLINE_FILE, compare_with_expected, load_expected

    comparison = compare_with_expected(json.loads((output / HEADLINE_FILE).read_text()), load_expected(preset))
    if comparison is not None:
        logger.info(
            "The README's numbers: %s (%d of %d the same; see report.md)",
            "reproduced" if comparison.agree else "NOT reproduced",
            comparison.num_agree,
            len(comparison.rows),
        )


def _device() -> str:
    return str(default_device())  # this process's own GPU under a launcher


ENVIRONMENT_PACKAGES = ("torch", "transformers", "trl", "accelerate", "peft", "datasets", "numpy", "math-verify")


def environment() -> dict[str, Any]:
    """What the numbers depend on besides the settings: package versions, Python, the CPU and torch's threads."""
    import os
    import platform
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for package in ENVIRONMENT_PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_kernels": cpu_kernels(),
        "packages": versions,
    }


def _load_dataset(config: DemoConfig, spec: str, *, num_examples: int, seed: int, split: str):
    from .data import load_demo_dataset

    return load_demo_dataset(
        spec, num_examples=num_examples, seed=seed, question_column=config.question_column,
        answer_column=config.answer_column, dataset_config=config.dataset_config, split=split,
    )  # fmt: skip


def _base_model_path(config: DemoConfig) -> str:
    if config.base_model is not None:
        from ..loading import check_model_source

        return check_model_source(config.base_model, argument="base_model")  # a gguf:/pip: spec becomes a folder
    from ..toy import BaseModelSettings, make_toy_base_model

    return str(make_toy_base_model(BaseModelSettings()))


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
        batch_size=config.eval_batch_size,
        progress=False,
    ).to_dict()


def _evaluate_job(config: DemoConfig, model_path: str, tokenizer, dataset) -> dict[str, Any]:
    """One model's evaluation (a stage job: it loads its model, so it can run in a worker process)."""
    from ..loading import load_causal_lm

    return _evaluate(load_causal_lm(model_path, dtype=config.dtype, device=_device()), tokenizer, dataset, config)


def _evaluate_all(stages: StageRunner, model_paths: dict[str, str], tokenizer, dataset) -> dict[str, EvaluationResult]:
    """Evaluate every model, one stage each (`3. evaluation/<model>`): an interrupted run keeps the models it has
    evaluated, and a model whose training was redone is evaluated again."""
    jobs = []
    for name, path in model_paths.items():
        trained_by = f"train/{name}"
        upstream = (trained_by,) if trained_by in stages.fingerprints else ()
        inputs = stages.inputs(EVAL_FIELDS, *upstream, model=name)
        args = (stages.config, path, tokenizer, dataset)
        jobs.append(StageJob(f"3. evaluation/{name}", inputs, _evaluate_job, args))
    values = stages.run_jobs(jobs, workers=stages.config.workers, description="3. evaluation", unit="model")
    return {name: EvaluationResult.from_dict(values[f"3. evaluation/{name}"]) for name in model_paths}


def _analysis(base_model, rl_model, tokenizer, rows, config: DemoConfig, folder: Path) -> DemoAnalysis:
    """Fig. 1b on `rows` (the first evaluation problems), with the token tables and the HTML page."""
    from ..analysis import analyze_responses, generate_responses
    from ..rewards import accuracy_reward

    responses = generate_responses(
        base_model=base_model,
        rl_model=rl_model,
        tokenizer=tokenizer,
        prompts=rows["prompt"],
        num_samples=config.analysis_samples,
        seed=config.seed,
        batch_size=config.eval_batch_size,
        generation_config=_generation_config(config, 1.0),
        progress=False,
    )
    report = analyze_responses(base_model=base_model, rl_model=rl_model, tokenizer=tokenizer, dataset=responses)
    # Correct or not, per response: the page's correctness filter.
    answers = [rows["answer"][index] for index in responses["prompt_index"]]
    rewards = accuracy_reward(list(responses["response"]), answer=answers)
    prompts = [_prompt_text(prompt) for prompt in responses["prompt"]]
    if is_main_process():
        report.save(folder, html=True, rewards=rewards, prompts=prompts)
    return DemoAnalysis.from_report(report, rewards=rewards, prompts=prompts)


def _prompt_text(prompt: Any) -> str:
    """What the page shows above a response: the prompt, or a chat prompt's last message."""
    if isinstance(prompt, list) and prompt and isinstance(prompt[-1], dict):
        return str(prompt[-1].get("content", ""))
    return str(prompt)


def _analysis_page(output: Path, analysis: DemoAnalysis, replacement: SweepResult) -> None:
    """Write the analysis page again, now with the responses the replacement sweep changed and its swaps marked."""
    from ..analysis import AnalysisReport, write_analysis_page
    from ..sweeps import replaced_responses

    write_analysis_page(
        AnalysisReport.load(output / "analysis"),
        output / "analysis",
        rewards=analysis.rewards,
        prompts=analysis.prompts,
        replaced=replaced_responses(replacement),
    )


REPLACEMENT_STAGE = "5a. replacement sweep"


def _extrapolation_stage(generator: str) -> str:
    return f"5b. extrapolation sweep ({generator} generates)"


def _redraw_reused_sweeps(output: Path, results: DemoResults) -> None:
    """Draw again the figures of the sweeps this run reused from an earlier one, so they look as this version draws
    them (with error bars); a sweep computed now drew its own."""
    sweeps = {REPLACEMENT_STAGE: ("replacement", results.replacement)}
    sweeps.update({_extrapolation_stage(generator): (f"extrapolation_{generator}", sweep)
                   for generator, sweep in results.extrapolation.items()})  # fmt: skip
    for stage, (folder, sweep) in sweeps.items():
        if stage in results.reused_stages:
            sweep.plot(output / folder / f"{sweep.kind}_sweep.png")


def _sweeps(
    stages: StageRunner, base_model, rl_model, tokenizer, dataset, output: Path
) -> tuple[SweepResult, dict[str, SweepResult]]:
    """The replacement sweep, then the extrapolation sweep of each generator (on the replacement's references)."""
    from ..sweeps import extrapolation_sweep, replacement_sweep

    config = stages.config
    common = dict(
        base_model=base_model,
        rl_model=rl_model,
        tokenizer=tokenizer,
        dataset=dataset,
        num_samples=config.sweep_samples,
        seed=config.seed,
        batch_size=config.eval_batch_size,
        block_size=config.block_size,
        generation_config=_generation_config(config, config.top_p),
    )
    inputs = stages.inputs(SWEEP_FIELDS, "train/none", replacement_taus=config.replacement_taus)
    saved = stages.run(
        REPLACEMENT_STAGE,
        inputs,
        lambda: replacement_sweep(
            selections=tuple(config.replacement_taus),
            taus=config.replacement_taus,
            record_swaps=True,
            output_dir=output / "replacement",
            **common,
        ).to_dict(),
        files=(output / "replacement",),
        resumable=True,  # its finished cells survive an interruption (`hf_dlp.sweeps.cells`)
    )
    replacement, extrapolation = SweepResult.from_dict(saved), {}
    for generator in GENERATOR_ROLES:
        taus = config.taus_for(generator)
        # The two models alone were evaluated by the replacement sweep, on the same problems and sampling.
        inputs = stages.inputs(
            SWEEP_FIELDS,
            "train/none",
            REPLACEMENT_STAGE,
            generator=generator,
            gammas=config.extrapolation_gammas,
            taus=taus,
        )
        saved = stages.run(
            _extrapolation_stage(generator),
            inputs,
            lambda generator=generator, taus=taus: extrapolation_sweep(
                gammas=config.extrapolation_gammas,
                taus=taus,
                generator=generator,
                references=replacement.references,
                output_dir=output / f"extrapolation_{generator}",
                **common,
            ).to_dict(),
            files=(output / f"extrapolation_{generator}",),
            resumable=True,
        )
        extrapolation[generator] = SweepResult.from_dict(saved)
    return replacement, extrapolation


def model_folder(output: Path, method: str, seed_index: int) -> Path:
    """Where a trained model goes: `models/<method>` for the first seed, `models/<method>-seed<k>` for the others."""
    return output / "models" / (method if seed_index == 0 else f"{method}-seed{seed_index}")


def _train_all(stages: StageRunner, base_path: str, tokenizer, output: Path) -> TrainingHistory:
    """Train every method with every seed; return the logged steps, keyed like the evaluation (`low_prob`,
    `low_prob-seed1`, ...)."""
    from .training import train_rl_model

    config = stages.config
    if config.rl_model is not None:  # a given pair: nothing to train, the RL model is the stages' upstream
        stages.fingerprints["train/none"] = fingerprint({"rl_model": config.rl_model, "dtype": config.dtype})
        return TrainingHistory()
    # Enough problems that no run sees one twice (4000 at least: the toy default); the same problems for every run.
    num_problems = max(4000, config.train_steps * config.prompts_per_step)
    train_dataset = _load_dataset(config, config.train_dataset, num_examples=num_problems, seed=config.seed + 17,
                                  split="train")  # fmt: skip
    jobs = []
    for seed_index, seed in enumerate(config.training_seeds):
        for method in config.methods:
            directory = model_folder(output, method, seed_index)
            inputs = stages.inputs(TRAIN_FIELDS, method=method, base_model=base_path, training_seed=seed)
            # train_rl_model itself is the job (module-level, so a worker process can run it); a bar per run when
            # the runs are in this process.
            args = (config, method, seed, base_path, tokenizer, train_dataset, directory)
            jobs.append(StageJob(f"train/{directory.name}", inputs, train_rl_model, args,
                                 kwargs={"progress": config.workers == 1}, files=(directory,)))  # fmt: skip
    values = stages.run_jobs(jobs, workers=config.workers, description="2. training", unit="run",
                             show_bar=config.workers > 1)  # fmt: skip
    return TrainingHistory({job.name.removeprefix("train/"): values[job.name] for job in jobs})


def _model_paths(config: DemoConfig, base_path: str, output: Path) -> dict[str, str]:
    """Where the base model and every trained (or given) RL model are, keyed by name."""
    if config.rl_model is not None:
        return {"base": base_path, "none": config.rl_model}
    paths = {"base": base_path}
    for seed_index in range(config.seeds):
        for method in config.methods:
            folder = model_folder(output, method, seed_index)
            paths[folder.name] = str(folder)
    return paths


def run_demo(config: DemoConfig, *, overwrite: bool = False) -> DemoResults:
    """Run every stage, write `results.json`, the figures and `report.md` into `config.output_dir`; return the
    results (`DemoResults`, which `DemoResults.load(config.output_dir)` reads back).

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

    if config.workers > 1 and (_device() != "cpu" or num_processes() > 1):
        raise ValueError(
            f"`workers` ({config.workers}) shares this machine's CPU cores between processes; on a GPU or under "
            "`accelerate launch` (which already runs one process per device), pass `workers=1`."
        )
    if _device() == "cpu":
        # Before any torch operation: the same kernels, and so the README's numbers, on any x86-64 CPU with AVX2.
        if not pin_cpu_kernels():
            logger.warning(f"CPU kernels not pinned ({cpu_kernels()}); numbers may differ from the README's.")
    output = Path(config.output_dir)
    run_inputs = {**{k: v for k, v in config.to_dict().items() if k not in RUN_LOCAL_FIELDS},
                  "hf_dlp_version": __version__}  # fmt: skip
    stages = StageRunner(StageRecords(output, run_inputs, overwrite=overwrite), config)
    for stale in (output / "report.md", output / RESULTS_FILE):
        if is_main_process():
            stale.unlink(missing_ok=True)  # written again, last, so they never describe another run's stages
    run_environment = environment()
    torch.manual_seed(config.seed)

    start = time.perf_counter()
    base_path = _base_model_path(config)
    base_model = load_causal_lm(base_path, dtype=config.dtype, device=_device())
    tokenizer = load_tokenizer(base_path)
    stages.seconds["1. base model"] = time.perf_counter() - start

    training = _train_all(stages, base_path, tokenizer, output)
    if training.runs and is_main_process():
        # A moving average over 10 logged steps, fewer for short runs (16 steps: 3).
        window = max(1, min(10, config.train_steps // 5))
        plot_training_curves(training, output / "training_curves.png", window=window)

    model_paths = _model_paths(config, base_path, output)
    eval_dataset = _load_dataset(config, config.eval_dataset, num_examples=config.eval_problems,
                                 seed=config.seed + 1234, split=config.eval_split)  # fmt: skip
    evaluation = _evaluate_all(stages, model_paths, tokenizer, eval_dataset)
    rl_model = load_causal_lm(model_paths["none"], dtype=config.dtype, device=_device())
    rows = eval_dataset.select(range(min(config.analysis_prompts, len(eval_dataset))))
    analysis = stages.run(
        "4. analysis",
        stages.inputs(ANALYSIS_FIELDS, "train/none"),
        lambda: _analysis(base_model, rl_model, tokenizer, rows, config, output / "analysis").to_dict(),
        files=(output / "analysis",),
    )
    sweep_dataset = eval_dataset.select(range(min(config.sweep_problems, len(eval_dataset))))
    replacement, extrapolation = _sweeps(stages, base_model, rl_model, tokenizer, sweep_dataset, output)
    results = DemoResults(
        config=config,
        device=_device(),
        base_model=base_path,
        evaluation=evaluation,
        analysis=DemoAnalysis.from_dict(analysis),
        replacement=replacement,
        extrapolation=extrapolation,
        training=training,
        environment=run_environment,
        stage_seconds=stages.seconds,
        reused_stages=stages.reused,
        run_fingerprint=stages.records.run_fingerprint,
    )
    if is_main_process():
        _analysis_page(output, results.analysis, results.replacement)
        _redraw_reused_sweeps(output, results)
        results.save(output)
        path = write_report(results, output)
        logger.info("Report: %s", path)
        _log_expected(output, config.preset)
    stages.records.finish_run()
    return results
