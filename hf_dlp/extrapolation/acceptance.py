"""The acceptance rules of block-verified extrapolation, batched over a block, and its block-length schedule.

Each rule looks at all `n` drafted positions of a block at once (`(batch, n, vocab)` tensors, no host round trip) and
returns which positions *fire*: where a row would not keep its draft. The block loop (`hf_dlp.extrapolation.block`)
then cuts each row (or the whole batch) at its first firing position and asks the rule for the token there. They use
the per-token processor's arithmetic (`hf_dlp.extrapolation.selection`), so the block path follows it exactly.

- selective rules: the rule fires -> re-draw from π_extra (candidate set + the candidate, warpers), as the processor;
- dense greedy: fires where the draft is not argmax π_extra; the token there is argmax π_extra;
- dense sampling: speculative sampling (Leviathan et al. 2023, Chen et al. 2023): accept the draft y with probability
  min(1, p(y)/q(y)), p = warped π_extra, q = the generator's warped distribution; on rejection draw from
  norm(max(0, p − q)) (`speculative_accept`, `residual_probs`).

`BlockSchedule` chooses the block length; under `"auto"` it also times the blocks against one-token steps and falls
back to one token per step for the rest of the call when blocks do not pay.
"""

from __future__ import annotations

import statistics
import time

import torch

# hf_dlp-export: strip-begin
from .config import AUTO_BLOCK_SIZE, MAX_BLOCK_SIZE
from .selection import StepLogProbs, select_positions

# hf_dlp-export: strip-end

# transformers' assisted generation starts its assistant at 20 tokens; extrapolation cuts more often, so "auto"
# starts lower (8 // batch size, at least 2, for batches, where trying a block that does not pay costs more) and follows the same
# heuristic (+2 after a block accepted whole, -1 otherwise).
AUTO_BLOCK_START = 8
# "auto" first times this many one-token steps (the first, fed by the prefill, is not timed) ...
AUTO_PROBE_STEPS = 4
# ... then falls back to one-token steps when blocks cost more than this share of a one-token step per token (all
# blocks so far together, from the `AUTO_WINDOW`-th block on; batches judge from the second block on), or, for
# batches, when the first block alone costs more than `AUTO_FIRST_BLOCK_LIMIT` times it.
AUTO_FALLBACK_RATIO = 0.95
AUTO_WINDOW = 4
# Batches also fall back when their last `AUTO_WINDOW` blocks cost more than this many one-token steps per token.
AUTO_RECENT_LIMIT = 2.0
# One row: the expected advance of a block of n is (1 - (1 - s)^n) / s for a firing rate s per position, estimated as
# (fires + 1) / (positions + 20) (a prior of 5 %).
AUTO_PRIOR_FIRES, AUTO_PRIOR_POSITIONS = 1, 20
AUTO_FIRST_BLOCK_LIMIT = 1.25

# The clock "auto" times blocks with (replaced in tests).
block_clock = time.perf_counter


class BlockSchedule:
    """The block length: fixed, or `"auto"`, which adapts it and falls back to one token per step when blocks lose.

    `"auto"` first runs `AUTO_PROBE_STEPS` one-token steps and times them; then blocks start at `start`,
    grow by 2 after a block accepted whole and shrink by 1 after a cut (transformers' assisted-generation heuristic),
    or when the block cost more per token than the one before.
    The blocks' time per advanced token (all blocks so far) is compared with a one-token step's: when blocks cost
    more (`AUTO_FALLBACK_RATIO`), the rest of the call runs one token per step (`fell_back`). For one row (`fired` given)
    the judgement uses the firing rate seen, with a prior (`AUTO_PRIOR_FIRES`), and the measured cost of a draft, so
    a few unlucky early cuts do not end the blocks. With `judge_first` (batches,
    whose rows drift apart while blocks are tried) the first block alone can decide (`AUTO_FIRST_BLOCK_LIMIT`). Call
    `start()` before a block and `update(whole=..., advanced=...)` after it; `size` is the next block's length.

    Examples:

    >>> schedule = BlockSchedule(3)
    >>> schedule.start(); schedule.update(whole=True, advanced=3)
    3
    >>> ticks = iter(range(100))
    >>> schedule = BlockSchedule("auto", clock=lambda: next(ticks))   # every block takes one tick
    >>> sizes = []
    >>> for _ in range(6):
    ...     schedule.start(); sizes.append(schedule.size); _ = schedule.update(whole=True, advanced=schedule.size)
    >>> sizes, schedule.fell_back    # 4 one-token probes, then blocks: 1 tick for 8 tokens pays
    ([1, 1, 1, 1, 8, 10], False)
    >>> slow = BlockSchedule("auto", clock=lambda: next(ticks))
    >>> for _ in range(6):
    ...     slow.start(); _ = slow.update(whole=False, advanced=1)   # blocks advance one token per tick: no gain
    >>> slow.size, slow.fell_back
    (1, True)
    """

    def __init__(
        self,
        block_size: int | str,
        *,
        start: int = AUTO_BLOCK_START,
        maximum: int = MAX_BLOCK_SIZE,
        judge_first: bool = True,
        clock=None,
    ):
        self.adaptive = block_size == AUTO_BLOCK_SIZE
        self._start_size = start
        self._maximum = maximum
        self._judge_first = judge_first
        self.size = 1 if self.adaptive else int(block_size)
        self.fell_back = False
        self._clock = clock
        self._steps = 0
        self._began = 0.0
        self._one_token: list[float] = []
        self._blocks: list[tuple[float, float]] = []  # (seconds, tokens advanced) of the blocks longer than 1
        self._trials, self._fires, self._drafted = 0.0, 0, 0

    def start(self) -> None:
        """Mark the start of a block (its time counts until `update`)."""
        if self.adaptive:
            self._began = (self._clock or block_clock)()

    def update(self, *, whole: bool, advanced: float = 1.0, fired: bool | None = None) -> int:
        """Record a block (`whole`: accepted whole; `advanced`: tokens a row advanced; `fired`: whether it ended in a
        re-draw, for the one-row estimate of the firing rate); return the next size."""
        if not self.adaptive or self.fell_back:
            return self.size
        seconds = (self._clock or block_clock)() - self._began
        if fired is not None and self._steps >= AUTO_PROBE_STEPS:
            self._trials += advanced
            self._fires += int(fired)
            self._drafted += self.size
        self._steps += 1
        if self._steps <= AUTO_PROBE_STEPS:
            if self._steps > 1:  # the first step is fed by the prefill: no forward to time
                self._one_token.append(seconds)
            if self._steps == AUTO_PROBE_STEPS:
                self.size = self._start_size
            return self.size
        cost = seconds / max(advanced, 1e-9)
        rising = bool(self._blocks) and cost > self._blocks[-1][0] / max(self._blocks[-1][1], 1e-9)
        if self.size > 1:
            self._blocks.append((seconds, advanced))
        if self._loses():
            self.fell_back, self.size = True, 1
            return self.size
        grow = whole and not rising  # a longer block must also be cheaper per token than the last one
        self.size = min(self.size + 2, self._maximum) if grow else max(self.size - 1, 1)
        return self.size

    def _loses(self) -> bool:
        if not self._one_token or not self._blocks:
            return False
        one = statistics.median(self._one_token)
        if len(self._blocks) < (1 if self._judge_first else AUTO_WINDOW):
            return False
        if self._drafted:  # one row: judge the expected advance from the firing rate seen (with a prior), not luck
            rate = (self._fires + AUTO_PRIOR_FIRES) / (self._trials + AUTO_PRIOR_POSITIONS)
            per_draft = sum(seconds for seconds, _ in self._blocks) / self._drafted
            best = min(n * per_draft * rate / (1 - (1 - rate) ** n) for n in range(2, self._maximum + 1))
            return best > AUTO_FALLBACK_RATIO * one
        # batches: every block so far. The batch ends with its slowest row, so the sum of that row's advances is
        # what the blocks bought; a window of a few blocks swings with single cuts of that row (rows drift apart).
        # The last few blocks alone decide only when they lose by far (a row that started re-drawing often).
        seconds, advanced = (sum(values) for values in zip(*self._blocks, strict=True))
        limit = AUTO_FIRST_BLOCK_LIMIT if len(self._blocks) == 1 else AUTO_FALLBACK_RATIO
        recent, recent_advanced = (sum(values) for values in zip(*self._blocks[-AUTO_WINDOW:], strict=True))
        return seconds / max(advanced, 1e-9) > limit * one or (
            len(self._blocks) >= AUTO_WINDOW and recent / max(recent_advanced, 1e-9) > AUTO_RECENT_LIMIT * one
        )


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


# --- batched decisions over a block: `(batch, n)` tensors, no host round trip --------------------------------------
def selective_fires(
    selection: str, tau: float, tokens: torch.LongTensor, step: StepLogProbs, uniforms: torch.Tensor | None
) -> torch.Tensor:
    """Where a selective rule fires in a block: `(batch, n)` booleans.

    `tokens` are the `(batch, n)` drafts, `step` the `StepLogProbs` of the `n` positions (`(batch, n, vocab)`),
    `uniforms` the `(batch, n)` numbers of `"random"` (the per-token processor's, position by position).

    Examples:

    >>> from hf_dlp.extrapolation.selection import step_log_probs
    >>> gen, other = torch.tensor([[[3.0, 0.0], [0.0, 3.0]]]), torch.zeros(1, 2, 2)
    >>> step = step_log_probs(gen, other, valid=2, generator_role="rl", gamma=0.1, candidate_top_k=None)
    >>> selective_fires("delta_logp", -0.5, torch.tensor([[1, 1]]), step, None).tolist()  # y=1 suppressed at pos 0
    [[True, False]]
    """
    if selection == "random":
        return uniforms < tau
    batch, n = tokens.shape
    flat = [x.reshape(batch * n, x.shape[-1]) for x in (step.log_rl, step.log_base, step.log_gen)]
    if step.log_gen is step.log_rl:  # `other_entropy` tells the generator's side by identity
        flat[2] = flat[0]
    elif step.log_gen is step.log_base:
        flat[2] = flat[1]
    return select_positions(selection, tau, tokens.reshape(-1), *flat).view(batch, n)


def dense_greedy_fires(targets: torch.LongTensor, tokens: torch.LongTensor) -> torch.Tensor:
    """Dense greedy: fires where the draft is not argmax π_extra (`targets`, `(batch, n)`)."""
    return targets != tokens


def dense_sampling_fires(
    p: torch.Tensor, q: torch.Tensor, tokens: torch.LongTensor, uniforms: torch.Tensor
) -> torch.Tensor:
    """Dense sampling: fires where speculative sampling rejects the draft (`p`, `q`: `(batch, n, vocab)` probs)."""
    index = tokens[..., None]
    return ~speculative_accept(p.gather(-1, index)[..., 0], q.gather(-1, index)[..., 0], uniforms)


def dense_residual_draw(p: torch.Tensor, q: torch.Tensor, generator: torch.Generator | None) -> torch.LongTensor:
    """One draw per row from norm(max(0, p − q)) (`(batch, vocab)` probs): the token of a rejected position."""
    return torch.multinomial(residual_probs(p, q), num_samples=1, generator=generator)[:, 0]


def gather_positions(x: torch.Tensor, positions: torch.LongTensor) -> torch.Tensor:
    """`x[b, positions[b]]` for each row: `(batch, n, ...)` -> `(batch, ...)`.

    Examples:

    >>> gather_positions(torch.arange(6).view(2, 3), torch.tensor([2, 0])).tolist()
    [2, 3]
    """
    return x[torch.arange(x.shape[0], device=x.device), positions]


def first_true(mask: torch.Tensor) -> torch.LongTensor:
    """Index of the first `True` along the last dimension, or its length where there is none.

    Examples:

    >>> first_true(torch.tensor([[False, True, True], [False, False, False]])).tolist()
    [1, 3]
    """
    n = mask.shape[-1]
    index = torch.arange(n, device=mask.device).expand_as(mask)
    return torch.where(mask, index, n).min(-1).values


__all__ = [
    "AUTO_BLOCK_START",
    "AUTO_FALLBACK_RATIO",
    "AUTO_PRIOR_FIRES",
    "AUTO_PRIOR_POSITIONS",
    "AUTO_PROBE_STEPS",
    "AUTO_RECENT_LIMIT",
    "AUTO_WINDOW",
    "BlockSchedule",
    "dense_greedy_fires",
    "dense_residual_draw",
    "dense_sampling_fires",
    "first_true",
    "gather_positions",
    "residual_probs",
    "selective_fires",
    "speculative_accept",
]
