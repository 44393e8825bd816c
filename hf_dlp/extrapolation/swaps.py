"""Which tokens the extrapolation swapped: with `record_swaps=True`, every re-drawn position, with the generator's
candidate, the token chosen instead and the Δlog p = log π_RL − log π_base of each (`ExtrapolationStats.swaps`).

Recorded by `ExtrapolationLogitsProcessor` and `BlockExtrapolationDecoder` alike; `hf_dlp.sweeps.swaps` sums them up.
This module depends on `torch` only, so that `export_custom_generate` can ship it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

# hf_dlp-export: strip-begin
from ..divergence import delta_logp
from .config import ExtrapolationConfig

# hf_dlp-export: strip-end


class Swap(NamedTuple):
    """One re-drawn position (`record_swaps=True`): its index among the generated tokens, the candidate the generator
    drew, the token chosen instead (possibly the same), and Δlog p = log π_RL − log π_base of each."""

    position: int
    candidate: int
    chosen: int
    candidate_delta_logp: float
    chosen_delta_logp: float


class SwapLog:
    """The re-drawn positions of one call, kept as tensors until `per_sequence` (no device sync while decoding)."""

    def __init__(self) -> None:
        self._steps: list[tuple[int, torch.Tensor, ...]] = []

    def add(self, position: int, rows, candidate, chosen, log_rl: torch.Tensor, log_base: torch.Tensor) -> None:
        """Record the `rows` (a `(batch,)` mask) re-drawn at `position`; log-probabilities are `(batch, valid)`."""
        both = torch.stack([candidate, chosen], dim=-1)
        self._steps.append((position, rows.clone(), both, delta_logp(log_rl, log_base, both)))

    def per_sequence(self, batch: int) -> list[list[Swap]]:
        out: list[list[Swap]] = [[] for _ in range(batch)]
        for position, rows, both, delta in self._steps:
            for row in rows.nonzero().flatten().tolist():
                ids, deltas = both[row].tolist(), delta[row].tolist()
                out[row].append(Swap(position, ids[0], ids[1], deltas[0], deltas[1]))
        return out


def check_record_swaps(record_swaps: Any, config: ExtrapolationConfig) -> bool:
    """Validate `record_swaps`: a bool, and only for selective rules (dense extrapolation re-draws every position)."""
    if not isinstance(record_swaps, bool):
        raise TypeError(f"`record_swaps` must be True or False, got {record_swaps!r}.")
    if record_swaps and config.selection == "all":
        raise ValueError(
            "`record_swaps=True` records the positions a selective rule re-draws, but `selection='all'` re-draws every "
            "position; use a selective rule or `record_swaps=False`."
        )
    return record_swaps


__all__ = ["Swap", "SwapLog", "check_record_swaps"]
