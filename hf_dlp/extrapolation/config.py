"""`ExtrapolationConfig`: the one validated settings object of every extrapolation entry point.

The processor, `generate_with_extrapolation`, `enable_extrapolation`, the sweeps, the exported `custom_generate` and
the `hf-dlp` commands all take an `ExtrapolationConfig` (plus keyword overrides of its fields) and validate nothing
themselves: the checks live in `ExtrapolationConfig.__post_init__`. Saved as `extrapolation_config.json` beside an RL
checkpoint's weights.

This module needs only the standard library (and `hf_dlp.arguments`, also standard-library only), so that
`export_custom_generate` can ship it inside a checkpoint's `custom_generate/generate.py`.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args

# hf_dlp-export: strip-begin
from ..arguments import check_choice, check_number
from ..selection_rules import BUILTIN_RULE_NAMES, SELECTION_RULE_SPECS

# hf_dlp-export: strip-end

CONFIG_NAME = "extrapolation_config.json"

SelectionRule = Literal[
    "all", "delta_logp", "delta_logp_positive", "entropy", "other_entropy", "kl", "kl_reverse", "kl_mean", "random"
]
# The built-in rules (`hf_dlp.selection_rules`; `selection_rules()` also lists registered ones).
SELECTION_RULES: tuple[str, ...] = get_args(SelectionRule)
if SELECTION_RULES != BUILTIN_RULE_NAMES:
    raise RuntimeError(f"`SelectionRule` {SELECTION_RULES} and the built-in rule specs {BUILTIN_RULE_NAMES} disagree.")

GeneratorRole = Literal["rl", "base"]
GENERATOR_ROLES: tuple[str, ...] = get_args(GeneratorRole)

# Beyond γ = 1e4 the Δlog p term outweighs log π_RL ten-thousandfold: π_extra has already collapsed onto the candidate
# with the largest Δlog p, so a larger γ changes nothing, while (1 + γ)·log p leaves float32's range (1e39 gave NaN).
MAX_GAMMA = 1e4

# The fields a call may override by keyword (`generate_with_extrapolation(..., gamma=0.2)`). `temperature` and `top_p`
# are not among them: in a call they are `generate`'s sampling settings.
OVERRIDE_KEYS: tuple[str, ...] = ("gamma", "selection", "tau", "candidate_top_k", "generator", "block_size")

# Block-verified decoding: the longest block the generator drafts before the other model verifies it.
MAX_BLOCK_SIZE = 64
AUTO_BLOCK_SIZE = "auto"


@dataclass
class ExtrapolationConfig:
    """How to extrapolate along Δlog p at test time; saved as `extrapolation_config.json` beside an RL checkpoint.

    > Extrapolation

    Args:
        base_model_name_or_path (`str`, *optional*): Hub id or folder of the base model the RL model was trained from
            (the exported `custom_generate` loads it from there).
        gamma (`float`, *optional*, defaults to `0.1`): extrapolation strength γ in [0, 1e4] (paper: 0.05 to 0.1;
            0 = "selective replace": selected tokens come from the RL model itself).
        selection (`str`, *optional*, defaults to `"delta_logp"`): which positions are re-drawn, one of
            `SELECTION_RULES`:

            - `"all"`: every position (dense extrapolation; takes no `tau`);
            - `"delta_logp"`: Δlog p(y) <= `tau` for the candidate y (tau < 0: tokens RLVR suppressed);
            - `"delta_logp_positive"`: Δlog p(y) >= `tau` (tau > 0: tokens RLVR promoted);
            - `"entropy"`: the generator's entropy >= `tau`;
            - `"other_entropy"`: the other model's entropy >= `tau`;
            - `"kl"`, `"kl_reverse"`, `"kl_mean"`: KL(π_RL‖π_base), KL(π_base‖π_RL) or their mean >= `tau`;
            - `"random"`: with probability `tau`.
        tau (`float`, *optional*, defaults to `-0.35`): threshold of the selection rule (paper Δlog p: -0.3 to -0.4);
            `None` for `"all"` (the default threshold is dropped when `selection="all"`).
        candidate_top_k (`int`, *optional*, defaults to `50`): π_extra is restricted to the generator's top-k tokens
            (plus the candidate); `None` for the whole vocabulary. Not `generate`'s `top_k` sampling, which goes in
            the `GenerationConfig` (or a `top_k=` keyword of the call).
        generator (`str`, *optional*): which model generates, `"rl"` (guided by the base) or `"base"` (guided by the RL
            model, the paper's Fig. 4 setting). `None`: decided by the entry point (which model is passed as the other
            one; the exported `custom_generate` and `extrapolation_sweep` take `"rl"`).
        block_size (`int` or `str`, *optional*): block-verified (speculative) decoding: the generator drafts
            `block_size` tokens (1 to 64) with its own cache, the other model scores them in one forward, and the first
            position the rule re-draws ends the block (exact: same greedy tokens, same sampling distribution as the
            per-token processor). `"auto"` adapts the length (grow by 2 after a block accepted whole, shrink by 1
            after an early cut, as transformers' assisted generation). `None` (default): the per-token processor.

    Sampling is `generate`'s business: pass a `GenerationConfig` (or `temperature=`, `top_p=` keywords) to the call.
    A checkpoint's sampling defaults live in its `generation_config.json` (`export_custom_generate` writes them).

    Examples:

    >>> import tempfile
    >>> config = ExtrapolationConfig(base_model_name_or_path="Qwen/Qwen2.5-32B", gamma=0.05, tau=-0.3)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     _ = config.save_pretrained(folder)
    ...     loaded = ExtrapolationConfig.from_pretrained(folder)
    >>> loaded == config, loaded.processor_kwargs()
    (True, {'gamma': 0.05, 'selection': 'delta_logp', 'tau': -0.3, 'candidate_top_k': 50})
    >>> config.with_overrides(gamma=0.2).gamma
    0.2
    >>> ExtrapolationConfig(gamma=1e39)
    Traceback (most recent call last):
    ...
    ValueError: `gamma` must be a number <= 10000.0, got 1e+39. ...
    """

    base_model_name_or_path: str | None = None
    gamma: float = 0.1
    selection: SelectionRule = "delta_logp"
    tau: float | None = -0.35
    candidate_top_k: int | None = 50
    generator: GeneratorRole | None = None
    block_size: int | str | None = None

    def __post_init__(self):
        if isinstance(self.tau, str) and self.tau.lower() == "none":  # CLI strings
            self.tau = None
        if self.selection == "all" and self.tau == ExtrapolationConfig.tau:
            self.tau = None  # the default threshold belongs to "delta_logp"; "all" takes none
        if self.base_model_name_or_path is not None:
            self.base_model_name_or_path = str(self.base_model_name_or_path)
        self.gamma = check_number(
            "gamma",
            self.gamma,
            minimum=0.0,
            maximum=MAX_GAMMA,
            hint="(0 replaces with the RL model's tokens, > 0 extrapolates past them; beyond 1e4 nothing changes.)",
        )
        check_choice("selection", self.selection, tuple(SELECTION_RULE_SPECS))
        self.tau = _check_tau(self.selection, self.tau)
        self.candidate_top_k = check_number(
            "candidate_top_k",
            self.candidate_top_k,
            integer=True,
            minimum=1,
            allow_none=True,
            hint="Use a positive number of candidates (paper: 50), or None for the whole vocabulary.",
        )
        if self.generator is not None:
            check_choice("generator", self.generator, GENERATOR_ROLES)
        self.block_size = _check_block_size(self.block_size)

    def with_overrides(self, **overrides: Any) -> ExtrapolationConfig:
        """A validated copy with some fields replaced.

        A value of `None` is an override too (`tau=None` clears the threshold). A new `selection` brings its own
        threshold semantics: without a `tau` of its own it drops the old rule's τ when it takes none (`"all"`), and
        is refused when it needs one, since a threshold of one quantity means nothing for another.

        Examples:

        >>> saved = ExtrapolationConfig(selection="delta_logp", tau=-0.5)
        >>> saved.with_overrides(selection="all").tau is None, saved.with_overrides(selection="kl", tau=0.1).tau
        (True, 0.1)
        >>> saved.with_overrides(selection="kl")
        Traceback (most recent call last):
        ...
        ValueError: `selection='kl'` replaces the rule 'delta_logp', whose threshold `tau=-0.5` is of another quantity; pass a `tau` for 'kl' with it.
        """
        if not overrides:
            return self
        overrides = dict(overrides)
        known = {spec.name for spec in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"ExtrapolationConfig has no field(s) {unknown}; its fields are {sorted(known)}.")
        selection = overrides.get("selection", self.selection)
        if selection != self.selection and "tau" not in overrides and self.tau is not None:
            if selection != "all":
                raise ValueError(
                    f"`selection={selection!r}` replaces the rule {self.selection!r}, whose threshold "
                    f"`tau={self.tau!r}` is of another quantity; pass a `tau` for {selection!r} with it."
                )
            overrides["tau"] = None
        return dataclasses.replace(self, **overrides)

    def processor_kwargs(self) -> dict[str, Any]:
        """The settings of the extrapolation itself (γ, the selection rule, τ and the candidate set)."""
        return {
            "gamma": self.gamma,
            "selection": self.selection,
            "tau": self.tau,
            "candidate_top_k": self.candidate_top_k,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "hf_dlp_version": _hf_dlp_version()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExtrapolationConfig:
        """Build from a dict; files written by hf_dlp 0.1 (`top_k`) load; unknown keys are dropped with a warning."""
        data = dict(data)
        if "top_k" in data and "candidate_top_k" not in data:  # the 0.1 file format
            data["candidate_top_k"] = data.pop("top_k")
        moved = sorted(key for key in MOVED_SAMPLING_KEYS if key in data)
        if moved:  # files written by hf_dlp 0.2
            warnings.warn(
                f"Ignoring {moved} in the extrapolation config: since hf_dlp 0.3 a checkpoint's sampling defaults live "
                "in its generation_config.json; re-export it with `export_custom_generate(folder, temperature=..., "
                "top_p=...)`. hf_dlp 0.4 will refuse these keys.",
                FutureWarning,
                stacklevel=2,
            )
            for key in moved:
                data.pop(key)
        known = {spec.name for spec in fields(cls)}
        unknown = sorted(set(data) - known - {"hf_dlp_version"})
        if unknown:
            warnings.warn(
                f"Ignoring unknown extrapolation config keys {unknown} (written by a newer hf_dlp?).", stacklevel=2
            )
        return cls(**{key: value for key, value in data.items() if key in known})

    def save_pretrained(self, save_directory: str | Path) -> Path:
        """Write `extrapolation_config.json` into `save_directory` (created if needed); return the file path."""
        path = Path(save_directory)
        if path.exists() and not path.is_dir():
            raise ValueError(f"`save_directory` ({str(path)!r}) is a file; give the checkpoint folder.")
        path.mkdir(parents=True, exist_ok=True)
        file = path / CONFIG_NAME
        file.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return file

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **hub_kwargs) -> ExtrapolationConfig:
        """Load from a folder (or its JSON file), or from a Hub repository with `hf_hub_download`."""
        path = Path(name_or_path)
        if path.is_file():
            file = path
        elif path.is_dir():
            file = path / CONFIG_NAME
            if not file.is_file():
                raise FileNotFoundError(
                    f"No {CONFIG_NAME} in {str(path)!r}; save one with "
                    "`ExtrapolationConfig(...).save_pretrained(folder)`."
                )
        else:
            from huggingface_hub import hf_hub_download

            file = Path(hf_hub_download(str(name_or_path), CONFIG_NAME, **hub_kwargs))
        return cls.from_dict(json.loads(file.read_text()))

    def push_to_hub(self, repo_id: str, *, commit_message: str = "Add extrapolation config", **hub_kwargs) -> str:
        """Upload `extrapolation_config.json` to a Hub model repository; return the commit URL."""
        from huggingface_hub import HfApi

        data = (json.dumps(self.to_dict(), indent=2) + "\n").encode()
        info = HfApi().upload_file(
            path_or_fileobj=data,
            path_in_repo=CONFIG_NAME,
            repo_id=repo_id,
            commit_message=commit_message,
            **hub_kwargs,
        )
        return str(info)


MOVED_SAMPLING_KEYS = ("temperature", "top_p")
"""Keys of 0.2 config files that moved to the checkpoint's `generation_config.json` in 0.3."""


def _check_tau(selection: str, tau: Any) -> float | None:
    """`tau` as rule `selection` reads it (its `SelectionRuleSpec.threshold`), or an error that says what fits."""
    spec = SELECTION_RULE_SPECS[selection]
    if not spec.takes_tau:
        if tau is not None:
            raise ValueError(
                f"`selection={selection!r}` selects every position and takes no threshold; got `tau={tau!r}`. "
                "Leave `tau=None` or choose a selective rule such as 'delta_logp'."
            )
        return None
    if tau is None:
        raise ValueError(f"`selection={selection!r}` needs a threshold `tau` ({spec.tau_hint}); got `tau=None`.")
    tau = check_number("tau", tau, hint=f"`selection={selection!r}` needs {spec.tau_hint}.")
    if spec.nonnegative and tau < 0:
        raise ValueError(
            f"`selection={selection!r}` selects positions whose score is >= `tau`, and the score is never "
            f"negative; got `tau={tau!r}`. Use `tau >= 0`."
        )
    if spec.threshold == "probability" and not 0 <= tau <= 1:
        raise ValueError(
            f"`selection={selection!r}` uses `tau` as a selection probability; got `tau={tau!r}`, use a value in "
            "[0, 1]."
        )
    return tau


def _check_block_size(block_size: Any) -> int | str | None:
    if isinstance(block_size, str):  # CLI strings
        text = block_size.strip().lower()
        if text == "none":
            return None
        if text == AUTO_BLOCK_SIZE:
            return AUTO_BLOCK_SIZE
        if text.isdigit():
            block_size = int(text)
        else:
            raise ValueError(
                f"`block_size` must be a number of tokens, 'auto' or None, got {block_size!r}. Use e.g. "
                "`block_size=8`, `block_size='auto'` (adaptive) or `block_size=None` (one token per step)."
            )
    return check_number(
        "block_size",
        block_size,
        integer=True,
        minimum=1,
        maximum=MAX_BLOCK_SIZE,
        allow_none=True,
        hint="Use e.g. 8, 'auto' (adaptive), or None for the per-token processor.",
    )


def _hf_dlp_version() -> str | None:
    try:
        from hf_dlp import __version__
    except ImportError:  # inside an exported custom_generate without hf_dlp installed
        return None
    return __version__


def pop_overrides(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Take the `ExtrapolationConfig` overrides (`OVERRIDE_KEYS`) out of `kwargs`; the rest stays for `generate`.

    A `top_k=` keyword is `generate`'s own top-k sampling and stays in `kwargs`; the candidate set of π_extra is
    `candidate_top_k`.

    Examples:

    >>> kwargs = {"gamma": 0.2, "candidate_top_k": 20, "top_k": 5, "max_new_tokens": 8}
    >>> pop_overrides(kwargs), kwargs
    ({'gamma': 0.2, 'candidate_top_k': 20}, {'top_k': 5, 'max_new_tokens': 8})
    """
    return {key: kwargs.pop(key) for key in OVERRIDE_KEYS if key in kwargs}


def resolve_config(
    config: ExtrapolationConfig | None, overrides: dict[str, Any], *, default: ExtrapolationConfig | None = None
) -> ExtrapolationConfig:
    """`config` (or `default`, or `ExtrapolationConfig()`) with `overrides` applied, validated.

    Examples:

    >>> resolve_config(None, {"gamma": 0.3}).gamma
    0.3
    >>> resolve_config({"gamma": 0.3}, {})
    Traceback (most recent call last):
    ...
    TypeError: `config` must be an ExtrapolationConfig, got dict; build one with `ExtrapolationConfig(gamma=..., ...)` (or `ExtrapolationConfig.from_dict`).
    """
    if config is None:
        config = default if default is not None else ExtrapolationConfig()
    elif not isinstance(config, ExtrapolationConfig):
        raise TypeError(
            f"`config` must be an ExtrapolationConfig, got {type(config).__name__}; build one with "
            "`ExtrapolationConfig(gamma=..., ...)` (or `ExtrapolationConfig.from_dict`)."
        )
    return config.with_overrides(**overrides)


__all__ = [
    "AUTO_BLOCK_SIZE",
    "CONFIG_NAME",
    "GENERATOR_ROLES",
    "MAX_BLOCK_SIZE",
    "MAX_GAMMA",
    "OVERRIDE_KEYS",
    "SELECTION_RULES",
    "ExtrapolationConfig",
    "GeneratorRole",
    "SelectionRule",
    "pop_overrides",
    "resolve_config",
]
