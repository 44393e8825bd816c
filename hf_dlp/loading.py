"""Loading models and tokenizers by path or Hub id, the same way for the analysis, extrapolation and demo CLIs."""

from __future__ import annotations

from pathlib import Path

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "auto": "auto"}


def load_tokenizer(name_or_path: str | Path, padding_side: str = "left"):
    """Load a tokenizer; a local folder with `tokenizer.json` is read as saved (`PreTrainedTokenizerFast`).

    `AutoTokenizer` on a folder whose config names a model type may rebuild the tokenizer class of that type and
    change its pre-tokenizer (the toy character tokenizer then drops spaces), so local folders skip it; Hub ids go
    through `AutoTokenizer`. A missing pad token becomes the eos token.

    Examples:

    >>> import tempfile
    >>> from hf_dlp.toy import build_char_tokenizer
    >>> folder = tempfile.mkdtemp()
    >>> _ = build_char_tokenizer().save_pretrained(folder)
    >>> tok = load_tokenizer(folder)
    >>> tok.decode(tok("a b").input_ids), tok.padding_side
    ('a b', 'left')
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    path = Path(name_or_path)
    if path.is_dir() and (path / "tokenizer.json").exists():
        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(path))
    else:
        tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
    tokenizer.padding_side = padding_side
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(name_or_path: str | Path, dtype: str = "auto", device: str | None = None):
    """`AutoModelForCausalLM.from_pretrained` in eval mode, on `device` (default: CUDA when available, else CPU).

    Args:
        name_or_path (`str` or `Path`): a model folder or Hub id.
        dtype (`str`, *optional*, defaults to `"auto"`): one of `DTYPES` (`"auto"` keeps the checkpoint's dtype).
        device (`str`, *optional*): where to put the model.
    """
    from transformers import AutoModelForCausalLM

    if dtype not in DTYPES:
        raise ValueError(f"`dtype` must be one of {tuple(DTYPES)}, got {dtype!r}.")
    device = device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    return AutoModelForCausalLM.from_pretrained(str(name_or_path), dtype=DTYPES[dtype]).to(device).eval()


DATA_FILE_TYPES = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}


def load_dataset_spec(
    spec: str,
    *,
    split: str = "train",
    limit: int | None = None,
    level: str = "easy",
    num_examples: int = 64,
    seed: int = 1234,
    prompt_form: str = "plain",
):
    """Load a data set named on a command line, as a `datasets.Dataset`.

    `spec` is one of: `"toy"` or `"toy:LEVEL"` (the offline arithmetic task, `num_examples` problems), a
    `save_to_disk` folder, a `.json`/`.jsonl`/`.csv`/`.parquet` file, or a Hub dataset id (its `split`).
    `limit` keeps the first rows only.

    Examples:

    >>> load_dataset_spec("toy", num_examples=3).num_rows, load_dataset_spec("toy:hard", num_examples=2)[0]["level"]
    (3, 'hard')
    """
    from datasets import Dataset, load_dataset, load_from_disk

    if limit is not None and limit < 1:
        raise ValueError(f"`limit` must be at least 1, got {limit}; leave it unset to keep every row.")
    path = Path(spec)
    if spec == "toy" or spec.startswith("toy:"):
        from .toy import make_arithmetic_dataset

        level = spec.split(":", 1)[1] if ":" in spec else level
        dataset = make_arithmetic_dataset(level=level, num_examples=num_examples, prompt_form=prompt_form, seed=seed)
    elif path.is_dir():
        dataset = load_from_disk(spec)
        dataset = dataset if isinstance(dataset, Dataset) else dataset[split]
    elif path.suffix in DATA_FILE_TYPES:
        if not path.exists():
            raise FileNotFoundError(f"Dataset file {spec!r} does not exist.")
        dataset = load_dataset(DATA_FILE_TYPES[path.suffix], data_files=spec, split="train")
    elif path.is_file():
        raise ValueError(f"Unsupported dataset file {spec!r}: use one of {sorted(DATA_FILE_TYPES)}.")
    else:
        dataset = load_dataset(spec, split=split)
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    return dataset
