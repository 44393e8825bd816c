"""`run_extrapolation`: one `generate` call that extrapolates, one token a step (`ExtrapolationLogitsProcessor`) or
block-verified (`BlockExtrapolationDecoder`), and the checks of what the block path can follow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from transformers import GenerationConfig, LogitsProcessorList

# hf_dlp-export: strip-begin
from .block import BlockExtrapolationDecoder
from .config import ExtrapolationConfig
from .decoding import check_generation_mode, prepare_generation_config
from .processor import (
    ExtrapolationLogitsProcessor,
)

# hf_dlp-export: strip-end

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def check_block_mode(generation_config: GenerationConfig, generate_kwargs: dict[str, Any]) -> None:
    """Refuse what block-verified decoding cannot follow, naming the setting and the fix."""
    if generate_kwargs.get("streamer") is not None:
        raise ValueError(
            "Block-verified extrapolation does not stream tokens; drop `streamer=` or use `block_size=None`."
        )
    if generation_config.stop_strings:
        raise ValueError(
            "Block-verified extrapolation cannot follow `stop_strings` (`generate` gives a `custom_generate` callable "
            "no tokenizer to match them with). Stop on token ids (`eos_token_id=[...]`) or use `block_size=None`."
        )
    if generation_config.guidance_scale not in (None, 1, 1.0):
        raise ValueError(
            f"Block-verified extrapolation cannot rewind classifier-free guidance (`guidance_scale="
            f"{generation_config.guidance_scale}`), whose processor keeps its own cache. Use `block_size=None`."
        )
    if generation_config.return_dict_in_generate:
        raise ValueError(
            "Block-verified extrapolation returns token ids only; set `return_dict_in_generate=False` or use "
            "`block_size=None`."
        )


def run_extrapolation(
    generate,
    model: PreTrainedModel,
    other: dict[str, Any],
    config: ExtrapolationConfig,
    *,
    input_ids: torch.LongTensor,
    attention_mask: torch.Tensor | None = None,
    generation_config: GenerationConfig | None = None,
    logits_processor: LogitsProcessorList | None = None,
    valid_vocab_size: int | None = None,
    record_swaps: bool = False,
    **generate_kwargs: Any,
) -> tuple[Any, ExtrapolationLogitsProcessor | BlockExtrapolationDecoder]:
    """Call `generate` (the generator's, or a stand-in) with a fresh extrapolation object; return it with the output.

    `config.block_size=None` appends an `ExtrapolationLogitsProcessor` (built with the `GenerationConfig` `generate`
    resolves) after the caller's processors; otherwise a `BlockExtrapolationDecoder` runs as `custom_generate`, its
    marker in the same place. Either returned object has `.stats()`. `other` is `{"base_model": ...}` or
    `{"rl_model": ...}`. `record_swaps` asks either for the re-drawn positions (`ExtrapolationStats.swaps`). Shared
    by `generate_with_extrapolation` and the exported `custom_generate`.
    """
    resolved = prepare_generation_config(model, generation_config, generate_kwargs)
    check_generation_mode(model, resolved, generate_kwargs)
    if config.block_size is None:
        extrapolator = ExtrapolationLogitsProcessor(
            **other,
            config=config,
            prompt_attention_mask=attention_mask,
            generation_config=resolved,
            valid_vocab_size=valid_vocab_size,
            record_swaps=record_swaps,
        )
        appended, decoding = extrapolator, {}
    else:
        check_block_mode(resolved, generate_kwargs)
        extrapolator = BlockExtrapolationDecoder(
            **other, config=config, valid_vocab_size=valid_vocab_size, record_swaps=record_swaps
        )
        appended, decoding = extrapolator.marker, {"custom_generate": extrapolator}
    output = generate(
        input_ids=input_ids,
        attention_mask=attention_mask,
        generation_config=generation_config,
        logits_processor=LogitsProcessorList([*(logits_processor or []), appended]),
        **decoding,
        **generate_kwargs,
    )
    return output, extrapolator


__all__ = ["check_block_mode", "run_extrapolation"]
