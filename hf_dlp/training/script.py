"""The training script behind `hf-dlp train` and `examples/train_grpo_reweighted.py`: a recipe in, a trained, saved
and documented model out.

A recipe sets three groups of fields, as TRL's scripts do: `TrainScriptArguments` (data, rewards, evaluation),
`ReweightedGRPOConfig` (training) and TRL's `ModelConfig` (model and LoRA). Each group validates its own fields when
it is built; `run_training` then checks how they fit together, the output folder and the checkpoint to resume from,
and loads the data (columns checked, enough rows for a step) and the rewards, all before the model loads. After
`train()` the weights are saved first, so nothing that runs later (evaluation, model card, upload) can lose them.

    python -m hf_dlp.training.script --config examples/toy_recipe.yaml [--FIELD VALUE ...]

With no `model_name_or_path` it trains the offline toy base model on the toy arithmetic task.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..arguments import check_choice, check_number, check_output_dir, check_sequence
from ..toy.task import TASK_LEVELS, TaskLevel
from .config import check_enough_prompts

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase
    from trl import ModelConfig, TrlParser

    from ..evaluation import EvaluationResult
    from .config import ReweightedGRPOConfig
    from .trainer import ReweightedGRPOTrainer

TOY_DATASET = "toy"
"""`dataset_name` of the offline arithmetic task (`"toy:LEVEL"` also works)."""

TOY_EVAL_SEED = 10_000
"""Seed of the held-out toy problems (the training problems use the run's `seed`)."""

_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0", "none", "")


@dataclass
class TrainScriptArguments:
    """Data, rewards and evaluation of a reweighted GRPO run (the model and LoRA fields come from TRL's `ModelConfig`).

    Every field is checked when the object is built (so a bad recipe fails at parse time): reward names must exist,
    counts must be whole numbers in range, and the held-out evaluation (`eval_num_problems > 0`) needs the toy task.

    Examples:

    >>> TrainScriptArguments(dataset_name="toy", reward_funcs=["accuracy_pm1"]).toy_level
    'easy'
    >>> TrainScriptArguments(dataset_name="open-r1/DAPO-Math-17k-Processed", eval_num_problems=16)
    Traceback (most recent call last):
    ...
    ValueError: `eval_num_problems` (16) evaluates on held-out toy problems, so it needs `dataset_name: toy`, got 'open-r1/DAPO-Math-17k-Processed'. Leave it at 0 for other datasets.
    """

    dataset_name: str = field(
        default=TOY_DATASET,
        metadata={"help": "Hub dataset id, a local dataset folder or file, or 'toy' for the offline arithmetic task."},
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
    toy_level: TaskLevel = field(default="easy", metadata={"help": "Toy task level (easy, medium, hard)."})
    toy_num_examples: int = field(default=256, metadata={"help": "Number of toy training problems."})
    eval_num_problems: int = field(
        default=0, metadata={"help": "If > 0, evaluate on this many held-out problems after training (toy task only)."}
    )
    eval_num_samples: int = field(default=4, metadata={"help": "Samples per problem for Avg@k / Pass@k."})

    def __post_init__(self):
        from ..rewards import get_reward_function

        for name in ("dataset_name", "dataset_train_split", "prompt_column", "answer_column"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"`{name}` must be a non-empty string, got {value!r}.")
        self.reward_funcs = check_sequence("reward_funcs", self.reward_funcs, items="reward function names")
        for name in self.reward_funcs:
            get_reward_function(name)  # unknown names fail here, listing the known ones
        self.overlong_buffer = check_number("overlong_buffer", self.overlong_buffer, integer=True, minimum=0)
        check_choice("toy_level", self.toy_level, TASK_LEVELS)
        self.toy_num_examples = check_number("toy_num_examples", self.toy_num_examples, integer=True, minimum=1)
        self.eval_num_problems = check_number(
            "eval_num_problems", self.eval_num_problems, integer=True, minimum=0, hint="0 turns evaluation off."
        )
        self.eval_num_samples = check_number("eval_num_samples", self.eval_num_samples, integer=True, minimum=1)
        if self.eval_num_problems > 0 and not self.is_toy:
            raise ValueError(
                f"`eval_num_problems` ({self.eval_num_problems}) evaluates on held-out toy problems, so it needs "
                f"`dataset_name: toy`, got {self.dataset_name!r}. Leave it at 0 for other datasets."
            )

    @property
    def is_toy(self) -> bool:
        """Whether the run trains on the offline toy task."""
        return self.dataset_name == TOY_DATASET or self.dataset_name.startswith(f"{TOY_DATASET}:")

    @property
    def toy_task_level(self) -> str:
        """The toy level: the one in `dataset_name` (`"toy:hard"`) or else `toy_level`."""
        return self.dataset_name.partition(":")[2] or self.toy_level


def make_parser() -> TrlParser:
    """TRL's parser over the three argument groups (it adds `--config` for YAML recipes).

    Examples:

    >>> script_args, config, model_args = make_parser().parse_args_and_config(
    ...     ["--output_dir", "out", "--reweighting", "dominate", "--reward_funcs", "accuracy", "format", "--use_cpu", "true"])
    >>> config.reweighting, script_args.reward_funcs, model_args.model_name_or_path is None
    ('dominate', ['accuracy', 'format'], True)
    """
    from trl import ModelConfig, TrlParser

    from .config import ReweightedGRPOConfig

    return TrlParser((TrainScriptArguments, ReweightedGRPOConfig, ModelConfig))


def resolve_checkpoint(output_dir: str | Path, resume_from_checkpoint: str | bool | None) -> str | None:
    """The checkpoint to resume from, or `None` to train from step 0; refuses to silently overwrite checkpoints.

    `resume_from_checkpoint` may be `True` (or `"true"`, as a recipe or flag gives it): the last `checkpoint-*` folder
    of `output_dir`; a path to a checkpoint folder; or `None`/`False`, in which case `output_dir` must not hold
    checkpoints already (training from step 0 would overwrite them).

    Examples:

    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp())
    >>> resolve_checkpoint(out, None) is None
    True
    >>> (out / "checkpoint-2").mkdir()
    >>> Path(resolve_checkpoint(out, "true")).name
    'checkpoint-2'
    >>> resolve_checkpoint(out, None)
    Traceback (most recent call last):
    ...
    ValueError: `output_dir` (...) already holds checkpoints (the last is checkpoint-2); training from step 0 would overwrite them. Set `resume_from_checkpoint: true` to continue from checkpoint-2, or choose a new `output_dir` (or delete its checkpoints to start over).
    """
    from transformers.trainer_utils import get_last_checkpoint

    value = resume_from_checkpoint
    if isinstance(value, str) and not Path(value).expanduser().exists() and value.strip().lower() in _TRUE + _FALSE:
        value = value.strip().lower() in _TRUE
    last = get_last_checkpoint(str(output_dir)) if Path(output_dir).is_dir() else None
    if value is None or value is False:
        if last is not None:
            name = Path(last).name
            raise ValueError(
                f"`output_dir` ({str(output_dir)!r}) already holds checkpoints (the last is {name}); training from "
                f"step 0 would overwrite them. Set `resume_from_checkpoint: true` to continue from {name}, or choose "
                "a new `output_dir` (or delete its checkpoints to start over)."
            )
        return None
    if value is True:
        if last is None:
            raise ValueError(
                f"`resume_from_checkpoint` is true, but `output_dir` ({str(output_dir)!r}) holds no checkpoint-* "
                "folder to resume from. Give a checkpoint folder, or leave `resume_from_checkpoint` unset to start "
                "from step 0."
            )
        return last
    path = Path(value).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"`resume_from_checkpoint`: the checkpoint folder {str(value)!r} does not exist. Give an existing "
            "checkpoint-* folder, or `true` for the last one in `output_dir`."
        )
    return str(path)


def _nested(row: dict[str, Any], dotted: str) -> Any:
    value: Any = row
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise ValueError(f"`answer_column` {dotted!r}: a row has no {part!r} in {value!r:.200}.")
        value = value[part]
    return value


def load_train_dataset(script_args: TrainScriptArguments, seed: int = 0) -> Dataset:
    """The training set with `prompt` and `answer` columns (`answer` from `answer_column`), through the one loader
    `hf_dlp.loading.load_dataset_spec`: missing columns and empty data sets are refused before any work.

    Examples:

    >>> data = load_train_dataset(TrainScriptArguments(toy_num_examples=3, as_chat=True, prompt_suffix=" Box it."))
    >>> data.num_rows, data[0]["prompt"][0]["role"], data[0]["prompt"][0]["content"].endswith("Box it.")
    (3, 'user', True)
    """
    from ..loading import load_dataset_spec

    options = {"name": script_args.dataset_config} if script_args.dataset_config else {}
    dataset = load_dataset_spec(
        script_args.dataset_name,
        split=script_args.dataset_train_split,
        level=script_args.toy_task_level,
        num_examples=script_args.toy_num_examples,
        seed=seed,
        required_columns=(script_args.prompt_column, script_args.answer_column.split(".")[0]),
        **options,
    )
    _nested(dataset[0], script_args.answer_column)  # a wrong dotted path fails now, not inside `map`
    suffix = script_args.prompt_suffix or ""

    def convert(row: dict[str, Any]) -> dict[str, Any]:
        prompt = row[script_args.prompt_column]
        if isinstance(prompt, str):
            prompt = prompt + suffix
            if script_args.as_chat:
                prompt = [{"role": "user", "content": prompt}]
        elif suffix:
            prompt = [*prompt[:-1], {**prompt[-1], "content": prompt[-1]["content"] + suffix}]
        return {"prompt": prompt, "answer": str(_nested(row, script_args.answer_column))}

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

    from ..rewards import get_reward_function

    rewards = [get_reward_function(name) for name in script_args.reward_funcs]
    if script_args.overlong_buffer > 0:
        if script_args.overlong_buffer >= max_completion_length:
            raise ValueError(
                f"`overlong_buffer` ({script_args.overlong_buffer}) must be smaller than `max_completion_length` "
                f"({max_completion_length})."
            )
        rewards.append(get_soft_overlong_punishment(max_completion_length, script_args.overlong_buffer))
    return rewards


def resolve_model(model_args: ModelConfig) -> tuple[str, PreTrainedTokenizerBase]:
    """The policy's path or Hub id (the toy base model when unset) and its tokenizer, via `hf_dlp.loading`.

    The model itself is loaded by the trainer from this path, so that TRL can also build the reference model.
    """
    from ..loading import check_model_source, load_tokenizer
    from ..toy import make_toy_base_model

    if model_args.model_name_or_path is not None:
        path = check_model_source(model_args.model_name_or_path, argument="model_name_or_path")
    else:
        path = str(make_toy_base_model(progress=False))
    revision = model_args.model_revision
    return path, load_tokenizer(path, **({} if revision in (None, "main") else {"revision": revision}))


def _set_model_init_kwargs(training_args: ReweightedGRPOConfig, model_args: ModelConfig) -> None:
    """Pass `ModelConfig`'s loading fields to TRL, as TRL's own scripts do (explicit `model_init_kwargs` win)."""
    kwargs = {
        "revision": model_args.model_revision,
        "trust_remote_code": training_args.trust_remote_code,
        "attn_implementation": model_args.attn_implementation,
        "dtype": model_args.dtype,
    }
    training_args.model_init_kwargs = {**kwargs, **(training_args.model_init_kwargs or {})}


def check_run(
    script_args: TrainScriptArguments, training_args: ReweightedGRPOConfig, model_args: ModelConfig
) -> str | None:
    """Everything about a run that can be checked without data or weights; returns the checkpoint to resume from.

    Checks the model source (a missing local path says so), the output folder (made, writable) and the checkpoint
    (`resolve_checkpoint`), and stores the resolved checkpoint back in `training_args.resume_from_checkpoint`.
    """
    from ..loading import check_model_source

    if model_args.model_name_or_path is not None:
        check_model_source(model_args.model_name_or_path, argument="model_name_or_path")
    check_output_dir("output_dir", training_args.output_dir)
    checkpoint = resolve_checkpoint(training_args.output_dir, training_args.resume_from_checkpoint)
    training_args.resume_from_checkpoint = checkpoint
    return checkpoint


def run_training(
    script_args: TrainScriptArguments, training_args: ReweightedGRPOConfig, model_args: ModelConfig
) -> ReweightedGRPOTrainer:
    """Check, load, train, save (weights first), then evaluate, write the model card and push; returns the trainer.

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
    from trl import get_peft_config, get_quantization_config

    from .trainer import ReweightedGRPOTrainer

    checkpoint = check_run(script_args, training_args, model_args)
    peft_config, quantization_config = get_peft_config(model_args), get_quantization_config(model_args)
    train_dataset = load_train_dataset(script_args, seed=training_args.seed)
    check_enough_prompts(train_dataset, training_args)
    reward_funcs = build_reward_funcs(script_args, training_args.max_completion_length)
    model_path, tokenizer = resolve_model(model_args)
    _set_model_init_kwargs(training_args, model_args)
    trainer = ReweightedGRPOTrainer(
        model_path,  # a path, so that TRL can also build the reference model when beta > 0
        reward_funcs,
        args=training_args,
        train_dataset=train_dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        quantization_config=quantization_config,
    )
    trainer.model_card_dataset = None if script_args.is_toy else script_args.dataset_name
    trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model(training_args.output_dir)  # first: nothing below can lose the trained weights
    if script_args.eval_num_problems > 0:
        trainer.model_card_evaluation = evaluate_on_toy_task(trainer, script_args, tokenizer)
    trainer.create_model_card()
    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name=trainer.model_card_dataset)
    return trainer


def evaluate_on_toy_task(
    trainer: ReweightedGRPOTrainer, script_args: TrainScriptArguments, tokenizer: PreTrainedTokenizerBase
) -> dict[str, EvaluationResult]:
    """Avg@k / Pass@k of the trained policy on `eval_num_problems` held-out toy problems, keyed for the model card."""
    from ..evaluation import evaluate_model
    from ..loading import load_dataset_spec

    level = script_args.toy_task_level
    held_out = load_dataset_spec(
        TOY_DATASET, level=level, num_examples=script_args.eval_num_problems, seed=TOY_EVAL_SEED
    )
    result = evaluate_model(
        trainer.accelerator.unwrap_model(trainer.model),
        tokenizer,
        held_out,
        num_samples=script_args.eval_num_samples,
        max_new_tokens=trainer.args.max_completion_length,
        progress=False,
    )
    return {f"toy-{level}": result}


def main(argv: list[str] | None = None) -> ReweightedGRPOTrainer:
    """Parse a recipe and flags (`--config recipe.yaml --FIELD VALUE ...`) and run the training."""
    return run_training(*make_parser().parse_args_and_config(argv))


__all__ = [
    "TOY_DATASET",
    "TrainScriptArguments",
    "build_reward_funcs",
    "check_enough_prompts",
    "check_run",
    "evaluate_on_toy_task",
    "load_train_dataset",
    "main",
    "make_parser",
    "resolve_checkpoint",
    "resolve_model",
    "run_training",
]


if __name__ == "__main__":
    main()
