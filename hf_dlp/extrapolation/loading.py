"""Loading evaluation datasets for the sweeps and the `hf-dlp replace` / `extrapolate` / `demo` commands."""

from __future__ import annotations

from pathlib import Path

from datasets import Dataset


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


__all__ = ["load_eval_dataset"]
