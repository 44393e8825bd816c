"""`hf-dlp extrapolate`: Avg@k over a γ × τ grid of selective extrapolation along Δlog p."""

from __future__ import annotations

import argparse

from ..selection_rules import selection_rules
from ._options import add_option
from .replace import add_evaluation_arguments, prepare

NAME = "extrapolate"
HELP = "Avg@k of selective extrapolation over a gamma x tau grid (paper Fig. 4), with the two models as references."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_evaluation_arguments(parser)
    add_option(parser, "gammas", nargs="+", type=float, default=[0.0, 0.05, 0.1, 0.2], help="γ grid.")
    add_option(parser, "taus", nargs="+", type=float, default=[-0.5, -0.35, -0.2], help="τ grid.")
    add_option(
        parser,
        "selection",
        default="delta_logp",
        help=f"Selection rule (hf_dlp.selection_rules): {', '.join(selection_rules())}; 'all' is dense extrapolation.",
    )
    add_option(
        parser,
        "generator",
        default="rl",
        help="Which model generates: 'rl' (guided by the base) or 'base' (guided by the RL model, the paper's Fig. 4).",
    )


def run(args: argparse.Namespace) -> int:
    """Run the sweep (shared between the processes of a launched run; the main process writes and prints)."""
    from hf_dlp.distributed import is_main_process
    from hf_dlp.sweeps import extrapolation_sweep

    # `tau` is swept; the config only has to accept the rule (a placeholder threshold for selective ones).
    placeholder = None if args.selection == "all" else args.taus[0]
    inputs = prepare(args, selection=args.selection, tau=placeholder, generator=args.generator)
    result = extrapolation_sweep(gammas=args.gammas, taus=args.taus, **inputs)
    if not is_main_process():
        return 0
    print(f"base: {result.references['base']:.4f}  rl: {result.references['rl']:.4f}")
    for row in result.rows:
        tau = "-" if row.tau is None else f"{row.tau:g}"
        print(
            f"gamma={row.gamma:<6g} tau={tau:<8} ratio={row.replacement_ratio:.4f}  "
            f"avg@{args.num_samples}={row.avg_at_k:.4f}"
        )
    best = result.best()
    print(f"best: gamma={best.gamma:g} tau={best.tau}  avg={best.avg_at_k:.4f}; results in {args.output_dir}")
    return 0
