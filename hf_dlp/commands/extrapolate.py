"""`hf-dlp extrapolate`: Avg@k over a γ × τ grid of selective extrapolation along Δlog p."""

from __future__ import annotations

import argparse

from .replace import add_evaluation_arguments, evaluation_kwargs, load_inputs

NAME = "extrapolate"
HELP = "Avg@k of selective extrapolation over a gamma x tau grid (paper Fig. 4), with the two models as references."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_evaluation_arguments(parser)
    parser.add_argument("--gammas", nargs="+", type=float, default=[0.0, 0.05, 0.1, 0.2], help="γ grid.")
    parser.add_argument("--taus", nargs="+", type=float, default=[-0.5, -0.35, -0.2], help="τ grid.")
    parser.add_argument("--selection", default="delta_logp", help="Selection rule ('all' for dense extrapolation).")
    parser.add_argument(
        "--generator",
        default="rl",
        choices=["rl", "base"],
        help="Which model generates: 'rl' (guided by the base) or 'base' (guided by the RL model).",
    )


def run(args: argparse.Namespace) -> int:
    from hf_dlp.extrapolation import extrapolation_sweep

    base, rl, tokenizer, dataset, reward_fn = load_inputs(args)
    result = extrapolation_sweep(
        rl,
        base,
        tokenizer,
        dataset,
        gammas=args.gammas,
        taus=args.taus,
        selection=args.selection,
        generator=args.generator,
        reward_fn=reward_fn,
        **evaluation_kwargs(args),
    )
    print(f"base: {result.references['base']:.4f}  rl: {result.references['rl']:.4f}")
    for row in result.rows:
        tau = "-" if row["tau"] is None else f"{row['tau']:g}"
        print(
            f"gamma={row['gamma']:<6g} tau={tau:<8} ratio={row['replacement_ratio']:.4f}  "
            f"avg@{args.num_samples}={row['avg_at_k']:.4f}"
        )
    best = result.best()
    print(f"best: gamma={best['gamma']:g} tau={best['tau']}  avg={best['avg_at_k']:.4f}; results in {args.output_dir}")
    return 0
