"""The selection rules of extrapolation and replacement, as registered objects: what each rule is, not how it is scored.

A rule decides at which positions the token is re-drawn from π_extra. Each `SelectionRuleSpec` declares the rule's
name, its formula, how its threshold τ reads (`threshold`), the label plots and reports print, the τ grid sweeps
use by default and a hint for an error message. `ExtrapolationConfig` validates `selection` and `tau` from these
specs, the sweeps take their default grids and the plots, the demo's report and the `hf-dlp` help their labels and
names from them. The scores themselves (torch) are in `hf_dlp.extrapolation.selection`; a new rule is one function
decorated with `hf_dlp.extrapolation.register_selection_rule`, which registers its spec here.

Standard library only: the `hf-dlp` parser and an exported `custom_generate` script read it without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

THRESHOLD_KINDS: tuple[str, ...] = ("at_most", "at_least", "probability", "none")
"""How τ reads: select where the score is <= τ, >= τ, with probability τ, or everywhere (no τ)."""


@dataclass(frozen=True)
class SelectionRuleSpec:
    """What a selection rule is (`hf_dlp.extrapolation.select_positions` computes it).

    Args:
        name (`str`): the value of `ExtrapolationConfig.selection`.
        formula (`str`): when the rule selects a position, as the docs and `hf-dlp` help print it.
        threshold (`str`): one of `THRESHOLD_KINDS`: `"at_most"` (score <= τ), `"at_least"` (score >= τ),
            `"probability"` (τ in [0, 1] is the chance of selecting) or `"none"` (every position; no τ).
        label (`str`): the rule's name in plots and reports.
        default_taus (`tuple[float, ...]`): the τ grid of a sweep that gives none (empty for `"none"`).
        tau_hint (`str`, *optional*): what a good τ looks like, for error messages.
        nonnegative (`bool`, *optional*, defaults to `False`): the score is never negative (entropies, KLs), so a
            τ below 0 is refused.

    Examples:

    >>> spec = SELECTION_RULE_SPECS["delta_logp"]
    >>> spec.formula, spec.threshold, spec.label
    ('Δlog p(y) ≤ τ (tokens RLVR suppressed)', 'at_most', 'Δlog p')
    >>> selective_rules()[:2]
    ('delta_logp', 'delta_logp_positive')
    """

    name: str
    formula: str
    threshold: str
    label: str
    default_taus: tuple[float, ...] = ()
    tau_hint: str = "a number"
    nonnegative: bool = False

    def __post_init__(self):
        if self.threshold not in THRESHOLD_KINDS:
            raise ValueError(f"`threshold` must be one of {THRESHOLD_KINDS}, got {self.threshold!r}.")
        if (self.threshold == "none") != (not self.default_taus):
            raise ValueError(
                f"Rule {self.name!r}: `default_taus` must be empty exactly when `threshold='none'`, got "
                f"{self.default_taus!r} with threshold {self.threshold!r}."
            )

    @property
    def takes_tau(self) -> bool:
        return self.threshold != "none"


_KL_TAUS = (1.0, 0.5, 0.2, 0.1, 0.05)
_ENTROPY_TAUS = (2.0, 1.0, 0.5, 0.25, 0.1)
BUILTIN_RULES: tuple[SelectionRuleSpec, ...] = (
    SelectionRuleSpec("all", "always (dense extrapolation)", "none", "all positions"),
    SelectionRuleSpec("delta_logp", "Δlog p(y) ≤ τ (tokens RLVR suppressed)", "at_most", "Δlog p",
                      (-2.0, -1.0, -0.5, -0.35, -0.2, -0.1), "a negative log-probability gap such as -0.35"),
    SelectionRuleSpec("delta_logp_positive", "Δlog p(y) ≥ τ (tokens RLVR promoted)", "at_least", "Δlog p (positive)",
                      (2.0, 1.0, 0.5, 0.35, 0.2, 0.1), "a gap such as 0.35"),
    SelectionRuleSpec("entropy", "the generator's entropy ≥ τ", "at_least", "entropy", _ENTROPY_TAUS,
                      nonnegative=True),
    SelectionRuleSpec("other_entropy", "the other model's entropy ≥ τ", "at_least", "other model's entropy",
                      _ENTROPY_TAUS, nonnegative=True),
    SelectionRuleSpec("kl", "KL(π_RL‖π_base) ≥ τ", "at_least", "KL(RL‖base)", _KL_TAUS, nonnegative=True),
    SelectionRuleSpec("kl_reverse", "KL(π_base‖π_RL) ≥ τ", "at_least", "KL(base‖RL)", _KL_TAUS, nonnegative=True),
    SelectionRuleSpec("kl_mean", "the mean of the two KLs ≥ τ", "at_least", "mean KL", _KL_TAUS, nonnegative=True),
    SelectionRuleSpec("random", "with probability τ", "probability", "random", (0.01, 0.05, 0.1, 0.2),
                      "a probability in [0, 1]"),
)  # fmt: skip
BUILTIN_RULE_NAMES: tuple[str, ...] = tuple(spec.name for spec in BUILTIN_RULES)

SELECTION_RULE_SPECS: dict[str, SelectionRuleSpec] = {spec.name: spec for spec in BUILTIN_RULES}
"""Every known rule by name: the built-in ones, then those registered with `register_selection_rule`."""


def selection_rules() -> tuple[str, ...]:
    """The names of every known rule (built-in and registered), `"all"` first."""
    return tuple(SELECTION_RULE_SPECS)


def selective_rules() -> tuple[str, ...]:
    """The rules that take a threshold τ (all but `"all"`): the rules a replacement sweep compares."""
    return tuple(name for name, spec in SELECTION_RULE_SPECS.items() if spec.takes_tau)


def rule_label(name: str) -> str:
    """The label plots and reports print for rule `name` (the name itself for an unknown one)."""
    spec = SELECTION_RULE_SPECS.get(name)
    return spec.label if spec is not None else name


def add_selection_rule(spec: SelectionRuleSpec, *, overwrite: bool = False) -> SelectionRuleSpec:
    """Register `spec` (called by `hf_dlp.extrapolation.register_selection_rule` with the rule's score function).

    Examples:

    >>> add_selection_rule(SelectionRuleSpec("delta_logp", "x", "at_most", "x", (-1.0,)))
    Traceback (most recent call last):
    ...
    ValueError: A selection rule named 'delta_logp' is already registered. Choose another name (a built-in rule cannot be replaced).
    """
    if not isinstance(spec, SelectionRuleSpec):
        raise TypeError(f"`spec` must be a SelectionRuleSpec, got {type(spec).__name__}.")
    if spec.name in BUILTIN_RULE_NAMES or (spec.name in SELECTION_RULE_SPECS and not overwrite):
        hint = (
            " (a built-in rule cannot be replaced)"
            if spec.name in BUILTIN_RULE_NAMES
            else ", or pass `overwrite=True`"
        )
        raise ValueError(f"A selection rule named {spec.name!r} is already registered. Choose another name{hint}.")
    SELECTION_RULE_SPECS[spec.name] = spec
    return spec


def remove_selection_rule(name: str) -> SelectionRuleSpec:
    """Unregister the registered rule `name` and return its spec (a built-in rule cannot be removed)."""
    if name in BUILTIN_RULE_NAMES:
        raise ValueError(f"{name!r} is a built-in selection rule and cannot be removed.")
    if name not in SELECTION_RULE_SPECS:
        raise KeyError(f"No registered selection rule named {name!r}; registered: {selection_rules()}.")
    return SELECTION_RULE_SPECS.pop(name)


__all__ = [
    "BUILTIN_RULE_NAMES",
    "SELECTION_RULE_SPECS",
    "THRESHOLD_KINDS",
    "SelectionRuleSpec",
    "add_selection_rule",
    "remove_selection_rule",
    "rule_label",
    "selection_rules",
    "selective_rules",
]
