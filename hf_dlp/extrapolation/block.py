"""Block-verified (speculative) extrapolation: the other model verifies a block of drafted tokens in one forward.

The generator drafts up to `block_size` tokens with its own KV cache exactly as plain `generate` would (the logits
processors and warpers `generate` builds, its token selection, the same random numbers). The other model scores the
drafted positions in one forward (`OtherModelScorer.extend`). The rule of the per-token processor then decides for all
positions at once, as batched tensors (`hf_dlp.extrapolation.acceptance`), and one host round trip per block reads
where each row is cut:

- selective rules: the first position where the rule fires for an unfinished row is re-drawn from π_extra exactly as
  `ExtrapolationLogitsProcessor` re-draws it (candidate set, warpers, the same private random numbers);
- dense greedy: drafted tokens are kept while they equal argmax π_extra; the first mismatch takes argmax π_extra;
- dense sampling: speculative sampling (Leviathan et al. 2023, Chen et al. 2023) with the warped π_extra as target
  and the generator's warped distribution as draft.

**Ragged rows** (greedy decoding): each row keeps its own accepted drafts, so a block ends for a row only where that
row re-draws. The rows' slots stay aligned in both KV caches; a row's rejected drafts become holes, masked out of the
attention mask, and position ids count only the real tokens (`CachedModelScorer.hide`). The logits processors and
stopping criteria see each row's committed tokens only: rows of equal length are processed together. Processors not
known to work row by row (and custom scorers without `hide`) keep the rows in lockstep, which is exact too.

**Lockstep rows** (sampling): the block ends at the first position where *any* unfinished row re-draws (or rejects);
the other rows keep their draft there. The global random state advances once per committed token, as in plain
`generate` (the block start's state is restored and the kept draws replayed), so seeded selective runs give the
per-token processor's tokens (up to float rounding of the k-token forward).

`BlockExtrapolationDecoder` is a `custom_generate` callable: `generate` prepares the expanded inputs, its logits
processors and stopping criteria, and calls it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

# hf_dlp-export: strip-begin
from .acceptance import (
    AUTO_BLOCK_START,
    BlockSchedule,
    dense_greedy_fires,
    dense_residual_draw,
    dense_sampling_fires,
    first_true,
    gather_positions,
    selective_fires,
)
from .compatibility import check_transformers_compatibility
from .config import ExtrapolationConfig
from .decoding import check_generation_mode, draw_next_tokens, prepare_generation_config
from .processor import (
    ExtrapolationLogitsProcessor,
    ExtrapolationStats,
    masked_scores,
    other_side_scorer,
    private_generator,
    valid_width,
    widen,
)
from .selection import StepLogProbs, dense_log_probs, redraw_log_probs, step_log_probs
from .swaps import SwapLog, check_record_swaps

# hf_dlp-export: strip-end

if TYPE_CHECKING:
    from transformers import PreTrainedModel

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


def _log_info(message: str) -> None:
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


def _rng_state(device: torch.device) -> torch.Tensor | None:
    if device.type == "cuda":
        return torch.cuda.get_rng_state(device)
    return torch.get_rng_state() if device.type == "cpu" else None


def _set_rng_state(device: torch.device, state: torch.Tensor | None) -> None:
    if state is None:
        return
    if device.type == "cuda":
        torch.cuda.set_rng_state(state, device)
    else:
        torch.set_rng_state(state)


@dataclass
class _Run:
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
class _Draft:
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
class _Cut:
    """Where each row's block ends: `kept[b]` committed tokens (the last re-drawn where `replaced[b]`)."""

    kept: list[int]
    maybe_active: list[bool]
    replaced_any: bool
    replaced: torch.Tensor
    kept_tensor: torch.Tensor
    tokens: torch.Tensor | None = None  # the re-drawn tokens (where `replaced`)


def _apply(items, ids: torch.LongTensor, groups, grown: int, scores: torch.Tensor | None) -> torch.Tensor:
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


class BlockExtrapolationDecoder:
    """A `custom_generate` callable: extrapolated greedy decoding or sampling with block verification (module doc).

    `generate_with_extrapolation(..., block_size=8)` (or `block_size="auto"`) builds one per call and passes it to
    `generate` with a `BlockMarker` after the caller's logits processors. `stats()` returns the `ExtrapolationStats`
    of the call, with the acceptance figures. The caller's logits processors must be functions of
    `(input_ids, scores)` (they are called on drafted prefixes that may be dropped); under greedy decoding, rows advance
    raggedly when every processor is one of `ROW_WISE_PROCESSORS`, else in lockstep (logged, naming the processor).

    Examples:

    >>> import torch
    >>> from hf_dlp.extrapolation import ExtrapolationConfig, generate_with_extrapolation
    >>> from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm
    >>> tok = build_char_tokenizer()
    >>> rl, base = build_tiny_causal_lm(size="nano", seed=1), build_tiny_causal_lm(size="nano", seed=2)
    >>> batch = tok(["Q: 1+2?", "Q: 10+7?"], return_tensors="pt", padding=True)
    >>> kwargs = dict(base_model=base, gamma=0.5, tau=-0.5, **batch, max_new_tokens=6, do_sample=False)
    >>> per_token = generate_with_extrapolation(rl, **kwargs)
    >>> blocks, stats = generate_with_extrapolation(rl, block_size=4, return_stats=True, **kwargs)
    >>> torch.equal(per_token, blocks), stats.num_blocks <= 6, stats.drafted_tokens >= stats.accepted_tokens
    (True, True, True)
    """

    def __init__(
        self,
        *,
        base_model: Any = None,
        rl_model: Any = None,
        config: ExtrapolationConfig,
        valid_vocab_size: int | None = None,
        record_swaps: bool = False,
    ):
        check_transformers_compatibility()
        if config.block_size is None:
            raise ValueError("BlockExtrapolationDecoder needs `config.block_size` (a number of tokens or 'auto').")
        self.config = config
        self.record_swaps = check_record_swaps(record_swaps, config)
        self.scorer, self.generator_role = other_side_scorer(base_model, rl_model, config)
        self.valid_vocab_size = valid_vocab_size
        self.marker = BlockMarker()
        self._stats: ExtrapolationStats | None = None

    def stats(self) -> ExtrapolationStats:
        """Selection counts and acceptance figures of the last call, one count per returned sequence."""
        if self._stats is None:
            raise RuntimeError("No statistics yet: run `generate` with this decoder as `custom_generate` first.")
        return self._stats

    # --- setting up -----------------------------------------------------------------------------------------------
    def _split(self, logits_processor: LogitsProcessorList) -> tuple[LogitsProcessorList, LogitsProcessorList]:
        index = next((i for i, p in enumerate(logits_processor) if p is self.marker), None)
        if index is None:
            raise ValueError(
                "BlockExtrapolationDecoder did not find its marker among `generate`'s logits processors; call it "
                "through `generate_with_extrapolation(..., block_size=...)`, which places it."
            )
        return LogitsProcessorList(logits_processor[:index]), LogitsProcessorList(logits_processor[index + 1 :])

    def _lockstep_reasons(self, head, tail, stopping, do_sample: bool, model_kwargs) -> list[str]:
        """Why the rows cannot advance raggedly (empty: they can)."""
        if do_sample:  # seeded sampling follows the per-token path's random numbers step by step (no message)
            return ["sampling"]
        reasons = [type(p).__name__ for p in [*head, *tail] if type(p).__name__ not in ROW_WISE_PROCESSORS]
        reasons += [type(c).__name__ for c in stopping if type(c).__name__ not in ROW_WISE_STOPPING]
        if not hasattr(self.scorer, "hide"):
            reasons.append(f"{type(self.scorer).__name__} (no `hide`)")
        if model_kwargs.get("position_ids") is None:
            reasons.append("a generator without `position_ids`")
        cache = model_kwargs.get("cache")
        if cache is not None and getattr(cache, "is_compileable", False):  # holes would outgrow its fixed length
            reasons.append(f"the generator's {type(cache).__name__}")
        if reasons:  # sampling aside, a processor or scorer the user may want to know about
            _log_info(
                f"Block-verified extrapolation keeps the rows in lockstep: {', '.join(sorted(set(reasons)))} "
                "cannot follow ragged rows (each row's own committed tokens)."
            )
        return reasons

    def _start(self, model, input_ids, logits_processor, stopping_criteria, generation_config, model_kwargs) -> _Run:
        if generation_config.return_dict_in_generate:
            raise ValueError(
                "Block-verified extrapolation returns token ids only; set `return_dict_in_generate=False` or use "
                "`block_size=None`."
            )
        mask = model_kwargs.get("attention_mask")
        mask = torch.ones_like(input_ids) if mask is None else mask.long()
        if not bool(mask[:, -1].all()):
            raise ValueError(
                "The prompts are right padded (the attention mask has zeros in its last column); decoder-only "
                "generation needs left padding. Set `tokenizer.padding_side = 'left'`."
            )
        head, tail = self._split(logits_processor)
        self.scorer.reset()
        if hasattr(self.scorer, "enable_rollback"):
            self.scorer.enable_rollback()
        other = self.scorer.prefill(input_ids, mask)
        outputs = model._prefill(input_ids, generation_config, model_kwargs)
        model_kwargs = model._update_model_kwargs_for_generation(outputs, model_kwargs)
        cache = model_kwargs.get("cache")
        if cache is None or not hasattr(cache, "crop"):
            raise ValueError("Block-verified extrapolation needs the generator's KV cache (`use_cache=True`).")
        cache.activate_past_recording()
        pad = generation_config._pad_token_tensor
        do_sample = bool(generation_config.do_sample)
        batch, length = input_ids.shape
        run = _Run(
            model=model,
            forward=_decode_step(model, model_kwargs, generation_config),
            ids=input_ids,
            model_kwargs=model_kwargs,
            head=head,
            tail=tail,
            stopping=stopping_criteria,
            do_sample=do_sample,
            pad=None if pad is None else pad.to(input_ids.device),
            unfinished=torch.ones(batch, dtype=torch.bool, device=input_ids.device),
            random=private_generator(input_ids.device),
            prompt_length=length,
            ragged=not self._lockstep_reasons(head, tail, stopping_criteria, do_sample, model_kwargs),
            tail_ids_free=all(type(p).__name__ in IDS_FREE_PROCESSORS for p in tail),
            lengths=[length] * batch,
            active=[True] * batch,
            gen_pending=outputs,
            other_pending=other,
            gen_seen=length,
            slots=length,
        )
        run.valid = valid_width(self.valid_vocab_size, outputs.logits.shape[-1], other.shape[-1])
        return run

    # --- the loop -------------------------------------------------------------------------------------------------
    def __call__(self, model, input_ids, logits_processor, stopping_criteria, generation_config, **model_kwargs):
        run = self._start(model, input_ids, logits_processor, stopping_criteria, generation_config, model_kwargs)
        counts = _Counts.zeros(input_ids.shape[0], input_ids.device)
        swaps = SwapLog() if self.record_swaps else None
        # batches start shorter: while a block is tried, the rows drift apart, and a fallback pays for the lag
        start = max(2, AUTO_BLOCK_START // input_ids.shape[0])
        schedule = BlockSchedule(self.config.block_size, start=start, judge_first=input_ids.shape[0] > 1)
        max_length = generation_config.max_length
        while True:
            shortest = _slowest(run, max_length)
            schedule.start()
            draft = self._draft(run, min(schedule.size, max_length - shortest))
            step = self._step(run, draft, self._score(run, draft))
            cut = self._verify(run, draft, step)
            if swaps is not None and cut.replaced_any:
                _record_swaps(swaps, run, draft, cut, step)
            self._commit(run, draft, cut, counts)
            run.active = [a and length < max_length for a, length in zip(cut.maybe_active, run.lengths, strict=True)]
            # the batch finishes with its slowest row: "auto" times blocks by how far that row got
            advanced = _slowest(run, max_length) - shortest
            # ragged rows: a block "pays whole" when the rows kept most of it (some row nearly always re-draws)
            kept = [k for k in cut.kept if k > 0]
            share = sum(kept) / max(len(kept), 1) / draft.length
            whole = share >= RAGGED_WHOLE_SHARE if run.ragged else not cut.replaced_any
            schedule.update(whole=whole, advanced=advanced, fired=cut.replaced_any if len(run.lengths) == 1 else None)
            if not any(run.active):
                break
            self._rollback(run, cut)
        self._stats = counts.stats(self.scorer.tokens_processed, run.other_forwards, schedule.fell_back)
        if swaps is not None:
            self._stats.swaps = swaps.per_sequence(input_ids.shape[0])
        return self._output(run, self._stats)

    def _forward(self, run: _Run, ids: torch.LongTensor):
        model = run.model
        inputs = model.prepare_inputs_for_generation(ids, next_sequence_length=1, **run.model_kwargs)
        outputs = run.forward(**inputs, return_dict=True)
        run.model_kwargs = model._update_model_kwargs_for_generation(outputs, run.model_kwargs)
        run.gen_seen += 1
        return outputs

    def _draft(self, run: _Run, size: int) -> _Draft:
        """Draft `size` tokens as `GenerationMixin._sample` would (processors, warpers, draw, pads, stops)."""
        groups = run.groups()
        selective_sampling = run.do_sample and self.config.selection != "all"
        draft = _Draft(ids=run.ids, start=run.ids.shape[1], groups=groups, unfinished=[run.unfinished])
        draft.rng = _rng_state(run.ids.device) if selective_sampling else None
        ids, unfinished = run.ids, run.unfinished
        for j in range(size):
            outputs = run.gen_pending if run.gen_pending is not None else self._forward(run, ids)
            run.gen_pending = None
            logits = outputs.logits[:, -1].to(copy=True, dtype=torch.float32, device=ids.device)
            scores = masked_scores(_apply(run.head, ids, groups, j, logits), run.valid)
            warped = _apply(run.tail, ids, groups, j, scores)
            tokens = draw_next_tokens(warped, do_sample=run.do_sample)
            if run.pad is not None:
                tokens = torch.where(unfinished, tokens, run.pad)
            ids = torch.cat([ids, tokens[:, None]], dim=-1)
            unfinished = unfinished & ~_apply(run.stopping, ids, groups, j + 1, None)
            draft.scores.append(scores)
            draft.warped.append(warped if run.do_sample else None)  # sampling reads it (acceptance, replay)
            draft.unfinished.append(unfinished)
        draft.ids = ids
        return draft

    def _score(self, run: _Run, draft: _Draft) -> torch.Tensor:
        """The other model's logits at the drafted positions, `(batch, n, vocab)`, in one forward."""
        drafted = draft.ids[:, draft.start : draft.start + draft.length - 1]
        parts = []
        if run.other_pending is not None:  # after the prefill the other model has seen every committed token
            parts.append(run.other_pending[:, None])
        else:
            drafted = torch.cat([draft.ids[:, draft.start - 1 : draft.start], drafted], dim=-1)
        run.other_pending = None
        if drafted.shape[1]:
            parts.append(self.scorer.extend(drafted))
            run.other_forwards += 1
        return torch.cat(parts, dim=1)

    # --- verification: batched over the block, one host round trip ----------------------------------------------
    def _step(self, run: _Run, draft: _Draft, other: torch.Tensor) -> StepLogProbs:
        return step_log_probs(
            torch.stack(draft.scores, dim=1),
            other,
            valid=run.valid,
            generator_role=self.generator_role,
            gamma=self.config.gamma,
            candidate_top_k=self.config.candidate_top_k,
        )

    def _tail_at(self, run: _Run, draft: _Draft, log_probs: torch.Tensor, positions: range) -> torch.Tensor:
        """The sampling tail on `(batch, len(positions), vocab)` log-probs, each seeing its prefix: `(batch, n, W)`."""
        full = widen(log_probs, draft.scores[0].shape[-1])
        if len(run.tail) == 0:
            return full
        if run.tail_ids_free:
            batch, n, width = full.shape
            ids = draft.ids[:, : draft.start].repeat(n, 1)
            return run.tail(ids, full.transpose(0, 1).reshape(n * batch, width)).view(n, batch, width).transpose(0, 1)
        parts = [
            _apply(run.tail, draft.ids[:, : draft.start + j], draft.groups, j, full[:, i])
            for i, j in enumerate(positions)
        ]
        return torch.stack(parts, dim=1)

    def _uniforms(self, run: _Run, draft: _Draft) -> torch.Tensor:
        """`"random"` under greedy: the per-token processor's `rand(batch)` of each step, `(batch, n)`."""
        steps = [length - run.prompt_length for length in run.lengths]
        while len(run.uniforms) < max(steps) + draft.length:
            run.uniforms.append(torch.rand(run.ids.shape[0], generator=run.random, device=run.ids.device))
        table = torch.stack(run.uniforms, dim=1)  # (batch, steps)
        index = torch.tensor(steps, device=table.device)[:, None] + torch.arange(draft.length, device=table.device)
        return table.gather(1, index)

    def _verify(self, run: _Run, draft: _Draft, step: StepLogProbs) -> _Cut:
        tokens = draft.tokens
        active = torch.stack(draft.unfinished[:-1], dim=1)
        if self.config.selection == "all":
            target = self._tail_at(run, draft, dense_log_probs(step), range(draft.length))
            if run.do_sample:
                p, q = torch.softmax(target, dim=-1), torch.softmax(torch.stack(draft.warped, dim=1), dim=-1)
                uniforms = torch.rand(tokens.shape, generator=run.random, device=tokens.device)
                fired = dense_sampling_fires(p, q, tokens, uniforms) & active
                return self._cut(run, draft, fired, lambda c: dense_residual_draw(*_at(c, p, q), run.random))
            targets = torch.argmax(target, dim=-1)
            fired = dense_greedy_fires(targets, tokens) & active
            return self._cut(run, draft, fired, lambda c: gather_positions(targets, c))
        if run.do_sample:
            return self._verify_selective_sampling(run, draft, step, active)
        uniforms = self._uniforms(run, draft) if self.config.selection == "random" else None
        fired = selective_fires(self.config.selection, self.config.tau, tokens, step, uniforms) & active
        return self._cut(run, draft, fired, lambda c: self._redraw_greedy(run, draft, step, c))

    def _redraw_greedy(self, run: _Run, draft: _Draft, step: StepLogProbs, cut: list[int]) -> torch.Tensor:
        cut = [min(max(c, 0), draft.length - 1) for c in cut]
        positions = torch.tensor(cut, device=draft.ids.device)
        at = StepLogProbs(*(gather_positions(x, positions) for x in step))
        full = widen(redraw_log_probs(at, gather_positions(draft.tokens, positions)), draft.scores[0].shape[-1])
        if len(run.tail) == 0:
            return torch.argmax(full, dim=-1)
        groups = {}  # rows by (committed length, cut): each sees its own prefix
        for row, (length, position) in enumerate(zip(run.lengths, cut, strict=True)):
            groups.setdefault((length, position), []).append(row)
        out = torch.empty(full.shape[0], dtype=torch.long, device=full.device)
        for (length, position), rows in groups.items():
            index = torch.tensor(rows, device=full.device)
            end = draft.start + position
            view = draft.ids[index, draft.start - length : end]
            out[index] = torch.argmax(run.tail(view, full[index]), dim=-1)
        return out

    def _verify_selective_sampling(self, run: _Run, draft: _Draft, step: StepLogProbs, active) -> _Cut:
        """Lockstep: the private numbers are used position by position as the per-token processor uses them (the
        `"random"` rule's number, then the re-draw, at every sampled position up to the cut)."""
        tokens, rule = draft.tokens, self.config.selection
        redraw = self._tail_at(run, draft, redraw_log_probs(step, tokens), range(draft.length))
        state = run.random.get_state()

        def private_pass(upto: int):
            fired, drawn = [], []
            for j in range(upto):
                if rule == "random":
                    fired.append(
                        torch.rand(tokens.shape[0], generator=run.random, device=tokens.device) < self.config.tau
                    )
                drawn.append(draw_next_tokens(redraw[:, j], do_sample=True, generator=run.random))
            return fired, drawn

        if rule == "random":
            fired_list, drawn = private_pass(draft.length)
            fired = torch.stack(fired_list, dim=1) & active
        else:
            fired = selective_fires(rule, self.config.tau, tokens, step, None) & active
            drawn = None

        def replacement(cut: list[int]) -> torch.Tensor:
            nonlocal drawn
            upto = cut[0] + 1
            if drawn is None or upto < draft.length:  # consume exactly what the per-token path consumed
                run.random.set_state(state)
                drawn = private_pass(upto)[1]
            return drawn[upto - 1]

        return self._cut(run, draft, fired, replacement, always=True)

    def _cut(self, run: _Run, draft: _Draft, fired: torch.Tensor, replacement, always: bool = False) -> _Cut:
        """Cut each row (ragged) or the batch (lockstep) at its first firing position; one host round trip."""
        n = draft.length
        active = torch.stack(draft.unfinished, dim=1)  # (batch, n + 1)
        first = first_true(fired)
        if run.ragged:
            kept = torch.minimum(first + 1, active[:, :n].sum(-1))
            replaced = first < n
        else:
            position = first.min()
            kept = torch.full_like(first, n).minimum(position + 1)
            replaced = fired.any(-1) & (first == position)
        before = active.gather(1, (kept - 1).clamp(min=0)[:, None])[:, 0]
        after = active.gather(1, kept[:, None])[:, 0]
        maybe_active = torch.where(replaced, before, after)
        host = to_host(torch.cat([kept, maybe_active.long(), replaced.long()]))
        batch = first.shape[0]
        kept_list, maybe, replaced_host = host[:batch], host[batch : 2 * batch], host[2 * batch :]
        cut = _Cut(kept_list, [bool(x) for x in maybe], any(replaced_host), replaced, kept)
        if cut.replaced_any or (always and kept_list and max(kept_list) > 0):
            cut.tokens = replacement([k - 1 for k in kept_list])
        if run.do_sample and draft.rng is not None and max(kept_list) < n:
            _set_rng_state(draft.ids.device, draft.rng)  # one global draw per committed token, as in `generate`
            for j in range(max(kept_list)):
                draw_next_tokens(draft.warped[j], do_sample=True)
        return cut

    # --- committing and rewinding ---------------------------------------------------------------------------------
    def _commit(self, run: _Run, draft: _Draft, cut: _Cut, counts: _Counts) -> None:
        kept = cut.kept_tensor
        top = max(cut.kept)
        block = draft.tokens[:, :top].clone()
        rows = torch.arange(block.shape[0], device=block.device)
        last = (kept - 1).clamp(min=0)
        if cut.replaced_any and top:
            replacement = torch.where(cut.replaced, cut.tokens, block[rows, last])
            if run.pad is not None:
                replacement = torch.where(
                    gather_positions(torch.stack(draft.unfinished, 1), last), replacement, run.pad
                )
            block[rows, last] = torch.where(kept > 0, replacement, block[rows, last])
        ids = torch.cat([run.ids, block], dim=-1)
        if min(cut.kept) != top:  # ragged: right-align each row's committed tokens again
            shift = (top - kept)[:, None]
            ids = ids.gather(1, (torch.arange(ids.shape[1], device=ids.device) - shift).clamp(min=0))
        run.lengths = [length + k for length, k in zip(run.lengths, cut.kept, strict=True)]
        run.ids = ids[:, ids.shape[1] - max(run.lengths) :]
        unfinished = torch.stack(draft.unfinished, dim=1)
        run.unfinished = torch.where(
            cut.replaced, gather_positions(unfinished, last), gather_positions(unfinished, kept)
        )
        if cut.replaced_any:
            run.unfinished = run.unfinished & ~_apply(run.stopping, run.ids, run.groups(), 0, None)
        counts.add(kept, draft, cut, dense=self.config.selection == "all")

    def _rollback(self, run: _Run, cut: _Cut) -> None:
        """Forget the dropped drafts: both models keep every committed slot but the last (fed with the next block);
        with ragged rows, a row's dropped drafts inside the kept slots become holes."""
        top = max(cut.kept)
        slots = run.slots + top
        seen = slots - 1
        kwargs = run.model_kwargs
        if run.gen_seen > seen:
            kwargs["cache"].crop(seen - run.gen_seen)
            run.gen_seen = seen
        for key in ("attention_mask", "position_ids"):
            if kwargs.get(key) is not None:
                kwargs[key] = kwargs[key][..., :slots]
        self.scorer.crop(seen)
        if min(cut.kept) != top:
            kept = cut.kept_tensor
            hidden = torch.arange(top - 1, device=kept.device)[None] >= (kept - 1)[:, None]  # (batch, top - 1)
            mask = kwargs.get("attention_mask")
            mask = (
                torch.ones(run.ids.shape[0], slots, dtype=torch.long, device=run.ids.device) if mask is None else mask
            )
            mask = torch.cat([mask[:, : run.slots], mask[:, run.slots : seen] * ~hidden, mask[:, seen:]], dim=-1)
            kwargs["attention_mask"] = mask
            kwargs["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0).to(kwargs["position_ids"].dtype)
            self.scorer.hide(hidden)
        run.slots = slots

    def _output(self, run: _Run, stats: ExtrapolationStats) -> torch.LongTensor:
        """Each row's committed tokens, left-aligned and padded to the longest (as the per-token path returns them)."""
        width = run.prompt_length + max(stats.num_generated)
        ids = run.ids
        if len(set(run.lengths)) > 1:
            shift = torch.tensor([ids.shape[1] - length for length in run.lengths], device=ids.device)[:, None]
            index = torch.arange(ids.shape[1], device=ids.device) + shift
            ids = ids.gather(1, index.clamp(max=ids.shape[1] - 1))
            pad = run.pad if run.pad is not None else ids.new_zeros(())
            ids = torch.where(index < ids.shape[1], ids, pad)
        return ids[:, :width]


def _at(cut: list[int], *tensors: torch.Tensor) -> list[torch.Tensor]:
    positions = torch.tensor(cut, device=tensors[0].device).clamp(min=0)
    return [gather_positions(x, positions) for x in tensors]


def _decode_step(model, model_kwargs: dict[str, Any], generation_config: GenerationConfig):
    """The generator's one-token forward: compiled exactly when `generate`'s own decoding loop would compile it (a
    compileable cache such as `cache_implementation="static"`, on a device transformers compiles for)."""
    if model._valid_auto_compile_criteria(model_kwargs, generation_config):
        return model.get_compiled_call(generation_config.compile_config)
    return model


def _record_swaps(swaps: SwapLog, run: _Run, draft: _Draft, cut: _Cut, step: StepLogProbs) -> None:
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


def _slowest(run: _Run, max_length: int) -> int:
    """The committed length of the slowest row still going (a finished row counts as done: `max_length`)."""
    return min(length if active else max_length for length, active in zip(run.lengths, run.active, strict=True))


@dataclass
class _Counts:
    selected: torch.Tensor
    generated: torch.Tensor
    drafted: torch.Tensor
    accepted: torch.Tensor
    block_tokens: torch.Tensor
    row_blocks: torch.Tensor
    blocks: int = 0

    @classmethod
    def zeros(cls, batch: int, device: torch.device) -> _Counts:
        zeros = torch.zeros(batch, dtype=torch.long, device=device)
        scalar = torch.zeros((), dtype=torch.long, device=device)
        return cls(zeros.clone(), zeros.clone(), scalar.clone(), scalar.clone(), scalar.clone(), scalar.clone())

    def add(self, kept: torch.Tensor, draft: _Draft, cut: _Cut, *, dense: bool) -> None:
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


# --- entry points -------------------------------------------------------------------------------------------------
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


__all__ = [
    "IDS_FREE_PROCESSORS",
    "ROW_WISE_PROCESSORS",
    "ROW_WISE_STOPPING",
    "BlockExtrapolationDecoder",
    "BlockMarker",
    "check_block_mode",
    "run_extrapolation",
    "to_host",
]
