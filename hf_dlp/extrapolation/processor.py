"""`ExtrapolationLogitsProcessor`: selective replacement and extrapolation along Δlog p inside `generate`.

At each decoding step the *generator* (the model whose `generate` runs) proposes a candidate token y, drawn exactly as
`generate` would draw it. A selection rule decides whether this position is one RLVR changed; unselected positions keep
y, selected ones are re-drawn from

    log π_extra = (1 + γ) log π_RL − γ log π_base        (renormalised; γ = 0 is "selective replace")

The *other* model (the base model when the RL model generates, or the reverse) runs alongside with its own KV cache,
one new token per step.

This module depends on `torch` and `transformers` only, so that `export_custom_generate` can ship it verbatim in a
checkpoint's `custom_generate/generate.py`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import torch
from transformers import DynamicCache, GenerationConfig, LogitsProcessor, LogitsProcessorList
from transformers.generation.logits_process import (
    LOGITS_PROCESSOR_INPUTS_DOCSTRING,
    MinPLogitsWarper,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)
from transformers.utils import add_start_docstrings

SelectionRule = Literal["all", "delta_logp", "entropy", "kl", "kl_reverse", "kl_mean", "random"]
SELECTION_RULES: tuple[str, ...] = ("all", "delta_logp", "entropy", "kl", "kl_reverse", "kl_mean", "random")
# Rules whose score is a non-negative magnitude (select when score >= tau).
_MAGNITUDE_RULES = ("entropy", "kl", "kl_reverse", "kl_mean")


def check_extrapolation_arguments(gamma: float, selection: str, tau: float | None, top_k: int | None) -> None:
    """Validate the extrapolation settings; raise `ValueError` naming the argument, its value and the fix.

    Examples:

    >>> check_extrapolation_arguments(gamma=0.1, selection="delta_logp", tau=-0.35, top_k=50)
    >>> check_extrapolation_arguments(gamma=0.1, selection="delta_logp", tau=None, top_k=None)
    Traceback (most recent call last):
    ...
    ValueError: `selection='delta_logp'` needs a threshold `tau` (a negative log-probability gap such as -0.35); got `tau=None`.
    """
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not math.isfinite(gamma) or gamma < 0:
        raise ValueError(
            f"`gamma` must be a finite number >= 0 (0 replaces, > 0 extrapolates past the RL model), got {gamma!r}."
        )
    if selection not in SELECTION_RULES:
        raise ValueError(f"`selection` must be one of {SELECTION_RULES}, got {selection!r}.")
    if selection == "all":
        if tau is not None:
            raise ValueError(
                f"`selection='all'` selects every position and takes no threshold; got `tau={tau!r}`. "
                "Leave `tau=None` or choose a selective rule such as 'delta_logp'."
            )
    elif tau is None or isinstance(tau, bool) or not isinstance(tau, (int, float)) or not math.isfinite(tau):
        hint = "a negative log-probability gap such as -0.35" if selection == "delta_logp" else "a number"
        raise ValueError(f"`selection={selection!r}` needs a threshold `tau` ({hint}); got `tau={tau!r}`.")
    elif selection in _MAGNITUDE_RULES and tau < 0:
        raise ValueError(
            f"`selection={selection!r}` selects positions whose score is >= `tau`, and the score is never "
            f"negative; got `tau={tau!r}`. Use `tau >= 0`."
        )
    elif selection == "random" and not 0 <= tau <= 1:
        raise ValueError(
            f"`selection='random'` uses `tau` as a selection probability; got `tau={tau!r}`, use a value in [0, 1]."
        )
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(
            f"`top_k` must be a positive integer (paper: 50) or None for the full vocabulary, got {top_k!r}."
        )


@dataclass
class ExtrapolationStats:
    """Selection statistics of one `generate` call, per returned sequence.

    Args:
        num_selected (`list[int]`): positions whose token was re-drawn from π_extra (EOS included, padding not).
        num_generated (`list[int]`): generated tokens (EOS included, padding after EOS not).
        other_tokens (`int`): tokens the other model processed (prompt + one per step): B·(P + T − 1).

    Examples:

    >>> stats = ExtrapolationStats(num_selected=[1, 3], num_generated=[10, 10], other_tokens=40)
    >>> stats.replacement_ratio, stats.per_sequence_ratio
    (0.2, [0.1, 0.3])
    """

    num_selected: list[int]
    num_generated: list[int]
    other_tokens: int = 0

    @property
    def replacement_ratio(self) -> float:
        """Share of generated tokens whose position was selected (the paper's replacement ratio)."""
        total = sum(self.num_generated)
        return sum(self.num_selected) / total if total else 0.0

    @property
    def per_sequence_ratio(self) -> list[float]:
        return [s / g if g else 0.0 for s, g in zip(self.num_selected, self.num_generated, strict=True)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_selected": list(self.num_selected),
            "num_generated": list(self.num_generated),
            "other_tokens": self.other_tokens,
            "replacement_ratio": self.replacement_ratio,
        }


def sampling_warpers(generation_config: GenerationConfig) -> LogitsProcessorList:
    """The warpers `generate` applies before sampling (temperature, top-k, top-p, min-p), in its order.

    Examples:

    >>> from transformers import GenerationConfig
    >>> [type(w).__name__ for w in sampling_warpers(GenerationConfig(do_sample=True, temperature=0.7, top_p=0.9))]
    ['TemperatureLogitsWarper', 'TopPLogitsWarper']
    """
    warpers = LogitsProcessorList()
    if not generation_config.do_sample:
        return warpers
    config = generation_config
    if config.temperature is not None and config.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(config.temperature))
    if config.top_k is not None and config.top_k != 0:
        warpers.append(TopKLogitsWarper(top_k=config.top_k, min_tokens_to_keep=1))
    if config.top_p is not None and config.top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p=config.top_p, min_tokens_to_keep=1))
    if config.min_p is not None:
        warpers.append(MinPLogitsWarper(min_p=config.min_p, min_tokens_to_keep=1))
    return warpers


def extrapolate_log_probs(log_rl: torch.Tensor, log_base: torch.Tensor, gamma: float) -> torch.Tensor:
    """log π_extra = log_softmax((1 + γ) log π_RL − γ log π_base) over the last dimension, `-inf` where π_RL is 0.

    Args:
        log_rl, log_base (`torch.Tensor`): `(..., vocab)` log-probabilities of the RL and base models.
        gamma (`float`): extrapolation strength γ >= 0.

    Returns:
        `torch.Tensor`: `(..., vocab)` normalised log-probabilities (float32 or wider).

    Examples:

    >>> import torch
    >>> log_base, log_rl = torch.tensor([0.5, 0.5]).log(), torch.tensor([0.8, 0.2]).log()
    >>> extrapolate_log_probs(log_rl, log_base, gamma=1.0).exp()   # ∝ 0.8²/0.5, 0.2²/0.5
    tensor([0.9412, 0.0588])
    """
    log_rl = log_rl.float() if log_rl.dtype in (torch.float16, torch.bfloat16) else log_rl
    log_base = log_base.to(log_rl.dtype)
    extra = log_rl + gamma * (log_rl - log_base)
    extra = torch.where(torch.isneginf(log_rl), float("-inf"), extra)
    return torch.log_softmax(extra, dim=-1)


def _eos_ids(generation_config: GenerationConfig) -> list[int]:
    eos = generation_config.eos_token_id
    if eos is None:
        return []
    return [
        int(e) for e in (eos.tolist() if isinstance(eos, torch.Tensor) else eos if isinstance(eos, list) else [eos])
    ]


def _entropy(log_probs: torch.Tensor) -> torch.Tensor:
    probs = log_probs.exp()
    return -torch.where(probs > 0, probs * log_probs, 0.0).sum(-1)


def _kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    probs = log_p.exp()
    diff = torch.where(probs > 0, log_p - log_q, 0.0)
    return (probs * diff).nan_to_num(nan=0.0, posinf=torch.finfo(diff.dtype).max).sum(-1)


class ExtrapolationLogitsProcessor(LogitsProcessor):
    r"""Selective replacement / extrapolation along Δlog p = log π_RL − log π_base, as a `LogitsProcessor`.

    Give exactly one of `base_model` (the RL model generates: the common use) or `rl_model` (the base model generates:
    the paper's Fig. 4 setting). The processor runs that other model alongside `generate` with its own `DynamicCache`,
    feeding it exactly one new token per step (the prompt once, at the first step), with position ids taken from the
    prompt attention mask (left padding), rows expanded for `num_return_sequences`, and finished rows fed the same pad
    tokens as the main loop.

    At each step it draws the candidate y the way `generate` would (its temperature/top-k/top-p/min-p, argmax when
    greedy, the same random numbers under `torch.manual_seed`) and selects the position when

    - `"all"`: always (dense extrapolation; the processor then returns the π_extra log-probs and `generate` samples);
    - `"delta_logp"`: Δlog p(y) <= `tau` (tau < 0: tokens RLVR suppressed);
    - `"entropy"`: the generator's entropy >= `tau`;
    - `"kl"`, `"kl_reverse"`, `"kl_mean"`: KL(π_RL‖π_base), KL(π_base‖π_RL) or their mean >= `tau`;
    - `"random"`: with probability `tau`.

    Selected positions are re-drawn from π_extra ∝ exp((1+γ) log π_RL − γ log π_base), restricted to the generator's
    `top_k` candidates (plus y) when given, then warped like `generate` warps (temperature, top-p: paper 1.0, 0.7); the
    re-draw uses a private `torch.Generator` seeded from the global RNG at the first step, so it is reproducible and
    independent of the draw of y. For selective rules the processor returns scores that force the chosen token, so a
    selection that never fires reproduces the generator's own `generate` output exactly.

    Masks from other processors (`min_new_tokens`, bad words) are kept (`-inf` stays `-inf`); ids at or beyond
    `valid_vocab_size` (padded embedding rows) are never produced; the combination runs in float32. One instance serves
    one `generate` call: a second call (or beam search / assisted decoding, which reorder or rewind rows) is detected
    and raises; `reset()` clears the state for reuse. `stats()` gives the per-sequence selection counts.

    Args:
        base_model (`PreTrainedModel`, *optional*): the base model, when the RL model generates.
        rl_model (`PreTrainedModel`, *optional*): the RL model, when the base model generates.
        gamma (`float`, defaults to `0.0`): extrapolation strength γ >= 0 (paper: 0.05 to 0.1; 0 = replace).
        selection (`str`, defaults to `"all"`): one of `SELECTION_RULES`.
        tau (`float`, *optional*): threshold of the selection rule (paper Δlog p: -0.3 to -0.4).
        top_k (`int`, *optional*): restrict π_extra to the generator's top-k tokens (paper: 50).
        prompt_attention_mask (`torch.Tensor`, *optional*): `(batch, prompt_len)` mask of the prompts, before any
            `num_return_sequences` expansion; all ones when omitted.
        generation_config (`GenerationConfig`, *optional*): the settings `generate` runs with (sampling, eos ids);
            `generate_with_extrapolation` passes the resolved one. Defaults to greedy.
        valid_vocab_size (`int`, *optional*): number of real tokens (e.g. `len(tokenizer)`); defaults to the smaller
            of the two logits widths.

    Examples:

    >>> import torch
    >>> from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm
    >>> tok = build_char_tokenizer()
    >>> rl, base = build_tiny_causal_lm(size="nano", seed=1), build_tiny_causal_lm(size="nano", seed=2)
    >>> batch = tok(["Q: 1+2?", "Q: 10+7?"], return_tensors="pt", padding=True)
    >>> processor = ExtrapolationLogitsProcessor(base_model=base, gamma=0.5, selection="delta_logp", tau=-0.5,
    ...     prompt_attention_mask=batch.attention_mask, generation_config=rl.generation_config)
    >>> out = rl.generate(**batch, logits_processor=[processor], max_new_tokens=6, min_new_tokens=6)
    >>> out.shape, processor.stats().num_generated, processor.stats().other_tokens   # 2 * (8 + 6 - 1)
    (torch.Size([2, 14]), [6, 6], 26)
    """

    supports_continuous_batching = False

    def __init__(
        self,
        *,
        base_model=None,
        rl_model=None,
        gamma: float = 0.0,
        selection: SelectionRule = "all",
        tau: float | None = None,
        top_k: int | None = None,
        prompt_attention_mask: torch.Tensor | None = None,
        generation_config: GenerationConfig | None = None,
        valid_vocab_size: int | None = None,
    ):
        if (base_model is None) == (rl_model is None):
            raise ValueError(
                "Give exactly one of `base_model` (when the RL model generates) or `rl_model` (when the base model "
                f"generates); got base_model={type(base_model).__name__}, rl_model={type(rl_model).__name__}."
            )
        check_extrapolation_arguments(gamma, selection, tau, top_k)
        self.other_model = base_model if base_model is not None else rl_model
        self.generator_role = "rl" if base_model is not None else "base"
        config = getattr(self.other_model, "config", None)
        if config is None or getattr(config, "is_encoder_decoder", False):
            raise ValueError(
                "Extrapolation supports decoder-only causal LMs; the other model is an encoder-decoder "
                "model (or has no `config`). Use a decoder-only base/RL pair."
            )
        if prompt_attention_mask is not None:
            if prompt_attention_mask.dim() != 2:
                raise ValueError(
                    f"`prompt_attention_mask` must be (batch, prompt_len), got shape "
                    f"{tuple(prompt_attention_mask.shape)}."
                )
            if not bool(prompt_attention_mask[:, -1].all()):
                raise ValueError(
                    "`prompt_attention_mask` has padding on the right; decoder-only generation needs left "
                    "padding. Set `tokenizer.padding_side = 'left'`."
                )
        if valid_vocab_size is not None and valid_vocab_size < 1:
            raise ValueError(
                f"`valid_vocab_size` must be a positive integer (e.g. len(tokenizer)), got {valid_vocab_size!r}."
            )
        self.gamma, self.selection, self.tau, self.top_k = float(gamma), selection, tau, top_k
        self.prompt_attention_mask = prompt_attention_mask
        if generation_config is None and selection != "all":
            warnings.warn(
                "No `generation_config` given: candidates are drawn greedily. If `generate` samples, pass the settings "
                "it runs with (e.g. `generation_config=model.generation_config`), or use `generate_with_extrapolation`.",
                stacklevel=2,
            )
        self.generation_config = generation_config if generation_config is not None else GenerationConfig()
        self.valid_vocab_size = valid_vocab_size
        self.warpers = sampling_warpers(self.generation_config)
        self.eos_token_ids = _eos_ids(self.generation_config)
        self.reset()

    def reset(self) -> None:
        """Forget the state of the previous `generate` call, so the instance can serve a new one."""
        self._cache = None
        self._attention_mask = None
        self._positions = None
        self._previous_ids = None
        self._finished = None
        self._num_selected = None
        self._num_generated = None
        self._random = None
        self.other_tokens = 0

    def stats(self) -> ExtrapolationStats:
        """Selection counts of the last `generate` call, one entry per returned sequence."""
        if self._num_selected is None:
            raise RuntimeError("No statistics yet: pass the processor to `generate` first.")
        return ExtrapolationStats(self._num_selected.tolist(), self._num_generated.tolist(), self.other_tokens)

    @property
    def other_device(self) -> torch.device:
        device = getattr(self.other_model, "device", None)
        return device if device is not None else next(self.other_model.parameters()).device

    # --- the other model's incremental forward --------------------------------------------------------------------
    def _start(self, input_ids: torch.LongTensor) -> torch.Tensor:
        batch, length = input_ids.shape
        mask = self.prompt_attention_mask
        mask = torch.ones_like(input_ids) if mask is None else mask.to(input_ids.device)
        if mask.shape[1] != length or batch % mask.shape[0] != 0:
            raise ValueError(
                f"`prompt_attention_mask` has shape {tuple(mask.shape)} but `generate` started from input_ids of shape "
                f"{tuple(input_ids.shape)}; pass the mask of the same prompts (one row per prompt)."
            )
        mask = mask.long().repeat_interleave(batch // mask.shape[0], dim=0)  # row i*k + j is copy j of prompt i
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
        self._cache = DynamicCache(config=self.other_model.config)
        self._attention_mask = mask
        self._finished = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
        self._num_selected = torch.zeros(batch, dtype=torch.long, device=input_ids.device)
        self._num_generated = torch.zeros(batch, dtype=torch.long, device=input_ids.device)
        with torch.random.fork_rng(devices=[input_ids.device] if input_ids.device.type == "cuda" else []):
            seed = int(torch.randint(0, 2**62, (1,), device=input_ids.device).item())
        self._random = torch.Generator(device=input_ids.device).manual_seed(seed)
        self._eos = torch.tensor(self.eos_token_ids, dtype=torch.long, device=input_ids.device)
        return self._forward(input_ids, positions)

    def _step(self, input_ids: torch.LongTensor) -> torch.Tensor:
        batch = self._previous_ids.shape[0]
        if (
            input_ids.shape[0] != batch
            or input_ids.shape[1] != self._previous_ids.shape[1] + 1
            or not torch.equal(input_ids[:, :-1], self._previous_ids)
        ):
            raise RuntimeError(
                "ExtrapolationLogitsProcessor got input_ids that do not extend the previous step's by one token. "
                "Either the instance is reused across `generate` calls (build a new one or call `reset()`), or the "
                "decoding mode reorders or rewinds rows (beam search, assisted or prompt-lookup decoding), which "
                "extrapolation does not support."
            )
        last = input_ids[:, -1]
        if self.eos_token_ids:
            self._finished |= torch.isin(last, self._eos)
        self._attention_mask = torch.cat([self._attention_mask, self._attention_mask.new_ones(batch, 1)], dim=-1)
        return self._forward(input_ids[:, -1:], self._positions + 1)

    @torch.inference_mode()
    def _forward(self, input_ids: torch.LongTensor, positions: torch.LongTensor) -> torch.Tensor:
        device = self.other_device
        outputs = self.other_model(
            input_ids=input_ids.to(device),
            attention_mask=self._attention_mask.to(device),
            position_ids=positions.to(device),
            past_key_values=self._cache,
            use_cache=True,
            logits_to_keep=1,
        )
        self._cache = outputs.past_key_values
        self._positions = positions[:, -1:]
        self.other_tokens += input_ids.numel()
        return outputs.logits[:, -1].to(device=self._attention_mask.device, dtype=torch.float32)

    # --- the decision at one step ---------------------------------------------------------------------------------
    def _selection_mask(self, candidate, log_rl, log_base, log_gen) -> torch.Tensor:
        rule, batch = self.selection, candidate.shape[0]
        if rule == "all":
            return torch.ones(batch, dtype=torch.bool, device=candidate.device)
        if rule == "random":
            return torch.rand(batch, generator=self._random, device=candidate.device) < self.tau
        if rule == "delta_logp":
            index = candidate[:, None]
            delta = log_rl.gather(-1, index) - log_base.gather(-1, index)
            return delta[:, 0].nan_to_num(nan=0.0) <= self.tau
        if rule == "entropy":
            score = _entropy(log_gen)
        elif rule == "kl":
            score = _kl(log_rl, log_base)
        elif rule == "kl_reverse":
            score = _kl(log_base, log_rl)
        else:
            score = 0.5 * (_kl(log_rl, log_base) + _kl(log_base, log_rl))
        return score >= self.tau

    def _draw(self, input_ids, scores: torch.Tensor, generator: torch.Generator | None) -> torch.LongTensor:
        if not self.generation_config.do_sample:
            return scores.argmax(-1)
        probs = torch.softmax(self.warpers(input_ids, scores), dim=-1)
        return torch.multinomial(probs, num_samples=1, generator=generator)[:, 0]

    def _extrapolate(self, log_rl, log_base, log_gen) -> torch.Tensor:
        # Keep the generator's masks (-inf from other processors, padded ids); never produce NaN or +inf.
        extra = extrapolate_log_probs(log_rl, log_base, self.gamma)
        return torch.where(torch.isneginf(log_gen), float("-inf"), extra)

    @add_start_docstrings(LOGITS_PROCESSOR_INPUTS_DOCSTRING)
    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        first = self._previous_ids is None
        other_logits = self._start(input_ids) if first else self._step(input_ids)
        width = scores.shape[-1]
        valid = min(width, other_logits.shape[-1], self.valid_vocab_size or width)
        gen_scores = scores.float().clone()
        gen_scores[:, valid:] = float("-inf")
        log_gen = torch.log_softmax(gen_scores[:, :valid], dim=-1)
        log_other = torch.log_softmax(other_logits[:, :valid], dim=-1)
        log_rl, log_base = (log_gen, log_other) if self.generator_role == "rl" else (log_other, log_gen)
        extra = self._extrapolate(log_rl, log_base, log_gen)
        full = gen_scores.new_full(scores.shape, float("-inf"))
        if self.top_k is not None and self.top_k < valid:
            keep = log_gen.topk(self.top_k, dim=-1).indices
            restricted = torch.full_like(extra, float("-inf")).scatter(-1, keep, extra.gather(-1, keep))
        else:
            restricted = extra
        if self.selection == "all":
            selected = torch.ones(scores.shape[0], dtype=torch.bool, device=scores.device)
            full[:, :valid] = torch.log_softmax(restricted, dim=-1)
            result = full
        else:
            # The candidate uses generate's own random numbers, which are then rewound so generate redraws them.
            devices = [scores.device] if scores.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                candidate = self._draw(input_ids, gen_scores, None)
            selected = self._selection_mask(candidate, log_rl, log_base, log_gen)
            index = candidate[:, None]
            restricted = restricted.scatter(-1, index, extra.gather(-1, index))
            full[:, :valid] = torch.log_softmax(restricted, dim=-1)
            replacement = self._draw(input_ids, full, self._random)
            chosen = torch.where(selected, replacement, candidate)
            result = torch.full_like(full, float("-inf")).scatter(-1, chosen[:, None], 0.0)
        active = ~self._finished
        self._num_generated += active.long()
        self._num_selected += (active & selected).long()
        self._previous_ids = input_ids
        return result
