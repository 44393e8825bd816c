"""`run_extrapolation`: one `generate` call that extrapolates, one token a step (`ExtrapolationLogitsProcessor`) or
block-verified (`BlockExtrapolationDecoder`), after the one check of the decoding mode
(`hf_dlp.extrapolation.decoding.check_generation_mode`).
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
    check_generation_mode(model, resolved, generate_kwargs, block_size=config.block_size)
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


__all__ = ["run_extrapolation"]
