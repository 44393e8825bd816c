"""Command-line spelling shared by every `hf-dlp` command: TRL's underscore flags, with dash aliases.

`add_option(parser, "max_new_tokens", ...)` accepts `--max_new_tokens` and `--max-new-tokens`. This module imports
nothing heavy, so building the `hf-dlp` parser stays fast.
"""

from __future__ import annotations

import argparse
from typing import Any


def _spellings(name: str) -> list[str]:
    return [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])


def add_option(parser: argparse.ArgumentParser, name: str, **kwargs: Any) -> argparse.Action:
    """Add `--name` (and `--name-with-dashes`) to `parser`, stored as `name`; `kwargs` go to `add_argument`.

    Examples:

    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> _ = add_option(parser, "base_model", required=True)
    >>> _ = add_option(parser, "logprobs_top_k", type=int)
    >>> args = parser.parse_args(["--base-model", "a", "--logprobs_top_k", "20"])
    >>> args.base_model, args.logprobs_top_k
    ('a', 20)
    """
    return parser.add_argument(*_spellings(name), dest=name, **kwargs)


__all__ = ["add_option"]
