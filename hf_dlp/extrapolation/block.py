"""Block-verified (speculative) extrapolation: the other model verifies a block of drafted tokens in one forward.

The generator drafts up to `block_size` tokens as plain `generate` would (its processors, token selection and random
numbers); the other model scores them in one forward (`OtherModelScorer.extend`); the per-token rule decides for all
positions at once as batched tensors (`acceptance`), and one host round trip per block reads where each row is cut:

- selective rules: the first position where the rule fires for an unfinished row is re-drawn from π_extra as
  `ExtrapolationLogitsProcessor` re-draws it (candidates, warpers, the same private random numbers);
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
per-token processor's tokens (up to float rounding of the k-token forward). Per-call state: `block_rows`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from transformers import LogitsProcessorList

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
from .block_rows import (
    IDS_FREE_PROCESSORS,
    RAGGED_WHOLE_SHARE,
    ROW_WISE_PROCESSORS,
    ROW_WISE_STOPPING,
    BlockCounts,
    BlockCut,
    BlockDraft,
    BlockMarker,
    BlockRun,
    apply_items,
    decode_step,
    log_info,
    positions_at,
    record_block_swaps,
    rng_state,
    set_rng_state,
    slowest_length,
    to_host,
)
from .compatibility import check_transformers_compatibility
from .config import MAX_BLOCK_SIZE, ExtrapolationConfig
from .decoding import draw_next_tokens
from .selection import StepLogProbs, dense_log_probs, redraw_log_probs, step_log_probs
from .step import ExtrapolationStats, masked_scores, other_side_scorer, private_generator, valid_width, widen
from .swaps import SwapLog, check_record_swaps

# hf_dlp-export: strip-end

if TYPE_CHECKING:
    pass


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
            log_info(
                f"Block-verified extrapolation keeps the rows in lockstep: {', '.join(sorted(set(reasons)))} "
                "cannot follow ragged rows (each row's own committed tokens)."
            )
        return reasons

    def _start(
        self, model, input_ids, logits_processor, stopping_criteria, generation_config, model_kwargs
    ) -> BlockRun:
        mask = model_kwargs.get("attention_mask")
        mask = torch.ones_like(input_ids) if mask is None else mask.long()
        if not bool(mask[:, -1].all()):
            raise ValueError(
                "The prompts are right padded (the attention mask has zeros in its last column); decoder-only "
                "generation needs left padding. Set `tokenizer.padding_side = 'left'`."
            )
        head, tail = self._split(logits_processor)
        self.scorer.reset()
        if hasattr(self.scorer, "follow"):  # the other model's cache kind and compilation follow the generator's
            self.scorer.follow(generation_config)
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
        run = BlockRun(
            model=model,
            forward=decode_step(model, model_kwargs, generation_config),
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
        counts = BlockCounts.zeros(input_ids.shape[0], input_ids.device)
        swaps = SwapLog() if self.record_swaps else None
        # batches start shorter: while a block is tried, the rows drift apart, and a fallback pays for the lag
        start = max(2, AUTO_BLOCK_START // input_ids.shape[0])
        # a batch's blocks are cut by its slowest row: past AUTO_BLOCK_START tokens they draft more than it keeps
        maximum = MAX_BLOCK_SIZE if input_ids.shape[0] == 1 else AUTO_BLOCK_START
        schedule = BlockSchedule(
            self.config.block_size, start=start, maximum=maximum, judge_first=input_ids.shape[0] > 1
        )
        max_length = generation_config.max_length
        while True:
            shortest = slowest_length(run, max_length)
            schedule.start()
            draft = self._draft(run, min(schedule.size, max_length - shortest))
            step = self._step(run, draft, self._score(run, draft))
            cut = self._verify(run, draft, step)
            if swaps is not None and cut.replaced_any:
                record_block_swaps(swaps, run, draft, cut, step)
            self._commit(run, draft, cut, counts)
            run.active = [a and length < max_length for a, length in zip(cut.maybe_active, run.lengths, strict=True)]
            # the batch finishes with its slowest row: "auto" times blocks by how far that row got
            advanced = slowest_length(run, max_length) - shortest
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

    def _forward(self, run: BlockRun, ids: torch.LongTensor):
        model = run.model
        inputs = model.prepare_inputs_for_generation(ids, next_sequence_length=1, **run.model_kwargs)
        outputs = run.forward(**inputs, return_dict=True)
        run.model_kwargs = model._update_model_kwargs_for_generation(outputs, run.model_kwargs)
        run.gen_seen += 1
        return outputs

    def _draft(self, run: BlockRun, size: int) -> BlockDraft:
        """Draft `size` tokens as `GenerationMixin._sample` would (processors, warpers, draw, pads, stops)."""
        groups = run.groups()
        selective_sampling = run.do_sample and self.config.selection != "all"
        draft = BlockDraft(ids=run.ids, start=run.ids.shape[1], groups=groups, unfinished=[run.unfinished])
        draft.rng = rng_state(run.ids.device) if selective_sampling else None
        ids, unfinished = run.ids, run.unfinished
        for j in range(size):
            outputs = run.gen_pending if run.gen_pending is not None else self._forward(run, ids)
            run.gen_pending = None
            logits = outputs.logits[:, -1].to(copy=True, dtype=torch.float32, device=ids.device)
            scores = masked_scores(apply_items(run.head, ids, groups, j, logits), run.valid)
            warped = apply_items(run.tail, ids, groups, j, scores)
            tokens = draw_next_tokens(warped, do_sample=run.do_sample)
            if run.pad is not None:
                tokens = torch.where(unfinished, tokens, run.pad)
            ids = torch.cat([ids, tokens[:, None]], dim=-1)
            unfinished = unfinished & ~apply_items(run.stopping, ids, groups, j + 1, None)
            draft.scores.append(scores)
            draft.warped.append(warped if run.do_sample else None)  # sampling reads it (acceptance, replay)
            draft.unfinished.append(unfinished)
        draft.ids = ids
        return draft

    def _score(self, run: BlockRun, draft: BlockDraft) -> torch.Tensor:
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
    def _step(self, run: BlockRun, draft: BlockDraft, other: torch.Tensor) -> StepLogProbs:
        return step_log_probs(
            torch.stack(draft.scores, dim=1),
            other,
            valid=run.valid,
            generator_role=self.generator_role,
            gamma=self.config.gamma,
            candidate_top_k=self.config.candidate_top_k,
        )

    def _tail_at(self, run: BlockRun, draft: BlockDraft, log_probs: torch.Tensor, positions: range) -> torch.Tensor:
        """The sampling tail on `(batch, len(positions), vocab)` log-probs, each seeing its prefix: `(batch, n, W)`."""
        full = widen(log_probs, draft.scores[0].shape[-1])
        if len(run.tail) == 0:
            return full
        if run.tail_ids_free:
            batch, n, width = full.shape
            ids = draft.ids[:, : draft.start].repeat(n, 1)
            return run.tail(ids, full.transpose(0, 1).reshape(n * batch, width)).view(n, batch, width).transpose(0, 1)
        parts = [
            apply_items(run.tail, draft.ids[:, : draft.start + j], draft.groups, j, full[:, i])
            for i, j in enumerate(positions)
        ]
        return torch.stack(parts, dim=1)

    def _uniforms(self, run: BlockRun, draft: BlockDraft) -> torch.Tensor:
        """`"random"` under greedy: the per-token processor's `rand(batch)` of each step, `(batch, n)`."""
        steps = [length - run.prompt_length for length in run.lengths]
        while len(run.uniforms) < max(steps) + draft.length:
            run.uniforms.append(torch.rand(run.ids.shape[0], generator=run.random, device=run.ids.device))
        table = torch.stack(run.uniforms, dim=1)  # (batch, steps)
        index = torch.tensor(steps, device=table.device)[:, None] + torch.arange(draft.length, device=table.device)
        return table.gather(1, index)

    def _verify(self, run: BlockRun, draft: BlockDraft, step: StepLogProbs) -> BlockCut:
        tokens = draft.tokens
        active = torch.stack(draft.unfinished[:-1], dim=1)
        if self.config.selection == "all":
            target = self._tail_at(run, draft, dense_log_probs(step), range(draft.length))
            if run.do_sample:
                p, q = torch.softmax(target, dim=-1), torch.softmax(torch.stack(draft.warped, dim=1), dim=-1)
                uniforms = torch.rand(tokens.shape, generator=run.random, device=tokens.device)
                fired = dense_sampling_fires(p, q, tokens, uniforms) & active
                return self._cut(run, draft, fired, lambda c: dense_residual_draw(*positions_at(c, p, q), run.random))
            targets = torch.argmax(target, dim=-1)
            fired = dense_greedy_fires(targets, tokens) & active
            return self._cut(run, draft, fired, lambda c: gather_positions(targets, c))
        if run.do_sample:
            return self._verify_selective_sampling(run, draft, step, active)
        uniforms = self._uniforms(run, draft) if self.config.selection == "random" else None
        fired = selective_fires(self.config.selection, self.config.tau, tokens, step, uniforms) & active
        return self._cut(run, draft, fired, lambda c: self._redraw_greedy(run, draft, step, c))

    def _redraw_greedy(self, run: BlockRun, draft: BlockDraft, step: StepLogProbs, cut: list[int]) -> torch.Tensor:
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

    def _verify_selective_sampling(self, run: BlockRun, draft: BlockDraft, step: StepLogProbs, active) -> BlockCut:
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

    def _cut(
        self, run: BlockRun, draft: BlockDraft, fired: torch.Tensor, replacement, always: bool = False
    ) -> BlockCut:
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
        cut = BlockCut(kept_list, [bool(x) for x in maybe], any(replaced_host), replaced, kept)
        if cut.replaced_any or (always and kept_list and max(kept_list) > 0):
            cut.tokens = replacement([k - 1 for k in kept_list])
        if run.do_sample and draft.rng is not None and max(kept_list) < n:
            set_rng_state(draft.ids.device, draft.rng)  # one global draw per committed token, as in `generate`
            for j in range(max(kept_list)):
                draw_next_tokens(draft.warped[j], do_sample=True)
        return cut

    # --- committing and rewinding ---------------------------------------------------------------------------------
    def _commit(self, run: BlockRun, draft: BlockDraft, cut: BlockCut, counts: BlockCounts) -> None:
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
            run.unfinished = run.unfinished & ~apply_items(run.stopping, run.ids, run.groups(), 0, None)
        counts.add(kept, draft, cut, dense=self.config.selection == "all")

    def _rollback(self, run: BlockRun, cut: BlockCut) -> None:
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

    def _output(self, run: BlockRun, stats: ExtrapolationStats) -> torch.LongTensor:
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


__all__ = ["BlockExtrapolationDecoder"]
