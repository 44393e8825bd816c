"""The block loop's per-call state and its row bookkeeping: which processors work row by row, the drafted block,
the cut, the counts, and the one host round trip a block makes (`to_host`). Used by `hf_dlp.extrapolation.block`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

# hf_dlp-export: strip-begin
from .acceptance import gather_positions
from .selection import StepLogProbs
from .step import ExtrapolationStats
from .swaps import SwapLog

# hf_dlp-export: strip-end

# transformers processors (and stopping criteria) that are functions of one row's committed ids and scores, so ragged
# rows can be processed in groups of equal length. Any other processor keeps the rows in lockstep: e.g.
# `RepetitionPenaltyLogitsProcessor` (it holds each prompt's padding length by row index) or
# `PrefixConstrainedLogitsProcessor` (its function takes the row index).
ROW_WISE_PROCESSORS = frozenset(
    {
        "BlockMarker",
        "EpsilonLogitsWarper",
        "EtaLogitsWarper",
        "ExponentialDecayLengthPenalty",
        "ForcedBOSTokenLogitsProcessor",
        "ForcedEOSTokenLogitsProcessor",
        "InfNanRemoveLogitsProcessor",
        "LogitNormalization",
        "MinLengthLogitsProcessor",
        "MinNewTokensLengthLogitsProcessor",
        "MinPLogitsWarper",
        "NoBadWordsLogitsProcessor",
        "NoRepeatNGramLogitsProcessor",
        "SequenceBiasLogitsProcessor",
        "SuppressTokensAtBeginLogitsProcessor",
        "SuppressTokensLogitsProcessor",
        "TemperatureLogitsWarper",
        "TopHLogitsWarper",
        "TopKLogitsWarper",
        "TopPLogitsWarper",
        "TypicalLogitsWarper",
        "WatermarkLogitsProcessor",
    }
)
# With ragged rows some row re-draws in nearly every block; "auto" grows the block while the rows keep this share of it.
RAGGED_WHOLE_SHARE = 0.75
ROW_WISE_STOPPING = frozenset({"EosTokenCriteria", "MaxLengthCriteria", "MaxTimeCriteria"})
# Items that read only each row's last token (rows are right-aligned: one call serves all lengths).
LAST_TOKEN_ITEMS = frozenset({"EosTokenCriteria"})
# Warpers that never read the ids: applied to all positions of a block in one call.
IDS_FREE_PROCESSORS = frozenset(
    {
        "BlockMarker",
        "EpsilonLogitsWarper",
        "EtaLogitsWarper",
        "InfNanRemoveLogitsProcessor",
        "LogitNormalization",
        "MinPLogitsWarper",
        "SuppressTokensLogitsProcessor",
        "TemperatureLogitsWarper",
        "TopHLogitsWarper",
        "TopKLogitsWarper",
        "TopPLogitsWarper",
        "TypicalLogitsWarper",
    }
)


def log_info(message: str) -> None:
    try:
        from accelerate import PartialState
        from accelerate.logging import get_logger
    except ImportError:  # inside an exported custom_generate without accelerate
        logging.getLogger(__name__).info(message)
        return
    PartialState()  # accelerate's logger needs the state
    get_logger(__name__).info(message)


def to_host(tensor: torch.Tensor) -> list:
    """The one host-device round trip of a block (`tolist`); tests count its calls."""
    return tensor.tolist()


class BlockMarker(LogitsProcessor):
    """Marks where the extrapolation sits in `generate`'s processor list: before it the scores the processor would
    receive, after it the sampling warpers."""

    def __call__(self, input_ids, scores):
        return scores


def rng_state(device: torch.device) -> torch.Tensor | None:
    if device.type == "cuda":
        return torch.cuda.get_rng_state(device)
    return torch.get_rng_state() if device.type == "cpu" else None


def set_rng_state(device: torch.device, state: torch.Tensor | None) -> None:
    if state is None:
        return
    if device.type == "cuda":
        torch.cuda.set_rng_state(state, device)
    else:
        torch.set_rng_state(state)


@dataclass
class BlockRun:
    """The state of one call: committed ids, the generator's model kwargs and what both models have seen.

    `ids` holds each row's committed tokens right-aligned (row b: its last `lengths[b]` columns). `slots` counts the
    cache slots of both models plus the pending one (equal to `ids.shape[1]` in lockstep; larger with holes).
    """

    model: Any
    forward: Any
    ids: torch.LongTensor
    model_kwargs: dict[str, Any]
    head: LogitsProcessorList
    tail: LogitsProcessorList
    stopping: Any
    do_sample: bool
    pad: torch.Tensor | None
    unfinished: torch.Tensor
    random: torch.Generator
    prompt_length: int
    ragged: bool
    tail_ids_free: bool
    lengths: list[int] = field(default_factory=list)
    active: list[bool] = field(default_factory=list)
    valid: int = 0
    gen_pending: Any = None
    other_pending: torch.Tensor | None = None
    gen_seen: int = 0
    slots: int = 0
    other_forwards: int = 1  # the prefill
    uniforms: list[torch.Tensor] = field(default_factory=list)  # "random" under greedy: the numbers of each step

    def groups(self) -> list[tuple[int, torch.Tensor | None, list[int] | None]]:
        """`(length, rows, row list)` of equal committed length; one group (`rows=None`) when all are equal."""
        if len(set(self.lengths)) == 1:
            return [(self.lengths[0], None, None)]
        rows: dict[int, list[int]] = {}
        for row, length in enumerate(self.lengths):
            rows.setdefault(length, []).append(row)
        return [(length, torch.tensor(r, device=self.ids.device), r) for length, r in rows.items()]


@dataclass
class BlockDraft:
    """One block of drafts: ids (committed + drafts), per position the processed and warped scores, the unfinished
    mask before it (plus one after the last), and the groups of rows of equal length."""

    ids: torch.LongTensor
    start: int
    groups: list
    rng: torch.Tensor | None = None
    scores: list[torch.Tensor] = field(default_factory=list)
    warped: list[torch.Tensor] = field(default_factory=list)
    unfinished: list[torch.Tensor] = field(default_factory=list)

    @property
    def length(self) -> int:
        return self.ids.shape[1] - self.start

    @property
    def tokens(self) -> torch.LongTensor:
        return self.ids[:, self.start :]


@dataclass
class BlockCut:
    """Where each row's block ends: `kept[b]` committed tokens (the last re-drawn where `replaced[b]`)."""

    kept: list[int]
    maybe_active: list[bool]
    replaced_any: bool
    replaced: torch.Tensor
    kept_tensor: torch.Tensor
    tokens: torch.Tensor | None = None  # the re-drawn tokens (where `replaced`)


def apply_items(items, ids: torch.LongTensor, groups, grown: int, scores: torch.Tensor | None) -> torch.Tensor:
    """Run processors (or stopping criteria, `scores=None`) so that each row sees only its committed ids.

    A row of committed length `length` (`groups`: `(length, rows)`) sees the last `length + grown` columns of `ids`
    (`grown` drafts appended). With one group the lists run once; otherwise each item runs once on the whole batch
    when it reads no ids (`IDS_FREE_PROCESSORS`) or only the last token (`EosTokenCriteria`), from the lengths
    (`MaxLengthCriteria`), or else once per group.
    """
    stopping = scores is None
    if len(items) == 0:
        return torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device) if stopping else scores
    end = ids.shape[1]
    if len(groups) == 1 and groups[0][1] is None:
        return items(ids[:, end - groups[0][0] - grown : end], scores)
    result = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device) if stopping else scores
    for item in items:
        name = type(item).__name__
        if name in IDS_FREE_PROCESSORS or name in LAST_TOKEN_ITEMS:
            out = item(ids, None if stopping else result)
        elif name == "MaxLengthCriteria":
            done = [False] * ids.shape[0]
            for length, _, members in groups:
                for row in members:
                    done[row] = length + grown >= item.max_length
            out = torch.tensor(done, device=ids.device)
        else:
            out = None
            for length, rows, _ in groups:
                part = item(ids[rows, end - length - grown : end], None if stopping else result[rows])
                out = part.new_zeros((ids.shape[0], *part.shape[1:])) if out is None else out
                out[rows] = part
        result = result | out if stopping else out
    return result


def positions_at(cut: list[int], *tensors: torch.Tensor) -> list[torch.Tensor]:
    positions = torch.tensor(cut, device=tensors[0].device).clamp(min=0)
    return [gather_positions(x, positions) for x in tensors]


def slowest_length(run: BlockRun, max_length: int) -> int:
    """The committed length of the slowest row still going (a finished row counts as done: `max_length`)."""
    return min(length if active else max_length for length, active in zip(run.lengths, run.active, strict=True))


@dataclass
class BlockCounts:
    selected: torch.Tensor
    generated: torch.Tensor
    drafted: torch.Tensor
    accepted: torch.Tensor
    block_tokens: torch.Tensor
    row_blocks: torch.Tensor
    blocks: int = 0

    @classmethod
    def zeros(cls, batch: int, device: torch.device) -> BlockCounts:
        zeros = torch.zeros(batch, dtype=torch.long, device=device)
        scalar = torch.zeros((), dtype=torch.long, device=device)
        return cls(zeros.clone(), zeros.clone(), scalar.clone(), scalar.clone(), scalar.clone(), scalar.clone())

    def add(self, kept: torch.Tensor, draft: BlockDraft, cut: BlockCut, *, dense: bool) -> None:
        """Count one block: `kept` committed positions per row, of which the last is re-drawn where `cut.replaced`."""
        active = torch.stack(draft.unfinished[:-1], dim=1).long()  # (batch, n)
        positions = torch.arange(active.shape[1], device=active.device)[None]
        committed = (active * (positions < kept[:, None])).sum(-1)  # active committed positions per row
        replaced = cut.replaced.long() * (committed > 0)
        self.generated += committed
        self.selected += committed if dense else replaced
        self.accepted += (committed - replaced).sum()
        self.drafted += active.sum()
        self.block_tokens += committed.sum()
        self.row_blocks += draft.unfinished[0].long().sum()
        self.blocks += 1

    def stats(self, other_tokens: int, other_forwards: int, fell_back: bool) -> ExtrapolationStats:
        scalars = torch.stack([self.drafted, self.accepted, self.block_tokens, self.row_blocks]).tolist()
        return ExtrapolationStats(
            self.selected.tolist(),
            self.generated.tolist(),
            other_tokens,
            other_forwards=other_forwards,
            drafted_tokens=scalars[0],
            accepted_tokens=scalars[1],
            num_blocks=self.blocks,
            block_tokens=scalars[2],
            row_blocks=scalars[3],
            fell_back=fell_back,
        )


def decode_step(model, model_kwargs: dict[str, Any], generation_config: GenerationConfig):
    """The generator's one-token forward: compiled exactly when `generate`'s own decoding loop would compile it (a
    compileable cache such as `cache_implementation="static"`, on a device transformers compiles for)."""
    if model._valid_auto_compile_criteria(model_kwargs, generation_config):
        return model.get_compiled_call(generation_config.compile_config)
    return model


def record_block_swaps(swaps: SwapLog, run: BlockRun, draft: BlockDraft, cut: BlockCut, step: StepLogProbs) -> None:
    """Log the re-drawn positions of a block (rows grouped by their index among the generated tokens)."""
    rows: dict[int, list[int]] = {}
    for row, (length, kept) in enumerate(zip(run.lengths, cut.kept, strict=True)):
        if kept:
            rows.setdefault(length - run.prompt_length + kept - 1, []).append(row)
    for position, members in rows.items():
        at = torch.tensor([cut.kept[members[0]] - 1] * len(run.lengths), device=draft.ids.device)
        mask = torch.zeros(len(run.lengths), dtype=torch.bool, device=draft.ids.device)
        mask[members] = True
        candidate = gather_positions(draft.tokens, at)
        chosen = torch.where(cut.replaced, cut.tokens, candidate)
        active = gather_positions(torch.stack(draft.unfinished[:-1], 1), at)
        log_rl, log_base = gather_positions(step.log_rl, at), gather_positions(step.log_base, at)
        swaps.add(position, mask & cut.replaced & active, candidate, chosen, log_rl, log_base)


__all__ = [
    "IDS_FREE_PROCESSORS",
    "LAST_TOKEN_ITEMS",
    "RAGGED_WHOLE_SHARE",
    "ROW_WISE_PROCESSORS",
    "ROW_WISE_STOPPING",
    "BlockCounts",
    "BlockCut",
    "BlockDraft",
    "BlockMarker",
    "BlockRun",
    "apply_items",
    "decode_step",
    "record_block_swaps",
    "log_info",
    "positions_at",
    "rng_state",
    "set_rng_state",
    "slowest_length",
    "to_host",
]
