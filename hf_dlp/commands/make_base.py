"""`hf-dlp make-base`: make (or reuse from cache) the toy base model and print its folder."""

from __future__ import annotations

import argparse
import re
from dataclasses import fields
from typing import get_args, get_type_hints

from ._options import add_option

NAME = "make-base"
HELP = "Fine-tune the offline toy base model on the arithmetic task (cached by its settings)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hf_dlp.toy.settings import BaseModelSettings  # torch-free: the parser stays fast

    hints = get_type_hints(BaseModelSettings)
    # One help line per field, from the docstring's `name (`type`, defaults to ...): text` entries.
    helps = dict(re.findall(r"^\s+(\w+) \(`[^)]*\): (.+)$", BaseModelSettings.__doc__, flags=re.MULTILINE))
    for spec in fields(BaseModelSettings):
        choices = get_args(hints[spec.name]) or None  # the Literal fields list their values
        help_text = f"{helps.get(spec.name, spec.name)} (default: {spec.default})".replace("%", "%%")
        add_option(parser, spec.name, type=type(spec.default), default=spec.default, choices=choices, help=help_text)
    add_option(parser, "cache_dir", default=None, help="Cache root (default: $HF_DLP_CACHE or ~/.cache/hf_dlp).")
    add_option(parser, "force", action="store_true", help="Retrain even if a cached model exists.")


def run(args: argparse.Namespace) -> int:
    from hf_dlp.toy import BaseModelSettings, make_toy_base_model

    settings = BaseModelSettings(**{spec.name: getattr(args, spec.name) for spec in fields(BaseModelSettings)})
    path = make_toy_base_model(settings, cache_dir=args.cache_dir, force=args.force)
    print(path)
    return 0
