"""Checking user-given argument values the same way in every hf_dlp entry point.

Every error names the argument, shows the bad value with `!r` and says what to pass instead. Numbers may come as
Python numbers, numpy scalars or 0-d tensors (what a sweep over `np.linspace` or a tensor of results hands over);
booleans and strings are never numbers.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any


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


__all__ = [
    "check_choice",
    "check_number",
    "check_output_dir",
    "check_sequence",
]
