"""`hf-dlp demo`: reproduce the paper in miniature (base model, RLVR training, evaluation, analysis, sweeps)."""

from __future__ import annotations

import argparse

from ._options import add_option

NAME = "demo"
HELP = "Run the whole paper in miniature on CPU (toy task, offline) and write demo_output/report.md."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_option(parser, "output_dir", default="demo_output", help="Where the report, figures and models go.")
    add_option(parser, "seed", type=int, default=0, help="Seed of training, sampling and evaluation problems.")
    add_option(parser, "quick", action="store_true", help="Same pipeline on a tiny budget (a few minutes).")
    add_option(
        parser,
        "overwrite",
        action="store_true",
        help="Accept an output folder that holds a run with other settings; stages whose settings changed "
        "are redone, the others reused.",
    )
    add_option(parser, "base_model", default=None, help="Base model path or Hub id (default: the toy base model).")
    add_option(parser, "train_dataset", default="toy", help="'toy', a local data file, or a Hub dataset id.")
    add_option(parser, "eval_dataset", default="toy", help="'toy', a local data file, or a Hub dataset id.")
    add_option(
        parser,
        "methods",
        nargs="+",
        default=None,
        help="Reweightings to train, 'none' first (default: none low_prob dominate).",
    )
    add_option(parser, "train_steps", type=int, default=None, help="GRPO steps per run (overrides the budget).")
    add_option(parser, "max_completion_length", type=int, default=None, help="Longest completion (tokens).")
    add_option(
        parser,
        "block_size",
        default=None,
        help="Block-verified decoding in the sweeps: 1-64, 'auto' (the default) or 'none' (one token a step).",
    )


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import logging

    import torch

    from hf_dlp.demo import DemoConfig, run_demo

    logging.basicConfig(format="%(message)s")
    logging.getLogger("hf_dlp.demo").setLevel(logging.INFO)
    if not torch.cuda.is_available():
        # The toy models are tiny: one intra-op thread is fastest, and more thrash a 2-core machine (measured:
        # a GRPO step took 0.4 s on one thread and several seconds with the default threads under load).
        torch.set_num_threads(1)
    config = DemoConfig(
        output_dir=args.output_dir,
        seed=args.seed,
        base_model=args.base_model,
        train_dataset=args.train_dataset,
        eval_dataset=args.eval_dataset,
    )
    if args.quick:
        config = config.quick_version()
    overrides = {
        "methods": args.methods,
        "train_steps": args.train_steps,
        "max_completion_length": args.max_completion_length,
        "block_size": args.block_size,
    }
    config = dataclasses.replace(config, **{name: value for name, value in overrides.items() if value is not None})
    run_demo(config, overwrite=args.overwrite)
    return 0
