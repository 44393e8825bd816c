"""The acceptance rules of block-verified extrapolation, and its block-length schedule.

Each `*_cut` function looks at one drafted position `j` of a block (`hf_dlp.extrapolation.block`) and returns `None`
when every row keeps its draft there, or `(tokens, changed)`: the tokens of that position and the rows that did not
keep their draft (the block ends there if one of them is unfinished). They use the per-token processor's arithmetic
(`hf_dlp.extrapolation.selection`) and random numbers, so the block path follows it exactly.

- `selective_cut`: the rule fires -> re-draw from π_extra (candidate set + the candidate, warpers), as the processor.
- `dense_greedy_cut`: keep the draft while it is argmax π_extra.
- `dense_sampling_cut`: speculative sampling (Leviathan et al. 2023, Chen et al. 2023): accept the draft y with
  probability min(1, p(y)/q(y)), p = warped π_extra, q = the generator's warped distribution; on rejection draw from
  norm(max(0, p − q)) (`speculative_accept`, `residual_probs`).
"""

from __future__ import annotations

import torch

# hf_dlp-export: strip-begin
from .config import AUTO_BLOCK_SIZE, MAX_BLOCK_SIZE
from .decoding import draw_next_tokens
from .processor import widen
from .selection import dense_log_probs, redraw_log_probs, select_positions

# hf_dlp-export: strip-end

# transformers' assisted generation starts its assistant at 20 tokens; extrapolation cuts more often, so "auto"
# starts lower and follows the same heuristic (+2 after a block accepted whole, -1 otherwise).
AUTO_BLOCK_START = 8


class BlockSchedule:
    """The block length: fixed, or `"auto"` (grow by 2 after a block accepted whole, shrink by 1 after a cut).

    Examples:

    >>> schedule = BlockSchedule("auto")
    >>> schedule.size, schedule.update(whole=True), schedule.update(whole=False)
    (8, 10, 9)
    >>> BlockSchedule(3).update(whole=True)
    3
    """

    def __init__(self, block_size: int | str):
        self.adaptive = block_size == AUTO_BLOCK_SIZE
        self.size = AUTO_BLOCK_START if self.adaptive else int(block_size)

    def update(self, *, whole: bool) -> int:
        if self.adaptive:
            self.size = min(self.size + 2, MAX_BLOCK_SIZE) if whole else max(self.size - 1, 1)
        return self.size


def speculative_accept(p_token: torch.Tensor, q_token: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Speculative sampling's test: accept the draft y with probability min(1, p(y)/q(y)) (`uniform` ~ U[0, 1)).

    Examples:

    >>> speculative_accept(torch.tensor([0.2, 0.5]), torch.tensor([0.4, 0.5]), torch.tensor([0.6, 0.99])).tolist()
    [False, True]
    """
    return uniform * q_token < p_token


def residual_probs(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """norm(max(0, p − q)): what a rejected position is drawn from; p itself where p ≈ q (no mass left but rounding).

    Examples:

    >>> residual_probs(torch.tensor([[0.5, 0.5, 0.0]]), torch.tensor([[0.25, 0.25, 0.5]]))
    tensor([[0.5000, 0.5000, 0.0000]])
    """
    residual = (p - q).clamp(min=0)
    mass = residual.sum(-1, keepdim=True)
    return torch.where(mass > 1e-6, residual / mass.clamp(min=1e-30), p)


# --- the decision at one drafted position: None (keep the drafts) or (tokens, changed rows) ------------------------
def selective_cut(config, run, draft, j: int, step, prefix) -> tuple | None:
    """The selective rules at position `j`: `config` the `ExtrapolationConfig`, `run`/`draft` the block loop's state
    and drafts, `step` the `StepLogProbs` there, `prefix` the ids before it (the same signature for the three rules)."""
    candidate = draft.token(j)
    selected = select_positions(
        config.selection, config.tau, candidate, step.log_rl, step.log_base, step.log_gen, run.random
    )
    fired = bool((selected & draft.unfinished[j].bool()).any())
    if not (fired or run.do_sample):  # greedy: nothing to re-draw, no random numbers to keep in step
        return None
    # As the per-token processor: the re-draw is made (and its random numbers used) at every sampled position.
    full = widen(redraw_log_probs(step, candidate), draft.scores[j].shape[-1])
    redraw = draw_next_tokens(run.tail(prefix, full), do_sample=run.do_sample, generator=run.random)
    return (torch.where(selected, redraw, candidate), selected) if fired else None


def dense_greedy_cut(config, run, draft, j: int, step, prefix) -> tuple | None:
    full = widen(dense_log_probs(step), draft.scores[j].shape[-1])
    target = torch.argmax(run.tail(prefix, full), dim=-1)
    return target, target != draft.token(j)


def dense_sampling_cut(config, run, draft, j: int, step, prefix) -> tuple | None:
    full = widen(dense_log_probs(step), draft.scores[j].shape[-1])
    p = torch.softmax(run.tail(prefix, full), dim=-1)
    q = torch.softmax(draft.warped[j], dim=-1)
    candidate = draft.token(j)
    uniform = torch.rand(candidate.shape, generator=run.random, device=candidate.device)
    index = candidate[:, None]
    accepted = speculative_accept(p.gather(-1, index)[:, 0], q.gather(-1, index)[:, 0], uniform)
    if bool(accepted.all()):
        return None
    resampled = torch.multinomial(residual_probs(p, q), num_samples=1, generator=run.random)[:, 0]
    return torch.where(accepted, candidate, resampled), ~accepted


__all__ = [
    "AUTO_BLOCK_START",
    "BlockSchedule",
    "dense_greedy_cut",
    "dense_sampling_cut",
    "residual_probs",
    "selective_cut",
    "speculative_accept",
]
