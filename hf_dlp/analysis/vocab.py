"""Vocabulary checks for a base/RL model pair: the two must share token ids, and may differ only by padding rows."""

from __future__ import annotations


def output_vocab_size(model) -> int:
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


def check_same_vocabulary(base_tokenizer, rl_tokenizer) -> int:
    """Refuse a tokenizer pair that maps tokens to different ids; return the size of their common vocabulary.

    RLVR checkpoints keep the base model's tokenizer, sometimes with extra added tokens at the end. Two tokenizers
    are compatible when every id below the smaller length names the same token in both; the common vocabulary is
    then `min(len(base_tokenizer), len(rl_tokenizer))`. Anything else (another model family, a re-trained tokenizer)
    makes the token-level comparison meaningless and raises a `ValueError` that lists a few differing ids.

    Args:
        base_tokenizer (`PreTrainedTokenizerBase`): tokenizer of the base model.
        rl_tokenizer (`PreTrainedTokenizerBase`): tokenizer of the RL model.

    Returns:
        `int`: the number of shared token ids (use it as `vocab_size=` in `compute_token_metrics`).

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
            "Token-level metrics need the same tokenizer for both models: pick an RL checkpoint trained from this "
            "base model, or pass the same `tokenizer` for both."
        )
    return common


def common_vocab_size(base_model, rl_model, vocab_size: int | None = None) -> int:
    """The number of output ids both models score: `vocab_size` if given, else the smaller output layer.

    Padding rows beyond the tokenizer's length (Qwen2.5 pads 151,665 tokens to 152,064 rows) are dropped when
    `vocab_size` is the tokenizer's length. A `vocab_size` larger than either output layer raises a `ValueError`.

    Examples:

    >>> from hf_dlp.toy import build_tiny_causal_lm
    >>> a, b = build_tiny_causal_lm(size="nano"), build_tiny_causal_lm(size="nano", vocab_size=128)
    >>> common_vocab_size(a, b), common_vocab_size(b, b, vocab_size=110)
    (106, 110)
    """
    sizes = (output_vocab_size(base_model), output_vocab_size(rl_model))
    if vocab_size is None:
        return min(sizes)
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or not 1 <= vocab_size <= min(sizes):
        raise ValueError(
            f"`vocab_size` must be an integer between 1 and the smaller output layer ({min(sizes)} rows; the models "
            f"have {sizes[0]} and {sizes[1]}), got {vocab_size!r}. Pass the tokenizer's length, or leave it unset."
        )
    return vocab_size
