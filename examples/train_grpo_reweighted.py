"""Train a model with reweighted GRPO (arXiv 2603.22117): the paper's low-probability token reweighting on TRL.

Offline toy run (CPU, about a minute; trains and caches the toy base model on first use):

    python examples/train_grpo_reweighted.py --config examples/toy_recipe.yaml

The paper's DAPO recipe on a real model and Hub dataset (GPUs; add `--push_to_hub --hub_model_id you/name` to
publish the checkpoint with its model card):

    accelerate launch --config_file accelerate_configs/zero2.yaml examples/train_grpo_reweighted.py \
        --config examples/dapo_recipe.yaml

Every field of `TrainScriptArguments` (data, rewards), `ReweightedGRPOConfig` (training, `reweighting`,
`reweight_alpha`) and TRL's `ModelConfig` (model, LoRA via `--use_peft`) can be given in the YAML or as a flag;
`hf-dlp train --config ...` runs the same code (`hf_dlp.training.script`). A weighting of your own: see
`examples/custom_weights.py` and `examples/custom_weighting_recipe.yaml` (`import_modules` + `reweighting`). Everything is validated before the model
loads; `--resume_from_checkpoint true` continues from the last checkpoint in `output_dir`, which is otherwise
refused when it already holds checkpoints.
"""

from __future__ import annotations

from hf_dlp.training import ReweightedGRPOTrainer
from hf_dlp.training.script import make_parser, run_training


def main(argv: list[str] | None = None) -> ReweightedGRPOTrainer:
    script_args, training_args, model_args = make_parser().parse_args_and_config(argv)
    return run_training(script_args, training_args, model_args)


if __name__ == "__main__":
    main()
