"""The registry of advantage weightings: `register_token_weighting` and the built-in forms, registered the same way.

A weighting is a function of `(old_log_probs, advantages, masks, config)` that returns the detached, non-negative
weights w of Ã = w · Â:

- `old_log_probs` (`(B, T)`): log π_old of the sampled tokens (0 at padding);
- `advantages` (`(B,)`, or `(B, T)` if a subclass supplies per-token advantages): Â;
- `masks` (`(B, T)`, 0/1): the completion tokens that enter the loss;
- `config`: the trainer's `ReweightedGRPOConfig` (`config.reweight_alpha` is the strength; in evaluation
  `config.num_generations` reads `num_generations_eval`).

It returns `(B, T)` token weights, or `(B,)` for one weight per response. A `"token"`-level weighting runs inside the
loss on each micro-batch; a `"response"`-level one runs once per generation batch on whole prompt groups in order
(rows `[k G, (k + 1) G)` share a prompt), before TRL shuffles the batch: that is where the `"ppl"` family lives.

    from hf_dlp import register_token_weighting

    @register_token_weighting("sqrt_low_prob")
    def sqrt_low_prob(old_log_probs, advantages, masks, config):
        return 1 + config.reweight_alpha * (1 - old_log_probs.exp()).sqrt()

after which `ReweightedGRPOConfig(reweighting="sqrt_low_prob")` works. From a YAML recipe, name the module that
registers it in `import_modules` (`import_modules: [my_weights]`), or give the function's import path as the
`reweighting` itself (`reweighting: my_weights.sqrt_low_prob`), as TRL's scripts take reward functions; the current
folder is on the import path for both.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import torch

from .reweighting import (
    AUTHORS_METHOD_NAMES,
    PPL_NORM_CLAMP,
    dominate_weights,
    low_prob_weights,
    middle_weights,
    normalize_weights,
    ppl_weights,
)

WeightFunction = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, Any], torch.Tensor]
"""`(old_log_probs (B, T), advantages (B,) or (B, T), masks (B, T), config) -> weights (B, T) or (B,)`."""

WeightingLevel = Literal["token", "response"]
"""Where a weighting runs: `"token"` in the loss on each micro-batch, `"response"` on whole prompt groups."""

WEIGHTING_LEVELS: tuple[str, ...] = get_args(WeightingLevel)

OFF = "none"
"""The `reweighting` value that turns reweighting off (not a registered weighting)."""

OFF_LABEL = "DAPO (none)"
"""How plots and reports label `reweighting="none"`: the DAPO recipe with unweighted advantages."""


@dataclass(frozen=True)
class TokenWeighting:
    """One registered weighting: its name, function, level, the formula shown in model cards and the label plots and
    reports print (the name when none is given).

    Examples:

    >>> import torch
    >>> from types import SimpleNamespace
    >>> weighting = get_token_weighting("low_prob")
    >>> weighting.level, weighting.formula, weighting.label, weighting.builtin
    ('token', 'Ã_t = [1 + α (1 − π_old(y_t))] · Â', 'low_prob (ours)', True)
    >>> config = SimpleNamespace(reweight_alpha=0.2)  # stands in for a ReweightedGRPOConfig
    >>> weighting(torch.zeros(1, 2), torch.ones(1), torch.ones(1, 2), config)  # p = 1: weight 1
    tensor([[1., 1.]])
    """

    name: str
    function: WeightFunction
    level: WeightingLevel = "token"
    formula: str | None = None
    builtin: bool = False
    label: str | None = None

    def __post_init__(self):
        if self.label is None:
            object.__setattr__(self, "label", self.name)

    @property
    def description(self) -> str:
        """The first paragraph of the function's docstring (empty without one)."""
        doc = (self.function.__doc__ or "").strip()
        return " ".join(doc.split("\n\n")[0].split())

    def __call__(self, old_log_probs, advantages, masks, config) -> torch.Tensor:
        return self.function(old_log_probs, advantages, masks, config)


_REGISTRY: dict[str, TokenWeighting] = {}
_ALIASES: dict[str, str] = {}


def _check_name(name: Any, argument: str = "name") -> str:
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise ValueError(f"`{argument}` must be a non-empty string without surrounding spaces, got {name!r}.")
    if name == OFF:
        raise ValueError(f"`{argument}` {name!r} is reserved: reweighting='none' turns the reweighting off.")
    return name


def register_token_weighting(
    name: str,
    *,
    level: WeightingLevel = "token",
    formula: str | None = None,
    label: str | None = None,
    aliases: Sequence[str] = (),
    overwrite: bool = False,
    _builtin: bool = False,
) -> Callable[[WeightFunction], WeightFunction]:
    """Decorator that registers a weighting under `name`, after which `ReweightedGRPOConfig(reweighting=name)` works.

    Args:
        name (`str`): the name `reweighting` takes.
        level (`str`, *optional*, defaults to `"token"`): `"token"` (computed in the loss from each micro-batch's
            π_old) or `"response"` (computed once per generation batch on whole prompt groups in order, before TRL
            shuffles it; return one weight per response, `(B,)`).
        formula (`str`, *optional*): the formula for the model card (e.g. `"Ã_t = w(π_old(y_t)) · Â"`).
        label (`str`, *optional*): the weighting's name in plots and reports (defaults to `name`).
        aliases (`list[str]`, *optional*): other names that resolve to this one.
        overwrite (`bool`, *optional*, defaults to `False`): replace an existing registration of `name` (re-running a
            notebook cell); otherwise a second registration is refused.

    Returns:
        The decorator; it returns the function unchanged.

    Examples:

    >>> import torch
    >>> @register_token_weighting("doc_square_low_prob", overwrite=True)
    ... def square_low_prob(old_log_probs, advantages, masks, config):
    ...     '''w_t = 1 + α (1 − p)².'''
    ...     return 1 + config.reweight_alpha * (1 - old_log_probs.exp()) ** 2
    >>> "doc_square_low_prob" in token_weighting_names()
    True
    >>> register_token_weighting("low_prob")(square_low_prob)
    Traceback (most recent call last):
    ...
    ValueError: A weighting named 'low_prob' is already registered (...). Choose another name, or pass `overwrite=True` to replace it.
    """
    _check_name(name)
    if level not in WEIGHTING_LEVELS:
        raise ValueError(f"`level` must be one of {WEIGHTING_LEVELS}, got {level!r}.")
    aliases = tuple(_check_name(alias, "aliases") for alias in aliases)

    def decorate(function: WeightFunction) -> WeightFunction:
        if not callable(function):
            raise TypeError(f"`register_token_weighting({name!r})` decorates a function, got {function!r}.")
        for key in (name, *aliases):
            taken = _REGISTRY.get(key) or _REGISTRY.get(_ALIASES.get(key, ""))
            if taken is not None and not overwrite:
                raise ValueError(
                    f"A weighting named {key!r} is already registered ({_where(taken.function)}). Choose another "
                    "name, or pass `overwrite=True` to replace it."
                )
        _REGISTRY[name] = TokenWeighting(name, function, level, formula, builtin=_builtin, label=label)
        _ALIASES.update(dict.fromkeys(aliases, name))
        return function

    return decorate


def _where(function: Callable) -> str:
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', repr(function))}"


def token_weighting_names() -> tuple[str, ...]:
    """Every registered name (built-ins first, in registration order), without aliases.

    Examples:

    >>> token_weighting_names()[:4]
    ('low_prob', 'dominate', 'middle', 'normalize')
    """
    return tuple(_REGISTRY)


def reweighting_methods(level: WeightingLevel | None = None) -> tuple[str, ...]:
    """Every value `ReweightedGRPOConfig.reweighting` takes by name: `"none"` and each registered weighting, or only
    the weightings of one `level`.

    Examples:

    >>> reweighting_methods()[:3], reweighting_methods("response")
    (('none', 'low_prob', 'dominate'), ('ppl', 'ppl_raw', 'ppl_norm', 'ppl_norm_clamp'))
    """
    if level is not None and level not in WEIGHTING_LEVELS:
        raise ValueError(f"`level` must be one of {WEIGHTING_LEVELS} or None, got {level!r}.")
    if level is None:
        return (OFF, *_REGISTRY)
    return tuple(name for name, weighting in _REGISTRY.items() if weighting.level == level)


def weighting_label(name: str) -> str:
    """The label plots and reports print for `reweighting=name` (`"none"` is the DAPO baseline).

    Examples:

    >>> weighting_label("none"), weighting_label("reshape_reversed")
    ('DAPO (none)', 'low_prob (ours)')
    """
    return OFF_LABEL if name == OFF else get_token_weighting(name).label


def canonical_weighting_name(name: str) -> str:
    """`name` with an alias (e.g. the authors' `reshape_reversed`) resolved; a dotted import path is imported first.

    Examples:

    >>> canonical_weighting_name("reshape_reversed"), canonical_weighting_name("ppl-norm")
    ('low_prob', 'ppl_norm')
    >>> canonical_weighting_name("focal")
    Traceback (most recent call last):
    ...
    ValueError: `reweighting` must be 'none', one of the registered weightings ('low_prob', ...) or an import path such as 'my_module.my_weights', got 'focal'. Register a new one with `@hf_dlp.register_token_weighting('focal')` in a module listed in `import_modules`.
    """
    if name == OFF or name in _REGISTRY:
        return name
    if name in _ALIASES:
        return _ALIASES[name]
    if isinstance(name, str) and "." in name.strip(".") and " " not in name:
        return _register_import_path(name)
    known = ", ".join(repr(key) for key in _REGISTRY)
    raise ValueError(
        f"`reweighting` must be 'none', one of the registered weightings ({known}) or an import path such as "
        f"'my_module.my_weights', got {name!r}. Register a new one with "
        f"`@hf_dlp.register_token_weighting({name!r})` in a module listed in `import_modules`."
    )


def _register_import_path(path: str) -> str:
    module_name, _, attribute = path.rpartition(".")
    module = _import_user_module(module_name, argument="reweighting")
    if path in _REGISTRY:  # the module registered the path itself
        return path
    function = getattr(module, attribute, None)
    if not callable(function):
        raise ValueError(f"`reweighting`: module {module_name!r} has no function {attribute!r}.")
    registered = next((key for key, entry in _REGISTRY.items() if entry.function is function), None)
    if registered is not None:
        return registered
    register_token_weighting(path)(function)  # a plain function: a token-level weighting named by its path
    return path


def get_token_weighting(name: str) -> TokenWeighting:
    """The registered weighting called `name` (an alias or import path works too).

    Examples:

    >>> get_token_weighting("reshape").name, get_token_weighting("ppl_norm").level
    ('dominate', 'response')
    """
    canonical = canonical_weighting_name(name)
    if canonical == OFF:
        raise ValueError("reweighting='none' has no weights: it turns the reweighting off.")
    return _REGISTRY[canonical]


def _import_user_module(spec: str, argument: str = "import_modules") -> Any:
    """Import a module by name, or a `.py` file by path; the current folder is put on the import path (as TRL does)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"`{argument}` entries must be module names or .py paths, got {spec!r}.")
    if spec.endswith(".py"):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"`{argument}`: the file {spec!r} does not exist.")
        if path.stem in sys.modules and getattr(sys.modules[path.stem], "__file__", None) == str(path.resolve()):
            return sys.modules[path.stem]
        module_spec = importlib.util.spec_from_file_location(path.stem, path.resolve())
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[path.stem] = module  # so that pickled references to its functions resolve
        module_spec.loader.exec_module(module)
        return module
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as error:
        raise ValueError(
            f"`{argument}`: cannot import {spec!r} ({error}). Give a module importable from the current folder "
            f"({os.getcwd()}) or the Python path, or the path of a .py file."
        ) from error


def import_weighting_modules(modules: Sequence[str]) -> None:
    """Import the user modules that register weightings (a recipe's `import_modules`), in order.

    Examples:

    >>> import_weighting_modules(["math"])  # any importable module or .py file
    """
    for spec in modules:
        _import_user_module(spec)


# ----------------------------------------------------------------------------------------------------------------
# The built-in forms, registered like any other (with the authors' method names as aliases)
# ----------------------------------------------------------------------------------------------------------------


def _builtin(
    name: str, formula: str, level: WeightingLevel = "token", label: str | None = None
) -> Callable[[WeightFunction], WeightFunction]:
    authors = AUTHORS_METHOD_NAMES.get(name)
    aliases = (authors,) if authors not in (None, name, "ppl") else ()  # their `ppl` is our "ppl_raw"
    return register_token_weighting(name, level=level, formula=formula, label=label, aliases=aliases, _builtin=True)


@_builtin("low_prob", "Ã_t = [1 + α (1 − π_old(y_t))] · Â", label="low_prob (ours)")
def _low_prob(old_log_probs, advantages, masks, config):
    """Each token's advantage is multiplied by a detached weight that grows as the probability of the sampled token
    under the rollout policy falls, so that low-probability tokens, where RLVR's directional updates concentrate, get
    a larger share of the update (the paper's Eq. 8; the authors' `reshape_reversed`)."""
    return low_prob_weights(old_log_probs, config.reweight_alpha)


@_builtin("dominate", "Ã_t = [α π_old(y_t) + 1 − α] · Â")
def _dominate(old_log_probs, advantages, masks, config):
    """Advantage Reweighting of Yang et al. (2025, arXiv 2505.12929): the weight shrinks with the probability of the
    sampled token, down-weighting low-probability tokens (the paper's 'Dominate' baseline; the authors' `reshape`)."""
    return dominate_weights(old_log_probs, config.reweight_alpha)


@_builtin("middle", "Ã_t = [α + (1 − π_old(y_t)) π_old(y_t)] · Â")
def _middle(old_log_probs, advantages, masks, config):
    """The authors' `middle` form: tokens of middling probability under the rollout policy get the largest weight."""
    return middle_weights(old_log_probs, config.reweight_alpha)


@_builtin("normalize", "Ã_t = Â / (1 + α − π_old(y_t))")
def _normalize(old_log_probs, advantages, masks, config):
    """The authors' `normalize` form: the weight 1 / (1 + α − p) grows steeply for high-probability tokens."""
    return normalize_weights(old_log_probs, config.reweight_alpha)


def _ppl_family(old_log_probs, masks, config, standardize, clamp=(None, None)):
    low = config.ppl_weight_min if config.ppl_weight_min is not None else clamp[0]
    high = config.ppl_weight_max if config.ppl_weight_max is not None else clamp[1]
    return ppl_weights(
        old_log_probs, masks, config.num_generations, config.reweight_alpha, low, high, standardize=standardize
    )


@_builtin("ppl", "Ã_i = [1 − α z_i] · Â_i, z_i the group-standardised log-perplexity", level="response")
def _ppl(old_log_probs, advantages, masks, config):
    """Perplexity-based reweighting of Deng et al. (2025, arXiv 2508.02260): one weight per response, larger for
    responses whose log-perplexity is low within their prompt group (the paper's 'PPL' baseline; the authors'
    `ppl-norm` with TRL's standard deviation, unbiased + 1e-4)."""
    return _ppl_family(old_log_probs, masks, config, "unbiased")


@_builtin("ppl_raw", "Ã_i = max(0, 1 − α ℓ_i) · Â_i, ℓ_i the log-perplexity of response i", level="response")
def _ppl_raw(old_log_probs, advantages, masks, config):
    """The authors' `ppl` form: one weight per response, 1 − α times its log-perplexity (not standardised),
    clamped at 0 from below."""
    return _ppl_family(old_log_probs, masks, config, "none", clamp=(0.0, None))


@_builtin("ppl_norm", "Ã_i = [1 − α z_i] · Â_i, z_i = (ℓ_i − mean) / (std + 1e-6) in the group", level="response")
def _ppl_norm(old_log_probs, advantages, masks, config):
    """The authors' `ppl-norm` form: one weight per response, 1 − α times its log-perplexity standardised within its
    prompt group (population standard deviation + 1e-6)."""
    return _ppl_family(old_log_probs, masks, config, "population")


@_builtin("ppl_norm_clamp", "Ã_i = clamp(1 − α z_i, 0.8, 1.2) · Â_i (z_i as `ppl_norm`)", level="response")
def _ppl_norm_clamp(old_log_probs, advantages, masks, config):
    """The authors' `ppl-norm-clamp` form: `ppl_norm` clamped to [0.8, 1.2]."""
    return _ppl_family(old_log_probs, masks, config, "population", clamp=PPL_NORM_CLAMP)


__all__ = [
    "OFF",
    "OFF_LABEL",
    "WEIGHTING_LEVELS",
    "TokenWeighting",
    "WeightFunction",
    "WeightingLevel",
    "canonical_weighting_name",
    "get_token_weighting",
    "import_weighting_modules",
    "register_token_weighting",
    "reweighting_methods",
    "token_weighting_names",
    "weighting_label",
]
