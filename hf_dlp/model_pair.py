"""A base/RL model pair: vocabulary checks and loading, shared by the analysis and extrapolation capabilities.

The two models must map token ids to the same tokens, and may differ only in padding rows of their output layers
(Qwen2.5 pads 151,665 tokens to 152,064 rows). Which ids are real is known from the tokenizer (`len(tokenizer)`);
when the two output layers differ and nothing says which ids are real, hf_dlp refuses rather than score padded rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .arguments import check_number

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def output_vocab_size(model: PreTrainedModel) -> int:
    """Number of rows of a causal LM's output layer (the size of the distributions it emits), padding rows included.

    Examples:

    >>> from hf_dlp.toy import build_tiny_causal_lm
    >>> output_vocab_size(build_tiny_causal_lm(size="nano", vocab_size=128))
    128
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None and getattr(head, "weight", None) is not None:
        return int(head.weight.shape[0])
    return int(model.config.get_text_config().vocab_size)


def check_same_vocabulary(base_tokenizer: PreTrainedTokenizerBase, rl_tokenizer: PreTrainedTokenizerBase) -> int:
    """Refuse a tokenizer pair that maps tokens to different ids; return the size of their common vocabulary.

    RLVR checkpoints keep the base model's tokenizer, sometimes with extra added tokens at the end. Two tokenizers
    are compatible when every id below the smaller length names the same token in both; the common vocabulary is
    then `min(len(base_tokenizer), len(rl_tokenizer))`. Anything else (another model family, a re-trained tokenizer)
    makes the token-level comparison meaningless and raises a `ValueError` that lists a few differing ids.

    Args:
        base_tokenizer (`PreTrainedTokenizerBase`): tokenizer of the base model.
        rl_tokenizer (`PreTrainedTokenizerBase`): tokenizer of the RL model.

    Returns:
        `int`: the number of shared token ids (the `vocab_size` of the pair).

    Examples:

    >>> from hf_dlp.toy import build_char_tokenizer
    >>> check_same_vocabulary(build_char_tokenizer(), build_char_tokenizer(padding_side="right"))
    106
    """
    base_ids = {index: token for token, index in base_tokenizer.get_vocab().items()}
    rl_ids = {index: token for token, index in rl_tokenizer.get_vocab().items()}
    common = min(len(base_tokenizer), len(rl_tokenizer))
    differing = [index for index in range(common) if base_ids.get(index) != rl_ids.get(index)]
    if differing:
        examples = ", ".join(f"id {i}: {base_ids.get(i)!r} vs {rl_ids.get(i)!r}" for i in differing[:5])
        raise ValueError(
            f"The base and RL tokenizers differ on {len(differing)} of their {common} shared ids ({examples}). "
            "Token-level comparison needs the same tokenizer for both models: pick an RL checkpoint trained from "
            "this base model, or pass the same tokenizer for both."
        )
    return common


def common_vocab_size(
    base_model: PreTrainedModel,
    rl_model: PreTrainedModel,
    vocab_size: int | None = None,
    *,
    what: str = "`vocab_size`",
) -> int:
    """The number of real token ids both models score: `vocab_size` when given, else the shared output width.

    When the two output layers have different widths and `vocab_size` is not given, the extra rows of one of them may
    be padding (untrained rows that would distort entropy and KL, or be sampled by extrapolation), so this raises a
    `ValueError` asking for the tokenizer's length. A `vocab_size` larger than either output layer raises too.

    Args:
        base_model, rl_model (`PreTrainedModel`): the pair.
        vocab_size (`int`, *optional*): the number of real ids, usually `len(tokenizer)`.
        what (`str`, *optional*): how the caller spells the argument in the error (`"`vocab_size`"`, `"`tokenizer=`"`).

    Examples:

    >>> from hf_dlp.toy import build_tiny_causal_lm
    >>> a, b = build_tiny_causal_lm(size="nano"), build_tiny_causal_lm(size="nano", vocab_size=128)
    >>> common_vocab_size(a, a), common_vocab_size(a, b, vocab_size=106)
    (106, 106)
    >>> common_vocab_size(a, b)
    Traceback (most recent call last):
    ...
    ValueError: The base and RL output layers differ (106 and 128 rows), so some rows are padding; pass `vocab_size` (the tokenizer's length, e.g. `len(tokenizer)`) to say which ids are real.
    """
    sizes = (output_vocab_size(base_model), output_vocab_size(rl_model))
    if vocab_size is None:
        if sizes[0] != sizes[1]:
            raise ValueError(
                f"The base and RL output layers differ ({sizes[0]} and {sizes[1]} rows), so some rows are padding; "
                f"pass {what} (the tokenizer's length, e.g. `len(tokenizer)`) to say which ids are real."
            )
        return sizes[0]
    return check_number(
        "vocab_size",
        vocab_size,
        integer=True,
        minimum=1,
        maximum=min(sizes),
        hint=f"The models have {sizes[0]} and {sizes[1]} output rows; pass the tokenizer's length, or leave it unset.",
    )


def load_model_pair(
    base_model: str | Path,
    rl_model: str | Path,
    *,
    dtype: str = "auto",
    device: str | None = None,
) -> tuple[PreTrainedModel, PreTrainedModel, PreTrainedTokenizerBase]:
    """Load base and RL causal LMs (local folders or Hub ids) and the shared tokenizer, refusing mismatched ones.

    The tokenizers are compared before any weights load, so a mismatched pair fails in seconds.

    Args:
        base_model, rl_model (`str` or `Path`): model folders or Hub ids.
        dtype (`str`, *optional*, defaults to `"auto"`): one of `hf_dlp.loading.DTYPE_NAMES` (`"auto"` keeps the
            checkpoints' dtype).
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
    from .loading import check_dtype, check_model_source, load_causal_lm, load_tokenizer

    check_dtype(dtype)
    base_model = check_model_source(base_model, argument="base_model")  # a missing folder is named as such
    rl_model = check_model_source(rl_model, argument="rl_model")
    tokenizer, rl_tokenizer = load_tokenizer(base_model), load_tokenizer(rl_model)
    check_same_vocabulary(tokenizer, rl_tokenizer)
    return load_causal_lm(base_model, dtype, device), load_causal_lm(rl_model, dtype, device), tokenizer


__all__ = ["check_same_vocabulary", "common_vocab_size", "load_model_pair", "output_vocab_size"]
