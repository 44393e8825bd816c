"""`hf-dlp demo`: reproduce the paper in miniature (base model, RLVR training, evaluation, analysis, sweeps)."""

from __future__ import annotations

import argparse

NAME = "demo"
HELP = "Run the whole paper in miniature on CPU (toy task, offline) and write demo_output/report.md."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output-dir", default="demo_output", help="Where the report, figures and models go.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of training, sampling and evaluation problems.")
    parser.add_argument("--quick", action="store_true", help="Same pipeline on a tiny budget (a few minutes).")
    parser.add_argument("--base-model", default=None, help="Base model path or Hub id (default: the toy base model).")
    parser.add_argument("--train-dataset", default="toy", help="'toy', a local data file, or a Hub dataset id.")
    parser.add_argument("--eval-dataset", default="toy", help="'toy', a local data file, or a Hub dataset id.")
    parser.add_argument("--methods", nargs="+", default=None,
                        help="Reweightings to train, 'none' first (default: none low_prob dominate).")
    parser.add_argument("--train-steps", type=int, default=None, help="GRPO steps per run (overrides the budget).")
    parser.add_argument("--max-completion-length", type=int, default=None, help="Longest completion (tokens).")


def run(args: argparse.Namespace) -> int:
    import torch

    from hf_dlp.demo import DemoConfig, run_demo

    if not torch.cuda.is_available():
        # The toy models are tiny: one intra-op thread is fastest, and more thrash a 2-core machine (measured:
        # a GRPO step took 0.4 s on one thread and several seconds with the default threads under load).
        torch.set_num_threads(1)

    overrides = {"methods": args.methods, "train_steps": args.train_steps,
                 "max_completion_length": args.max_completion_length}
    config = DemoConfig(output_dir=args.output_dir, seed=args.seed, base_model=args.base_model,
                        train_dataset=args.train_dataset, eval_dataset=args.eval_dataset)
    if args.quick:
        config = config.quick_version()
    for name, value in overrides.items():
        if value is not None:
            setattr(config, name, tuple(value) if name == "methods" else value)
    config.__post_init__()  # re-validate after the command-line overrides
    run_demo(config)
    return 0
