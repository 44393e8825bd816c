"""From two model names to an `AnalysisReport` in one call: load the pair, sample from both, score everything."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from datasets import Dataset

from ..evaluation import Prompt
from ..loading import DTYPES, load_causal_lm, load_tokenizer
from .report import AnalysisReport
from .responses import analyze_responses, generate_responses
from .vocab import check_same_vocabulary


def load_model_pair(base: str | Path, rl: str | Path, *, dtype: str = "auto", device: str | None = None):
    """Load base and RL causal LMs (local folders or Hub ids) and the shared tokenizer, refusing mismatched ones.

    Args:
        base, rl (`str` or `Path`): model folders or Hub ids.
        dtype (`str`, *optional*, defaults to `"auto"`): one of `DTYPES` (`"auto"` keeps the checkpoints' dtype).
        device (`str`, *optional*): where to put both models; defaults to `"cuda"` when available, else `"cpu"`.

    Returns:
        `tuple`: `(base_model, rl_model, tokenizer)`, models in eval mode, the base model's tokenizer (left padding).

    Examples:

    >>> import contextlib, io, tempfile
    >>> from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm
    >>> folder = tempfile.mkdtemp()
    >>> with contextlib.redirect_stdout(io.StringIO()):  # DeepSpeed may print a notice on the first save
    ...     build_tiny_causal_lm(size="nano").save_pretrained(folder)
    >>> _ = build_char_tokenizer().save_pretrained(folder)
    >>> base, rl, tok = load_model_pair(folder, folder, dtype="bfloat16", device="cpu")
    >>> base.dtype, len(tok)
    (torch.bfloat16, 106)
    """
    if dtype not in DTYPES:
        raise ValueError(f"`dtype` must be one of {tuple(DTYPES)}, got {dtype!r}.")
    tokenizer, rl_tokenizer = load_tokenizer(base), load_tokenizer(rl)
    check_same_vocabulary(tokenizer, rl_tokenizer)
    return load_causal_lm(base, dtype, device), load_causal_lm(rl, dtype, device), tokenizer


def analyze_model_pair(
    base,
    rl,
    prompts: Sequence[Prompt] | Dataset,
    *,
    tokenizer=None,
    prompt_column: str = "prompt",
    num_samples: int = 4,
    max_new_tokens: int = 256,
    temperature: float = 1.0,
    top_p: float = 1.0,
    generation_batch_size: int = 32,
    scoring_batch_size: int = 8,
    top_k: int | None = None,
    seed: int = 0,
    dtype: str = "auto",
    device: str | None = None,
    progress: bool = True,
) -> AnalysisReport:
    """Sample `num_samples` responses per prompt from each model, then score all of them with both models.

    This reproduces the setting of the paper's Fig. 1b: the report's histograms compare base-written with
    RL-written responses. `base` and `rl` are model folders or Hub ids (loaded with `load_model_pair`), or already
    loaded models, in which case `tokenizer` is required.

    Examples:

    >>> from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm
    >>> tok = build_char_tokenizer()
    >>> base, rl = build_tiny_causal_lm(size="nano", seed=0), build_tiny_causal_lm(size="nano", seed=1)
    >>> report = analyze_model_pair(base, rl, ["Q: 1+1?\\nA: ", "Q: 3+4?\\nA: "], tokenizer=tok, num_samples=2,
    ...                             max_new_tokens=6, progress=False)
    >>> report.num_responses, report.source_names
    (8, ['base', 'rl'])
    """
    if isinstance(base, str | Path) != isinstance(rl, str | Path):
        raise TypeError("`base` and `rl` must both be names/paths or both be loaded models.")
    if isinstance(base, str | Path):
        base, rl, loaded = load_model_pair(base, rl, dtype=dtype, device=device)
        tokenizer = tokenizer if tokenizer is not None else loaded
    elif tokenizer is None:
        raise ValueError("`tokenizer` is required when `base` and `rl` are loaded models; pass their tokenizer.")
    if isinstance(prompts, Dataset):
        if prompt_column not in prompts.column_names:
            raise ValueError(
                f"`prompt_column` {prompt_column!r} is not a column of `prompts` ({prompts.column_names})."
            )
        prompts = prompts[prompt_column]
    responses = generate_responses(
        base,
        rl,
        tokenizer,
        list(prompts),
        num_samples=num_samples,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        batch_size=generation_batch_size,
        seed=seed,
        progress=progress,
    )
    report = analyze_responses(
        base, rl, tokenizer, responses, batch_size=scoring_batch_size, top_k=top_k, progress=progress
    )
    report.settings.update(
        num_prompts=len(prompts),
        num_samples=num_samples,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
    )
    return report
