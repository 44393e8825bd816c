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
