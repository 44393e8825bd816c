"""`hf-dlp train --config recipe.yaml [--FIELD VALUE ...]`: reweighted GRPO from a recipe (`hf_dlp.training.script`).

This module only parses the command line, and lightly: building the `hf-dlp` parser must not import torch. It takes
`--config` and hands every other flag, unparsed, to the training script's `TrlParser`, which knows all the fields of
`TrainScriptArguments`, `ReweightedGRPOConfig` and TRL's `ModelConfig` and validates them before anything loads.
"""

from __future__ import annotations

import argparse

from ._options import add_option

NAME = "train"
HELP = "Train with ReweightedGRPOTrainer from a YAML recipe (`--config`), on the toy task or a Hub model and dataset."

EPILOG = (
    "Any field of the recipe can also be given as a flag after it, in TRL's style (`--max_steps 5 --reweighting "
    "dominate`); flags override the recipe. `resume_from_checkpoint true` continues from the last checkpoint in "
    "`output_dir`. Modules in `import_modules` (`--import_modules my_weights.py`) are imported before the config is "
    "checked, so a weighting they register with `hf_dlp.register_token_weighting` can be named in `reweighting`. "
    "All fields: `python -m hf_dlp.training.script --help`."
)


def _pass_unknown_flags_through(parser: argparse.ArgumentParser, dest: str) -> None:
    """Make `parser` keep the flags it does not know in `namespace.<dest>` (in order) instead of refusing them."""
    parse_known_args = parser.parse_known_args

    def parse_keeping_unknown(args=None, namespace=None):
        namespace, unknown = parse_known_args(args, namespace)
        setattr(namespace, dest, [*getattr(namespace, dest, []), *unknown])
        return namespace, []

    parser.parse_known_args = parse_keeping_unknown  # type: ignore[method-assign]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    add_option(parser, "config", default=None, help="YAML recipe (see examples/toy_recipe.yaml).")
    parser.set_defaults(training_flags=[])
    _pass_unknown_flags_through(parser, "training_flags")


def training_argv(args: argparse.Namespace) -> list[str]:
    """The argument list for the training script's parser: `--config`, then the other flags, in order.

    Examples:

    >>> training_argv(argparse.Namespace(config="r.yaml", training_flags=["--max_steps", "5", "--seed", "1"]))
    ['--config', 'r.yaml', '--max_steps', '5', '--seed', '1']
    """
    config = ["--config", args.config] if args.config else []
    return [*config, *args.training_flags]


def run(args: argparse.Namespace) -> int:
    from hf_dlp.training.script import main

    trainer = main(training_argv(args))
    print(trainer.args.output_dir)
    last = next((log for log in reversed(trainer.state.log_history) if "train_loss" in log), {})
    print(f"train_loss={last.get('train_loss')}")
    return 0
