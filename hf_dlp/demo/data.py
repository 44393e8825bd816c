"""The demo's problems: the offline tasks by name, or a local/Hub data set whose question and answer columns are named.

A data set with a `prompt` column is used as it is. One with a question column instead (`question_column`, e.g.
`problem` in `HuggingFaceH4/aime_2024`) gets the paper's evaluation prompt: one user message, the problem followed by
"Please reason step by step, and put your final answer within \\boxed{}." The answer column becomes `answer`, the
column the accuracy rewards check. Problems wrapped in DAPO-Math-17k's own instructions (which ask for an
"Answer:" line instead of a box) are unwrapped first, so every prompt asks for the same boxed answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datasets import Dataset

PAPER_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
"""The user-message suffix of the paper's evaluation (`scripts/extrapolate.py`)."""

KNOWN_DATASETS: dict[str, dict[str, str]] = {
    # 30 AIME 2024 problems (the paper's main benchmark); integer answers.
    "HuggingFaceH4/aime_2024": {"question_column": "problem", "answer_column": "answer"},
    # DAPO-Math-17k (the paper's training data), deduplicated, English configuration: the wrapped problem in
    # "prompt", the ground truth in "solution".
    "open-r1/DAPO-Math-17k-Processed": {
        "question_column": "prompt",
        "answer_column": "solution",
        "dataset_config": "en",
    },
}
"""Column layouts of the Hub data sets the GPU presets use; `question_column=` and friends override them."""

_DAPO_OPENING = "Solve the following math problem step by step."
_DAPO_CLOSING = "Remember to put your answer on its own line after"


def problem_text(text: str) -> str:
    """The bare problem of a DAPO-Math-17k prompt (its opening and closing instructions removed); other text as is.

    Examples:

    >>> wrapped = ("Solve the following math problem step by step. The last line of your response should be of the "
    ...            "form Answer: $Answer (without quotes) where $Answer is the answer to the problem.\\n\\nWhat is 2+3?"
    ...            "\\n\\nRemember to put your answer on its own line after \\"Answer:\\".")
    >>> problem_text(wrapped), problem_text("What is 2+3?")
    ('What is 2+3?', 'What is 2+3?')
    """
    text = text.strip()
    if text.startswith(_DAPO_OPENING) and "\n\n" in text:
        text = text.split("\n\n", 1)[1]
        if _DAPO_CLOSING in text:
            text = text.rsplit(_DAPO_CLOSING, 1)[0]
    return text.strip()


def load_demo_dataset(
    spec: str,
    *,
    num_examples: int,
    seed: int,
    question_column: str | None = None,
    answer_column: str = "answer",
    dataset_config: str | None = None,
    split: str = "train",
) -> Dataset:
    """Load `spec` (see `hf_dlp.loading.load_dataset_spec`) with `prompt` and `answer` columns, `num_examples` rows.

    A Hub id in `KNOWN_DATASETS` needs no column names; for others, name the question column (or have `prompt`).

    Examples:

    >>> import json, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "aime.jsonl"
    >>> _ = path.write_text(json.dumps({"problem": "Find x if x + 1 = 3.", "answer": 2}) + "\\n")
    >>> row = load_demo_dataset(str(path), num_examples=1, seed=0, question_column="problem")[0]
    >>> row["prompt"][0]["content"].endswith(PAPER_INSTRUCTION), row["answer"]
    (True, '2')
    """
    from ..loading import load_dataset_spec

    if question_column is None and spec in KNOWN_DATASETS:
        known = KNOWN_DATASETS[spec]
        question_column, answer_column = known["question_column"], known["answer_column"]
        dataset_config = dataset_config or known.get("dataset_config")
    offline = spec.split(":", 1)[0] in ("toy", "words")
    required = ("prompt",) if question_column is None else (question_column, answer_column)
    dataset = load_dataset_spec(
        spec, num_examples=num_examples, seed=seed, limit=None if offline else num_examples, split=split,
        name=dataset_config, required_columns=required,
    )  # fmt: skip
    if question_column is None:
        return dataset

    from datasets import Dataset

    prompts = [
        [{"role": "user", "content": f"{problem_text(str(question))}\n{PAPER_INSTRUCTION}"}]
        for question in dataset[question_column]
    ]
    return Dataset.from_dict({"prompt": prompts, "answer": [str(answer) for answer in dataset[answer_column]]})


__all__ = ["KNOWN_DATASETS", "PAPER_INSTRUCTION", "load_demo_dataset", "problem_text"]
