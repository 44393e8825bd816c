"""The arithmetic of one decoding step: π_extra, and the selection rules that decide where it replaces the candidate.

    log π_extra = log_softmax((1 + γ) log π_RL − γ log π_base)        (γ = 0: the RL model's own distribution)

Everything here is finite by construction: log-probabilities are floored at `LOG_FLOOR` (a token below it has
probability 0 in float32 anyway), so no `inf − inf` or `0 · inf` can appear, whichever side carries masks, and γ is
bounded by `MAX_GAMMA` in `ExtrapolationConfig`, so (1 + γ) · log p stays far inside float32's range.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

# Floor of log-probabilities: exp(-1e4) is 0 in any float type, and |(1 + γ) · floor| <= 1e8 for γ <= 1e4.
LOG_FLOOR = -1e4


def extrapolate_log_probs(
    log_rl: torch.Tensor, log_base: torch.Tensor, gamma: float, *, allowed: torch.Tensor | None = None
) -> torch.Tensor:
    """log π_extra = log_softmax((1 + γ) log π_RL − γ log π_base) over the last dimension, `-inf` outside `allowed`.

    Args:
        log_rl, log_base (`torch.Tensor`): `(..., vocab)` log-probabilities of the RL and base models; `-inf` entries
            are fine on either side (they are floored at `LOG_FLOOR` before the combination).
        gamma (`float`): extrapolation strength γ >= 0.
        allowed (`torch.Tensor`, *optional*): `(..., vocab)` booleans, the tokens π_extra may put mass on (the
            generator's support, after the masks of other processors); defaults to where π_RL > 0.

    Returns:
        `torch.Tensor`: `(..., vocab)` normalised log-probabilities (float32 or wider), never NaN.

    Examples:

    >>> import torch
    >>> log_base, log_rl = torch.tensor([0.5, 0.5]).log(), torch.tensor([0.8, 0.2]).log()
    >>> extrapolate_log_probs(log_rl, log_base, gamma=1.0).exp()   # ∝ 0.8²/0.5, 0.2²/0.5
    tensor([0.9412, 0.0588])
    >>> masked_base = torch.tensor([float("-inf"), 0.0])            # the base generates and a processor masked id 0
    >>> extrapolate_log_probs(log_rl, masked_base, gamma=0.0, allowed=masked_base > LOG_FLOOR).exp()
    tensor([0., 1.])
    """
    dtype = torch.promote_types(log_rl.dtype, torch.float32)
    if allowed is None:
        allowed = log_rl > LOG_FLOOR
    rl = log_rl.to(dtype).clamp(min=LOG_FLOOR)
    base = log_base.to(dtype).clamp(min=LOG_FLOOR)
    extra = (rl + gamma * (rl - base)).masked_fill(~allowed, float("-inf"))
    return torch.log_softmax(extra, dim=-1)


def entropy(log_probs: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of `(..., vocab)` log-probabilities, zero-probability entries contributing 0.

    Examples:

    >>> round(float(entropy(torch.tensor([0.5, 0.5, 0.0]).log())), 4)
    0.6931
    """
    probs = log_probs.exp()
    return -torch.where(probs > 0, probs * log_probs.clamp(min=LOG_FLOOR), 0.0).sum(-1)


def kl_divergence(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p‖q) (nats) of `(..., vocab)` log-probabilities; finite even where q is 0 (q is floored at `LOG_FLOOR`).

    Examples:

    >>> p, q = torch.tensor([0.5, 0.5]).log(), torch.tensor([0.9, 0.1]).log()
    >>> round(float(kl_divergence(p, q)), 4)
    0.5108
    """
    probs = log_p.exp()
    diff = log_p.clamp(min=LOG_FLOOR) - log_q.clamp(min=LOG_FLOOR)
    return torch.where(probs > 0, probs * diff, 0.0).sum(-1)


def select_positions(
    selection: str,
    tau: float | None,
    candidate: torch.LongTensor,
    log_rl: torch.Tensor,
    log_base: torch.Tensor,
    log_generator: torch.Tensor,
    random: torch.Generator | None = None,
) -> torch.Tensor:
    """Which rows re-draw their token: a `(batch,)` boolean tensor (see `ExtrapolationConfig.selection`).

    Args:
        selection (`str`), tau (`float`, *optional*): the rule and its threshold.
        candidate (`torch.LongTensor`): `(batch,)` the token `generate` would emit.
        log_rl, log_base, log_generator (`torch.Tensor`): `(batch, vocab)` log-probabilities of the RL model, the base
            model and the generator (one of the two).
        random (`torch.Generator`, *optional*): the random numbers of `"random"`.

    Examples:

    >>> log_rl, log_base = torch.tensor([[0.9, 0.1], [0.5, 0.5]]).log(), torch.tensor([[0.5, 0.5], [0.5, 0.5]]).log()
    >>> select_positions("delta_logp", -0.3, torch.tensor([1, 0]), log_rl, log_base, log_rl).tolist()
    [True, False]
    >>> select_positions("delta_logp_positive", 0.3, torch.tensor([0, 0]), log_rl, log_base, log_rl).tolist()
    [True, False]
    >>> select_positions("other_entropy", 0.6, torch.tensor([0, 0]), log_rl, log_base, log_rl).tolist()  # base: ln 2
    [True, True]
    """
    batch = candidate.shape[0]
    if selection == "all":
        return torch.ones(batch, dtype=torch.bool, device=candidate.device)
    if selection == "random":
        return torch.rand(batch, generator=random, device=candidate.device) < tau
    if selection in ("delta_logp", "delta_logp_positive"):
        index = candidate[:, None]
        delta = log_rl.clamp(min=LOG_FLOOR).gather(-1, index) - log_base.clamp(min=LOG_FLOOR).gather(-1, index)
        return delta[:, 0] <= tau if selection == "delta_logp" else delta[:, 0] >= tau
    if selection == "entropy":
        score = entropy(log_generator)
    elif selection == "other_entropy":
        score = entropy(log_base if log_generator is log_rl else log_rl)
    elif selection == "kl":
        score = kl_divergence(log_rl, log_base)
    elif selection == "kl_reverse":
        score = kl_divergence(log_base, log_rl)
    elif selection == "kl_mean":
        score = 0.5 * (kl_divergence(log_rl, log_base) + kl_divergence(log_base, log_rl))
    else:
        raise ValueError(f"Unknown `selection` {selection!r}; `ExtrapolationConfig` validates it.")
    return score >= tau


# The authors' `get_enable_mask` criteria (extrapolate.py; "main" = the generator, "assistant" = the other model) as
# (selection, sign of tau) for each generator role: tau_ours = sign * threshold.
AUTHORS_CRITERIA: dict[str, dict[str, tuple[str, float]]] = {
    "entropy": {"rl": ("entropy", 1.0), "base": ("entropy", 1.0)},
    "assist_entropy": {"rl": ("other_entropy", 1.0), "base": ("other_entropy", 1.0)},
    # logp: log p_main − log p_assistant <= t; neg_logp: its negative <= t.
    "logp": {"rl": ("delta_logp", 1.0), "base": ("delta_logp_positive", -1.0)},
    "neg_logp": {"rl": ("delta_logp_positive", -1.0), "base": ("delta_logp", 1.0)},
    # kl: KL(assistant‖main) >= t; kl_r: KL(main‖assistant) >= t; js: their mean.
    "kl": {"rl": ("kl_reverse", 1.0), "base": ("kl", 1.0)},
    "kl_r": {"rl": ("kl", 1.0), "base": ("kl_reverse", 1.0)},
    "js": {"rl": ("kl_mean", 1.0), "base": ("kl_mean", 1.0)},
    "rand": {"rl": ("random", 1.0), "base": ("random", 1.0)},
    "all": {"rl": ("all", 0.0), "base": ("all", 0.0)},
    "none": {"rl": ("random", 0.0), "base": ("random", 0.0)},  # never selects: the generator's own `generate`
}


def from_authors_criteria(criteria: str, threshold: float, generator: str) -> dict[str, object]:
    """The `selection` and `tau` that reproduce one of the authors' `--criteria` / `--threshold` settings.

    Their code calls the generating model "main" and the other one "assistant", and its log-probability and KL
    criteria are relative to the generator, so the same name means different rules for the two generator roles.

    Args:
        criteria (`str`): one of the authors' names (`AUTHORS_CRITERIA`).
        threshold (`float`): their `--threshold`.
        generator (`str`): `"base"` (their `scripts/run_extrapolate.sh` runs) or `"rl"`.

    Examples:

    >>> from_authors_criteria("neg_logp", -0.3, generator="base")   # DAPO-32B in run_extrapolate.sh
    {'selection': 'delta_logp', 'tau': -0.3}
    >>> from_authors_criteria("logp", -0.3, generator="base")
    {'selection': 'delta_logp_positive', 'tau': 0.3}
    """
    if criteria not in AUTHORS_CRITERIA:
        raise ValueError(f"`criteria` must be one of the authors' names {tuple(AUTHORS_CRITERIA)}, got {criteria!r}.")
    if generator not in ("rl", "base"):
        raise ValueError(f"`generator` must be 'rl' or 'base', got {generator!r}.")
    selection, sign = AUTHORS_CRITERIA[criteria][generator]
    if selection == "all":
        return {"selection": "all", "tau": None}
    tau = 0.0 if criteria == "none" else sign * float(threshold)
    return {"selection": selection, "tau": tau + 0.0}


class StepLogProbs(NamedTuple):
    """The distributions of one decoding position (each `(..., valid)` log-probabilities over the real ids).

    `log_gen` is the generator's (after the other processors), `log_rl`/`log_base` the two models' (one of them is
    `log_gen`), `extra` is π_extra, and `restricted` is π_extra kept on the generator's `candidate_top_k` tokens
    (`-inf` elsewhere, not renormalised).
    """

    log_gen: torch.Tensor
    log_rl: torch.Tensor
    log_base: torch.Tensor
    extra: torch.Tensor
    restricted: torch.Tensor


def step_log_probs(
    gen_scores: torch.Tensor,
    other_logits: torch.Tensor,
    *,
    valid: int,
    generator_role: str,
    gamma: float,
    candidate_top_k: int | None,
) -> StepLogProbs:
    """The distributions at one position (or at `(batch, k)` positions at once) from the two models' scores.

    Shared by the per-token processor and the block verifier, so both compute π_extra the same way.

    Examples:

    >>> gen, other = torch.tensor([[2.0, 1.0, 0.0]]), torch.tensor([[0.0, 0.0, 0.0]])
    >>> step = step_log_probs(gen, other, valid=3, generator_role="rl", gamma=1.0, candidate_top_k=2)
    >>> step.restricted.isinf().tolist()
    [[False, False, True]]
    """
    log_gen = torch.log_softmax(gen_scores[..., :valid], dim=-1)
    log_other = torch.log_softmax(other_logits[..., :valid], dim=-1)
    log_rl, log_base = (log_gen, log_other) if generator_role == "rl" else (log_other, log_gen)
    # π_extra lives on the generator's support: what other processors masked stays masked, on either side.
    extra = extrapolate_log_probs(log_rl, log_base, gamma, allowed=log_gen > LOG_FLOOR)
    if candidate_top_k is None or candidate_top_k >= extra.shape[-1]:
        restricted = extra
    else:
        keep = log_gen.topk(candidate_top_k, dim=-1).indices
        restricted = torch.full_like(extra, float("-inf")).scatter(-1, keep, extra.gather(-1, keep))
    return StepLogProbs(log_gen, log_rl, log_base, extra, restricted)


def redraw_log_probs(step: StepLogProbs, candidate: torch.LongTensor) -> torch.Tensor:
    """What a selected position is re-drawn from: π_extra on the candidate set plus the candidate, renormalised."""
    index = candidate[..., None]
    return torch.log_softmax(step.restricted.scatter(-1, index, step.extra.gather(-1, index)), dim=-1)


def dense_log_probs(step: StepLogProbs) -> torch.Tensor:
    """What dense extrapolation (`selection="all"`) samples from: π_extra on the candidate set, renormalised."""
    return torch.log_softmax(step.restricted, dim=-1)


__all__ = [
    "AUTHORS_CRITERIA",
    "LOG_FLOOR",
    "StepLogProbs",
    "dense_log_probs",
    "entropy",
    "extrapolate_log_probs",
    "from_authors_criteria",
    "kl_divergence",
    "redraw_log_probs",
    "select_positions",
    "step_log_probs",
]
