"""`check_transformers_compatibility`: fail loudly when the private transformers pieces extrapolation uses change.

Extrapolation draws its candidate token exactly as `generate` does, and builds that draw with transformers' own
machinery rather than a copy of it. Four methods of that machinery are private (there is no public equivalent in
transformers 5.24): they are listed in `PRIVATE_PIECES`, and this check verifies that each is still there, with the
parameters hf_dlp passes, before any model runs. It also checks what is mirrored rather than called: that
`generate` applies its sampling warpers after the user's processors, that `_sample` draws the next token as one
multinomial sample of the softmax (argmax when greedy; `draw_next_tokens` and the LoRA one-forward loop do the
same), that `GenerationConfig._eos_token_tensor` exists (read by the processor and the LoRA loop), that
`DynamicCache.crop` takes a negative count of tokens to remove, and that caches can record their past and `generate`
takes a `custom_generate` callable (the block-verified loop, which drives the generator through `_prefill`,
`prepare_inputs_for_generation` and `_update_model_kwargs_for_generation` exactly as `_sample` does).
"""

from __future__ import annotations

import functools
import inspect

import transformers
from packaging import version
from transformers import DynamicCache, GenerationConfig, GenerationMixin

# The transformers versions the extrapolation tests ran against (pyproject.toml bounds transformers to the same range).
SUPPORTED_TRANSFORMERS_VERSIONS: tuple[str, str] = (">=5.24", "<5.25")

# Private `GenerationMixin` methods used, with the parameters passed to them, and why.
PRIVATE_PIECES: dict[str, tuple[tuple[str, ...], str]] = {
    "_prepare_generation_config": (
        ("generation_config",),
        "resolves the settings `generate` will run with (call > given config > model's > defaults)",
    ),
    "_prepare_special_tokens": (
        ("generation_config", "kwargs_has_attention_mask", "device"),
        "turns eos/pad ids into the tensors the logits processors expect",
    ),
    "_get_logits_processor": (
        (
            "generation_config",
            "input_ids_seq_length",
            "encoder_input_ids",
            "logits_processor",
            "device",
            "model_kwargs",
        ),
        "builds the sampling warpers `generate` applies after the user's processors",
    ),
    "_prepare_attention_mask_for_generation": (
        ("inputs_tensor", "generation_config", "model_kwargs"),
        "infers the prompt mask from pad tokens when no `attention_mask` is given, as `generate` does",
    ),
    "_prefill": (
        ("input_ids", "generation_config", "model_kwargs"),
        "runs the generator's prompt forward in the block-verified loop, as `_sample` does",
    ),
    "_update_model_kwargs_for_generation": (
        ("outputs", "model_kwargs"),
        "extends the generator's mask, position ids and cache after each drafted token, as `_sample` does",
    ),
    "_valid_auto_compile_criteria": (
        ("model_kwargs", "generation_config"),
        "decides, as `_sample` does, whether the block-verified loop compiles the generator's decode step",
    ),
}

# Source fragments whose order or presence the mirrored behaviour depends on.
_ORDER_IN_GET_LOGITS_PROCESSOR = ("self._merge_criteria_processor_list(processors, logits_processor)", "LogitsWarper(")
_DRAW_IN_SAMPLE = (
    "softmax(next_token_scores",
    "torch.multinomial(probs, num_samples=1)",
    "torch.argmax(next_token_scores",
)


def _supported_range() -> str:
    return ",".join(SUPPORTED_TRANSFORMERS_VERSIONS)


def _version_problem() -> str | None:
    found = version.parse(transformers.__version__)
    low, high = (version.parse(spec.lstrip("<>=")) for spec in SUPPORTED_TRANSFORMERS_VERSIONS)
    if not (low <= version.parse(found.base_version) < high):
        return f"transformers {transformers.__version__} is outside the tested range {_supported_range()}"
    return None


def _source(name: str) -> str:
    method = getattr(GenerationMixin, name, None)
    return inspect.getsource(method) if method is not None else ""


def _piece_problems() -> list[str]:
    problems = []
    for name, (parameters, purpose) in PRIVATE_PIECES.items():
        method = getattr(GenerationMixin, name, None)
        if method is None:
            problems.append(f"`GenerationMixin.{name}` is gone (it {purpose})")
            continue
        missing = [p for p in parameters if p not in inspect.signature(method).parameters]
        if missing:
            problems.append(f"`GenerationMixin.{name}` no longer takes {missing} (it {purpose})")
    source = _source("_get_logits_processor")
    merge, warper = (source.find(fragment) for fragment in _ORDER_IN_GET_LOGITS_PROCESSOR)
    if source and not 0 <= merge < warper:
        problems.append("`_get_logits_processor` no longer applies the sampling warpers after the user's processors")
    sample = _source("_sample")
    if not all(fragment in sample for fragment in _DRAW_IN_SAMPLE):
        problems.append(
            "`GenerationMixin._sample` no longer draws the next token as softmax + `torch.multinomial(probs, "
            "num_samples=1)` (or argmax when greedy)"
        )
    if "tokens_to_remove" not in inspect.signature(DynamicCache.crop).parameters:
        problems.append("`DynamicCache.crop` no longer takes `tokens_to_remove` (a negative count)")
    if not hasattr(DynamicCache, "activate_past_recording"):
        problems.append("`Cache.activate_past_recording` (needed to rewind a block's drafts) is gone")
    if "custom_generate" not in inspect.signature(GenerationMixin.generate).parameters:
        problems.append("`generate` no longer takes `custom_generate` (the block-verified loop is such a callable)")
    if "_eos_token_tensor" not in getattr(GenerationConfig, "__annotations__", {}):
        problems.append("`GenerationConfig._eos_token_tensor` (set by `_prepare_special_tokens`) is gone")
    return problems


@functools.cache
def check_transformers_compatibility() -> None:
    """Raise `RuntimeError` if transformers is outside the tested range or a private piece extrapolation uses changed.

    Checks the version against `SUPPORTED_TRANSFORMERS_VERSIONS`, that every method of `PRIVATE_PIECES` exists with the
    parameters hf_dlp passes, that `generate` still applies its sampling warpers after user processors and still draws
    the next token as a multinomial sample of the softmax (argmax when greedy). Runs once per process.

    Raises:
        `RuntimeError`: naming each change and the transformers versions to install.

    Examples:

    >>> check_transformers_compatibility()  # passes silently on a supported transformers
    """
    problems = _piece_problems()
    outside = _version_problem()
    if outside:
        problems.insert(0, outside)
    if problems:
        raise RuntimeError(
            "hf_dlp's extrapolation follows `generate` through private transformers pieces, and they changed: "
            + "; ".join(problems)
            + f". Install a tested version: pip install 'transformers{_supported_range()}'."
        )


__all__ = ["PRIVATE_PIECES", "SUPPORTED_TRANSFORMERS_VERSIONS", "check_transformers_compatibility"]
