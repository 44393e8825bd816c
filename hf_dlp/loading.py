"""Loading models, tokenizers and data sets by path or Hub id, the same way for every command and capability.

Every loader checks what it can before any weights or rows load: a local path that does not exist is reported as
such (not as a malformed Hub id), and a data file that is empty or not valid JSON is named in the error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from .arguments import check_choice, check_number
from .model_specs import is_model_spec, resolve_model_spec

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DTYPE_NAMES: tuple[str, ...] = ("auto", "float32", "bfloat16", "float16")
DATA_FILE_TYPES = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}


def check_dtype(dtype: str) -> str:
    """Refuse a dtype name that is not one of `DTYPE_NAMES`.

    Examples:

    >>> check_dtype("bfloat16")
    'bfloat16'
    """
    return check_choice("dtype", dtype, DTYPE_NAMES)


def torch_dtype(dtype: str):
    """The `torch.dtype` for a name of `DTYPE_NAMES` (`"auto"` stays `"auto"`).

    Examples:

    >>> torch_dtype("float16"), torch_dtype("auto")
    (torch.float16, 'auto')
    """
    import torch

    check_dtype(dtype)
    return dtype if dtype == "auto" else getattr(torch, dtype)


def looks_like_local_path(name_or_path: str | Path) -> bool:
    """Whether a model or dataset name can only be a local path (a Hub id is `name` or `owner/name`).

    Examples:

    >>> looks_like_local_path("Qwen/Qwen2.5-32B"), looks_like_local_path("./runs/ckpt"), looks_like_local_path("a/b/c")
    (False, True, True)
    """
    text = str(name_or_path)
    return (
        isinstance(name_or_path, Path)
        or text.startswith((".", "/", "~"))
        or text.count("/") > 1
        or text.endswith("/")
        or "\\" in text
    )


def check_model_source(name_or_path: str | Path, *, argument: str = "model") -> str:
    """Return the name as a string; raise `FileNotFoundError` for a local-looking path that does not exist.

    A `gguf:` or `pip:` spec (`hf_dlp.model_specs`) becomes the folder of its converted checkpoint (converted on first
    use).

    Examples:

    >>> check_model_source("./no/such/checkpoint", argument="rl_model")
    Traceback (most recent call last):
    ...
    FileNotFoundError: `rl_model`: the local path './no/such/checkpoint' does not exist. Give an existing model folder or a Hub id such as 'owner/name'.
    """
    if not isinstance(name_or_path, str | Path) or not str(name_or_path):
        raise ValueError(f"`{argument}` must be a model folder or Hub id, got {name_or_path!r}.")
    if is_model_spec(name_or_path):
        return resolve_model_spec(name_or_path, argument=argument)
    path = Path(name_or_path).expanduser()
    if looks_like_local_path(name_or_path) and not path.exists():
        raise FileNotFoundError(
            f"`{argument}`: the local path {str(name_or_path)!r} does not exist. Give an existing model folder or a "
            "Hub id such as 'owner/name'."
        )
    if path.exists() and not path.is_dir():
        raise ValueError(f"`{argument}`: {str(name_or_path)!r} is a file; give the model folder that holds it.")
    return str(path) if path.exists() else str(name_or_path)


def load_tokenizer(
    name_or_path: str | Path, padding_side: str = "left", *, revision: str | None = None
) -> PreTrainedTokenizerBase:
    """Load a tokenizer; a local folder with `tokenizer.json` is read as saved (`PreTrainedTokenizerFast`).

    `AutoTokenizer` on a folder whose config names a model type may rebuild the tokenizer class of that type and
    change its pre-tokenizer (the toy character tokenizer then drops spaces), so local folders skip it; Hub ids go
    through `AutoTokenizer` (at `revision`, a branch, tag or commit, when given). A missing pad token becomes the eos
    token.

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

    source = check_model_source(name_or_path, argument="tokenizer")
    path = Path(source)
    if path.is_dir() and (path / "tokenizer.json").exists():
        tokenizer = PreTrainedTokenizerFast.from_pretrained(source)
    else:
        tokenizer = AutoTokenizer.from_pretrained(source, **({} if revision is None else {"revision": revision}))
    tokenizer.padding_side = check_choice("padding_side", padding_side, ("left", "right"))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(name_or_path: str | Path, dtype: str = "auto", device: str | None = None) -> PreTrainedModel:
    """`AutoModelForCausalLM.from_pretrained` in eval mode, on `device` (default: CUDA when available, else CPU).

    Args:
        name_or_path (`str` or `Path`): a model folder or Hub id.
        dtype (`str`, *optional*, defaults to `"auto"`): one of `DTYPE_NAMES` (`"auto"` keeps the checkpoint's dtype).
        device (`str`, *optional*): where to put the model.
    """
    import torch
    from transformers import AutoModelForCausalLM

    torch_type = torch_dtype(dtype)
    source = check_model_source(name_or_path)
    device = device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    return AutoModelForCausalLM.from_pretrained(source, dtype=torch_type).to(device).eval()


def check_data_file(path: Path) -> None:
    """Raise a `ValueError` naming the file when a data file is empty, or a JSON file is not valid JSON or JSON Lines.

    Examples:

    >>> import tempfile
    >>> bad = Path(tempfile.mkdtemp()) / "rows.jsonl"
    >>> _ = bad.write_text('{"prompt": "a"}\\n{"prompt": \\n')
    >>> check_data_file(bad)
    Traceback (most recent call last):
    ...
    ValueError: Dataset file '...rows.jsonl' is not valid JSON or JSON Lines (line 2: Expecting value); fix or regenerate it.
    """
    if not path.exists():
        raise FileNotFoundError(f"Dataset file {str(path)!r} does not exist.")
    if path.stat().st_size == 0:
        raise ValueError(f"Dataset file {str(path)!r} is empty; it needs at least one row.")
    if DATA_FILE_TYPES.get(path.suffix) != "json":
        return
    text = path.read_text()
    if not text.strip():
        raise ValueError(f"Dataset file {str(path)!r} is empty; it needs at least one row.")
    try:
        rows = json.loads(text)
    except json.JSONDecodeError:
        pass
    else:
        if isinstance(rows, list | dict) and len(rows) == 0:
            raise ValueError(f"Dataset file {str(path)!r} holds no rows ({text.strip()}); it needs at least one row.")
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"Dataset file {str(path)!r} is not valid JSON or JSON Lines (line {number}: {error.msg}); "
                    "fix or regenerate it."
                ) from None


def load_dataset_spec(
    spec: str,
    *,
    split: str = "train",
    limit: int | None = None,
    level: str = "easy",
    num_examples: int = 64,
    seed: int = 1234,
    prompt_form: str = "plain",
    required_columns: tuple[str, ...] = (),
    name: str | None = None,
) -> Dataset:
    """Load a data set named on a command line, as a `datasets.Dataset`.

    `spec` is one of: `"toy"` or `"toy:LEVEL"` (the offline arithmetic task, `num_examples` problems), `"words"` or
    `"words:LEVEL"` (the same numbers as natural-language word problems, chat prompts by default), a
    `save_to_disk` folder, a `.json`/`.jsonl`/`.csv`/`.parquet` file, or a Hub dataset id (its `split`).
    `name` is a Hub dataset's configuration (`load_dataset(spec, name)`). `limit` keeps the first rows only.
    `required_columns` are checked at once, before any sampling or training.

    Examples:

    >>> load_dataset_spec("toy", num_examples=3).num_rows, load_dataset_spec("toy:hard", num_examples=2)[0]["level"]
    (3, 'hard')
    >>> load_dataset_spec("toy", num_examples=2, required_columns=("response",))
    Traceback (most recent call last):
    ...
    ValueError: Dataset 'toy' has no column 'response' (its columns: ['prompt', 'question', 'answer', 'solution', 'level']).
    """
    from datasets import Dataset, load_dataset, load_from_disk

    limit = check_number(
        "limit", limit, integer=True, minimum=1, allow_none=True, hint="Leave it unset to keep every row."
    )
    path = Path(spec)
    if spec == "toy" or spec.startswith("toy:"):
        from .toy import make_arithmetic_dataset

        level = spec.split(":", 1)[1] if ":" in spec else level
        dataset = make_arithmetic_dataset(level=level, num_examples=num_examples, prompt_form=prompt_form, seed=seed)
    elif spec == "words" or spec.startswith("words:"):
        from .toy import make_word_problem_dataset

        level = spec.split(":", 1)[1] if ":" in spec else level
        dataset = make_word_problem_dataset(level=level, num_examples=num_examples, seed=seed)
    elif path.is_dir():
        try:
            dataset = load_from_disk(spec)
        except IndexError:  # what `datasets` raises for a saved data set without rows
            raise ValueError(f"Dataset {spec!r} has no rows.") from None
        dataset = dataset if isinstance(dataset, Dataset) else dataset[split]
    elif path.suffix in DATA_FILE_TYPES:
        check_data_file(path)
        dataset = load_dataset(DATA_FILE_TYPES[path.suffix], data_files=spec, split="train")
    elif path.is_file():
        raise ValueError(f"Unsupported dataset file {spec!r}: use one of {sorted(DATA_FILE_TYPES)}.")
    elif looks_like_local_path(spec):
        raise FileNotFoundError(f"Dataset path {spec!r} does not exist.")
    else:
        dataset = load_dataset(spec, name, split=split)
    if len(dataset) == 0:
        raise ValueError(f"Dataset {spec!r} has no rows.")
    for column in required_columns:
        if column not in dataset.column_names:
            raise ValueError(f"Dataset {spec!r} has no column {column!r} (its columns: {dataset.column_names}).")
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    return dataset


__all__ = [
    "DATA_FILE_TYPES",
    "DTYPE_NAMES",
    "check_data_file",
    "check_dtype",
    "check_model_source",
    "load_causal_lm",
    "load_dataset_spec",
    "load_tokenizer",
    "looks_like_local_path",
    "torch_dtype",
]
