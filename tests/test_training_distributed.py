"""A real 2-process CPU run (`accelerate launch`, gloo) against one process on the same global batch.

Sampling differs between one and two processes (each rank draws its own random numbers), so the worker replaces
generation with completions that depend only on the prompt and the position in its group. With `loss_type="dapo"`
the loss is summed over tokens and divided by the global token count over the number of processes, and DDP averages
the gradients, so both runs take the same step: parameters agree up to float summation order, and the logged weight
statistics (gathered over ranks) agree exactly. (`"bnpo"`/`"grpo"` normalise per rank, so they would differ unless
every rank held the same number of tokens: that is TRL's behaviour, not the reweighting's.)

The `"masks"` variant adds what needs the whole batch of every process: a Δlog p quantile token mask used as the loss
mask (its batch quantile is computed exactly over all processes' tokens), the Δlog p monitor, and the `ppl_norm`
response weights with one prompt group of 8 split across the two processes (so they are computed on the gathered
batch). The masked tokens, the monitor's statistics and the parameters must again match one process.

This file is also the worker: `python tests/test_training_distributed.py OUT_DIR MODEL_DIR [VARIANT]`.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STEPS = 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


VARIANTS = {
    "plain": dict(reweighting="low_prob", reweight_alpha=0.5, num_generations=4),
    "masks": dict(
        reweighting="ppl_norm", reweight_alpha=0.3, num_generations=8, token_mask_by="delta_logp_above",
        token_mask_quantile=0.5, token_mask_mode="loss_mask", delta_logp_monitor=True,
    ),
}  # fmt: skip
LOGGED = ("reweight/", "loss", "reward", "delta_logp/", "token_mask/")


def _worker(out_dir: str, model_dir: str, variant: str = "plain") -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from hf_dlp.toy import load_char_tokenizer, make_arithmetic_dataset
    from hf_dlp.training import ReweightedGRPOConfig, ReweightedGRPOTrainer

    class FixedCompletionsTrainer(ReweightedGRPOTrainer):
        def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
            completions = []
            offset = self.accelerator.process_index * len(prompt_ids)  # the row's place in the global batch
            for index, ids in enumerate(prompt_ids, start=offset):
                rng = random.Random(hash((tuple(ids), index % num_generations)))
                completions.append(
                    [rng.randrange(5, 40) for _ in range(rng.randrange(2, 8))] + [self.eos_token_ids[0]]
                )
            return completions, None

    def variety_reward(completions, **kwargs):
        return [len(set(completion)) / 10 for completion in completions]

    num_processes = int(os.environ.get("WORLD_SIZE", "1"))
    args = ReweightedGRPOConfig(
        output_dir=out_dir,
        **VARIANTS[variant],
        loss_type="dapo",
        per_device_train_batch_size=8 // num_processes,  # the same global batch: 8 completions
        max_completion_length=8,
        max_steps=STEPS,
        learning_rate=0.1,
        optim="sgd",  # Adam would blow float noise in near-zero gradients (e.g. key biases) up to full-size steps
        logging_steps=1,
        use_cpu=True,
        bf16=False,
        report_to="none",
        save_strategy="no",
        gradient_checkpointing=False,
        disable_tqdm=True,
        seed=0,
    )
    trainer = FixedCompletionsTrainer(
        AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32),
        variety_reward,
        args=args,
        train_dataset=make_arithmetic_dataset(num_examples=8, seed=3),
        processing_class=load_char_tokenizer(model_dir),
    )
    trainer.train()
    # Collective under ZeRO-3 / FSDP (gathers the shards), so every rank calls it.
    state_dict = trainer.accelerator.get_state_dict(
        trainer.deepspeed if trainer.is_deepspeed_enabled else trainer.model
    )
    if trainer.accelerator.is_main_process:
        torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, Path(out_dir) / "params.pt")
        logs = [{k: v for k, v in log.items() if k.startswith(LOGGED)} for log in trainer.state.log_history]
        (Path(out_dir) / "logs.json").write_text(json.dumps({"num_processes": num_processes, "logs": logs[:STEPS]}))


def _launch(command: list[str], out_dir: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads((out_dir / "logs.json").read_text())


RUN_SLOW = os.environ.get("HF_DLP_RUN_SLOW") == "1"
slow = pytest.mark.skipif(not RUN_SLOW, reason="about 40 s per launch on 2 cores; set HF_DLP_RUN_SLOW=1 to run")


_SINGLE_RUNS: dict[str, tuple[dict, dict]] = {}


@pytest.fixture()
def single_process_run(tiny_model_dir, tmp_path_factory):
    """The reference: one process holding the whole global batch, run in this Python process (once per variant)."""
    import torch

    def run(variant: str) -> tuple[dict, dict]:
        if variant not in _SINGLE_RUNS:
            out = tmp_path_factory.mktemp(f"single-{variant}")
            _worker(str(out), str(tiny_model_dir), variant)  # conftest runs the suite on one thread, like each worker
            _SINGLE_RUNS[variant] = json.loads((out / "logs.json").read_text()), torch.load(out / "params.pt")
        return _SINGLE_RUNS[variant]

    return run


@pytest.mark.parametrize(
    ("accelerate_config", "variant"),
    [
        ("multi_cpu", "plain"),
        ("multi_cpu", "masks"),
        pytest.param("zero2", "plain", marks=slow),
        pytest.param("zero3", "plain", marks=slow),
        pytest.param("fsdp", "plain", marks=slow),
    ],
)
def test_two_processes_match_one_process(single_process_run, tiny_model_dir, tmp_path, accelerate_config, variant):
    import torch

    one, params_one = single_process_run(variant)
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                str(ROOT / "accelerate_configs" / f"{accelerate_config}.yaml"), "--num_processes", "2",
                "--mixed_precision", "no", "--main_process_port", str(_free_port())]  # fmt: skip
    worker = [str(Path(__file__).resolve()), str(tmp_path), str(tiny_model_dir), variant]
    two = _launch([*launcher, *worker], tmp_path)
    assert (one["num_processes"], two["num_processes"]) == (1, 2)
    for log_one, log_two in zip(one["logs"], two["logs"], strict=True):
        assert log_one["reward"] == pytest.approx(log_two["reward"], abs=1e-6)
        assert set(log_one) == set(log_two)
        for key in sorted(k for k in log_one if k.startswith(LOGGED[3:])):  # mask and monitor statistics
            assert log_one[key] == pytest.approx(log_two[key], rel=1e-5, abs=1e-7), key
        for key in ("reweight/weight_mean", "reweight/weight_max", "reweight/weight_min", "reweight/high_weight_frac"):
            assert log_one[key] == pytest.approx(log_two[key], rel=1e-5), key
        assert log_one["reweight/weight_mean"] != 1.0
    if variant == "masks":  # step 2 really masks: half of the tokens, by a threshold Δlog p has moved away from 0
        assert 0.3 < one["logs"][1]["token_mask/frac_selected"] < 0.8
        assert one["logs"][1]["delta_logp/abs_mean"] > 0
    params_two = torch.load(tmp_path / "params.pt")
    initial = _initial_parameters(tiny_model_dir)
    for name, value in params_one.items():
        torch.testing.assert_close(params_two[name], value, rtol=1e-4, atol=1e-6, msg=name)
    assert any(not torch.equal(initial[name], value) for name, value in params_one.items())


def _initial_parameters(model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).state_dict()


if __name__ == "__main__":
    _worker(*sys.argv[1:4])
