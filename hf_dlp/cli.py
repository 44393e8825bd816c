"""The `hf-dlp` command: one entry point, one subcommand per module in `hf_dlp/commands/`.

A command module defines `NAME` (the subcommand), `HELP` (one line), `add_arguments(parser)` and `run(args) -> int`,
declares its flags with `hf_dlp.commands._options.add_option`, and keeps heavy imports (torch, transformers,
datasets, TRL) inside `run`: building the parser imports none of them, so `hf-dlp --help` and `--version` take a
tenth of a second (`tests/test_cli.py` checks `sys.modules`).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import __version__, commands


def _command_modules():
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda info: info.name):
        if not info.name.startswith("_"):
            yield importlib.import_module(f"{commands.__name__}.{info.name}")


def make_parser() -> tuple[argparse.ArgumentParser, dict]:
    """The `hf-dlp` parser (one subparser per command) and each command's `run`; imports no torch.

    Examples:

    >>> parser, runners = make_parser()
    >>> parser.parse_args(["analyze", "--base-model", "b", "--rl_model", "r", "--dataset", "toy",
    ...                    "--output_dir", "out"]).base_model, "analyze" in runners
    ('b', True)
    """
    parser = argparse.ArgumentParser(
        prog="hf-dlp",
        allow_abbrev=False,  # a removed flag (`--base`) must fail, not resolve to `--base_model`
        description="Direction of RLVR updates: analyse, extrapolate and train with signed token log-prob differences.",
    )
    parser.add_argument("--version", action="version", version=f"hf-dlp {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    runners = {}
    for module in _command_modules():
        subparser = subparsers.add_parser(module.NAME, help=module.HELP, description=module.HELP, allow_abbrev=False)
        module.add_arguments(subparser)
        runners[module.NAME] = module.run
    return parser, runners


def main(argv: list[str] | None = None) -> int:
    """Run `hf-dlp` with `argv` (default: the command line); return the exit status (2 without a command)."""
    parser, runners = make_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(runners[args.command](args) or 0)


if __name__ == "__main__":
    sys.exit(main())
