"""One decoding step: the distributions of a position, and the selection rules that decide where π_extra replaces
the candidate.

    log π_extra = log_softmax((1 + γ) log π_RL − γ log π_base)        (γ = 0: the RL model's own distribution)

The pair arithmetic (Δlog p, entropy, KL, π_extra, the floor `LOG_FLOOR`) is `hf_dlp.divergence`'s, so nothing here
can produce `inf − inf` or `0 · inf`, whichever side carries masks; γ is bounded by `MAX_GAMMA` in
`ExtrapolationConfig`, so (1 + γ) · log p stays far inside float32's range.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

# hf_dlp-export: strip-begin
from ..divergence import LOG_FLOOR, delta_logp, entropy, extrapolate_log_probs, kl_divergence
from ..selection_rules import SELECTION_RULE_SPECS, SelectionRuleSpec, add_selection_rule, remove_selection_rule

# hf_dlp-export: strip-end


ScoreFunction = Callable[[torch.LongTensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _delta_logp(candidate, log_rl, log_base, log_generator):
    return delta_logp(log_rl, log_base, candidate)


def _other_entropy(candidate, log_rl, log_base, log_generator):
    return entropy(log_base if log_generator is log_rl else log_rl)


# Each rule's score `(candidate, log_rl, log_base, log_generator) -> (batch,)`, compared with τ as its
# `SelectionRuleSpec.threshold` says ("all" and "random" need none). `register_selection_rule` adds to it.
RULE_SCORES: dict[str, ScoreFunction] = {
    "delta_logp": _delta_logp,
    "delta_logp_positive": _delta_logp,
    "entropy": lambda candidate, log_rl, log_base, log_generator: entropy(log_generator),
    "other_entropy": _other_entropy,
    "kl": lambda candidate, log_rl, log_base, log_generator: kl_divergence(log_rl, log_base),
    "kl_reverse": lambda candidate, log_rl, log_base, log_generator: kl_divergence(log_base, log_rl),
    "kl_mean": lambda candidate, log_rl, log_base, log_generator: (
        0.5 * (kl_divergence(log_rl, log_base) + kl_divergence(log_base, log_rl))
    ),
}


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
    spec = SELECTION_RULE_SPECS.get(selection)
    if spec is None or (spec.threshold not in ("none", "probability") and selection not in RULE_SCORES):
        raise ValueError(f"Unknown `selection` {selection!r}; `ExtrapolationConfig` validates it.")
    if spec.threshold == "none":
        return torch.ones(batch, dtype=torch.bool, device=candidate.device)
    if spec.threshold == "probability":
        return torch.rand(batch, generator=random, device=candidate.device) < tau
    score = RULE_SCORES[selection](candidate, log_rl, log_base, log_generator)
    return score <= tau if spec.threshold == "at_most" else score >= tau


def register_selection_rule(
    name: str,
    *,
    formula: str,
    threshold: str,
    default_taus: tuple[float, ...],
    label: str | None = None,
    tau_hint: str = "a number",
    nonnegative: bool = False,
    overwrite: bool = False,
) -> Callable[[ScoreFunction], ScoreFunction]:
    """Register a selection rule: the decorated function scores each position, and the rule selects where the score
    is `<= τ` (`threshold="at_most"`) or `>= τ` (`"at_least"`). Every entry point then accepts `selection=name`:
    `ExtrapolationConfig` validates its τ, the sweeps use `default_taus` when given no grid, and plots and reports
    print `label` (`hf_dlp.selection_rules.SelectionRuleSpec`).

    The function takes `(candidate, log_rl, log_base, log_generator)`: the `(batch,)` token `generate` would emit and
    the `(batch, vocab)` log-probabilities of the RL model, the base model and the generator (one of the two, the
    same tensor), and returns `(batch,)` scores. It runs on the per-token and the block-verified paths alike.

    Examples:

    >>> @register_selection_rule("rl_logp_below", formula="log π_RL(y) ≤ τ", threshold="at_most",
    ...                          default_taus=(-3.0, -2.0), label="log π_RL", overwrite=True)
    ... def rl_logp_below(candidate, log_rl, log_base, log_generator):
    ...     return log_rl.gather(-1, candidate[:, None])[:, 0]
    >>> from hf_dlp.extrapolation import ExtrapolationConfig
    >>> ExtrapolationConfig(selection="rl_logp_below", tau=-2.0).selection
    'rl_logp_below'
    >>> log_rl = torch.tensor([[0.99, 0.01]]).log()
    >>> select_positions("rl_logp_below", -2.0, torch.tensor([1]), log_rl, log_rl, log_rl).tolist()  # log 0.01 ≈ -4.6
    [True]
    >>> unregister_selection_rule("rl_logp_below").name
    'rl_logp_below'
    """
    if threshold not in ("at_most", "at_least"):
        raise ValueError(
            f"`threshold` of a scored rule must be 'at_most' or 'at_least', got {threshold!r} ('probability' and "
            "'none' are the built-in 'random' and 'all')."
        )
    spec = SelectionRuleSpec(name, formula, threshold, label or name, tuple(default_taus), tau_hint, nonnegative)

    def decorator(function: ScoreFunction) -> ScoreFunction:
        if not callable(function):
            raise TypeError(f"`register_selection_rule({name!r})` decorates a function, got {function!r}.")
        add_selection_rule(spec, overwrite=overwrite)
        RULE_SCORES[name] = function
        return function

    return decorator


def unregister_selection_rule(name: str) -> SelectionRuleSpec:
    """Remove a rule added with `register_selection_rule` (its spec and its score); return the spec."""
    spec = remove_selection_rule(name)
    RULE_SCORES.pop(name, None)
    return spec


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
    "register_selection_rule",
    "select_positions",
    "step_log_probs",
    "unregister_selection_rule",
]
