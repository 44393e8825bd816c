"""Loading models, tokenizers and evaluation datasets for the `hf-dlp replace` / `hf-dlp extrapolate` commands."""

from __future__ import annotations

from pathlib import Path

import torch
from datasets import Dataset

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "auto": "auto"}


def load_tokenizer(name_or_path: str):
    """A left-padding tokenizer. Local folders with a `tokenizer.json` load as `PreTrainedTokenizerFast`, which keeps
    the saved pre-tokenizer (`AutoTokenizer` would turn the toy character tokenizer into a space-dropping
    `Qwen2Tokenizer`); Hub ids go through `AutoTokenizer`.

    Examples:

    >>> import tempfile
    >>> from hf_dlp.toy import build_char_tokenizer
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     _ = build_char_tokenizer().save_pretrained(folder)
    ...     tok = load_tokenizer(folder)
    >>> tok.decode(tok("1 + 2").input_ids), tok.padding_side
    ('1 + 2', 'left')
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if (Path(name_or_path) / "tokenizer.json").is_file():
        tokenizer = PreTrainedTokenizerFast.from_pretrained(name_or_path)
    else:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(name_or_path: str, dtype: str = "auto", device: str | None = None):
    """`AutoModelForCausalLM.from_pretrained` in eval mode, on `device` (default: CUDA when available).

    Examples:

    >>> load_causal_lm("Qwen/Qwen2.5-32B", dtype="int8")   # checked before anything is loaded
    Traceback (most recent call last):
    ...
    ValueError: `dtype` must be one of ['auto', 'bfloat16', 'float16', 'float32'], got 'int8'.
    """
    from transformers import AutoModelForCausalLM

    if dtype not in DTYPES:
        raise ValueError(f"`dtype` must be one of {sorted(DTYPES)}, got {dtype!r}.")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=DTYPES[dtype])
    return model.to(device).eval()


def load_eval_dataset(
    spec: str,
    *,
    split: str = "test",
    level: str = "easy",
    num_examples: int = 64,
    seed: int = 1234,
    prompt_form: str = "plain",
    limit: int | None = None,
) -> Dataset:
    """`"toy"` (the offline arithmetic task), a local `.json`/`.jsonl`/`.parquet`/`.csv` file, or a Hub dataset id.

    Examples:

    >>> load_eval_dataset("toy", num_examples=3).num_rows
    3
    """
    if spec == "toy":
        from hf_dlp.toy import make_arithmetic_dataset

        dataset = make_arithmetic_dataset(level=level, num_examples=num_examples, prompt_form=prompt_form, seed=seed)
    else:
        from datasets import load_dataset

        path = Path(spec)
        formats = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}
        if path.is_file():
            if path.suffix not in formats:
                raise ValueError(f"Unsupported dataset file {spec!r}: use one of {sorted(formats)}.")
            dataset = load_dataset(formats[path.suffix], data_files=str(path), split="train")
        else:
            dataset = load_dataset(spec, split=split)
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    return dataset


__all__ = ["load_causal_lm", "load_eval_dataset", "load_tokenizer"]
