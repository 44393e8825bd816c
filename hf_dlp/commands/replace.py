"""`hf-dlp replace`: selective token replacement sweep (the base generates, the RL model's tokens replace selected ones).

Everything that can be checked before the models load is checked first: the output folder, the extrapolation
settings (`ExtrapolationConfig`), the sampling settings (`GenerationConfig`), the τ grids, the dtype, the data set and
its columns, and the two tokenizers (they must match). Only then do the weights load and the sweep run.

Under `accelerate launch` (or `torchrun`) each process loads the pair on its own device and takes its share of every
cell's batches; the results equal a one-process run, and the main process writes them (`output_dir/cells/` holds
each finished cell, so an interrupted sweep resumes where it stopped when rerun with the same settings).
"""

from __future__ import annotations

import argparse
from typing import Any

from ..loading import DTYPE_NAMES
from ._options import add_option

NAME = "replace"
HELP = "Accuracy vs. RL-token replacement ratio for each selection rule over a threshold grid (paper Fig. 1c)."

SAMPLING_FLAGS = ("max_new_tokens", "temperature", "top_p")
"""Sampling flags; unset ones keep hf_dlp's default sampling (`hf_dlp.generation.DEFAULT_SAMPLING`)."""


def add_evaluation_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by `replace` and `extrapolate`: models, data, sampling, candidate set, output."""
    add_option(parser, "base_model", required=True, help="Base model: Hub id or folder.")
    add_option(parser, "rl_model", required=True, help="RL model trained from the base: Hub id or folder.")
    add_option(parser, "tokenizer", default=None, help="Tokenizer (default: the base model's; must match both).")
    add_option(parser, "dataset", default="toy", help="'toy', a .json/.jsonl/.parquet/.csv file, or a Hub id.")
    add_option(parser, "split", default="test", help="Hub dataset split.")
    add_option(parser, "level", default="easy", help="Toy task level.")
    add_option(parser, "num_examples", type=int, default=64, help="Toy task size.")
    add_option(parser, "limit", type=int, default=None, help="Use only the first N problems.")
    add_option(parser, "prompt_column", default="prompt")
    add_option(parser, "reward", default="accuracy", help="Reward function name (hf_dlp.rewards).")
    add_option(parser, "num_samples", type=int, default=4, help="Samples per problem (Avg@k).")
    add_option(parser, "max_new_tokens", type=int, default=None, help="Sampling length (default: 256).")
    add_option(parser, "temperature", type=float, default=None, help="Sampling temperature (default: 1.0).")
    add_option(parser, "top_p", type=float, default=None, help="Nucleus sampling (default: 0.7, the paper's).")
    add_option(
        parser,
        "candidate_top_k",
        type=int,
        default=None,
        help="π_extra candidates: the generator's top-k tokens (default: 50, the paper's; 0: the whole vocabulary).",
    )
    add_option(
        parser,
        "block_size",
        default=None,
        help="Block-verified decoding: the generator drafts this many tokens and the other model scores them in one "
        "forward (exact; 1-64, or 'auto' for an adaptive length). Default: one token at a time.",
    )
    add_option(parser, "batch_size", type=int, default=32)
    add_option(parser, "seed", type=int, default=0)
    add_option(parser, "dtype", default="auto", choices=DTYPE_NAMES)
    add_option(
        parser,
        "device",
        default=None,
        help="Default: this process's GPU under `accelerate launch`/`torchrun`, else cuda when available, else cpu.",
    )
    add_option(
        parser,
        "device_map",
        default=None,
        help="Place each model with `from_pretrained(device_map=...)` instead of `--device` ('auto': over the "
        "visible GPUs, for a pair too big for one).",
    )
    add_option(parser, "output_dir", required=True, help="Where the JSON results and PNG plot go.")
    add_option(parser, "no_progress", action="store_true", help="Hide progress bars.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_evaluation_arguments(parser)
    add_option(
        parser,
        "selections",
        nargs="+",
        default=["delta_logp", "kl", "entropy", "random"],
        help="Selection rules to compare.",
    )
    add_option(
        parser,
        "taus",
        nargs="*",
        default=[],
        metavar="RULE=T1,T2",
        help="Threshold grids, e.g. delta_logp=-1,-0.5,-0.2 random=0.05,0.1 (defaults per rule).",
    )
    add_option(parser, "gamma", type=float, default=0.0, help="0 replaces with RL tokens; > 0 extrapolates.")


def parse_taus(items: list[str]) -> dict[str, list[float]]:
    """Parse `--taus` entries `RULE=T1,T2` into threshold grids; refuse unknown rules and non-numbers by name.

    Examples:

    >>> parse_taus(["delta_logp=-1,-0.5", "random=0.1"])
    {'delta_logp': [-1.0, -0.5], 'random': [0.1]}
    >>> parse_taus(["bogus=0.1"])
    Traceback (most recent call last):
    ...
    ValueError: `--taus` names the unknown selection rule 'bogus'; rules with a threshold: ('delta_logp', 'delta_logp_positive', 'entropy', 'other_entropy', 'kl', 'kl_reverse', 'kl_mean', 'random').
    """
    from hf_dlp.selection_rules import selective_rules

    rules = selective_rules()
    taus = {}
    for item in items:
        rule, _, values = item.partition("=")
        if not values:
            raise ValueError(f"`--taus` entries look like RULE=T1,T2 (e.g. delta_logp=-1,-0.5), got {item!r}.")
        if rule not in rules:
            raise ValueError(f"`--taus` names the unknown selection rule {rule!r}; rules with a threshold: {rules}.")
        try:
            taus[rule] = [float(value) for value in values.split(",")]
        except ValueError:
            raise ValueError(f"`--taus` thresholds must be numbers, got {item!r}.") from None
    return taus


def prepare(args: argparse.Namespace, **overrides: Any) -> dict[str, Any]:
    """Check everything that needs no model, then load the data and the model pair.

    Returns the keyword arguments of the sweep: models, tokenizer, dataset, reward, `config`, `generation_config`,
    sampling budget, output folder.
    """
    from hf_dlp.arguments import check_output_dir
    from hf_dlp.extrapolation import ExtrapolationConfig
    from hf_dlp.generation import default_generation_config, resolve_generation_config
    from hf_dlp.loading import check_dtype, load_dataset_spec, load_tokenizer
    from hf_dlp.model_pair import check_same_vocabulary, load_model_pair
    from hf_dlp.rewards import get_reward_function

    output_dir = check_output_dir("output_dir", args.output_dir)  # before any data, model or compute
    if args.candidate_top_k is not None:
        overrides["candidate_top_k"] = args.candidate_top_k or None  # 0: the whole vocabulary
    if args.block_size is not None:
        overrides["block_size"] = args.block_size  # "8", "auto" or "none": ExtrapolationConfig reads the strings
    config = ExtrapolationConfig(**overrides)
    sampling = {name: getattr(args, name) for name in SAMPLING_FLAGS if getattr(args, name) is not None}
    generation_config, _ = resolve_generation_config(default_generation_config(), **sampling)
    check_dtype(args.dtype)
    reward_fn = get_reward_function(args.reward)
    dataset = load_dataset_spec(
        args.dataset,
        split=args.split,
        level=args.level,
        num_examples=args.num_examples,
        limit=args.limit,
        required_columns=(args.prompt_column,),
    )
    if args.prompt_column != "prompt":
        dataset = dataset.rename_column(args.prompt_column, "prompt")
    base, rl, tokenizer = load_model_pair(
        base_model=args.base_model,
        rl_model=args.rl_model,
        dtype=args.dtype,
        device=args.device,
        device_map=args.device_map,
    )
    if args.tokenizer is not None:
        given = load_tokenizer(args.tokenizer)
        check_same_vocabulary(given, tokenizer)
        tokenizer = given
    return dict(
        base_model=base,
        rl_model=rl,
        tokenizer=tokenizer,
        dataset=dataset,
        reward_fn=reward_fn,
        config=config,
        generation_config=generation_config,
        num_samples=args.num_samples,
        batch_size=args.batch_size,
        seed=args.seed,
        progress=not args.no_progress,
        output_dir=output_dir,
    )


def run(args: argparse.Namespace) -> int:
    """Run the sweep; under `accelerate launch`/`torchrun` the cells' batches are shared, the main process writes
    and prints."""
    from hf_dlp.distributed import is_main_process
    from hf_dlp.sweeps import replacement_sweep

    taus = parse_taus(args.taus)
    inputs = prepare(args, gamma=args.gamma)
    result = replacement_sweep(selections=args.selections, taus=taus, **inputs)
    if not is_main_process():
        return 0
    print(f"base: {result.references['base']:.4f}  rl: {result.references['rl']:.4f}")
    for row in result.rows:
        print(
            f"{row.selection:>10}  tau={row.tau:<8g} ratio={row.replacement_ratio:.4f}  "
            f"avg@{args.num_samples}={row.avg_at_k:.4f}"
        )
    print(f"results in {args.output_dir}")
    return 0
