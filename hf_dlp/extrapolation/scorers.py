"""Where the other model's next-token logits come from: a small strategy object injected into the processor.

`ExtrapolationLogitsProcessor` needs, at every step, the *other* model's logits for the rows `generate` decodes. How
they are computed is a strategy (`OtherModelScorer`):

- `CachedModelScorer`: the other model with its own KV cache, the prompt once, then one token a step (default). It
  follows the generator's `generate` settings (`follow`): `cache_implementation="static"` gives it a `StaticCache`
  of `max_length` slots too, and its one-token steps are compiled exactly when `generate` compiles the generator's;
- `SharedForwardScorer`: logits computed elsewhere and handed over (the LoRA one-forward path runs both halves of a
  peft model in one batched forward);
- `NaiveRecomputeScorer`: the whole prefix re-run every step, no cache (the benchmark baseline and test reference).

A scorer follows a left-padded batch: `prefill(input_ids, attention_mask)` starts it from the prompts, `extend(tokens)`
feeds `k >= 1` new tokens per row in one forward and returns the logits after each of them, and `crop(length)` rewinds
it (with `DynamicCache.crop`), so a block verifier can score k proposed tokens at once and drop the rejected ones.
The cached and naive scorers also take `hide(hidden)`: some rows' last tokens masked out (ragged block rows).
Position ids follow `generate`'s rule: `cumsum(mask) - 1`, padding at 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch
from transformers import DynamicCache, GenerationConfig, StaticCache

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@runtime_checkable
class OtherModelScorer(Protocol):
    """The other model's next-token logits for the rows of one `generate` call.

    Contract: `prefill(input_ids, attention_mask)` takes `(batch, prompt_len)` ids and their left-padded mask and
    returns `(batch, vocab)` float32 logits for the first new token; `extend(tokens)` takes `(batch, k)` new tokens
    and returns `(batch, k, vocab)` float32 logits, entry `i` predicting the token after `tokens[:, i]`; `crop(length)`
    forgets every token after the first `length` (prompt included); `length` is the number of tokens seen;
    `tokens_processed` counts the tokens the model ran on (the cost); `reset()` forgets everything. Returned logits sit
    on the device of the ids given. `model` is the other model (it provides `config`).

    Examples:

    >>> from hf_dlp.toy import build_tiny_causal_lm
    >>> model = build_tiny_causal_lm(size="nano")
    >>> isinstance(CachedModelScorer(model), OtherModelScorer), isinstance(model, OtherModelScorer)
    (True, False)
    """

    model: PreTrainedModel
    tokens_processed: int

    @property
    def length(self) -> int: ...

    def prefill(self, input_ids: torch.LongTensor, attention_mask: torch.LongTensor) -> torch.Tensor: ...

    def extend(self, tokens: torch.LongTensor) -> torch.Tensor: ...

    def crop(self, length: int) -> None: ...

    def reset(self) -> None: ...


def _positions(mask: torch.Tensor) -> torch.LongTensor:
    return (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)


def _model_device(model) -> torch.device:
    device = getattr(model, "device", None)
    return device if device is not None else next(model.parameters()).device


class _PaddedPrefix:
    """The mask of a left-padded batch being extended token by token, and the position ids of its newest tokens."""

    def __init__(self, attention_mask: torch.Tensor):
        self.mask = attention_mask.long()

    def append(self, num_tokens: int) -> torch.LongTensor:
        """Extend the mask by `num_tokens` real tokens per row; return their `(batch, num_tokens)` position ids."""
        start = self.mask.sum(-1, keepdim=True)
        self.mask = torch.cat([self.mask, self.mask.new_ones(self.mask.shape[0], num_tokens)], dim=-1)
        return start + torch.arange(num_tokens, device=self.mask.device)

    def crop(self, length: int) -> None:
        self.mask = self.mask[:, :length]

    def hide(self, hidden: torch.Tensor) -> None:
        """Mask out the last `hidden.shape[1]` tokens where `hidden` (`(batch, k)` booleans) is set."""
        if hidden.shape[1]:
            self.mask = torch.cat([self.mask[:, : -hidden.shape[1]], self.mask[:, -hidden.shape[1] :] * ~hidden], -1)


@torch.inference_mode()
def _run(
    model, input_ids, attention_mask, positions, cache, num_logits: int, forward=None
) -> tuple[torch.Tensor, object]:
    device = _model_device(model)
    inputs = dict(
        input_ids=input_ids.to(device),
        attention_mask=attention_mask.to(device),
        position_ids=positions.to(device),
        cache=cache,
    )
    if cache is not None and cache.is_compileable:  # fixed-size 4D masks, as `generate` builds them for such caches
        owner = model if hasattr(model, "prepare_inputs_for_generation") else model.get_base_model()  # LoRA view
        inputs = owner.prepare_inputs_for_generation(next_sequence_length=input_ids.shape[1], **inputs)
    outputs = (forward or model)(**inputs, use_cache=cache is not None, logits_to_keep=num_logits, return_dict=True)
    logits = outputs.logits[:, -num_logits:].to(device=input_ids.device, dtype=torch.float32)
    return logits, outputs.cache if cache is not None else None


class CachedModelScorer:
    """The other model with its own KV cache: the prompt once, then only the new tokens (B·(P + T − 1) tokens).

    The cache is a `DynamicCache` unless `follow(generation_config)` was called with `cache_implementation="static"`:
    then it is a `StaticCache` of `max_length` slots, and the one-token steps run compiled exactly when `generate`
    would compile the generator's decoding step (`compile_config`, a device transformers compiles for). The
    extrapolation processor and the block decoder call `follow` with the settings `generate` resolved.

    Examples:

    >>> import torch
    >>> from hf_dlp.toy import build_tiny_causal_lm
    >>> scorer = CachedModelScorer(build_tiny_causal_lm(size="nano"))
    >>> ids, mask = torch.tensor([[0, 7, 8], [6, 7, 8]]), torch.tensor([[0, 1, 1], [1, 1, 1]])
    >>> scorer.prefill(ids, mask).shape, scorer.extend(torch.tensor([[9, 10], [9, 10]])).shape
    (torch.Size([2, 106]), torch.Size([2, 2, 106]))
    >>> scorer.length, scorer.tokens_processed
    (5, 10)
    >>> scorer.crop(4); scorer.length
    4
    """

    def __init__(self, model: PreTrainedModel):
        self.model = model
        self._static_length: int | None = None  # the slots of the current static cache
        self._generation_config: GenerationConfig | None = None
        self.reset()

    def reset(self) -> None:
        self._cache: DynamicCache | StaticCache | None = None
        self._step_forward = None  # the compiled one-token forward, set by `prefill` where `generate` compiles
        self._prefix: _PaddedPrefix | None = None
        self._rollback = False
        self.tokens_processed = 0

    def follow(self, generation_config: GenerationConfig) -> None:
        """Use the cache kind and compilation `generate` uses for the generator under `generation_config`.

        `cache_implementation="static"` gives a `StaticCache` with `generate`'s length: prompt + `max_new_tokens`
        when that is set, else `max_length`. Any other value keeps the `DynamicCache`.
        """
        self._generation_config = generation_config

    @property
    def cache_implementation(self) -> str:
        """`"static"` or `"dynamic"`: the kind of cache the next `prefill` builds."""
        config = self._generation_config
        return "static" if config is not None and config.cache_implementation == "static" else "dynamic"

    def _static_slots(self, prompt_length: int) -> int:
        config = self._generation_config
        if config.max_new_tokens is not None:
            return prompt_length + int(config.max_new_tokens)
        if not config.max_length:
            raise ValueError(
                "`cache_implementation='static'` needs `max_new_tokens` or `max_length` in the generation config."
            )
        return int(config.max_length)

    def enable_rollback(self) -> None:
        """Keep past states after the next `prefill` (`Cache.activate_past_recording`), so `crop` can always rewind.

        A block verifier calls it: sliding-window and linear-attention layers otherwise drop states it may rewind to.
        """
        self._rollback = True

    @property
    def length(self) -> int:
        return 0 if self._prefix is None else self._prefix.mask.shape[1]

    def prefill(self, input_ids: torch.LongTensor, attention_mask: torch.LongTensor) -> torch.Tensor:
        self._prefix = _PaddedPrefix(attention_mask)
        self._static_length = None
        if self.cache_implementation == "dynamic":
            self._cache = DynamicCache(config=self.model.config)
        else:
            self._static_length = self._static_slots(input_ids.shape[1])
            if input_ids.shape[1] >= self._static_length:
                raise ValueError(
                    f"The prompts ({input_ids.shape[1]} tokens) fill the static cache's {self._static_length} slots "
                    "(`max_length`); raise `max_new_tokens`."
                )
            self._cache = StaticCache(config=self.model.config, max_cache_len=self._static_length)
        self._step_forward = self._compiled_step()  # None (eager) for a dynamic cache, as in `generate`
        logits, self._cache = _run(
            self.model, input_ids, self._prefix.mask, _positions(self._prefix.mask), self._cache, 1
        )
        self.tokens_processed += input_ids.numel()
        if self._rollback:
            self._cache.activate_past_recording()
        return logits[:, -1]

    def extend(self, tokens: torch.LongTensor) -> torch.Tensor:
        if self._prefix is None:
            raise RuntimeError("`extend` before `prefill`: start the scorer from the prompts first.")
        if self._static_length is not None and self.length + tokens.shape[1] > self._static_length:
            raise ValueError(
                f"The other model's static cache holds {self._static_length} tokens (`max_length`); "
                f"{self.length + tokens.shape[1]} would not fit."
            )
        positions = self._prefix.append(tokens.shape[1])
        forward = self._step_forward if tokens.shape[1] == 1 else None  # compiled for one-token steps only
        logits, self._cache = _run(
            self.model, tokens, self._prefix.mask, positions, self._cache, tokens.shape[1], forward=forward
        )
        self.tokens_processed += tokens.numel()
        return logits

    def _compiled_step(self):
        """The compiled forward of the one-token steps, or `None` where `generate` would not compile (eager)."""
        config = self._generation_config
        if config is None or not hasattr(self.model, "_valid_auto_compile_criteria"):
            return None
        if not self.model._valid_auto_compile_criteria({"cache": self._cache}, config):
            return None
        return self.model.get_compiled_call(config.compile_config)

    def crop(self, length: int) -> None:
        if self._prefix is not None and length < self.length:
            self._cache.crop(length - self.length)  # transformers 5.24: a negative count of tokens to remove
            self._prefix.crop(length)

    def hide(self, hidden: torch.Tensor) -> None:
        """Make the last `hidden.shape[1]` tokens invisible where `hidden` (`(batch, k)` booleans) is set.

        Their cache entries stay but are masked out, and later position ids skip them: a block verifier with ragged
        rows drops one row's rejected drafts this way while another row keeps its drafts at the same slots.
        """
        self._prefix.hide(hidden.to(self._prefix.mask.device))


class NaiveRecomputeScorer:
    """The other model re-run on the whole prefix at every step, without a cache: the quadratic baseline.

    Slow on purpose (B·(P·T + T(T−1)/2) tokens); the benchmark compares against it and the tests use it as the
    reference the cached scorer must match.

    Examples:

    >>> import torch
    >>> from hf_dlp.toy import build_tiny_causal_lm
    >>> model = build_tiny_causal_lm(size="nano")
    >>> naive, cached = NaiveRecomputeScorer(model), CachedModelScorer(model)
    >>> ids, mask, new = torch.tensor([[0, 7, 8]]), torch.tensor([[0, 1, 1]]), torch.tensor([[9, 10]])
    >>> _ = naive.prefill(ids, mask), cached.prefill(ids, mask)
    >>> torch.allclose(naive.extend(new), cached.extend(new), atol=1e-5), naive.tokens_processed
    (True, 8)
    """

    def __init__(self, model: PreTrainedModel):
        self.model = model
        self.reset()

    def reset(self) -> None:
        self._ids: torch.LongTensor | None = None
        self._mask: torch.Tensor | None = None
        self.tokens_processed = 0

    @property
    def length(self) -> int:
        return 0 if self._ids is None else self._ids.shape[1]

    def prefill(self, input_ids: torch.LongTensor, attention_mask: torch.LongTensor) -> torch.Tensor:
        self._ids, self._mask = input_ids, attention_mask.long()
        return self._recompute(1)[:, -1]

    def extend(self, tokens: torch.LongTensor) -> torch.Tensor:
        if self._ids is None:
            raise RuntimeError("`extend` before `prefill`: start the scorer from the prompts first.")
        self._ids = torch.cat([self._ids, tokens], dim=-1)
        self._mask = torch.cat([self._mask, self._mask.new_ones(tokens.shape)], dim=-1)
        return self._recompute(tokens.shape[1])

    def crop(self, length: int) -> None:
        if self._ids is not None:
            self._ids, self._mask = self._ids[:, :length], self._mask[:, :length]

    def hide(self, hidden: torch.Tensor) -> None:
        """Mask out the last `hidden.shape[1]` tokens where `hidden` is set (see `CachedModelScorer.hide`)."""
        if hidden.shape[1]:
            keep = ~hidden.to(self._mask.device)
            self._mask = torch.cat([self._mask[:, : -hidden.shape[1]], self._mask[:, -hidden.shape[1] :] * keep], -1)

    def _recompute(self, num_logits: int) -> torch.Tensor:
        logits, _ = _run(self.model, self._ids, self._mask, _positions(self._mask), None, num_logits)
        self.tokens_processed += self._ids.numel()
        return logits


class SharedForwardScorer:
    """Logits computed by someone else's forward and handed over with `supply` before each processor call.

    `OneForwardLoraSampler` runs the RL rows and the base rows of a peft LoRA model in one batched forward and supplies
    the base half here; the processor then reads it as from any scorer (`OneForwardLoraSampler` shows the whole path).

    Examples:

    >>> import torch
    >>> scorer = SharedForwardScorer()
    >>> scorer.supply(torch.zeros(2, 106))
    >>> scorer.prefill(torch.tensor([[6, 7], [8, 9]]), torch.ones(2, 2)).shape, scorer.length
    (torch.Size([2, 106]), 2)
    """

    def __init__(self, model: PreTrainedModel | None = None):
        self.model = model
        self.reset()

    def reset(self) -> None:
        self._pending: torch.Tensor | None = None
        self._length = 0
        self.tokens_processed = 0

    @property
    def length(self) -> int:
        return self._length

    def supply(self, logits: torch.Tensor) -> None:
        """Hand over the logits of the next `prefill` (`(batch, vocab)`) or `extend` call (`(batch, k, vocab)`)."""
        self._pending = logits

    def _take(self, tokens: torch.LongTensor) -> torch.Tensor:
        logits, self._pending = self._pending, None
        if logits is None:
            raise RuntimeError(
                "SharedForwardScorer has no logits for this step: it must be driven by `OneForwardLoraSampler` "
                "(generate_with_extrapolation(..., one_forward=True)), which supplies them before each step."
            )
        self._length += tokens.shape[1]
        self.tokens_processed += tokens.numel()
        return logits.to(device=tokens.device, dtype=torch.float32)

    def prefill(self, input_ids: torch.LongTensor, attention_mask: torch.LongTensor) -> torch.Tensor:
        self._length = 0
        logits = self._take(input_ids)
        return logits if logits.dim() == 2 else logits[:, -1]

    def extend(self, tokens: torch.LongTensor) -> torch.Tensor:
        logits = self._take(tokens)
        return logits if logits.dim() == 3 else logits[:, None]

    def crop(self, length: int) -> None:
        self._length = min(self._length, length)


def as_scorer(model_or_scorer) -> OtherModelScorer:
    """A scorer for the other model: scorers pass through, models get a `CachedModelScorer`.

    Examples:

    >>> from hf_dlp.toy import build_tiny_causal_lm
    >>> type(as_scorer(build_tiny_causal_lm(size="nano"))).__name__
    'CachedModelScorer'
    """
    if isinstance(model_or_scorer, OtherModelScorer):
        return model_or_scorer
    return CachedModelScorer(model_or_scorer)


__all__ = [
    "CachedModelScorer",
    "NaiveRecomputeScorer",
    "OtherModelScorer",
    "SharedForwardScorer",
    "as_scorer",
]
