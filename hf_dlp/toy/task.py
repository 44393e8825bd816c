"""A verifiable synthetic task: arithmetic word problems with `\\boxed{}` answers, as in the paper's math setting."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

from ..arguments import check_choice, check_number

if TYPE_CHECKING:
    from datasets import Dataset

TaskLevel = Literal["easy", "medium", "hard"]
TASK_LEVELS: tuple[str, ...] = get_args(TaskLevel)
PromptForm = Literal["plain", "chat"]
PROMPT_FORMS: tuple[str, ...] = get_args(PromptForm)

_TEMPLATES = (
    "What is {expr}?",
    "Compute {expr}.",
    "Find {expr}.",
)


@dataclass(frozen=True)
class ToyTaskConfig:
    """Settings of `make_arithmetic_dataset`.

    Args:
        level (`str`, *optional*, defaults to `"easy"`):
            - `"easy"`: one addition or subtraction of a number below 20 and a digit;
            - `"medium"`: one addition or subtraction of two numbers of up to three digits;
            - `"hard"`: a short multi-step expression `a ± b ± c` of two-digit numbers, solved step by step.
        num_examples (`int`, *optional*, defaults to `256`):
            Number of problems.
        prompt_form (`str`, *optional*, defaults to `"plain"`):
            `"plain"` gives a string prompt `"Q: ...\\nA: "`; `"chat"` a list of chat messages for a chat template.
        seed (`int`, *optional*, defaults to `0`):
            Seed of the problem generator; the same config always gives the same dataset.

    Examples:

    >>> config = ToyTaskConfig(level="medium", num_examples=3)
    >>> make_arithmetic_dataset(config).num_rows
    3
    >>> ToyTaskConfig(level="expert")
    Traceback (most recent call last):
    ...
    ValueError: `level` must be one of ('easy', 'medium', 'hard'), got 'expert'.
    """

    level: TaskLevel = "easy"
    num_examples: int = 256
    prompt_form: PromptForm = "plain"
    seed: int = 0

    def __post_init__(self):
        check_choice("level", self.level, TASK_LEVELS)
        check_choice("prompt_form", self.prompt_form, PROMPT_FORMS)
        # Frozen: store the checked values as plain ints (numpy or tensor scalars are accepted).
        object.__setattr__(
            self, "num_examples", check_number("num_examples", self.num_examples, integer=True, minimum=1)
        )
        object.__setattr__(self, "seed", check_number("seed", self.seed, integer=True))


def _operands(level: str, rng: random.Random) -> list[tuple[str, int]]:
    if level == "easy":
        return [("+", rng.randrange(0, 20)), (rng.choice("+-"), rng.randrange(0, 10))]
    if level == "medium":
        return [("+", rng.randrange(10, 1000)), (rng.choice("+-"), rng.randrange(10, 1000))]
    return [
        ("+", rng.randrange(10, 100)),
        (rng.choice("+-"), rng.randrange(10, 100)),
        (rng.choice("+-"), rng.randrange(1, 100)),
    ]


def _expression(operands: list[tuple[str, int]]) -> str:
    first, *rest = operands
    return " ".join([str(first[1])] + [f"{op} {value}" for op, value in rest])


def solve_steps(operands: list[tuple[str, int]]) -> tuple[list[str], int]:
    """Left-to-right evaluation with one worked step per operator: `(["12 + 7 = 19", "19 - 5 = 14"], 14)`."""
    total = operands[0][1]
    steps = []
    for op, value in operands[1:]:
        new_total = total + value if op == "+" else total - value
        steps.append(f"{total} {op} {value} = {new_total}")
        total = new_total
    return steps, total


def format_solution(steps: list[str], answer: int | str) -> str:
    """The canonical worked answer: the steps, then the final answer in `\\boxed{}`."""
    return ", ".join(steps) + f". The answer is \\boxed{{{answer}}}."


def plain_prompt(question: str) -> str:
    return f"Q: {question}\nA: "


def make_arithmetic_dataset(config: ToyTaskConfig | None = None, **kwargs) -> Dataset:
    """Make the toy arithmetic dataset.

    Columns: `prompt` (a string or a list of chat messages, per `prompt_form`), `question`, `answer` (the ground
    truth as a string), `solution` (a correct worked answer ending in `\\boxed{answer}`), `level`.

    Args:
        config (`ToyTaskConfig`, *optional*):
            The settings; keyword arguments build one instead (`make_arithmetic_dataset(level="hard")`).

    Examples:

    >>> from hf_dlp.toy import make_arithmetic_dataset
    >>> ds = make_arithmetic_dataset(level="hard", num_examples=3, seed=1)
    >>> sorted(ds.column_names)
    ['answer', 'level', 'prompt', 'question', 'solution']
    >>> row = ds[0]
    >>> row["solution"].endswith("\\\\boxed{" + row["answer"] + "}.")
    True
    >>> make_arithmetic_dataset(num_examples=1, prompt_form="chat")[0]["prompt"][0]["role"]
    'user'
    """
    from datasets import Dataset

    if config is None:
        config = ToyTaskConfig(**kwargs)
    elif kwargs:
        raise ValueError(f"Pass either `config` or keyword settings, not both (got {sorted(kwargs)}).")
    rng = random.Random(f"hf_dlp-toy-{config.level}-{config.seed}")
    rows: dict[str, list] = {"prompt": [], "question": [], "answer": [], "solution": [], "level": []}
    for _ in range(config.num_examples):
        operands = _operands(config.level, rng)
        steps, answer = solve_steps(operands)
        question = rng.choice(_TEMPLATES).format(expr=_expression(operands))
        if config.prompt_form == "plain":
            prompt = plain_prompt(question)
        else:
            prompt = [{"role": "user", "content": question}]
        rows["prompt"].append(prompt)
        rows["question"].append(question)
        rows["answer"].append(str(answer))
        rows["solution"].append(format_solution(steps, answer))
        rows["level"].append(config.level)
    return Dataset.from_dict(rows)
