"""What the per-token processor and the block-verified loop share at each decoding step: the other model's scorer
and the generator's role, the common vocabulary width, the generator's masked scores, the private random numbers of
the re-draws, and the statistics of a call (`ExtrapolationStats`).

Depends on `torch` and `transformers` only (exported with the processor in `custom_generate/generate.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

# hf_dlp-export: strip-begin
from .config import ExtrapolationConfig
from .scorers import OtherModelScorer, as_scorer
from .swaps import Swap

# hf_dlp-export: strip-end


@dataclass
class ExtrapolationStats:
    """Selection statistics of one `generate` call, per returned sequence, and the block-verification figures.

    Args:
        num_selected (`list[int]`): positions whose token was re-drawn from π_extra (EOS included, padding not).
        num_generated (`list[int]`): generated tokens (EOS included, padding after EOS not).
        other_tokens (`int`): tokens the other model processed (prompt + one per step: B·(P + T − 1); the block
            path also counts the drafts it discarded).
        other_forwards (`int`): forwards of the other model (prefill included): one per token on the per-token path,
            one per block on the block path.
        drafted_tokens (`int`): block path: tokens the generator drafted, summed over the unfinished rows.
        accepted_tokens (`int`): block path: drafted tokens kept as drafted (neither re-drawn nor discarded).
        num_blocks (`int`): block path: verification blocks (one forward of the other model each).
        block_tokens (`int`): block path: tokens the rows advanced, summed over the blocks and the rows unfinished at
            each block's start.
        row_blocks (`int`): block path: rows unfinished at each block's start, summed over the blocks (0: count
            `num_blocks`).
        fell_back (`bool`): block path, `block_size="auto"`: blocks did not pay, and the rest of the call ran one
            token per step.
        swaps (`list[list[Swap]]`, *optional*): with `record_swaps=True`, per sequence the positions re-drawn, each
            with the candidate token, the chosen token and their Δlog p.

    Examples:

    >>> stats = ExtrapolationStats(num_selected=[1, 3], num_generated=[10, 10], other_tokens=40)
    >>> stats.replacement_ratio, stats.per_sequence_ratio
    (0.2, [0.1, 0.3])
    >>> blocks = ExtrapolationStats([1], [10], drafted_tokens=16, accepted_tokens=9, num_blocks=2, block_tokens=10)
    >>> blocks.acceptance_rate, blocks.mean_accepted_block_length
    (0.5625, 5.0)
    """

    num_selected: list[int]
    num_generated: list[int]
    other_tokens: int = 0
    other_forwards: int = 0
    drafted_tokens: int = 0
    accepted_tokens: int = 0
    num_blocks: int = 0
    block_tokens: int = 0
    swaps: list[list[Swap]] | None = None
    row_blocks: int = 0
    fell_back: bool = False

    @property
    def replacement_ratio(self) -> float:
        """Share of generated tokens whose position was selected (the paper's replacement ratio)."""
        total = sum(self.num_generated)
        return sum(self.num_selected) / total if total else 0.0

    @property
    def per_sequence_ratio(self) -> list[float]:
        return [s / g if g else 0.0 for s, g in zip(self.num_selected, self.num_generated, strict=True)]

    @property
    def acceptance_rate(self) -> float:
        """Share of drafted tokens kept as drafted (block path; 0 on the per-token path)."""
        return self.accepted_tokens / self.drafted_tokens if self.drafted_tokens else 0.0

    @property
    def mean_accepted_block_length(self) -> float:
        """Tokens a row advances per verification block (the re-drawn token included; block path)."""
        rows = self.row_blocks or self.num_blocks
        return self.block_tokens / rows if rows else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_selected": list(self.num_selected),
            "num_generated": list(self.num_generated),
            "other_tokens": self.other_tokens,
            "replacement_ratio": self.replacement_ratio,
            "other_forwards": self.other_forwards,
            "drafted_tokens": self.drafted_tokens,
            "accepted_tokens": self.accepted_tokens,
            "num_blocks": self.num_blocks,
            "block_tokens": self.block_tokens,
            "row_blocks": self.row_blocks,
            "fell_back": self.fell_back,
            "acceptance_rate": self.acceptance_rate,
            "mean_accepted_block_length": self.mean_accepted_block_length,
            **({} if self.swaps is None else {"swaps": [[list(swap) for swap in row] for row in self.swaps]}),
        }


def other_side_scorer(base_model: Any, rl_model: Any, config: ExtrapolationConfig) -> tuple[OtherModelScorer, str]:
    """(a scorer of the other model, the generator's role `"rl"` or `"base"`), checked against `config.generator`."""
    if (base_model is None) == (rl_model is None):
        raise ValueError(
            "Give exactly one of `base_model` (when the RL model generates) or `rl_model` (when the base model "
            f"generates); got base_model={type(base_model).__name__}, rl_model={type(rl_model).__name__}."
        )
    role = "rl" if base_model is not None else "base"
    if config.generator not in (None, role):
        given = "base_model" if base_model is not None else "rl_model"
        raise ValueError(
            f"`generator={config.generator!r}` in the config, but `{given}=` was given, which makes the "
            f"{'RL' if given == 'base_model' else 'base'} model the generator. Pass the other model under the "
            "other name, or set `generator` to match (or to None)."
        )
    scorer = as_scorer(base_model if base_model is not None else rl_model)
    model_config = getattr(scorer.model, "config", None)
    if model_config is None or getattr(model_config, "is_encoder_decoder", False):
        raise ValueError(
            "Extrapolation supports decoder-only causal LMs; the other model is an encoder-decoder "
            "model (or has no `config`). Use a decoder-only base/RL pair."
        )
    return scorer, role


def valid_width(valid_vocab_size: int | None, width: int, other_width: int) -> int:
    """The number of real ids both models score: `valid_vocab_size`, or the common width of equal output layers."""
    if valid_vocab_size is None and width != other_width:
        raise ValueError(
            f"The generator scores {width} ids and the other model {other_width}: the output layers differ, "
            "so some rows are padding. Pass `valid_vocab_size` (the tokenizer's length, e.g. "
            "`len(tokenizer)`; `generate_with_extrapolation` takes `tokenizer=`) to say which ids are real."
        )
    if valid_vocab_size is not None and valid_vocab_size > min(width, other_width):
        raise ValueError(
            f"`valid_vocab_size={valid_vocab_size}` exceeds the output layers ({width} and "
            f"{other_width} rows); pass the tokenizer's length."
        )
    return min(width, other_width, valid_vocab_size or width)


def masked_scores(scores: torch.Tensor, valid: int) -> torch.Tensor:
    """A float32 copy of the generator's scores with the padding ids (`>= valid`) at `-inf`."""
    masked = scores.float().clone()
    masked[..., valid:] = float("-inf")
    return masked


def widen(log_probs: torch.Tensor, width: int) -> torch.Tensor:
    """`(batch, valid)` log-probabilities padded with `-inf` to the generator's `width` columns."""
    full = log_probs.new_full((*log_probs.shape[:-1], width), float("-inf"))
    full[..., : log_probs.shape[-1]] = log_probs
    return full


def private_generator(device: torch.device) -> torch.Generator:
    """A `torch.Generator` seeded from the global random state without advancing it (the re-draws' numbers)."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        seed = int(torch.randint(0, 2**62, (1,), device=device).item())
    return torch.Generator(device=device).manual_seed(seed)


__all__ = [
    "ExtrapolationStats",
    "masked_scores",
    "other_side_scorer",
    "private_generator",
    "valid_width",
    "widen",
]
