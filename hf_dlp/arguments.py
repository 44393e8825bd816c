"""Checking user-given argument values, and renaming arguments, the same way in every hf_dlp entry point.

Every error names the argument, shows the bad value with `!r` and says what to pass instead. Numbers may come as
Python numbers, numpy scalars or 0-d tensors (what a sweep over `np.linspace` or a tensor of results hands over);
booleans and strings are never numbers.

Deprecated names follow TRL's style: a `FutureWarning` that names the version in which the old name goes away and
the replacement, after which the value is forwarded, so old code keeps working for one release. The same holds for
renamed keyword arguments (`rename_argument`), parameters that became keyword-only (`keyword_only_models`) and
modules whose contents moved (`moved_module`, the `__getattr__` of the old module).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import numbers
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

# The release in which names deprecated in this one stop working.
REMOVAL_VERSION = "0.3.0"

F = TypeVar("F", bound=Callable[..., Any])


def _scalar(value: Any) -> Any:
    """A 0-d tensor or numpy scalar as the Python number it holds; anything else unchanged."""
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    return value


def check_number(
    name: str,
    value: Any,
    *,
    integer: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
    allow_none: bool = False,
    hint: str = "",
) -> Any:
    """Return `value` as a finite Python `int` or `float`, or raise `ValueError` naming `name`, the value and the fix.

    Args:
        name (`str`): the argument's name, shown in backticks.
        value: the value to check (Python, numpy or 0-d tensor scalar).
        integer (`bool`, *optional*, defaults to `False`): require a whole number (returned as `int`).
        minimum, maximum (`float`, *optional*): inclusive bounds (`exclusive_minimum=True` makes the lower strict).
        allow_none (`bool`, *optional*, defaults to `False`): let `None` through unchanged.
        hint (`str`, *optional*): what to pass instead, appended to the message.

    Examples:

    >>> import numpy as np
    >>> check_number("gamma", np.float32(0.5), minimum=0), check_number("num_samples", np.int64(4), integer=True)
    (0.5, 4)
    >>> check_number("gamma", 1e39, minimum=0, maximum=1e4)
    Traceback (most recent call last):
    ...
    ValueError: `gamma` must be a number <= 10000.0, got 1e+39.
    >>> check_number("num_samples", "4", integer=True)
    Traceback (most recent call last):
    ...
    ValueError: `num_samples` must be an integer, got '4' (str).
    """
    if value is None and allow_none:
        return None
    value = _scalar(value)
    kind = "an integer" if integer else "a number"
    suffix = f" {hint}" if hint else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"`{name}` must be {kind}, got {value!r} ({type(value).__name__}).{suffix}")
    if integer:
        if not float(value).is_integer():
            raise ValueError(f"`{name}` must be {kind}, got {value!r}.{suffix}")
        value = int(value)
    else:
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"`{name}` must be a finite number, got {value!r}.{suffix}")
    if minimum is not None and (value < minimum or (exclusive_minimum and value == minimum)):
        relation = ">" if exclusive_minimum else ">="
        raise ValueError(f"`{name}` must be {kind} {relation} {minimum}, got {value!r}.{suffix}")
    if maximum is not None and value > maximum:
        raise ValueError(f"`{name}` must be {kind} <= {maximum}, got {value!r}.{suffix}")
    return value


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """Return `value` if it is one of `choices`, else raise `ValueError` listing them.

    Examples:

    >>> check_choice("generator", "rl", ("rl", "base"))
    'rl'
    >>> check_choice("generator", "RL", ("rl", "base"))
    Traceback (most recent call last):
    ...
    ValueError: `generator` must be one of ('rl', 'base'), got 'RL'.
    """
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {tuple(choices)}, got {value!r}.")
    return value


def check_sequence(name: str, value: Any, *, items: str = "entries", allow_empty: bool = False) -> list[Any]:
    """Return `value` as a list; refuse a string (which would be read one character at a time) or a non-sequence.

    Examples:

    >>> check_sequence("selections", ("kl", "entropy"))
    ['kl', 'entropy']
    >>> check_sequence("selections", "kl")
    Traceback (most recent call last):
    ...
    ValueError: `selections` must be a list of entries, got the string 'kl'; wrap it in a list: ['kl'].
    """
    if isinstance(value, str | bytes):
        raise ValueError(
            f"`{name}` must be a list of {items}, got the string {value!r}; wrap it in a list: [{value!r}]."
        )
    if hasattr(value, "ndim") and hasattr(value, "tolist"):  # numpy arrays and tensors
        value = value.tolist()
    if not isinstance(value, Sequence):
        raise ValueError(f"`{name}` must be a list of {items}, got {type(value).__name__}.")
    if not allow_empty and len(value) == 0:
        raise ValueError(f"`{name}` is empty: give at least one of its {items}.")
    return list(value)


def check_output_dir(name: str, path: str | Path | None) -> Path | None:
    """Make sure `path` can be used as an output folder *before* any expensive work; return it as a `Path`.

    The folder is created if needed; a path that is a file, or a folder that cannot be written, raises `ValueError`
    naming the argument. `None` passes through (no output requested).

    Examples:

    >>> import tempfile
    >>> file = Path(tempfile.mkstemp()[1])
    >>> check_output_dir("output_dir", file)
    Traceback (most recent call last):
    ...
    ValueError: `output_dir` (...) is a file; give a folder for the results.
    """
    if path is None:
        return None
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"`{name}` ({str(path)!r}) is a file; give a folder for the results.")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(
            f"`{name}` ({str(path)!r}) cannot be created: {error.strerror}. Choose another folder."
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"`{name}` ({str(path)!r}) is not writable; choose another folder or fix its permissions.")
    return path


def rename_argument(kwargs: dict[str, Any], old: str, new: str, *, where: str) -> None:
    """Move a deprecated keyword argument `old` in `kwargs` to `new`, with a `FutureWarning` (in place).

    Raises `TypeError` when both are given.

    Examples:

    >>> import warnings
    >>> kwargs = {"top_k": 50}
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     rename_argument(kwargs, "top_k", "candidate_top_k", where="ExtrapolationConfig")
    >>> kwargs, caught[0].category.__name__
    ({'candidate_top_k': 50}, 'FutureWarning')
    """
    if old not in kwargs:
        return
    if new in kwargs:
        raise TypeError(f"{where} got both `{old}` (deprecated) and `{new}`; pass `{new}` only.")
    warnings.warn(
        f"`{old}` is deprecated in {where} and will be removed in hf_dlp {REMOVAL_VERSION}; use `{new}` instead.",
        FutureWarning,
        stacklevel=3,
    )
    kwargs[new] = kwargs.pop(old)


def keyword_only_models(*legacy_order: str) -> Callable[[F], F]:
    """Decorate a function whose leading parameters became keyword-only; old positional calls still work, warned.

    `legacy_order` lists the names the positional arguments used to bind to, in order. A call that passes them
    positionally gets a `FutureWarning` and is forwarded by name, so a base/RL pair can never be swapped silently.

    Examples:

    >>> import warnings
    >>> @keyword_only_models("base_model", "rl_model")
    ... def pair(*, base_model, rl_model):
    ...     return base_model, rl_model
    >>> pair(base_model="b", rl_model="r")
    ('b', 'r')
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     swapped = pair("b", "r")
    >>> swapped, caught[0].category.__name__
    (('b', 'r'), 'FutureWarning')
    """

    def decorate(function: F) -> F:
        signature = inspect.signature(function)

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            if args:
                if len(args) > len(legacy_order):
                    raise TypeError(
                        f"{function.__name__}() takes at most {len(legacy_order)} positional arguments "
                        f"({', '.join(legacy_order)}), got {len(args)}; pass them by name."
                    )
                names = legacy_order[: len(args)]
                warnings.warn(
                    f"Passing {', '.join(names)} to {function.__name__}() by position is deprecated and will stop "
                    f"working in hf_dlp {REMOVAL_VERSION}; pass them by name: "
                    f"{function.__name__}({', '.join(f'{n}=...' for n in names)}).",
                    FutureWarning,
                    stacklevel=2,
                )
                for name, value in zip(names, args, strict=True):
                    if name in kwargs:
                        raise TypeError(f"{function.__name__}() got `{name}` both by position and by name.")
                    kwargs[name] = value
            return function(**kwargs)

        wrapper.__signature__ = signature  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def moved_module(
    old: str, *new: str, names: tuple[str, ...] | None = None, stacklevel: int = 2
) -> Callable[[str], Any]:
    """The module `__getattr__` of a deprecated alias `old` whose names now live in the modules `new`.

    Args:
        old (`str`): the deprecated module's name (pass `__name__`).
        *new (`str`): the modules that now hold the names, searched in order.
        names (`tuple[str, ...]`, *optional*): only these names are forwarded (others raise `AttributeError` without
            importing anything); by default every public name of the new modules is.
        stacklevel (`int`, *optional*, defaults to `2`): where the warning points; 2 is the line doing the import
            when the result is the module's `__getattr__` (add one per wrapper in between).

    Examples:

    >>> import warnings
    >>> getter = moved_module("hf_dlp.old_loading", "hf_dlp.loading")
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     dtypes = getter("DTYPE_NAMES")
    >>> dtypes[0], caught[0].category.__name__
    ('auto', 'FutureWarning')
    >>> print(caught[0].message)
    Importing `DTYPE_NAMES` from `hf_dlp.old_loading` is deprecated and stops working in hf_dlp 0.3.0; import it from `hf_dlp.loading` instead.
    """

    def __getattr__(name: str) -> Any:
        if name.startswith("__") or (names is not None and name not in names):
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        for module_name in new:
            module = importlib.import_module(module_name)
            if hasattr(module, name):
                warnings.warn(
                    f"Importing `{name}` from `{old}` is deprecated and stops working in hf_dlp {REMOVAL_VERSION}; "
                    f"import it from `{_public_home(module_name, name)}` instead.",
                    FutureWarning,
                    stacklevel=stacklevel,
                )
                return getattr(module, name)
        raise AttributeError(f"module {old!r} has no attribute {name!r}")

    return __getattr__


def _public_home(module_name: str, name: str) -> str:
    """The package that re-exports `name` (e.g. `hf_dlp.training` for `hf_dlp.training.config`), else the module."""
    package = module_name.rpartition(".")[0]
    if package and name in getattr(importlib.import_module(package), "__all__", ()):
        return package
    return module_name


__all__ = [
    "REMOVAL_VERSION",
    "check_choice",
    "check_number",
    "check_output_dir",
    "check_sequence",
    "keyword_only_models",
    "moved_module",
    "rename_argument",
]
