"""Command-line spelling shared by every `hf-dlp` command: TRL's underscore flags, dash aliases, deprecated names.

`add_option(parser, "max_new_tokens", ...)` accepts `--max_new_tokens` and `--max-new-tokens`; `deprecated=("base",)`
also accepts `--base`, with a `FutureWarning` naming the replacement. This module imports nothing heavy, so building
the `hf-dlp` parser stays fast.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Sequence
from typing import Any

from ..arguments import REMOVAL_VERSION


def _spellings(name: str) -> list[str]:
    return [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])


class _DeprecatedFlag(argparse.Action):
    """Stores the value under the new name and warns that the old flag goes away."""

    def __init__(self, option_strings, dest, new_flag: str, inner: argparse.Action, **kwargs):
        super().__init__(option_strings, dest, nargs=inner.nargs, **kwargs)
        self.new_flag, self.inner = new_flag, inner

    def __call__(self, parser, namespace, values, option_string=None):
        warnings.warn(
            f"`{option_string}` is deprecated and will be removed in hf_dlp {REMOVAL_VERSION}; use `{self.new_flag}`.",
            FutureWarning,
            stacklevel=2,
        )
        self.inner(parser, namespace, values, option_string)


def add_option(
    parser: argparse.ArgumentParser, name: str, *, deprecated: Sequence[str] = (), **kwargs: Any
) -> argparse.Action:
    """Add `--name` (and `--name-with-dashes`) to `parser`; `deprecated` names still work, with a `FutureWarning`.

    argparse cannot count a deprecated spelling towards `required=True`, so an option with `deprecated` names is
    refused as required: leave its default `None` and check it in the command's `run`.

    Examples:

    >>> import argparse, warnings
    >>> parser = argparse.ArgumentParser()
    >>> _ = add_option(parser, "base_model", deprecated=("base",))
    >>> parser.parse_args(["--base-model", "a"]).base_model
    'a'
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     value = parser.parse_args(["--base", "b"]).base_model
    >>> value, caught[0].category.__name__
    ('b', 'FutureWarning')
    >>> _ = add_option(parser, "logprobs_top_k", deprecated=("top_k",), type=int)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     parser.parse_args(["--top-k", "20"]).logprobs_top_k
    20
    """
    if deprecated and kwargs.get("required"):
        raise ValueError(f"`--{name}` has deprecated spellings and cannot be `required`; check it in `run` instead.")
    action = parser.add_argument(*_spellings(name), dest=name, **kwargs)
    old = [spelling for old_name in deprecated for spelling in _spellings(old_name)]
    if old:
        parser.add_argument(
            *old,
            dest=name,
            action=_DeprecatedFlag,
            new_flag=f"--{name}",
            inner=action,
            help=argparse.SUPPRESS,
            metavar=action.metavar,
            type=action.type,  # argparse converts and checks the value with the action that was spelled
            choices=action.choices,
        )
    return action


__all__ = ["add_option"]
