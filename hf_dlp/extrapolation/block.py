"""Block-verified (speculative) extrapolation: the other model verifies a block of drafted tokens in one forward.

The generator drafts up to `block_size` tokens with its own KV cache exactly as plain `generate` would (the logits
processors and warpers `generate` builds, its token selection, the same random numbers). The other model scores the
drafted positions in one forward (`OtherModelScorer.extend`). Then, position by position, the rule of the per-token
processor decides:

- selective rules: the first position where the rule fires for an unfinished row is re-drawn from π_extra exactly as
  `ExtrapolationLogitsProcessor` re-draws it (candidate set, warpers, the same private random numbers);
- dense greedy: drafted tokens are kept while they equal argmax π_extra; the first mismatch takes argmax π_extra;
- dense sampling: speculative sampling (Leviathan et al. 2023, Chen et al. 2023) with the warped π_extra as target
  and the generator's warped distribution as draft: accept y with probability min(1, p(y)/q(y)), on rejection draw
  from norm(max(0, p − q)).

Rows advance in lockstep: the block ends at the first position where *any* unfinished row re-draws (or rejects); the
other rows keep their draft there. The cut depends only on the prefix, so this is exact; drafts after the cut are
dropped and both caches cropped. Under greedy decoding the tokens equal the per-token processor's; under sampling
the global random state advances once per committed token (as in plain `generate`), so seeded selective runs give
the per-token processor's tokens too (up to float rounding of the k-token forward).

`BlockExtrapolationDecoder` is a `custom_generate` callable: `generate` prepares the expanded inputs, its logits
processors and stopping criteria, and calls it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

# hf_dlp-export: strip-begin
from .acceptance import BlockSchedule, dense_greedy_cut, dense_sampling_cut, selective_cut
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
)
from .selection import step_log_probs

# hf_dlp-export: strip-end

if TYPE_CHECKING:
    from transformers import PreTrainedModel


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
    """The state of one call: the committed ids, the generator's model kwargs and what both models have seen."""

    model: Any
    ids: torch.LongTensor
    model_kwargs: dict[str, Any]
    head: LogitsProcessorList
    tail: LogitsProcessorList
    stopping: Any
    do_sample: bool
    pad: torch.Tensor | None
    has_eos: bool
    unfinished: torch.Tensor
    random: torch.Generator
    valid: int = 0
    gen_pending: Any = None
    other_pending: torch.Tensor | None = None
    gen_seen: int = 0
    other_forwards: int = 1  # the prefill


@dataclass
class _Draft:
    """One block of drafts: ids (committed + drafts), per position the processed scores, the warped scores, the
    unfinished mask before it (plus one after the last), and the global random state before its draw."""

    ids: torch.LongTensor
    start: int
    scores: list[torch.Tensor] = field(default_factory=list)
    warped: list[torch.Tensor] = field(default_factory=list)
    unfinished: list[torch.Tensor] = field(default_factory=list)
    rng: list[torch.Tensor | None] = field(default_factory=list)

    @property
    def length(self) -> int:
        return self.ids.shape[1] - self.start

    def token(self, j: int) -> torch.LongTensor:
        return self.ids[:, self.start + j]


class BlockExtrapolationDecoder:
    """A `custom_generate` callable: extrapolated greedy decoding or sampling with block verification (module doc).

    `generate_with_extrapolation(..., block_size=8)` (or `block_size="auto"`) builds one per call and passes it to
    `generate` with a `BlockMarker` after the caller's logits processors. `stats()` returns the `ExtrapolationStats`
    of the call, with the acceptance figures. The caller's logits processors must be functions of
    `(input_ids, scores)` (they are called on drafted prefixes that may be dropped).

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
    ):
        check_transformers_compatibility()
        if config.block_size is None:
            raise ValueError("BlockExtrapolationDecoder needs `config.block_size` (a number of tokens or 'auto').")
        self.config = config
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
        run = _Run(
            model=model,
            ids=input_ids,
            model_kwargs=model_kwargs,
            head=head,
            tail=tail,
            stopping=stopping_criteria,
            do_sample=bool(generation_config.do_sample),
            pad=None if pad is None else pad.to(input_ids.device),
            has_eos=any(hasattr(criteria, "eos_token_id") for criteria in stopping_criteria),
            unfinished=torch.ones(input_ids.shape[0], dtype=torch.long, device=input_ids.device),
            random=private_generator(input_ids.device),
            gen_pending=outputs,
            other_pending=other,
            gen_seen=input_ids.shape[1],
        )
        run.valid = valid_width(self.valid_vocab_size, outputs.logits.shape[-1], other.shape[-1])
        return run

    # --- the loop -------------------------------------------------------------------------------------------------
    def __call__(self, model, input_ids, logits_processor, stopping_criteria, generation_config, **model_kwargs):
        run = self._start(model, input_ids, logits_processor, stopping_criteria, generation_config, model_kwargs)
        counts = _Counts.zeros(input_ids.shape[0], input_ids.device)
        schedule = BlockSchedule(self.config.block_size)
        max_length = generation_config.max_length
        while True:
            size = min(schedule.size, max_length - run.ids.shape[1])
            draft = self._draft(run, size)
            other = self._score(run, draft)
            cut = self._verify(run, draft, other)
            self._commit(run, draft, cut, counts)
            schedule.update(whole=cut is None)
            if run.unfinished.max() == 0 or run.ids.shape[1] >= max_length:
                break
            self._rollback(run)
        self._stats = counts.stats(self.scorer.tokens_processed, run.other_forwards)
        return run.ids

    def _forward(self, run: _Run):
        model = run.model
        inputs = model.prepare_inputs_for_generation(run.ids, next_sequence_length=1, **run.model_kwargs)
        outputs = model(**inputs, return_dict=True)
        run.model_kwargs = model._update_model_kwargs_for_generation(outputs, run.model_kwargs)
        run.gen_seen += 1
        return outputs

    def _draft(self, run: _Run, size: int) -> _Draft:
        """Draft up to `size` tokens as `GenerationMixin._sample` would (processors, warpers, draw, pads, stops)."""
        draft = _Draft(ids=run.ids, start=run.ids.shape[1], unfinished=[run.unfinished])
        ids, unfinished = run.ids, run.unfinished
        for _ in range(size):
            run.ids = ids
            outputs = run.gen_pending if run.gen_pending is not None else self._forward(run)
            run.gen_pending = None
            logits = outputs.logits[:, -1].to(copy=True, dtype=torch.float32, device=ids.device)
            scores = masked_scores(run.head(ids, logits), run.valid)
            warped = run.tail(ids, scores)
            draft.rng.append(_rng_state(ids.device) if run.do_sample else None)
            tokens = draw_next_tokens(warped, do_sample=run.do_sample)
            if run.has_eos:
                tokens = tokens * unfinished + run.pad * (1 - unfinished)
            ids = torch.cat([ids, tokens[:, None]], dim=-1)
            unfinished = unfinished & ~run.stopping(ids, None)
            draft.scores.append(scores)
            draft.warped.append(warped if run.do_sample else None)  # only speculative sampling reads it
            draft.unfinished.append(unfinished)
            if unfinished.max() == 0:
                break
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

    def _verify(self, run: _Run, draft: _Draft, other: torch.Tensor) -> tuple | None:
        """`(j, tokens, changed)` for the first position `j` some unfinished row re-draws, or `None` (block kept)."""
        rule = self.config.selection
        decide = selective_cut if rule != "all" else (dense_sampling_cut if run.do_sample else dense_greedy_cut)
        for j in range(draft.length):
            step = step_log_probs(
                draft.scores[j],
                other[:, j],
                valid=run.valid,
                generator_role=self.generator_role,
                gamma=self.config.gamma,
                candidate_top_k=self.config.candidate_top_k,
            )
            prefix = draft.ids[:, : draft.start + j]
            result = decide(self.config, run, draft, j, step, prefix)
            if result is not None:
                tokens, changed = result
                if bool((changed & draft.unfinished[j].bool()).any()):
                    return j, tokens, changed
        return None

    def _commit(self, run: _Run, draft: _Draft, cut: tuple | None, counts: _Counts) -> None:
        kept = draft.length if cut is None else cut[0]
        for j in range(kept):
            counts.add(draft.unfinished[j], changed=None, dense=self.config.selection == "all")
        counts.drafted += int(sum(int(u.sum()) for u in draft.unfinished[: draft.length]))
        if cut is None:
            run.ids, run.unfinished = draft.ids, draft.unfinished[draft.length]
        else:
            j, tokens, changed = cut
            unfinished = draft.unfinished[j]
            counts.add(unfinished, changed=changed, dense=self.config.selection == "all")
            if run.has_eos:
                tokens = tokens * unfinished + run.pad * (1 - unfinished)
            run.ids = torch.cat([draft.ids[:, : draft.start + j], tokens[:, None]], dim=-1)
            run.unfinished = unfinished & ~run.stopping(run.ids, None)
            if run.do_sample and j + 1 < len(draft.rng):  # one global draw per committed token, as in `generate`
                _set_rng_state(run.ids.device, draft.rng[j + 1])
        counts.blocks += 1
        counts.block_tokens += run.ids.shape[1] - draft.start

    def _rollback(self, run: _Run) -> None:
        """Forget the dropped drafts: both models keep every committed token but the last (fed with the next block)."""
        seen = run.ids.shape[1] - 1
        if run.gen_seen > seen:
            run.model_kwargs["cache"].crop(seen - run.gen_seen)
            for key in ("attention_mask", "position_ids"):
                if run.model_kwargs.get(key) is not None:
                    run.model_kwargs[key] = run.model_kwargs[key][..., : seen + 1]
            run.gen_seen = seen
        self.scorer.crop(seen)


@dataclass
class _Counts:
    selected: torch.Tensor
    generated: torch.Tensor
    drafted: int = 0
    accepted: int = 0
    blocks: int = 0
    block_tokens: int = 0

    @classmethod
    def zeros(cls, batch: int, device: torch.device) -> _Counts:
        zeros = torch.zeros(batch, dtype=torch.long, device=device)
        return cls(selected=zeros.clone(), generated=zeros.clone())

    def add(self, unfinished: torch.Tensor, *, changed: torch.Tensor | None, dense: bool) -> None:
        """Count one committed position: `changed` marks the rows that did not keep their draft there."""
        active = unfinished.long()
        self.generated += active
        if dense:
            self.selected += active
        elif changed is not None:
            self.selected += active * changed.long()
        kept = active if changed is None else active * (~changed).long()
        self.accepted += int(kept.sum())

    def stats(self, other_tokens: int, other_forwards: int) -> ExtrapolationStats:
        return ExtrapolationStats(
            self.selected.tolist(),
            self.generated.tolist(),
            other_tokens,
            other_forwards=other_forwards,
            drafted_tokens=self.drafted,
            accepted_tokens=self.accepted,
            num_blocks=self.blocks,
            block_tokens=self.block_tokens,
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
    **generate_kwargs: Any,
) -> tuple[Any, ExtrapolationLogitsProcessor | BlockExtrapolationDecoder]:
    """Call `generate` (the generator's, or a stand-in) with a fresh extrapolation object; return it with the output.

    `config.block_size=None` appends an `ExtrapolationLogitsProcessor` (built with the `GenerationConfig` `generate`
    resolves) after the caller's processors; otherwise a `BlockExtrapolationDecoder` runs as `custom_generate`, its
    marker in the same place. Either returned object has `.stats()`. `other` is `{"base_model": ...}` or
    `{"rl_model": ...}`. Shared by `generate_with_extrapolation` and the exported `custom_generate`.
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
        )
        appended, decoding = extrapolator, {}
    else:
        check_block_mode(resolved, generate_kwargs)
        extrapolator = BlockExtrapolationDecoder(**other, config=config, valid_vocab_size=valid_vocab_size)
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
    "BlockExtrapolationDecoder",
    "BlockMarker",
    "check_block_mode",
    "run_extrapolation",
]
