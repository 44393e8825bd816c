"""A base/RL model pair: vocabulary checks and loading, shared by the analysis and extrapolation capabilities.

The two models must map token ids to the same tokens, and may differ only in padding rows of their output layers
(Qwen2.5 pads 151,665 tokens to 152,064 rows). Which ids are real is known from the tokenizer (`len(tokenizer)`);
when the two output layers differ and nothing says which ids are real, hf_dlp refuses rather than score padded rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    *,
    base_model: PreTrainedModel,
    rl_model: PreTrainedModel,
    vocab_size: int | None = None,
    what: str = "`vocab_size`",
) -> int:
    """The number of real token ids both models score: `vocab_size` when given, else the shared output width.

    When the two output layers have different widths and `vocab_size` is not given, the extra rows of one of them may
    be padding (untrained rows that would distort entropy and KL, or be sampled by extrapolation), so this raises a
    `ValueError` asking for the tokenizer's length. A `vocab_size` larger than either output layer raises too.

    Args:
        base_model, rl_model (`PreTrainedModel`): the pair, by name.
        vocab_size (`int`, *optional*): the number of real ids, usually `len(tokenizer)`.
        what (`str`, *optional*): how the caller spells the argument in the error (`"`vocab_size`"`, `"`tokenizer=`"`).

    Examples:

    >>> from hf_dlp.toy import build_tiny_causal_lm
    >>> a, b = build_tiny_causal_lm(size="nano"), build_tiny_causal_lm(size="nano", vocab_size=128)
    >>> common_vocab_size(base_model=a, rl_model=a), common_vocab_size(base_model=a, rl_model=b, vocab_size=106)
    (106, 106)
    >>> common_vocab_size(base_model=a, rl_model=b)
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


def check_model_devices(model: PreTrainedModel, argument: str = "model") -> None:
    """Refuse a model whose weights cannot run a forward at every generated token: weights on the `meta` device (built
    empty, never loaded) or layers offloaded to disk by a `device_map`.

    Models split over several GPUs, or between GPUs and the CPU, are fine: hf_dlp moves the other model's logits to
    the generating model's device.

    Examples:

    >>> from hf_dlp.toy import build_tiny_causal_lm
    >>> model = build_tiny_causal_lm(size="nano")
    >>> check_model_devices(model)
    >>> model.hf_device_map = {"model.embed_tokens": "cpu", "model.layers": "disk"}
    >>> check_model_devices(model, "rl_model")
    Traceback (most recent call last):
    ...
    ValueError: `rl_model` has layers offloaded to disk (['model.layers']); extrapolation and scoring run it at every token, which would read those weights from disk each time. Load it with a `device_map` that fits GPU and CPU memory (e.g. `max_memory=`), a smaller `dtype`, or more devices.
    """
    device_map = getattr(model, "hf_device_map", None) or {}
    on_disk = [name for name, device in device_map.items() if str(device) == "disk"]
    if on_disk:
        raise ValueError(
            f"`{argument}` has layers offloaded to disk ({on_disk[:5]}); extrapolation and scoring run it at every "
            "token, which would read those weights from disk each time. Load it with a `device_map` that fits GPU "
            "and CPU memory (e.g. `max_memory=`), a smaller `dtype`, or more devices."
        )
    if not device_map and any(parameter.device.type == "meta" for parameter in model.parameters()):
        raise ValueError(
            f"`{argument}` has weights on the `meta` device (built empty, never loaded); load it with "
            "`from_pretrained` (or `load_model_pair`) before using it."
        )


def check_pair_devices(*, base_model: PreTrainedModel, rl_model: PreTrainedModel) -> None:
    """`check_model_devices` for both models of a pair, naming the one that cannot run (before any generation).

    Examples:

    >>> from hf_dlp.toy import build_tiny_causal_lm
    >>> check_pair_devices(base_model=build_tiny_causal_lm(size="nano"), rl_model=build_tiny_causal_lm(size="nano"))
    """
    check_model_devices(base_model, "base_model")
    check_model_devices(rl_model, "rl_model")


def _load_causal_lm(source: str, dtype: str, device: str | None, device_map: Any) -> PreTrainedModel:
    """One model of the pair: on `device` (default: this process's device), or placed by `device_map`."""
    from .distributed import default_device, num_processes, process_gpus
    from .loading import load_causal_lm, torch_dtype

    if device_map is None:
        return load_causal_lm(source, dtype, device if device is not None else str(default_device()))
    from transformers import AutoModelForCausalLM

    options: dict[str, Any] = {"device_map": device_map}
    if device_map == "auto" and num_processes() > 1:  # each process spreads its pair over its own GPUs only
        import torch

        options["max_memory"] = {gpu: torch.cuda.mem_get_info(gpu)[0] for gpu in process_gpus()}
    return AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype(dtype), **options).eval()


def load_model_pair(
    *,
    base_model: str | Path,
    rl_model: str | Path,
    dtype: str = "auto",
    device: str | None = None,
    device_map: str | dict[str, Any] | None = None,
) -> tuple[PreTrainedModel, PreTrainedModel, PreTrainedTokenizerBase]:
    """Load base and RL causal LMs (local folders or Hub ids) and the shared tokenizer, refusing mismatched ones.

    The tokenizers are compared before any weights load, so a mismatched pair fails in seconds; after loading, a
    model offloaded to disk is refused (`check_pair_devices`).

    Args:
        base_model, rl_model (`str` or `Path`): model folders or Hub ids, by name.
        dtype (`str`, *optional*, defaults to `"auto"`): one of `hf_dlp.loading.DTYPE_NAMES` (`"auto"` keeps the
            checkpoints' dtype).
        device (`str`, *optional*): where to put both models; defaults to this process's device (`cuda:LOCAL_RANK`
            under `accelerate launch`/`torchrun`, else `"cuda"` when available, else `"cpu"`).
        device_map (`str` or `dict`, *optional*): passed to `from_pretrained` for each model instead of `device`
            (`"auto"` spreads a pair too big for one GPU over the visible GPUs; under a launcher over this
            process's share of them, `hf_dlp.distributed.process_gpus`; a dict places modules by name). The other
            model's logits are moved to the generating model's device.

    Returns:
        `tuple`: `(base_model, rl_model, tokenizer)`, models in eval mode, the base model's tokenizer (left padding).

    Examples:

    >>> import contextlib, io, tempfile
    >>> from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm
    >>> folder = tempfile.mkdtemp()
    >>> with contextlib.redirect_stdout(io.StringIO()):  # DeepSpeed may print a notice on the first save
    ...     build_tiny_causal_lm(size="nano").save_pretrained(folder)
    >>> _ = build_char_tokenizer().save_pretrained(folder)
    >>> base, rl, tok = load_model_pair(base_model=folder, rl_model=folder, dtype="bfloat16", device="cpu")
    >>> base.dtype, len(tok)
    (torch.bfloat16, 106)
    >>> base, rl, tok = load_model_pair(base_model=folder, rl_model=folder, dtype="float32", device_map={"": "cpu"})
    >>> base.device.type, rl.dtype
    ('cpu', torch.float32)
    """
    from .loading import check_dtype, check_model_source, load_tokenizer

    check_dtype(dtype)
    if device is not None and device_map is not None:
        raise ValueError(
            f"Give `device` ({device!r}) or `device_map` ({device_map!r}), not both: `device_map` places the models."
        )
    base_model = check_model_source(base_model, argument="base_model")  # a missing folder is named as such
    rl_model = check_model_source(rl_model, argument="rl_model")
    tokenizer, rl_tokenizer = load_tokenizer(base_model), load_tokenizer(rl_model)
    check_same_vocabulary(tokenizer, rl_tokenizer)
    base = _load_causal_lm(base_model, dtype, device, device_map)
    rl = _load_causal_lm(rl_model, dtype, device, device_map)
    check_pair_devices(base_model=base, rl_model=rl)
    return base, rl, tokenizer


__all__ = [
    "check_model_devices",
    "check_pair_devices",
    "check_same_vocabulary",
    "common_vocab_size",
    "load_model_pair",
    "output_vocab_size",
]
