"""`hf-dlp train --config recipe.yaml`: reweighted GRPO from a recipe (the fields of `examples/train_grpo_reweighted.py`).

A recipe sets three groups of fields, as TRL's scripts do: `TrainScriptArguments` (data, rewards, evaluation),
`ReweightedGRPOConfig` (training) and TRL's `ModelConfig` (model and LoRA). Command-line flags after the config
override it (`--set FIELD VALUE`). With no `model_name_or_path` it trains the offline toy base model on the toy arithmetic task.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NAME = "train"
HELP = "Train with ReweightedGRPOTrainer from a YAML recipe (`--config`), on the toy task or a Hub model and dataset."


@dataclass
class TrainScriptArguments:
    """Data, rewards and evaluation of a reweighted GRPO run (the model and LoRA fields come from TRL's `ModelConfig`).

    Examples:

    >>> TrainScriptArguments(dataset_name="toy", reward_funcs=["accuracy_pm1"]).toy_level
    'easy'
    """

    dataset_name: str = field(
        default="toy",
        metadata={"help": "Hub dataset id, a local dataset folder, or 'toy' for the offline arithmetic task."},
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Dataset configuration name."})
    dataset_train_split: str = field(default="train", metadata={"help": "Split to train on."})
    prompt_column: str = field(default="prompt", metadata={"help": "Column holding the prompt (text or messages)."})
    answer_column: str = field(
        default="answer",
        metadata={"help": "Column holding the ground truth; a dotted path such as 'reward_model.ground_truth' works."},
    )
    prompt_suffix: str | None = field(
        default=None,
        metadata={"help": "Text appended to every prompt, e.g. an instruction to put the answer in \\boxed{}."},
    )
    as_chat: bool = field(
        default=False, metadata={"help": "Wrap text prompts into a user message so the chat template is applied."}
    )
    reward_funcs: list[str] = field(
        default_factory=lambda: ["accuracy_pm1"],
        metadata={"help": "Reward functions from hf_dlp.rewards: accuracy, accuracy_pm1 (DAPO's +-1), format."},
    )
    overlong_buffer: int = field(
        default=0,
        metadata={
            "help": "If > 0, add TRL's soft overlong punishment (DAPO) with this buffer, ending at "
            "max_completion_length (the paper: 4096)."
        },
    )
    toy_level: str = field(default="easy", metadata={"help": "Toy task level (easy, medium, hard)."})
    toy_num_examples: int = field(default=256, metadata={"help": "Number of toy training problems."})
    eval_num_problems: int = field(
        default=0, metadata={"help": "If > 0, evaluate on this many held-out problems after training (toy task only)."}
    )
    eval_num_samples: int = field(default=4, metadata={"help": "Samples per problem for Avg@k / Pass@k."})


def make_parser():
    """TRL's parser over the three argument groups (it adds `--config` for YAML recipes).

    Examples:

    >>> script_args, config, model_args = make_parser().parse_args_and_config(
    ...     ["--output_dir", "out", "--reweighting", "dominate", "--reward_funcs", "accuracy", "format", "--use_cpu", "true"])
    >>> config.reweighting, script_args.reward_funcs, model_args.model_name_or_path is None
    ('dominate', ['accuracy', 'format'], True)
    """
    from trl import ModelConfig, TrlParser

    from hf_dlp.grpo_config import ReweightedGRPOConfig

    return TrlParser((TrainScriptArguments, ReweightedGRPOConfig, ModelConfig))


def _get_path(row: dict[str, Any], dotted: str) -> Any:
    value: Any = row
    for part in dotted.split("."):
        value = value[part]
    return value


def load_train_dataset(script_args: TrainScriptArguments, seed: int = 0):
    """The training set with `prompt` and `answer` columns (`answer` from `answer_column`).

    Examples:

    >>> data = load_train_dataset(TrainScriptArguments(toy_num_examples=3, as_chat=True, prompt_suffix=" Box it."))
    >>> data.num_rows, data[0]["prompt"][0]["role"], data[0]["prompt"][0]["content"].endswith("Box it.")
    (3, 'user', True)
    """
    from datasets import load_dataset, load_from_disk

    from hf_dlp.toy import make_arithmetic_dataset

    if script_args.dataset_name == "toy":
        dataset = make_arithmetic_dataset(
            level=script_args.toy_level, num_examples=script_args.toy_num_examples, seed=seed
        )
    elif Path(script_args.dataset_name).is_dir():
        dataset = load_from_disk(script_args.dataset_name)
    else:
        dataset = load_dataset(
            script_args.dataset_name, script_args.dataset_config, split=script_args.dataset_train_split
        )
    for column in (script_args.prompt_column, script_args.answer_column.split(".")[0]):
        if column not in dataset.column_names:
            raise ValueError(
                f"Column {column!r} is not in the dataset ({dataset.column_names}); set the matching option."
            )

    def convert(row):
        prompt = row[script_args.prompt_column]
        suffix = script_args.prompt_suffix or ""
        if isinstance(prompt, str):
            prompt = prompt + suffix
            if script_args.as_chat:
                prompt = [{"role": "user", "content": prompt}]
        elif suffix:
            prompt = [*prompt[:-1], {**prompt[-1], "content": prompt[-1]["content"] + suffix}]
        return {"prompt": prompt, "answer": str(_get_path(row, script_args.answer_column))}

    return dataset.map(convert)


def build_reward_funcs(script_args: TrainScriptArguments, max_completion_length: int) -> list:
    """Reward functions by name from `hf_dlp.rewards`, plus TRL's soft overlong punishment when asked for.

    Examples:

    >>> rewards = build_reward_funcs(TrainScriptArguments(overlong_buffer=4), max_completion_length=16)
    >>> [reward.__name__ for reward in rewards]
    ['accuracy_reward_pm1', 'soft_overlong_punishment_reward']
    >>> rewards[1](completion_ids=[[1] * 10, [1] * 14])  # the last 4 of 16 tokens are penalised linearly
    [0.0, -0.5]
    """
    from trl.rewards import get_soft_overlong_punishment

    from hf_dlp.rewards import get_reward_function

    rewards = [get_reward_function(name) for name in script_args.reward_funcs]
    if script_args.overlong_buffer > 0:
        if script_args.overlong_buffer >= max_completion_length:
            raise ValueError(
                f"`overlong_buffer` ({script_args.overlong_buffer}) must be smaller than `max_completion_length` "
                f"({max_completion_length})."
            )
        rewards.append(get_soft_overlong_punishment(max_completion_length, script_args.overlong_buffer))
    return rewards


def _model_and_tokenizer(model_args):
    from transformers import AutoTokenizer

    from hf_dlp.toy import load_char_tokenizer, make_toy_base_model
    from hf_dlp.toy.base_model import SETTINGS_FILE

    path = model_args.model_name_or_path or str(make_toy_base_model(progress=False))
    if (Path(path) / SETTINGS_FILE).exists():  # toy folders need the char tokenizer (AutoTokenizer drops spaces)
        return path, load_char_tokenizer(path)
    tokenizer = AutoTokenizer.from_pretrained(path, revision=model_args.model_revision, padding_side="left")
    return path, tokenizer


def run_training(script_args: TrainScriptArguments, training_args, model_args):
    """Train, save (with the model card), optionally evaluate and push; returns the trainer.

    Examples:

    >>> import contextlib, io, tempfile
    >>> from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm
    >>> model_dir, out = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> flags = ["--model_name_or_path", model_dir, "--output_dir", out, "--max_steps", "1", "--toy_num_examples", "4",
    ...          "--per_device_train_batch_size", "4", "--num_generations", "4", "--max_completion_length", "8",
    ...          "--use_cpu", "true", "--bf16", "false", "--report_to", "none", "--disable_tqdm", "true"]
    >>> with contextlib.redirect_stdout(io.StringIO()):  # DeepSpeed, when installed, prints a line on first use
    ...     build_tiny_causal_lm(size="nano").save_pretrained(model_dir)
    ...     _ = build_char_tokenizer().save_pretrained(model_dir)
    ...     trainer = run_training(*make_parser().parse_args_and_config(flags))
    >>> trainer.state.global_step, sorted(p.name for p in Path(out).glob("*.md"))
    (1, ['README.md'])
    """
    from trl import get_peft_config

    from hf_dlp.grpo_trainer import ReweightedGRPOTrainer

    model_path, tokenizer = _model_and_tokenizer(model_args)
    if training_args.model_init_kwargs is None and model_args.dtype not in (None, "auto"):
        training_args.model_init_kwargs = {"dtype": model_args.dtype}
    trainer = ReweightedGRPOTrainer(
        model_path,  # a path, so that TRL can also build the reference model when beta > 0
        build_reward_funcs(script_args, training_args.max_completion_length),
        args=training_args,
        train_dataset=load_train_dataset(script_args, seed=training_args.seed),
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
    )
    trainer.model_card_dataset = None if script_args.dataset_name == "toy" else script_args.dataset_name
    trainer.train()
    if script_args.eval_num_problems > 0:
        trainer.model_card_evaluation = _evaluate(trainer, script_args, tokenizer)
    trainer.save_model(training_args.output_dir)
    trainer.create_model_card()
    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name=trainer.model_card_dataset)
    return trainer


def _evaluate(trainer, script_args: TrainScriptArguments, tokenizer):
    from hf_dlp.evaluation import evaluate_model
    from hf_dlp.toy import make_arithmetic_dataset

    if script_args.dataset_name != "toy":
        raise ValueError(
            "`eval_num_problems` evaluates on the toy task only; set `dataset_name: toy` or leave it at 0."
        )
    held_out = make_arithmetic_dataset(
        level=script_args.toy_level, num_examples=script_args.eval_num_problems, seed=10_000
    )
    model = trainer.accelerator.unwrap_model(trainer.model)
    result = evaluate_model(
        model,
        tokenizer,
        held_out,
        num_samples=script_args.eval_num_samples,
        max_new_tokens=trainer.args.max_completion_length,
        progress=False,
    )
    return {f"toy-{script_args.toy_level}": result}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML recipe (see examples/toy_recipe.yaml).")
    parser.add_argument(
        "--set",
        nargs=2,
        action="append",
        default=[],
        metavar=("FIELD", "VALUE"),
        help="Override one recipe field (repeatable), e.g. `--set max_steps 5 --set reweighting dominate`.",
    )


def run(args: argparse.Namespace) -> int:
    overrides = [item for name, value in args.set for item in (f"--{name}", value)]
    script_args, training_args, model_args = make_parser().parse_args_and_config(["--config", args.config, *overrides])
    trainer = run_training(script_args, training_args, model_args)
    print(training_args.output_dir)
    last = next((log for log in reversed(trainer.state.log_history) if "train_loss" in log), {})
    print(f"train_loss={last.get('train_loss')}")
    return 0
