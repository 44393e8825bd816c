"""Step time of ReweightedGRPOTrainer against plain GRPOTrainer on the same seeded batch (target: ratio <= 1.02).

Both trainers wrap copies of one tiny model and run the loss's forward and backward on the same hand-built batch
(generation is left out: it is identical code in both). Measurements alternate between the trainers, each repeat
times several steps, and the medians are compared side by side.

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
from hf_dlp.training.trainer import PPL_WEIGHTS_KEY  # noqa: E402


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
        PPL_WEIGHTS_KEY: 1.0 + 0.1 * torch.randn(batch, generator=generator),
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


def _time_steps(trainer, batch, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
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
    batch = _batch(options.batch, options.length, len(tokenizer))
    plain = _trainer(GRPOTrainer, GRPOConfig, model, tokenizer, {})
    reweighted = _trainer(
        ReweightedGRPOTrainer, ReweightedGRPOConfig, model, tokenizer, {"reweighting": options.method}
    )
    plain_batch = {k: v for k, v in batch.items() if k != PPL_WEIGHTS_KEY}
    reweighted_batch = batch if options.method == "ppl" else plain_batch
    for trainer, inputs in ((plain, plain_batch), (reweighted, reweighted_batch)):  # warm-up
        _time_steps(trainer, inputs, 2)
    plain_times, reweighted_times, ratios = [], [], []
    for _ in range(options.repeats):
        plain_times.append(_time_steps(plain, plain_batch, options.steps))
        reweighted_times.append(_time_steps(reweighted, reweighted_batch, options.steps))
        ratios.append(reweighted_times[-1] / plain_times[-1])
    result = {
        "plain_ms": 1000 * statistics.median(plain_times),
        "reweighted_ms": 1000 * statistics.median(reweighted_times),
        "ratio_of_medians": statistics.median(reweighted_times) / statistics.median(plain_times),
        "median_paired_ratio": statistics.median(ratios),
    }
    print(
        f"model={options.size} batch={options.batch}x{options.length} method={options.method} "
        f"threads={torch.get_num_threads()} repeats={options.repeats}x{options.steps} steps\n"
        f"GRPOTrainer           {result['plain_ms']:8.2f} ms/step (median)\n"
        f"ReweightedGRPOTrainer {result['reweighted_ms']:8.2f} ms/step (median)\n"
        f"ratio of medians {result['ratio_of_medians']:.3f}, median of paired ratios {result['median_paired_ratio']:.3f} "
        "(target <= 1.02)"
    )
    return result


if __name__ == "__main__":
    main()
