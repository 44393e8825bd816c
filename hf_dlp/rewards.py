"""Reward functions in TRL's signature (`completions, **kwargs -> list[float]`) for the toy task and real math.

Answers are graded the way the paper grades them: take the last `\\boxed{...}` of the completion and check it against
the ground truth with `math_verify`, which knows that `\\frac{1}{2}`, `0.5` and `\\dfrac12` are the same number.
The ground truth comes from the dataset column TRL forwards as a keyword argument (`answer` by default; `solution`
is used when there is no `answer` column, as in datasets that store a worked solution).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

from .arguments import check_number

# A TRL reward function: completions (strings, or chat message lists) plus dataset columns as keyword arguments,
# returning one float (or None to abstain) per completion.
RewardFunction = Callable[..., list[float | None]]

_BOX_COMMANDS = ("\\boxed", "\\fbox")


def completion_text(completion: str | Sequence[dict[str, Any]]) -> str:
    """The text of a completion: the string itself, or the content of the last message of a chat completion.

    Examples:

    >>> completion_text("x = 1"), completion_text([{"role": "assistant", "content": "x = 2"}])
    ('x = 1', 'x = 2')
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and completion and isinstance(completion[-1], dict):
        content = completion[-1].get("content", "")
        return content if isinstance(content, str) else " ".join(part.get("text", "") for part in content)
    raise TypeError(f"A completion must be a string or a list of chat messages, got {type(completion).__name__}.")


def last_boxed_content(text: str) -> str | None:
    """The content of the last `\\boxed{...}` (or `\\fbox{...}`) in `text`, braces balanced; `None` if there is none.

    Examples:

    >>> last_boxed_content("so x = \\\\boxed{1} or rather \\\\boxed{\\\\frac{1}{2}}.")
    '\\\\frac{1}{2}'
    >>> last_boxed_content("no box") is None
    True
    """
    start = max(text.rfind(command + "{") for command in _BOX_COMMANDS)
    if start < 0:
        return None
    index = text.index("{", start)
    depth = 0
    for position in range(index, len(text)):
        if text[position] == "{":
            depth += 1
        elif text[position] == "}":
            depth -= 1
            if depth == 0:
                return text[index + 1 : position]
    return None


def _parse_math(text: str):
    return parse(
        f"${text}$",
        extraction_config=[LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()],
        parsing_timeout=None,
    )


def is_correct(completion: str, ground_truth: str) -> bool:
    """Whether the last boxed answer of `completion` equals `ground_truth` for `math_verify`.

    Examples:

    >>> is_correct("12 + 7 = 19. The answer is \\\\boxed{19}.", "19")
    True
    >>> is_correct("\\\\boxed{\\\\frac{2}{4}}", "0.5")
    True
    >>> is_correct("The answer is 19.", "19")
    False
    """
    predicted = last_boxed_content(completion)
    if predicted is None or not predicted.strip():
        return False
    gold = last_boxed_content(ground_truth)
    gold = ground_truth if gold is None else gold
    predicted_parsed = _parse_math(predicted)
    gold_parsed = _parse_math(gold)
    if not predicted_parsed or not gold_parsed:
        return predicted.strip() == gold.strip()
    return bool(verify(gold_parsed, predicted_parsed, timeout_seconds=None))


def _ground_truth_columns(answer_column: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys((answer_column, "answer", "solution")))


def _missing_ground_truth(columns: tuple[str, ...], given: Sequence[str]) -> ValueError:
    return ValueError(
        f"The accuracy reward needs the ground truth as a dataset column: none of "
        f"{', '.join(f'`{c}`' for c in columns)} was passed (got columns {sorted(given)}). Add the column, or set "
        "`answer_column`."
    )


def _ground_truths(kwargs: dict[str, Any], answer_column: str, count: int) -> list[str]:
    for column in _ground_truth_columns(answer_column):
        if kwargs.get(column) is not None:
            values = list(kwargs[column])
            if len(values) != count:
                raise ValueError(f"Got {count} completions but {len(values)} values in column `{column}`.")
            return [str(value) for value in values]
    raise _missing_ground_truth(_ground_truth_columns(answer_column), list(kwargs))


def check_reward_columns(reward_fn: RewardFunction, column_names: Sequence[str]) -> None:
    """Refuse a data set that lacks every column a reward reads its ground truth from, before any sampling.

    Rewards that declare `ground_truth_columns` (a tuple of column names, any one of which is enough) are checked;
    other reward functions pass.

    Examples:

    >>> check_reward_columns(accuracy_reward, ["prompt", "answer"])
    >>> check_reward_columns(accuracy_reward, ["prompt", "question"])
    Traceback (most recent call last):
    ...
    ValueError: The accuracy reward needs the ground truth as a dataset column: none of `answer`, `solution` was passed (got columns ['prompt', 'question']). Add the column, or set `answer_column`.
    """
    columns = getattr(reward_fn, "ground_truth_columns", None)
    if columns and not any(column in column_names for column in columns):
        raise _missing_ground_truth(tuple(columns), list(column_names))


def make_accuracy_reward(
    correct: float = 1.0, incorrect: float = 0.0, answer_column: str = "answer", name: str | None = None
) -> RewardFunction:
    """Build an accuracy reward: `correct` when the last boxed answer verifies against the ground truth, else
    `incorrect`. DAPO (and the paper) uses `correct=1.0, incorrect=-1.0`.

    Examples:

    >>> reward = make_accuracy_reward(correct=1.0, incorrect=-1.0)
    >>> reward(["\\\\boxed{4}", "\\\\boxed{5}", "4"], answer=["4", "4", "4"])
    [1.0, -1.0, -1.0]
    >>> reward.__name__
    'accuracy_reward_pm1'
    """
    correct, incorrect = check_number("correct", correct), check_number("incorrect", incorrect)
    if correct <= incorrect:
        raise ValueError(f"`correct` ({correct}) must be larger than `incorrect` ({incorrect}).")

    def accuracy_reward(completions, **kwargs) -> list[float]:
        truths = _ground_truths(kwargs, answer_column, len(completions))
        return [
            correct if is_correct(completion_text(completion), truth) else incorrect
            for completion, truth in zip(completions, truths, strict=True)
        ]

    accuracy_reward.ground_truth_columns = _ground_truth_columns(answer_column)  # checked before sampling
    # TRL logs each reward under its function's name.
    default_name = "accuracy_reward" if (correct, incorrect) == (1.0, 0.0) else "accuracy_reward_pm1"
    accuracy_reward.__name__ = name or default_name
    return accuracy_reward


accuracy_reward = make_accuracy_reward()
accuracy_reward.__doc__ = "1.0 when the last `\\boxed{}` answer verifies against the ground truth, else 0.0."
signed_accuracy_reward = make_accuracy_reward(correct=1.0, incorrect=-1.0)
signed_accuracy_reward.__doc__ = "DAPO's reward: +1 when the last `\\boxed{}` answer verifies, else -1."


def format_reward(completions, **kwargs) -> list[float]:
    """1.0 when the completion puts a non-empty final answer in `\\boxed{}`, else 0.0.

    Examples:

    >>> format_reward(["The answer is \\\\boxed{7}.", "The answer is 7.", "\\\\boxed{}"])
    [1.0, 0.0, 0.0]
    """
    scores = []
    for completion in completions:
        content = last_boxed_content(completion_text(completion))
        scores.append(1.0 if content is not None and content.strip() else 0.0)
    return scores


REWARD_FUNCTIONS: dict[str, RewardFunction] = {
    "accuracy": accuracy_reward,
    "accuracy_pm1": signed_accuracy_reward,
    "format": format_reward,
}


def get_reward_function(name: str) -> RewardFunction:
    """Look a reward function up by name (`"accuracy"`, `"accuracy_pm1"`, `"format"`), for configs and the CLI.

    Examples:

    >>> get_reward_function("accuracy_pm1").__name__
    'accuracy_reward_pm1'
    """
    if name not in REWARD_FUNCTIONS:
        raise ValueError(f"Unknown reward function {name!r}; choose one of {sorted(REWARD_FUNCTIONS)}.")
    return REWARD_FUNCTIONS[name]


__all__ = [
    "REWARD_FUNCTIONS",
    "RewardFunction",
    "accuracy_reward",
    "check_reward_columns",
    "completion_text",
    "format_reward",
    "get_reward_function",
    "is_correct",
    "last_boxed_content",
    "make_accuracy_reward",
    "signed_accuracy_reward",
]
