"""Step time of ReweightedGRPOTrainer against plain GRPOTrainer on the same seeded batch (target: ratio <= 1.02).

Both trainers wrap copies of one tiny model and run the loss's forward and backward on the same hand-built batch
(generation is left out: it is identical code in both). Measurements alternate between the trainers, each repeat
times several steps, and the medians are compared side by side.

A third row reports the Δlog p monitor (`delta_logp_monitor=True`, beta = 0) separately: the same step plus the
monitor's work on the batch, once per step as with `steps_per_generation == gradient_accumulation_steps == 1` (two
no-grad forward passes, of the policy for π_old and of the reference model, and the exact quantiles). With several
steps per generation batch its share shrinks accordingly; rollout generation, which dominates real steps, is left out,
so this is an upper bound on the monitor's relative cost.

    python benchmarks/bench_grpo.py [--size small] [--batch 32] [--length 128] [--repeats 15] [--method low_prob]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import os
import statistics
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm  # noqa: E402
from hf_dlp.training import ReweightedGRPOConfig, ReweightedGRPOTrainer  # noqa: E402
from hf_dlp.training.trainer import RESPONSE_WEIGHTS_KEY  # noqa: E402

MODEL_DIR = tempfile.mkdtemp()  # the monitor's reference model is loaded from the policy's folder, as TRL does


def _reward(completions, **kwargs):
    return [0.0] * len(completions)


def _batch(batch: int, length: int, vocab: int, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    completion_mask = (
        torch.arange(length)[None] < torch.randint(length // 2, length + 1, (batch, 1), generator=generator)
    ).long()
    return {
        "prompt_ids": torch.randint(5, vocab, (batch, 16), generator=generator),
        "prompt_mask": torch.ones(batch, 16, dtype=torch.long),
        "completion_ids": torch.randint(5, vocab, (batch, length), generator=generator),
        "completion_mask": completion_mask,
        "advantages": torch.randn(batch, generator=generator),
        "num_items_in_batch": completion_mask.sum(),
        RESPONSE_WEIGHTS_KEY: 1.0 + 0.1 * torch.randn(batch, generator=generator),
    }


def _trainer(trainer_class, config_class, model, tokenizer, extra):
    args = config_class(
        output_dir=tempfile.mkdtemp(), per_device_train_batch_size=8, num_generations=8, use_cpu=True, bf16=False,
        report_to="none", gradient_checkpointing=False, loss_type="dapo", **extra,
    )  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        trainer = trainer_class(copy.deepcopy(model), _reward, args=args, train_dataset=Dataset.from_dict({"prompt": ["a"]}),
                                processing_class=tokenizer)  # fmt: skip
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    return trainer


def _time_steps(trainer, batch, steps: int, monitor: bool = False) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        if monitor:  # what the generation step adds once per generation batch
            trainer._add_batch_signals({k: v for k, v in batch.items() if k != RESPONSE_WEIGHTS_KEY})
            trainer._metrics["train"].clear()
        loss = trainer._compute_loss(trainer.model, batch)
        loss.backward()
        trainer.model.zero_grad(set_to_none=True)
    return (time.perf_counter() - start) / steps


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small", help="toy model size: nano, micro or small")
    parser.add_argument("--batch", type=int, default=32, help="completions per step")
    parser.add_argument("--length", type=int, default=128, help="completion length")
    parser.add_argument("--repeats", type=int, default=15, help="alternating measurements per trainer")
    parser.add_argument("--steps", type=int, default=3, help="steps per measurement")
    parser.add_argument("--method", default="low_prob", choices=["none", "low_prob", "dominate", "ppl"])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    options = parser.parse_args(argv)
    if options.threads:
        torch.set_num_threads(options.threads)
    tokenizer = build_char_tokenizer()
    model = build_tiny_causal_lm("qwen2", options.size, seed=0)
    model.save_pretrained(MODEL_DIR)
    model.config._name_or_path = MODEL_DIR
    batch = _batch(options.batch, options.length, len(tokenizer))
    plain_batch = {k: v for k, v in batch.items() if k != RESPONSE_WEIGHTS_KEY}
    reweighted_batch = batch if options.method == "ppl" else plain_batch
    method = {"reweighting": options.method}
    runs = {  # name: (trainer, batch, with the monitor's work)
        "GRPOTrainer": (_trainer(GRPOTrainer, GRPOConfig, model, tokenizer, {}), plain_batch, False),
        "ReweightedGRPOTrainer": (
            _trainer(ReweightedGRPOTrainer, ReweightedGRPOConfig, model, tokenizer, method),
            reweighted_batch,
            False,
        ),
        "  + Δlog p monitor": (
            _trainer(
                ReweightedGRPOTrainer, ReweightedGRPOConfig, model, tokenizer, {**method, "delta_logp_monitor": True}
            ),
            reweighted_batch,
            True,
        ),
    }
    for trainer, inputs, monitor in runs.values():  # warm-up
        _time_steps(trainer, inputs, 2, monitor)
    times = {name: [] for name in runs}
    for _ in range(options.repeats):
        for name, (trainer, inputs, monitor) in runs.items():
            times[name].append(_time_steps(trainer, inputs, options.steps, monitor))
    medians = {name: statistics.median(values) for name, values in times.items()}
    plain = times["GRPOTrainer"]
    result = {
        "plain_ms": 1000 * medians["GRPOTrainer"],
        "reweighted_ms": 1000 * medians["ReweightedGRPOTrainer"],
        "monitor_ms": 1000 * medians["  + Δlog p monitor"],
        "ratio_of_medians": medians["ReweightedGRPOTrainer"] / medians["GRPOTrainer"],
        "median_paired_ratio": statistics.median(
            r / p for r, p in zip(times["ReweightedGRPOTrainer"], plain, strict=True)
        ),
        "monitor_ratio_of_medians": medians["  + Δlog p monitor"] / medians["GRPOTrainer"],
    }
    print(
        f"model={options.size} batch={options.batch}x{options.length} method={options.method} "
        f"threads={torch.get_num_threads()} repeats={options.repeats}x{options.steps} steps"
    )
    for name, median in medians.items():
        print(f"{name:<24}{1000 * median:8.2f} ms/step (median), {median / medians['GRPOTrainer']:.3f}x GRPOTrainer")
    print(
        f"ratio of medians {result['ratio_of_medians']:.3f}, median of paired ratios "
        f"{result['median_paired_ratio']:.3f} (target <= 1.02); the monitor row is reported separately"
    )
    return result


if __name__ == "__main__":
    main()
