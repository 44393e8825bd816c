"""Token-level metrics of a base/RL model pair, teacher-forced on the same sequences: Δlog p, entropies and KLs.

Both models read the same tokens. The value at position `t` scores token `input_ids[:, t]` given the tokens before it
(so position 0, which has no context, is never scored):

- `base_logp`, `rl_logp`: log π(y_t | y_<t) under each model;
- `delta_logp` = `rl_logp` − `base_logp`, the paper's signed direction of the RLVR update;
- `base_entropy`, `rl_entropy`: H(π(· | y_<t)) of each model;
- `kl_rl_base` = KL(π_RL ‖ π_base) and `kl_base_rl` = KL(π_base ‖ π_RL) at that position.

Memory: the models' final hidden states are kept, but the output layer is applied only to the scored positions, a
chunk at a time, so at most one chunk of `(chunk_size, vocab)` log-probabilities and probabilities per model exists
at once, never the `(batch, length, vocab)` logits. The reductions run in float32 whatever the weights' dtype, with
one exp per chunk and model; the sums over the vocabulary are batched matrix products.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import torch

from ..arguments import check_number
from ..divergence import PAIR_METRIC_NAMES, compiled_pair_metrics, normalize_logits_, pair_metrics
from ..model_pair import common_vocab_size, output_vocab_size

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

METRIC_NAMES: tuple[str, ...] = PAIR_METRIC_NAMES
"""Names of the per-token metrics, in the order of `TokenMetrics`' fields."""

DEFAULT_CHUNK_ELEMENTS = 2**23
"""Float32 elements per model in a chunk of log-probabilities when `chunk_size` is not given (32 MiB); off CUDA."""

CUDA_FREE_MEMORY_SHARE = 0.25
"""On CUDA, the share of the free device memory a chunk's working tensors may take when `chunk_size` is not given."""

CUDA_MAX_CHUNK_POSITIONS = 1024
"""On CUDA, the most positions in one chunk (past about a thousand, a bigger chunk no longer runs faster)."""

BYTES_PER_CHUNK_ELEMENT = 24
"""Working bytes per position and vocabulary id: four float32 `(n, vocab)` tensors plus the head's output."""


def default_chunk_size(vocab_size: int, device: torch.device) -> int:
    """Scored positions per chunk when `chunk_size` is not given.

    On CUDA the chunk follows the free memory (`torch.cuda.mem_get_info`): `CUDA_FREE_MEMORY_SHARE` of it, at
    `BYTES_PER_CHUNK_ELEMENT` per position and id, at most `CUDA_MAX_CHUNK_POSITIONS`. Elsewhere it is fixed:
    `DEFAULT_CHUNK_ELEMENTS // vocab_size`.

    Examples:

    >>> default_chunk_size(152_064, torch.device("cpu"))
    55
    """
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        fits = int(free * CUDA_FREE_MEMORY_SHARE) // (BYTES_PER_CHUNK_ELEMENT * vocab_size)
        return max(1, min(CUDA_MAX_CHUNK_POSITIONS, fits))
    return max(1, DEFAULT_CHUNK_ELEMENTS // vocab_size)


@dataclass
class TokenMetrics:
    """Per-token metrics aligned with `input_ids` (shape `(batch_size, sequence_length)`, float32).

    Positions outside `mask` hold 0. `mask` is the boolean mask of scored positions: the completion positions that
    are real tokens and follow a real token.

    Examples:

    >>> import torch
    >>> from hf_dlp.toy import build_tiny_causal_lm
    >>> base, rl = build_tiny_causal_lm(size="nano", seed=0), build_tiny_causal_lm(size="nano", seed=1)
    >>> ids = torch.tensor([[7, 8, 9, 10, 11]])
    >>> metrics = compute_token_metrics(base_model=base, rl_model=rl, input_ids=ids,
    ...                                 completion_mask=torch.tensor([[0, 0, 1, 1, 1]]))
    >>> metrics.delta_logp.shape, metrics.mask.sum().item(), metrics.values("delta_logp").shape
    (torch.Size([1, 5]), 3, torch.Size([3]))
    >>> torch.allclose(metrics.delta_logp, metrics.rl_logp - metrics.base_logp)
    True
    """

    base_logp: torch.Tensor
    rl_logp: torch.Tensor
    delta_logp: torch.Tensor
    base_entropy: torch.Tensor
    rl_entropy: torch.Tensor
    kl_rl_base: torch.Tensor
    kl_base_rl: torch.Tensor
    mask: torch.Tensor

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in METRIC_NAMES and name != "mask":
            raise KeyError(f"Unknown metric {name!r}; choose one of {METRIC_NAMES}.")
        return getattr(self, name)

    def values(self, name: str) -> torch.Tensor:
        """The scored values of metric `name`, flattened in row-major order (shape `(num_scored_tokens,)`)."""
        return self[name][self.mask]

    def sequence_mean(self, name: str) -> torch.Tensor:
        """Mean of metric `name` over each row's scored tokens (shape `(batch_size,)`)."""
        return self[name].sum(-1) / self.mask.sum(-1).clamp(min=1)

    def to(self, device: str | torch.device) -> TokenMetrics:
        """A copy with every tensor on `device`."""
        return TokenMetrics(**{spec.name: getattr(self, spec.name).to(device) for spec in fields(self)})


def _as_mask(name: str, mask: torch.Tensor | None, like: torch.Tensor, default: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return default if default is not None else torch.ones_like(like, dtype=torch.bool)
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(mask).__name__}.")
    if mask.shape != like.shape:
        raise ValueError(
            f"`{name}` has shape {tuple(mask.shape)} but `input_ids` has shape {tuple(like.shape)}; "
            "give one mask value per token."
        )
    return mask.to(device=like.device, dtype=torch.bool)


def _scored_positions(
    input_ids: torch.Tensor, attention_mask: torch.Tensor | None, completion_mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate the inputs; return the boolean attention mask and the mask of scored positions."""
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.dtype != torch.long:
        shape = tuple(input_ids.shape) if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
        raise ValueError(f"`input_ids` must be a 2-D LongTensor (batch_size, sequence_length), got {shape}.")
    if input_ids.numel() == 0:
        raise ValueError(f"`input_ids` is empty (shape {tuple(input_ids.shape)}); give at least one token.")
    attention = _as_mask("attention_mask", attention_mask, input_ids, None)
    completion = _as_mask("completion_mask", completion_mask, input_ids, attention)
    scored = completion & attention
    scored[:, 0] = False
    scored[:, 1:] &= attention[:, :-1]  # a token is scored only after a real token
    empty = (~scored.any(-1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(
            f"Rows {empty[:10]} of `completion_mask` select no response token (after masking padding and the first "
            "token, which has no context). Each row needs at least one response token following a real token."
        )
    return attention, scored


def _final_hidden_states(model, input_ids, attention_mask, position_ids) -> torch.Tensor | None:
    """Last hidden states from the decoder stack, or `None` if the model does not expose decoder and head."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    if not isinstance(head, torch.nn.Linear) or decoder is None or decoder is model:
        return None
    outputs = decoder(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False)
    return outputs.last_hidden_state


def _head_logits(model, hidden: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Float32 logits of the first `vocab_size` ids from final hidden states, with the output scalings some
    architectures apply after the head. A plain `nn.Linear` head only computes the kept rows."""
    head = model.get_output_embeddings()
    if type(head) is torch.nn.Linear:
        bias = head.bias[:vocab_size] if head.bias is not None else None
        logits = torch.nn.functional.linear(hidden, head.weight[:vocab_size], bias).float()
    else:  # wrapped heads (e.g. adapters): run the module, then keep the real vocabulary
        logits = head(hidden)[..., :vocab_size].float()
    config = model.config.get_text_config()
    if getattr(config, "logit_scale", None) is not None:  # Cohere multiplies the logits
        logits = logits * config.logit_scale
    if getattr(config, "logits_scaling", None) is not None:  # Granite divides them
        logits = logits / config.logits_scaling
    if getattr(config, "final_logit_softcapping", None) is not None:  # Gemma 2/3 soft-cap them
        cap = config.final_logit_softcapping
        logits = torch.tanh(logits / cap) * cap
    return logits.contiguous()


class _LogitSource:
    """Gives one model's float32 logits at chosen positions, from hidden states (or full logits as a fallback)."""

    def __init__(self, model, input_ids, attention_mask, position_ids, rows, prev_cols, vocab_size):
        self.model, self.vocab_size = model, vocab_size
        device = next(model.parameters()).device
        ids, mask, positions = (t.to(device) for t in (input_ids, attention_mask.long(), position_ids))
        self.rows, self.cols = rows.to(device), prev_cols.to(device)
        self.hidden = _final_hidden_states(model, ids, mask, positions)
        self.logits = None
        if self.hidden is None:  # generic fallback: full logits of this model, gathered at the scored positions
            full = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False).logits
            self.logits = full[self.rows, self.cols, :vocab_size].float()
            del full

    def chunk(self, start: int, stop: int, device: torch.device) -> torch.Tensor:
        """A fresh `(n, vocab)` float32 tensor (the caller may modify it in place)."""
        if self.logits is not None:
            return self.logits[start:stop].to(device, copy=True)
        hidden = self.hidden[self.rows[start:stop], self.cols[start:stop]]
        return _head_logits(self.model, hidden, self.vocab_size).to(device)


def _top_k_view(log_probs: torch.Tensor, targets: torch.Tensor, k: int):
    """Top-k truncation as vLLM returns it: the target's raw log-prob (floored at the k-th best) and the
    renormalised top-k distribution spread over the vocabulary (ids outside the top-k get its smallest value)."""
    values, ids = log_probs.topk(k, dim=-1)
    raw = log_probs.gather(-1, targets[:, None]).squeeze(-1)
    token_logp = torch.where((ids == targets[:, None]).any(-1), raw, values[:, -1])
    renormalised = values - values.logsumexp(-1, keepdim=True)
    dense = renormalised[:, -1:].expand_as(log_probs).clone().scatter_(-1, ids, renormalised)
    return token_logp, ids, renormalised, dense


def _top_k_chunk(base_lp, rl_lp, targets: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
    """The paper code's top-k approximation (vLLM `logprobs=k`), see `compute_token_metrics`."""
    base_logp, base_ids, base_q, base_dense = _top_k_view(base_lp, targets, k)
    rl_logp, rl_ids, rl_q, rl_dense = _top_k_view(rl_lp, targets, k)
    base_p, rl_p = base_q.exp(), rl_q.exp()
    return {
        "base_logp": base_logp,
        "rl_logp": rl_logp,
        "delta_logp": rl_logp - base_logp,
        "base_entropy": -(base_p * base_q).sum(-1),
        "rl_entropy": -(rl_p * rl_q).sum(-1),
        "kl_rl_base": (rl_p * (rl_q - base_dense.gather(-1, rl_ids))).sum(-1),
        "kl_base_rl": (base_p * (base_q - rl_dense.gather(-1, base_ids))).sum(-1),
    }


def _check_logprobs_top_k(logprobs_top_k: Any, vocab_size: int | None = None) -> int | None:
    """`None` (exact) or a whole number of top log-probs in `[1, vocab_size]`."""
    return check_number(
        "logprobs_top_k",
        logprobs_top_k,
        integer=True,
        minimum=1,
        maximum=vocab_size,
        allow_none=True,
        hint="Leave it unset for exact metrics on the full vocabulary; the paper's code uses 50.",
    )


def _check_ids(input_ids: torch.Tensor, scored: torch.Tensor, attention: torch.Tensor, vocab: int, models) -> None:
    """Refuse token ids outside the models' output layers or the scored vocabulary."""
    heads = [output_vocab_size(model) for model in models]
    largest_id, largest_target = int(input_ids[attention].max()), int(input_ids[scored].max())
    if largest_id >= min(heads) or largest_target >= vocab:
        raise ValueError(
            f"`input_ids` holds token id {max(largest_id, largest_target)}, outside the scored vocabulary ({vocab} "
            f"ids; output layers of {heads[0]} and {heads[1]} rows). Tokenize with the models' tokenizer, and pass "
            "`tokenizer=` (or `vocab_size=len(tokenizer)`)."
        )
    for name, model in zip(("base_model", "rl_model"), models, strict=True):
        if model.training:
            warnings.warn(f"`{name}` is in training mode (dropout active); call `.eval()` first.", stacklevel=3)


@torch.inference_mode()
def compute_token_metrics(
    *,
    base_model: PreTrainedModel,
    rl_model: PreTrainedModel,
    input_ids: torch.LongTensor,
    attention_mask: torch.Tensor | None = None,
    completion_mask: torch.Tensor | None = None,
    logprobs_top_k: int | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    vocab_size: int | None = None,
    chunk_size: int | None = None,
    fused: bool | None = None,
) -> TokenMetrics:
    """Teacher-force both models on the same sequences and score every completion token.

    Left and right padding both work: position ids follow the attention mask, as in `generate`, so a padded row
    gets the values it would get alone. Models may sit on different devices and use any dtype (bf16 included);
    the outputs are float32 on `input_ids`' device. Every argument is passed by name.

    Args:
        base_model (`PreTrainedModel`): the base policy π_base.
        rl_model (`PreTrainedModel`): the RLVR-trained policy π_RL (same tokenizer).
        input_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`): prompt + response tokens.
        attention_mask (`torch.Tensor` of the same shape, *optional*): 1 for real tokens, 0 for padding.
            Defaults to all ones.
        completion_mask (`torch.Tensor` of the same shape, *optional*): 1 on the response tokens to score.
            Defaults to `attention_mask` (every token but the first). Every row must select a token.
        logprobs_top_k (`int`, *optional*): if set, reproduce the paper code's vLLM approximation with
            `logprobs=logprobs_top_k`: a token's log-prob is its exact value when it is in that model's top-k, else
            the k-th best log-prob; entropies and KLs use each model's top-k renormalised with logsumexp, and in
            KL(P‖Q) the ids of P's top-k missing from Q's top-k take Q's smallest renormalised value. `None`
            (default) is exact.
        tokenizer (`PreTrainedTokenizerBase`, *optional*): the models' tokenizer; `len(tokenizer)` says which ids
            are real (the rows beyond it are padding) when `vocab_size` is not given.
        vocab_size (`int`, *optional*): ids kept from the output layers, e.g. `len(tokenizer)`. Without it and
            without `tokenizer`, both output layers must have the same width: when they differ, some rows are
            padding and nothing says which, so a `ValueError` asks for one of the two.
        chunk_size (`int`, *optional*): scored positions per chunk; the peak working memory is about
            `4 × chunk_size × vocab_size × 4 bytes` (logits, then log-probs and probs, of both models). Defaults to
            `default_chunk_size`: on CUDA, a quarter of the free memory (at most 1,024 positions); elsewhere
            `DEFAULT_CHUNK_ELEMENTS // vocab_size`, 128 MiB at most, 55 positions for Qwen2.5's 152,064 rows.
        fused (`bool`, *optional*): compute the seven metrics of a chunk with one compiled function
            (`hf_dlp.divergence.compiled_pair_metrics`: log-softmax, entropies, KLs and Δlog p fused by
            `torch.compile`) instead of the reference path (`normalize_logits_` + `pair_metrics`). Defaults to `True`
            on CUDA and `False` elsewhere, where compiling costs more than it saves. Both agree up to float rounding.
            Exact metrics only (not with `logprobs_top_k`).

    Returns:
        `TokenMetrics`: the seven metrics and the `mask` of scored positions, shape `(batch_size, sequence_length)`.

    Examples:

    >>> import torch
    >>> from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm
    >>> base = build_tiny_causal_lm(size="nano", seed=0)
    >>> rl = build_tiny_causal_lm(size="nano", seed=0)
    >>> _ = rl.resize_token_embeddings(120)                              # same weights plus 14 padding rows
    >>> ids = torch.tensor([[0, 0, 7, 8, 9], [7, 8, 9, 10, 11]])        # left padded
    >>> attention = (ids != 0).long()
    >>> metrics = compute_token_metrics(base_model=base, rl_model=rl, input_ids=ids, attention_mask=attention,
    ...                                 completion_mask=attention, tokenizer=build_char_tokenizer())
    >>> metrics.mask.sum(-1).tolist()
    [2, 4]
    >>> round(metrics.delta_logp.abs().max().item(), 4), round(metrics.kl_rl_base.abs().max().item(), 4)
    (0.0, 0.0)
    """
    attention, scored = _scored_positions(input_ids, attention_mask, completion_mask)
    if vocab_size is None and tokenizer is not None:
        vocab_size = len(tokenizer)
    vocab = common_vocab_size(
        base_model=base_model, rl_model=rl_model, vocab_size=vocab_size, what="`tokenizer=` or `vocab_size=`"
    )
    logprobs_top_k = _check_logprobs_top_k(logprobs_top_k, vocab)
    chunk_size = check_number("chunk_size", chunk_size, integer=True, minimum=1, allow_none=True)
    if fused is not None and not isinstance(fused, bool):
        raise TypeError(f"`fused` must be True, False or None (by device), got {fused!r}.")
    if fused and logprobs_top_k is not None:
        raise ValueError(
            f"`fused=True` computes the exact metrics; it cannot be combined with `logprobs_top_k={logprobs_top_k}`. "
            "Drop one of the two."
        )
    _check_ids(input_ids, scored, attention, vocab, (base_model, rl_model))
    work_device = next(base_model.parameters()).device  # chunks stay on the model's device
    chunk_size = default_chunk_size(vocab, work_device) if chunk_size is None else chunk_size
    exact = logprobs_top_k is None
    fused = (exact and work_device.type == "cuda") if fused is None else fused
    position_ids = (attention.long().cumsum(-1) - 1).clamp(min=0)
    rows, cols = scored.nonzero(as_tuple=True)
    targets = input_ids[rows, cols]
    sources = [
        _LogitSource(model, input_ids, attention, position_ids, rows, cols - 1, vocab)
        for model in (base_model, rl_model)
    ]
    device = input_ids.device
    targets = targets.to(work_device)
    flat = {name: torch.empty(rows.numel(), dtype=torch.float32, device=device) for name in METRIC_NAMES}
    for start in range(0, rows.numel(), chunk_size):
        stop = min(start + chunk_size, rows.numel())
        if fused:
            values = compiled_pair_metrics()(
                sources[0].chunk(start, stop, work_device),
                sources[1].chunk(start, stop, work_device),
                targets[start:stop],
            )
            for name, value in zip(METRIC_NAMES, values, strict=True):
                flat[name][start:stop] = value
            continue
        # Peak working memory: log-probs and probs of both models, four (n, vocab) float32 tensors.
        base_lp, base_p = normalize_logits_(sources[0].chunk(start, stop, work_device), with_probs=exact)
        rl_lp, rl_p = normalize_logits_(sources[1].chunk(start, stop, work_device), with_probs=exact)
        if exact:
            chunk = pair_metrics(base_lp, rl_lp, targets[start:stop], base_probs=base_p, rl_probs=rl_p)
        else:
            chunk = _top_k_chunk(base_lp, rl_lp, targets[start:stop], logprobs_top_k)
        del base_lp, base_p, rl_lp, rl_p
        for name, value in chunk.items():
            flat[name][start:stop] = value
    outputs = {}
    for name in METRIC_NAMES:
        outputs[name] = torch.zeros(input_ids.shape, dtype=torch.float32, device=device)
        outputs[name][rows, cols] = flat[name]
    return TokenMetrics(**outputs, mask=scored)
