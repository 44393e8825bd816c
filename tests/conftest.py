"""Shared fixtures: the offline toy world. Nothing here downloads anything."""

from __future__ import annotations

import logging
import os
from pathlib import Path

for _name, _value in {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "WANDB_DISABLED": "true",
    "DS_ACCELERATOR": "cpu",
}.items():
    os.environ[_name] = _value
# The toy base model is cached between runs here (gitignored); a fresh clone trains it once (about a minute).
os.environ.setdefault("HF_DLP_CACHE", str(Path(__file__).resolve().parent.parent / ".hf_dlp_cache"))
logging.getLogger("math_verify").setLevel(logging.ERROR)

import pytest  # noqa: E402
import torch  # noqa: E402

# Tiny models gain nothing from intra-op threads, and several threads per process thrash 2 cores.
torch.set_num_threads(1)

from hf_dlp.toy import (  # noqa: E402
    BaseModelSettings,
    build_char_tokenizer,
    build_tiny_causal_lm,
    load_toy_base_model,
    make_toy_base_model,
)


@pytest.fixture(scope="session")
def char_tokenizer():
    """The toy character-level tokenizer (left padding). Treat as read-only."""
    return build_char_tokenizer()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, char_tokenizer) -> Path:
    """A randomly initialised tiny Qwen2 model and its tokenizer, saved with `save_pretrained`."""
    path = tmp_path_factory.mktemp("tiny_qwen2")
    build_tiny_causal_lm("qwen2", "micro", seed=0).save_pretrained(path)
    char_tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def toy_base_model_dir() -> Path:
    """The default toy base model (trained once, then cached on disk under $HF_DLP_CACHE)."""
    return make_toy_base_model(BaseModelSettings(), progress=False)


@pytest.fixture()
def toy_base_model(toy_base_model_dir):
    """A fresh copy of the toy base model and its tokenizer (free to modify)."""
    return load_toy_base_model(toy_base_model_dir)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
