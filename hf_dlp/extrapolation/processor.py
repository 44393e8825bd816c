"""`ExtrapolationLogitsProcessor`: selective replacement and extrapolation along Δlog p inside `generate`.

At each decoding step the *generator* (the model whose `generate` runs) proposes a candidate token y, drawn exactly as
`generate` would draw it (its own sampling warpers, built by transformers from the resolved `GenerationConfig`, and
the same random numbers). A selection rule decides whether this position is one RLVR changed; unselected positions
keep y, selected ones are re-drawn from

    log π_extra = (1 + γ) log π_RL − γ log π_base        (renormalised; γ = 0 is "selective replace")

The *other* model (the base model when the RL model generates, or the reverse) is scored by an `OtherModelScorer`
(by default its own KV cache, one new token per step).

This module and the ones it imports depend on `torch` and `transformers` only, so that `export_custom_generate` can
ship them in a checkpoint's `custom_generate/generate.py`.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList
from transformers.generation.logits_process import LOGITS_PROCESSOR_INPUTS_DOCSTRING
from transformers.utils import add_start_docstrings

# hf_dlp-export: strip-begin
from ..arguments import check_number
from .compatibility import check_transformers_compatibility
from .config import ExtrapolationConfig, pop_overrides, resolve_config
from .decoding import (
    check_generation_mode,
    draw_next_tokens,
    prompt_attention_mask,
    sampling_tail,
    with_special_tokens,
)
from .scorers import OtherModelScorer
from .selection import dense_log_probs, redraw_log_probs, select_positions, step_log_probs
from .step import ExtrapolationStats, masked_scores, other_side_scorer, private_generator, valid_width, widen
from .swaps import SwapLog, check_record_swaps

# hf_dlp-export: strip-end

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def _check_left_padded(mask: torch.Tensor, what: str) -> None:
    if not bool(mask[:, -1].all()):
        raise ValueError(
            f"The prompts are right padded ({what} has zeros in its last column); decoder-only generation needs "
            "left padding. Set `tokenizer.padding_side = 'left'`."
        )


def _settings(config: ExtrapolationConfig | None, overrides: dict[str, Any], where: str) -> ExtrapolationConfig:
    settings = pop_overrides(overrides)
    if overrides:
        raise TypeError(
            f"{where} got unexpected keyword argument(s) {sorted(overrides)}; the extrapolation settings it takes are "
            "the fields of `ExtrapolationConfig` (gamma, selection, tau, candidate_top_k, generator)."
        )
    return resolve_config(config, settings)


class ExtrapolationLogitsProcessor(LogitsProcessor):
    r"""Selective replacement / extrapolation along Δlog p = log π_RL − log π_base, as a `LogitsProcessor`.

    Give exactly one of `base_model` (the RL model generates: the common use) or `rl_model` (the base model generates:
    the paper's Fig. 4 setting), either a model or an `OtherModelScorer` of it. A model gets a `CachedModelScorer`:
    its own `DynamicCache`, the prompt once at the first step, then one token per step, with the position ids of the
    left-padded prompt mask, rows expanded for `num_return_sequences`, and finished rows fed the same pad tokens as the
    main loop.

    At each step the processor draws the candidate y exactly as `generate` would (the sampling warpers `generate`
    builds from `generation_config`: temperature, top-k, top-p, min-p, typical-p, ε/η cutoffs, top-h; argmax when
    greedy; the same random numbers under `torch.manual_seed`) and selects the position by `config.selection` (see
    `ExtrapolationConfig`). Selected positions are re-drawn from π_extra, restricted to the generator's
    `candidate_top_k` tokens (plus y), warped the same way; the re-draw uses a private `torch.Generator` seeded from
    the global RNG at the first step, so it is reproducible and independent of the draw of y. For selective rules the
    processor returns scores that force the chosen token, so a selection that never fires reproduces the generator's
    own `generate` output exactly, whatever the generation settings. With `selection="all"` it returns the π_extra
    log-probs and `generate` samples them.

    Masks from other processors (`min_new_tokens`, bad words, suppressed tokens, on either side) are kept and never
    produce NaN; ids at or beyond `valid_vocab_size` (padded output rows) are never produced; the combination runs in
    float32. One instance serves one `generate` call: a second call and assisted decoding (rows rewind) are detected
    and raise, and so is beam search, from the batch growing to B·num_beams rows (given `prompt_attention_mask`;
    without it, from the rows it reorders); `reset()` clears the state for reuse. `stats()` gives the per-sequence
    selection counts.

    Args:
        base_model (`PreTrainedModel` or `OtherModelScorer`, *optional*): the base model, when the RL model generates.
        rl_model (`PreTrainedModel` or `OtherModelScorer`, *optional*): the RL model, when the base model generates.
        config (`ExtrapolationConfig`, *optional*): γ, the selection rule, τ and the candidate set; defaults to
            `ExtrapolationConfig()`. Keyword overrides of its fields (`gamma=0.2`, ...) are accepted too.
        prompt_attention_mask (`torch.Tensor`, *optional*): `(batch, prompt_len)` mask of the prompts, before any
            `num_return_sequences` expansion; when omitted, inferred from the pad tokens (`generation_config`'s
            `pad_token_id`) as `generate` infers it.
        generation_config (`GenerationConfig`, *optional*): the settings `generate` runs with (sampling, eos/pad ids,
            `num_return_sequences`); `generate_with_extrapolation` passes the resolved one. Defaults to greedy.
        valid_vocab_size (`int`, *optional*): number of real tokens (e.g. `len(tokenizer)`); required when the two
            output layers differ in width.
        record_swaps (`bool`, *optional*, defaults to `False`): keep every re-drawn position (`stats().swaps`);
            selective rules only.

    Examples:

    >>> import torch
    >>> from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm
    >>> tok = build_char_tokenizer()
    >>> rl, base = build_tiny_causal_lm(size="nano", seed=1), build_tiny_causal_lm(size="nano", seed=2)
    >>> batch = tok(["Q: 1+2?", "Q: 10+7?"], return_tensors="pt", padding=True)
    >>> processor = ExtrapolationLogitsProcessor(base_model=base, config=ExtrapolationConfig(gamma=0.5, tau=-0.5),
    ...     prompt_attention_mask=batch.attention_mask, generation_config=rl.generation_config)
    >>> out = rl.generate(**batch, logits_processor=[processor], max_new_tokens=6, min_new_tokens=6)
    >>> out.shape, processor.stats().num_generated, processor.stats().other_tokens   # 2 * (8 + 6 - 1)
    (torch.Size([2, 14]), [6, 6], 26)
    """

    supports_continuous_batching = False

    def __init__(
        self,
        *,
        base_model: PreTrainedModel | OtherModelScorer | None = None,
        rl_model: PreTrainedModel | OtherModelScorer | None = None,
        config: ExtrapolationConfig | None = None,
        prompt_attention_mask: torch.Tensor | None = None,
        generation_config: GenerationConfig | None = None,
        valid_vocab_size: int | None = None,
        record_swaps: bool = False,
        **overrides: Any,
    ):
        check_transformers_compatibility()
        self.config = _settings(config, overrides, "ExtrapolationLogitsProcessor")
        self.record_swaps = check_record_swaps(record_swaps, self.config)
        self.scorer, self.generator_role = other_side_scorer(base_model, rl_model, self.config)
        if self.config.block_size is not None:
            warnings.warn(
                f"`block_size={self.config.block_size!r}` is ignored by ExtrapolationLogitsProcessor, which decodes one "
                "token per step; block-verified decoding runs through `generate_with_extrapolation(..., block_size=...)`.",
                stacklevel=2,
            )
        if prompt_attention_mask is not None:
            if prompt_attention_mask.dim() != 2:
                raise ValueError(
                    f"`prompt_attention_mask` must be (batch, prompt_len), got shape "
                    f"{tuple(prompt_attention_mask.shape)}."
                )
            _check_left_padded(prompt_attention_mask, "`prompt_attention_mask`")
        if generation_config is None and self.config.selection != "all":
            warnings.warn(
                "No `generation_config` given: candidates are drawn greedily. If `generate` samples, pass the settings "
                "it runs with (e.g. `generation_config=model.generation_config`), or use `generate_with_extrapolation`.",
                stacklevel=2,
            )
        self.generation_config = generation_config if generation_config is not None else GenerationConfig()
        check_generation_mode(None, self.generation_config)
        if hasattr(self.scorer, "follow"):  # the other model's cache kind and compilation follow the generator's
            self.scorer.follow(self.generation_config)
        self.valid_vocab_size = check_number(
            "valid_vocab_size", valid_vocab_size, integer=True, minimum=1, allow_none=True, hint="Pass len(tokenizer)."
        )
        self.prompt_attention_mask = prompt_attention_mask
        self.reset()

    def reset(self) -> None:
        """Forget the state of the previous `generate` call, so the instance can serve a new one."""
        self.scorer.reset()
        self._previous_ids = None
        self._tail: LogitsProcessorList | None = None
        self._valid: int | None = None
        self._finished = None
        self._num_selected = None
        self._num_generated = None
        self._random = None
        self._eos = None
        self._forwards = 0
        self._swaps = SwapLog() if self.record_swaps else None

    def stats(self) -> ExtrapolationStats:
        """Selection counts of the last `generate` call, one entry per returned sequence."""
        if self._num_selected is None:
            raise RuntimeError("No statistics yet: pass the processor to `generate` first.")
        swaps = None if self._swaps is None else self._swaps.per_sequence(self._num_selected.shape[0])
        return ExtrapolationStats(
            self._num_selected.tolist(),
            self._num_generated.tolist(),
            self.other_tokens,
            other_forwards=self._forwards,
            swaps=swaps,
        )

    @property
    def other_model(self) -> PreTrainedModel:
        """The other model (the one the scorer runs)."""
        return self.scorer.model

    @property
    def other_tokens(self) -> int:
        """Tokens the other model has processed so far in this call."""
        return self.scorer.tokens_processed

    # --- following generate's rows --------------------------------------------------------------------------------
    def _expanded_mask(self, input_ids: torch.LongTensor, generation_config: GenerationConfig) -> torch.LongTensor:
        batch, length = input_ids.shape
        if self.prompt_attention_mask is None:  # what generate infers from the pad tokens
            mask = prompt_attention_mask(input_ids, None, generation_config, self.scorer.model)
            _check_left_padded(mask, "the attention mask `generate` infers from the pad tokens")
            return mask
        mask = self.prompt_attention_mask.to(input_ids.device).long()
        copies = self.generation_config.num_return_sequences or 1
        if mask.shape[1] != length:
            raise ValueError(
                f"`prompt_attention_mask` has shape {tuple(mask.shape)} but `generate` started from input_ids of shape "
                f"{tuple(input_ids.shape)}; pass the mask of the same prompts (one row per prompt)."
            )
        if mask.shape[0] * copies != batch:
            raise ValueError(
                f"`generate` runs {batch} rows, but `prompt_attention_mask` has {mask.shape[0]} prompts and the "
                f"processor's `generation_config` asks for {copies} sequence(s) each. Beam search (`num_beams`), "
                "which extrapolation does not support, or a `num_return_sequences` missing from the processor's "
                "`generation_config` expands the batch; pass the settings `generate` runs with (or use "
                "`generate_with_extrapolation`)."
            )
        return mask.repeat_interleave(copies, dim=0)  # row i*k + j is copy j of prompt i, as generate expands

    def _start(self, input_ids: torch.LongTensor) -> torch.Tensor:
        special = with_special_tokens(self.generation_config, self.scorer.model, input_ids.device)
        mask = self._expanded_mask(input_ids, special)
        if self.config.selection != "all":
            self._tail = sampling_tail(special, self.scorer.model, input_ids, mask)
        batch = input_ids.shape[0]
        self._finished = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
        self._num_selected = torch.zeros(batch, dtype=torch.long, device=input_ids.device)
        self._num_generated = torch.zeros(batch, dtype=torch.long, device=input_ids.device)
        self._random = private_generator(input_ids.device)
        self._eos = special._eos_token_tensor
        return self.scorer.prefill(input_ids, mask)

    def _advance(self, input_ids: torch.LongTensor) -> torch.Tensor:
        previous = self._previous_ids
        if (
            input_ids.shape[0] != previous.shape[0]
            or input_ids.shape[1] != previous.shape[1] + 1
            or not torch.equal(input_ids[:, :-1], previous)
        ):
            raise RuntimeError(
                "ExtrapolationLogitsProcessor got input_ids that do not extend the previous step's by one token. "
                "Either the instance is reused across `generate` calls (build a new one or call `reset()`), or the "
                "decoding mode reorders or rewinds rows (beam search, assisted or prompt-lookup decoding), which "
                "extrapolation does not support."
            )
        if self._eos is not None:
            self._finished |= torch.isin(input_ids[:, -1], self._eos.to(input_ids.device))
        return self.scorer.extend(input_ids[:, -1:])[:, -1]

    def _valid_width(self, width: int, other_width: int) -> int:
        if self._valid is None:
            self._valid = valid_width(self.valid_vocab_size, width, other_width)
        return self._valid

    # --- the decision at one step ---------------------------------------------------------------------------------
    def _draw(self, input_ids, scores: torch.Tensor, generator: torch.Generator | None) -> torch.LongTensor:
        return draw_next_tokens(
            self._tail(input_ids, scores), do_sample=bool(self.generation_config.do_sample), generator=generator
        )

    @add_start_docstrings(LOGITS_PROCESSOR_INPUTS_DOCSTRING)
    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        other_logits = self._start(input_ids) if self._previous_ids is None else self._advance(input_ids)
        self._forwards += 1
        valid = self._valid_width(scores.shape[-1], other_logits.shape[-1])
        gen_scores = masked_scores(scores, valid)
        step = step_log_probs(
            gen_scores,
            other_logits,
            valid=valid,
            generator_role=self.generator_role,
            gamma=self.config.gamma,
            candidate_top_k=self.config.candidate_top_k,
        )
        if self.config.selection == "all":
            selected = torch.ones(scores.shape[0], dtype=torch.bool, device=scores.device)
            result = widen(dense_log_probs(step), scores.shape[-1])
        else:
            # The candidate uses generate's own random numbers, which are then rewound so generate redraws them.
            with torch.random.fork_rng(devices=[scores.device] if scores.device.type == "cuda" else []):
                candidate = self._draw(input_ids, gen_scores, None)
            selected = select_positions(
                self.config.selection,
                self.config.tau,
                candidate,
                step.log_rl,
                step.log_base,
                step.log_gen,
                self._random,
            )
            full = widen(redraw_log_probs(step, candidate), scores.shape[-1])
            chosen = torch.where(selected, self._draw(input_ids, full, self._random), candidate)
            result = torch.full_like(full, float("-inf")).scatter(-1, chosen[:, None], 0.0)
        active = ~self._finished
        if self._swaps is not None:  # selective rules only (`check_record_swaps`)
            self._swaps.add(self._forwards - 1, active & selected, candidate, chosen, step.log_rl, step.log_base)
        self._num_generated += active.long()
        self._num_selected += (active & selected).long()
        self._previous_ids = input_ids
        return result


__all__ = ["ExtrapolationLogitsProcessor"]
