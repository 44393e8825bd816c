"""Arithmetic word problems in natural language, in the chat format, for a real pretrained model (the SmolLM2 track).

The numbers come from the toy task's levels (`hf_dlp.toy.task`); the sentences are short GSM-style stories with one or
two steps, and the user message ends with the paper's instruction to reason step by step and box the final answer.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from ..arguments import check_choice, check_number
from .task import TASK_LEVELS, format_solution, solve_steps

if TYPE_CHECKING:
    from datasets import Dataset

BOXED_INSTRUCTION = "Put the final answer in \\boxed{}."
"""The instruction every problem ends with."""

WORKED_EXAMPLE = (
    "Sam has 4 pens. Then Sam buys 3 more. How many pens does Sam have now? " + BOXED_INSTRUCTION,
    "4 + 3 = 7. The answer is \\boxed{7}.",
)
"""The (question, answer) a one-shot prompt starts with (`shots=1`): a user turn and an assistant turn in the chat
form. Measured on SmolLM2-135M-Instruct (16 easy problems x 2 samples, 40 new tokens, top-p 0.7): 37.5% correct
with it; without it the model reasons at length and boxes almost nothing (0-3%)."""

_NAMES = ("Anna", "Ben", "Carla", "Dev", "Emma", "Farid", "Grace", "Hugo", "Iris", "Jonas", "Kemi", "Liam")
_THINGS = ("apples", "marbles", "stickers", "books", "coins", "pencils", "cards", "shells", "stamps", "cookies")
_GAIN = ("buys {n} more", "finds {n} more", "is given {n} more", "wins {n} more")
_LOSS = ("gives away {n}", "loses {n}", "sells {n}", "uses {n}")


def _story(rng: random.Random, operands: list[tuple[str, int]]) -> str:
    name, thing = rng.choice(_NAMES), rng.choice(_THINGS)
    sentences = [f"{name} has {operands[0][1]} {thing}."]
    for op, value in operands[1:]:
        verb = rng.choice(_GAIN if op == "+" else _LOSS).format(n=value)
        sentences.append(f"Then {name} {verb}.")
    sentences.append(f"How many {thing} does {name} have now?")
    return " ".join(sentences)


def _operands(level: str, rng: random.Random) -> list[tuple[str, int]]:
    """Non-negative running totals, so every story makes sense."""
    while True:
        if level == "easy":
            operands = [("+", rng.randrange(2, 20)), (rng.choice("+-"), rng.randrange(1, 10))]
        elif level == "medium":
            operands = [("+", rng.randrange(10, 100)), (rng.choice("+-"), rng.randrange(10, 100))]
        else:
            operands = [("+", rng.randrange(10, 100))] + [(rng.choice("+-"), rng.randrange(2, 50)) for _ in range(2)]
        total, ok = operands[0][1], True
        for op, value in operands[1:]:
            total = total + value if op == "+" else total - value
            ok = ok and total >= 0
        if ok:
            return operands


def make_word_problem_dataset(
    *, level: str = "easy", num_examples: int = 256, seed: int = 0, prompt_form: str = "chat", shots: int = 1
) -> Dataset:
    """Make arithmetic word problems: columns `prompt`, `question`, `answer`, `solution`, `level`.

    Args:
        level (`str`, *optional*, defaults to `"easy"`): `"easy"` (a number below 20 and a digit), `"medium"` (two
            two-digit numbers) or `"hard"` (three steps).
        num_examples (`int`, *optional*, defaults to `256`): number of problems.
        seed (`int`, *optional*, defaults to `0`): the same seed always gives the same problems.
        prompt_form (`str`, *optional*, defaults to `"chat"`): `"chat"` gives chat messages (for a chat template);
            `"plain"` one `"Q: ...\\nA: "` string.
        shots (`int`, *optional*, defaults to `1`): `1` starts with `WORKED_EXAMPLE` (so a 135M model answers in the
            boxed format often enough for RLVR to learn from its rewards), `0` gives the bare problem.

    Examples:

    >>> ds = make_word_problem_dataset(num_examples=2, seed=3)
    >>> [m["role"] for m in ds[0]["prompt"]], ds[0]["prompt"][-1]["content"].endswith(BOXED_INSTRUCTION)
    (['user', 'assistant', 'user'], True)
    >>> ds[0]["solution"].endswith("\\\\boxed{" + ds[0]["answer"] + "}.")
    True
    """
    from datasets import Dataset

    check_choice("level", level, TASK_LEVELS)
    check_choice("prompt_form", prompt_form, ("plain", "chat"))
    num_examples = check_number("num_examples", num_examples, integer=True, minimum=1)
    shots = check_number("shots", shots, integer=True, minimum=0, maximum=1)
    rng = random.Random(f"hf_dlp-words-{level}-{check_number('seed', seed, integer=True)}")
    rows: dict[str, list] = {"prompt": [], "question": [], "answer": [], "solution": [], "level": []}
    for _ in range(num_examples):
        operands = _operands(level, rng)
        steps, answer = solve_steps(operands)
        question = _story(rng, operands)
        content = f"{question} {BOXED_INSTRUCTION}"
        if prompt_form == "plain":
            example = f"Q: {WORKED_EXAMPLE[0]}\nA: {WORKED_EXAMPLE[1]}\n\n" if shots else ""
            prompt = f"{example}Q: {content}\nA: "
        else:
            example = [
                {"role": "user", "content": WORKED_EXAMPLE[0]},
                {"role": "assistant", "content": WORKED_EXAMPLE[1]},
            ]
            prompt = (example if shots else []) + [{"role": "user", "content": content}]
        rows["prompt"].append(prompt)
        rows["question"].append(question)
        rows["answer"].append(str(answer))
        rows["solution"].append(format_solution(steps, answer))
        rows["level"].append(level)
    return Dataset.from_dict(rows)


__all__ = ["BOXED_INSTRUCTION", "WORKED_EXAMPLE", "make_word_problem_dataset"]
