"""`hf-dlp replace`: selective token replacement sweep (the base generates, the RL model's tokens replace selected ones)."""

from __future__ import annotations

import argparse

NAME = "replace"
HELP = "Accuracy vs. RL-token replacement ratio for each selection rule over a threshold grid (paper Fig. 1c)."


def add_evaluation_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by `replace` and `extrapolate`: models, data, sampling, output."""
    parser.add_argument("--base_model", required=True, help="Base model: Hub id or folder.")
    parser.add_argument("--rl_model", required=True, help="RL model trained from the base: Hub id or folder.")
    parser.add_argument("--tokenizer", default=None, help="Tokenizer (default: the RL model's).")
    parser.add_argument("--dataset", default="toy", help="'toy', a .json/.jsonl/.parquet/.csv file, or a Hub id.")
    parser.add_argument("--split", default="test", help="Hub dataset split.")
    parser.add_argument("--level", default="easy", help="Toy task level.")
    parser.add_argument("--num_examples", type=int, default=64, help="Toy task size.")
    parser.add_argument("--limit", type=int, default=None, help="Use only the first N problems.")
    parser.add_argument("--prompt_column", default="prompt")
    parser.add_argument("--reward", default="accuracy", help="Reward function name (hf_dlp.rewards).")
    parser.add_argument("--num_samples", type=int, default=4, help="Samples per problem (Avg@k).")
    parser.add_argument("--max_new_tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top_p", type=float, default=0.7, help="Nucleus sampling (paper: 0.7).")
    parser.add_argument(
        "--top_k", type=int, default=50, help="π_extra candidates: the generator's top-k (paper: 50; 0: all)."
    )
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    parser.add_argument("--device", default=None, help="Default: cuda when available, else cpu.")
    parser.add_argument("--output_dir", required=True, help="Where the JSON results and PNG plot go.")
    parser.add_argument("--no_progress", action="store_true", help="Hide progress bars.")


def load_inputs(args: argparse.Namespace):
    """(base model, RL model, tokenizer, dataset, reward function) from the parsed arguments."""
    from hf_dlp.loading import load_causal_lm, load_dataset_spec, load_tokenizer
    from hf_dlp.rewards import get_reward_function

    reward_fn = get_reward_function(args.reward)
    dataset = load_dataset_spec(
        args.dataset, split=args.split, level=args.level, num_examples=args.num_examples, limit=args.limit
    )
    if args.prompt_column != "prompt":
        dataset = dataset.rename_column(args.prompt_column, "prompt")
    tokenizer = load_tokenizer(args.tokenizer or args.rl_model)
    base = load_causal_lm(args.base_model, args.dtype, args.device)
    rl = load_causal_lm(args.rl_model, args.dtype, args.device)
    return base, rl, tokenizer, dataset, reward_fn


def evaluation_kwargs(args: argparse.Namespace) -> dict:
    return dict(
        num_samples=args.num_samples,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k or None,
        batch_size=args.batch_size,
        seed=args.seed,
        progress=not args.no_progress,
        output_dir=args.output_dir,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_evaluation_arguments(parser)
    parser.add_argument(
        "--selections",
        nargs="+",
        default=["delta_logp", "kl", "entropy", "random"],
        help="Selection rules to compare.",
    )
    parser.add_argument(
        "--taus",
        nargs="*",
        default=[],
        metavar="RULE=T1,T2",
        help="Threshold grids, e.g. delta_logp=-1,-0.5,-0.2 random=0.05,0.1 (defaults per rule).",
    )
    parser.add_argument("--gamma", type=float, default=0.0, help="0 replaces with RL tokens; > 0 extrapolates.")


def parse_taus(items: list[str]) -> dict[str, list[float]]:
    """Parse `--taus` entries `RULE=T1,T2` into threshold grids.

    Examples:

    >>> parse_taus(["delta_logp=-1,-0.5", "random=0.1"])
    {'delta_logp': [-1.0, -0.5], 'random': [0.1]}
    """
    taus = {}
    for item in items:
        rule, _, values = item.partition("=")
        if not values:
            raise ValueError(f"`--taus` entries look like RULE=T1,T2 (e.g. delta_logp=-1,-0.5), got {item!r}.")
        taus[rule] = [float(value) for value in values.split(",")]
    return taus


def run(args: argparse.Namespace) -> int:
    from hf_dlp.extrapolation import replacement_sweep

    taus = parse_taus(args.taus)
    base, rl, tokenizer, dataset, reward_fn = load_inputs(args)
    result = replacement_sweep(
        base,
        rl,
        tokenizer,
        dataset,
        selections=args.selections,
        taus=taus,
        gamma=args.gamma,
        reward_fn=reward_fn,
        **evaluation_kwargs(args),
    )
    print(f"base: {result.references['base']:.4f}  rl: {result.references['rl']:.4f}")
    for row in result.rows:
        print(
            f"{row['selection']:>10}  tau={row['tau']:<8g} ratio={row['replacement_ratio']:.4f}  "
            f"avg@{args.num_samples}={row['avg_at_k']:.4f}"
        )
    print(f"results in {args.output_dir}")
    return 0
