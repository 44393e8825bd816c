"""The demo's RLVR training runs: `ReweightedGRPOTrainer` with the DAPO recipe, full or LoRA, one quiet bar a run."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import PrinterCallback, ProgressCallback, TrainerCallback

from .config import DemoConfig

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

# What the one-line summary under each training bar shows, when TRL logs it.
_SHOWN = {"reward": "reward", "reweight/weight_mean": "weight", "entropy": "entropy"}


class QuietTrainingCallback(TrainerCallback):
    """One progress bar per training run (step count, latest reward) in place of Trainer's bar and log prints;
    every log dict goes, one JSON line per step, to `log_file`.

    Examples:

    >>> import tempfile, pathlib
    >>> from types import SimpleNamespace
    >>> log = pathlib.Path(tempfile.mkdtemp()) / "train.jsonl"
    >>> callback = QuietTrainingCallback("train/none", log, progress=False)
    >>> state = SimpleNamespace(max_steps=2, global_step=1, is_world_process_zero=True)
    >>> callback.on_train_begin(None, state, None)
    >>> callback.on_log(None, state, None, logs={"reward": -0.5, "loss": 0.1})
    >>> callback.on_step_end(None, state, None); callback.on_train_end(None, state, None)
    >>> json.loads(log.read_text())["reward"]
    -0.5
    """

    def __init__(self, description: str, log_file: str | Path, *, progress: bool = True):
        self.description, self.log_file, self.progress = description, Path(log_file), progress
        self.bar = None

    def on_train_begin(self, args, state, control, **kwargs):
        from tqdm.auto import tqdm

        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.write_text("")
        disable = not (self.progress and state.is_world_process_zero)
        self.bar = tqdm(total=state.max_steps, desc=self.description, unit="step", disable=disable)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        with self.log_file.open("a") as handle:
            handle.write(json.dumps({"step": state.global_step, **logs}) + "\n")
        shown = {label: f"{logs[key]:.3g}" for key, label in _SHOWN.items() if isinstance(logs.get(key), int | float)}
        if self.bar is not None and shown:
            self.bar.set_postfix(shown, refresh=False)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()


def _lora_config(config: DemoConfig):
    if config.lora_rank is None:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=0.0, target_modules="all-linear",
        task_type="CAUSAL_LM",
    )  # fmt: skip


def grpo_arguments(config: DemoConfig, method: str, seed: int, directory: str | Path, *, cuda: bool = False):
    """The `ReweightedGRPOConfig` of one demo training run: the DAPO recipe (±1 reward, clip 0.2/0.28, token-level
    loss, no KL) with `method` as the reweighting, on the budget of `config`.

    Examples:

    >>> args = grpo_arguments(DemoConfig(), "low_prob", seed=0, directory="demo_output/models/low_prob")
    >>> args.reweighting, args.loss_type, args.epsilon_high, args.max_steps
    ('low_prob', 'dapo', 0.28, 150)
    """
    from ..training import ReweightedGRPOConfig

    return ReweightedGRPOConfig(
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
        seed=seed,
        use_cpu=not cuda,
        bf16=cuda and config.dtype == "bfloat16",
        gradient_checkpointing=False,  # small models: recomputation costs more than the memory it saves
        log_level="warning",
    )


def train_rl_model(
    config: DemoConfig,
    method: str,
    seed: int,
    base_path: str,
    tokenizer: PreTrainedTokenizerBase,
    train_dataset: Dataset,
    directory: Path,
    *,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Train one RLVR model with `ReweightedGRPOTrainer` (DAPO-style: ±1 reward, clip-higher, token-level loss) and
    save it (LoRA adapters merged) with its tokenizer into `directory`; return the logged steps that carry a reward.
    """
    import torch
    from transformers import AutoModelForCausalLM

    from ..rewards import signed_accuracy_reward
    from ..training import ReweightedGRPOTrainer

    args = grpo_arguments(config, method, seed, directory, cuda=torch.cuda.is_available())
    dtype = getattr(torch, config.dtype)
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=dtype)
    trainer = ReweightedGRPOTrainer(
        model=model,
        args=args,
        reward_funcs=[signed_accuracy_reward],
        train_dataset=train_dataset,
        processing_class=tokenizer,
        peft_config=_lora_config(config),
    )
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(QuietTrainingCallback(f"train/{method} (seed {seed})", directory / "train_log.jsonl",
                                               progress=progress))  # fmt: skip
    trainer.train()
    trained = trainer.accelerator.unwrap_model(trainer.model)
    if config.lora_rank is not None:
        trained = trained.merge_and_unload()
    if trainer.accelerator.is_main_process:
        trained.save_pretrained(str(directory))
        tokenizer.save_pretrained(str(directory))
        (directory / "log_history.json").write_text(json.dumps(trainer.state.log_history, indent=2))
    trainer.accelerator.wait_for_everyone()
    return [entry for entry in trainer.state.log_history if "reward" in entry]


__all__ = ["QuietTrainingCallback", "grpo_arguments", "train_rl_model"]
