"""`hf-dlp make-base`: make (or reuse from cache) the toy base model and print its folder."""

from __future__ import annotations

import argparse
from dataclasses import fields

NAME = "make-base"
HELP = "Fine-tune the offline toy base model on the arithmetic task (cached by its settings)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hf_dlp.toy import BaseModelSettings

    for spec in fields(BaseModelSettings):
        parser.add_argument(f"--{spec.name}", type=type(spec.default), default=spec.default)
    parser.add_argument("--cache_dir", default=None, help="Cache root (default: $HF_DLP_CACHE or ~/.cache/hf_dlp).")
    parser.add_argument("--force", action="store_true", help="Retrain even if a cached model exists.")


def run(args: argparse.Namespace) -> int:
    from hf_dlp.toy import BaseModelSettings, make_toy_base_model

    settings = BaseModelSettings(**{spec.name: getattr(args, spec.name) for spec in fields(BaseModelSettings)})
    path = make_toy_base_model(settings, cache_dir=args.cache_dir, force=args.force)
    print(path)
    return 0
