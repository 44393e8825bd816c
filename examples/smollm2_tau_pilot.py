"""The τ pilot behind the `smollm2-fig4` preset (docs/smollm2.md): which Δlog p threshold to run Fig. 4's γ grid at.

Runs selective extrapolation at one γ over a few τ, for each generator, on held-out word problems that the final
Fig. 4 run does not use (evaluation problems 128 onwards; the final run takes the first 128). Needs the seed-0 DAPO
model of `make demo-smollm2-seeds` (`<demo folder>/models/none`).

    python examples/smollm2_tau_pilot.py --demo_dir demo_output_smollm2_seeds --output_dir pilot_fig4
"""

import argparse
import json
import logging
from pathlib import Path

from hf_dlp.demo.data import load_demo_dataset
from hf_dlp.demo.presets import demo_preset
from hf_dlp.generation import default_generation_config
from hf_dlp.loading import check_model_source, load_causal_lm, load_tokenizer
from hf_dlp.sweeps import extrapolation_sweep

logger = logging.getLogger("smollm2_tau_pilot")

TAUS = {"rl": [-0.1, -0.25, -0.5], "base": [-0.25, -0.5, -1.0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo_dir", required=True, help="Output folder of `make demo-smollm2-seeds`.")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--problems", type=int, default=48)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--gamma", type=float, default=0.3)
    args = parser.parse_args()

    config = demo_preset("smollm2-seeds")
    first, count = 128, args.problems  # after the final run's 128 problems: the pilot never sees them
    dataset = load_demo_dataset(
        config.eval_dataset, num_examples=config.eval_problems, seed=config.seed + 1234, split=config.eval_split
    ).select(range(first, first + count))
    base_path = check_model_source(config.base_model, argument="base_model")
    tokenizer = load_tokenizer(base_path)
    base_model = load_causal_lm(base_path, dtype=config.dtype)
    rl_model = load_causal_lm(str(Path(args.demo_dir) / "models" / "none"), dtype=config.dtype)
    summary, references = {}, None
    for generator, taus in TAUS.items():
        result = extrapolation_sweep(
            base_model=base_model,
            rl_model=rl_model,
            tokenizer=tokenizer,
            dataset=dataset,
            gammas=[args.gamma],
            taus=taus,
            generator=generator,
            num_samples=args.samples,
            seed=config.seed,
            batch_size=config.eval_batch_size,
            block_size=config.block_size,
            generation_config=default_generation_config(
                max_new_tokens=config.max_completion_length, top_p=config.top_p
            ),
            output_dir=Path(args.output_dir) / generator,
            references=references,  # the two models alone, evaluated once
        )
        references = result.references
        summary[generator] = {
            "references": result.references,
            "rows": [
                {k: getattr(row, k) for k in ("gamma", "tau", "avg_at_k", "replacement_ratio")} for row in result.rows
            ],
        }
    text = json.dumps({"problems": [first, first + count], "samples": args.samples, **summary}, indent=2)
    (Path(args.output_dir) / "pilot.json").write_text(text)
    logger.info("pilot results in %s:\n%s", Path(args.output_dir) / "pilot.json", text)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
