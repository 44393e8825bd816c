"""Settings of the toy base model (`make_toy_base_model`), kept apart so the CLI parser reads them without torch."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from ..arguments import check_choice, check_number
from .models import TINY_ARCHS, TINY_SIZES, TinyArch, TinySize
from .task import TASK_LEVELS, TaskLevel


@dataclass(frozen=True)
class BaseModelSettings:
    """Settings of `make_toy_base_model`; they also key its cache.

    Args:
        arch (`str`, defaults to `"qwen2"`): tiny architecture (`"qwen2"` or `"llama"`).
        size (`str`, defaults to `"micro"`): one of `TINY_SIZES`.
        level (`str`, defaults to `"easy"`): task level the model is fine-tuned on.
        num_train_examples (`int`, defaults to `4000`): distinct training problems.
        wrong_answer_share (`float`, defaults to `0.6`): share of worked answers whose result is off by 1 to 3.
        chat_share (`float`, defaults to `0.5`): share of examples shown in chat form (the rest plain).
        max_steps (`int`, defaults to `600`): optimizer steps.
        batch_size (`int`, defaults to `64`): sequences per step.
        learning_rate (`float`, defaults to `5e-3`): peak AdamW learning rate (linear decay, 5% warm-up).
        seed (`int`, defaults to `0`): seed of the data, the initialisation and the batches.

    Examples:

    >>> import numpy as np
    >>> settings = BaseModelSettings(size="nano", max_steps=np.int64(20))
    >>> settings.max_steps, len(settings.cache_key())
    (20, 16)
    >>> BaseModelSettings(chat_share=1.5)
    Traceback (most recent call last):
    ...
    ValueError: `chat_share` must be a number <= 1.0, got 1.5.
    """

    arch: TinyArch = "qwen2"
    size: TinySize = "micro"
    level: TaskLevel = "easy"
    num_train_examples: int = 4000
    wrong_answer_share: float = 0.6
    chat_share: float = 0.5
    max_steps: int = 600
    batch_size: int = 64
    learning_rate: float = 5e-3
    seed: int = 0

    def __post_init__(self):
        check_choice("arch", self.arch, TINY_ARCHS)
        check_choice("size", self.size, tuple(TINY_SIZES))
        check_choice("level", self.level, TASK_LEVELS)
        checked = {
            name: check_number(name, getattr(self, name), minimum=0.0, maximum=1.0)
            for name in ("wrong_answer_share", "chat_share")
        }
        for name in ("num_train_examples", "max_steps", "batch_size"):
            checked[name] = check_number(name, getattr(self, name), integer=True, minimum=1)
        checked["learning_rate"] = check_number("learning_rate", self.learning_rate, minimum=0, exclusive_minimum=True)
        checked["seed"] = check_number("seed", self.seed, integer=True)
        for name, value in checked.items():  # frozen: store the checked values as plain Python numbers
            object.__setattr__(self, name, value)

    def cache_key(self) -> str:
        """A short hash of the settings, the name of the cache folder."""
        payload = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


__all__ = ["BaseModelSettings"]
