"""The offline toy world: a character-level tokenizer, tiny models, a verifiable arithmetic task, a base model.

Names are imported on first use, so reading `BaseModelSettings` (the `hf-dlp make-base` parser does) costs no torch
import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "BaseModelSettings": "settings",
    "load_toy_base_model": "base_model",
    "make_toy_base_model": "base_model",
    "TINY_ARCHS": "models",
    "TINY_SIZES": "models",
    "build_tiny_causal_lm": "models",
    "TASK_LEVELS": "task",
    "ToyTaskConfig": "task",
    "make_arithmetic_dataset": "task",
    "build_char_tokenizer": "tokenizer",
    "load_char_tokenizer": "tokenizer",
    "BOXED_INSTRUCTION": "word_problems",
    "make_word_problem_dataset": "word_problems",
}

__all__ = [
    "BOXED_INSTRUCTION",
    "TASK_LEVELS",
    "TINY_ARCHS",
    "TINY_SIZES",
    "BaseModelSettings",
    "ToyTaskConfig",
    "build_char_tokenizer",
    "build_tiny_causal_lm",
    "load_char_tokenizer",
    "load_toy_base_model",
    "make_arithmetic_dataset",
    "make_toy_base_model",
    "make_word_problem_dataset",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:
    from .base_model import load_toy_base_model, make_toy_base_model
    from .models import TINY_ARCHS, TINY_SIZES, build_tiny_causal_lm
    from .settings import BaseModelSettings
    from .task import TASK_LEVELS, ToyTaskConfig, make_arithmetic_dataset
    from .tokenizer import build_char_tokenizer, load_char_tokenizer
    from .word_problems import BOXED_INSTRUCTION, make_word_problem_dataset
