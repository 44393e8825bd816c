"""The offline toy world: a character-level tokenizer, tiny models, a verifiable arithmetic task, a base model."""

from .base_model import BaseModelSettings, load_toy_base_model, make_toy_base_model
from .models import TINY_ARCHS, TINY_SIZES, build_tiny_causal_lm
from .task import TASK_LEVELS, ToyTaskConfig, make_arithmetic_dataset
from .tokenizer import build_char_tokenizer, load_char_tokenizer

__all__ = [
    "TASK_LEVELS",
    "TINY_ARCHS",
    "TINY_SIZES",
    "BaseModelSettings",
    "ToyTaskConfig",
    "build_char_tokenizer",
    "build_tiny_causal_lm",
    "load_char_tokenizer",
    "make_arithmetic_dataset",
    "load_toy_base_model",
    "make_toy_base_model",
]
