"""Cost and memory of `compute_token_metrics` against two plain forward passes of the same models on the same batch.

Targets (issue 3): the whole metric pass costs at most 1.15x the two plain forwards, and its peak memory does not grow
with vocabulary x length beyond one chunk. Everything is measured side by side in one run (median of `--repeats`).

The "plain" baseline is what a naive analysis does first: `base(...).logits` and `rl(...).logits`, both kept. The
metric pass is timed scoring the second half of every row (the response; `--completion_share`), and scoring every
token (its worst case).

Peak memory is the extra memory allocated during each call: `torch.cuda.max_memory_allocated` on CUDA; on CPU, the
peak of live tensor storage seen by a `TorchDispatchMode` tracker (tracemalloc does not see torch's allocator).

Examples:

    python benchmarks/bench_analysis.py                                   # toy micro models, CPU
    python benchmarks/bench_analysis.py --vocab_size 32768 --length 512   # padded, realistic vocabulary
    python benchmarks/bench_analysis.py --device cuda --dtype bfloat16 --size small --vocab_size 152064 \
        --batch_size 8 --length 2048
"""

from __future__ import annotations

import argparse
import statistics
import time
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from hf_dlp.analysis import compute_token_metrics
from hf_dlp.toy import TINY_SIZES, build_tiny_causal_lm

# Larger random models than the toy sizes, same layout (hidden, layers, heads, kv heads, intermediate): the cost ratio
# depends on hidden size x vocabulary, so the toy sizes (hidden 32-128) overstate the per-vocabulary work.
BENCH_SIZES: dict[str, tuple[int, int, int, int, int]] = {
    **TINY_SIZES,
    "base": (1024, 8, 16, 4, 2816),
    "large": (2048, 16, 16, 8, 5632),
}


def build_model(arch: str, size: str, vocab_size: int | None, seed: int, max_positions: int):
    if size in TINY_SIZES:
        return build_tiny_causal_lm(
            arch, size, vocab_size=vocab_size, seed=seed, max_position_embeddings=max_positions
        )
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    hidden, layers, heads, kv_heads, intermediate = BENCH_SIZES[size]
    config = (Qwen2Config if arch == "qwen2" else LlamaConfig)(
        vocab_size=vocab_size or 106,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        intermediate_size=intermediate,
        max_position_embeddings=max_positions,
        tie_word_embeddings=False,
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()


class LiveTensorMemory(TorchDispatchMode):
    """Tracks the bytes of tensor storage allocated inside the mode that are still alive, and their peak."""

    def __init__(self, preexisting: set[int] = frozenset()):
        super().__init__()
        self.preexisting = preexisting  # storages alive before (weights, inputs): views of them are not allocations
        self.live: dict[int, list[int]] = {}
        self.current = self.peak = 0

    def _release(self, key: int) -> None:
        entry = self.live.get(key)
        if entry is not None:
            entry[1] -= 1
            if entry[1] == 0:
                self.current -= entry[0]
                del self.live[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(out):
            if isinstance(tensor, torch.Tensor) and tensor.device.type == "cpu":
                storage = tensor.untyped_storage()
                key = storage.data_ptr()
                if key in self.preexisting:
                    continue
                if key in self.live:
                    self.live[key][1] += 1
                else:
                    self.live[key] = [storage.nbytes(), 1]
                    self.current += storage.nbytes()
                    self.peak = max(self.peak, self.current)
                weakref.finalize(tensor, self._release, key)
        return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(cases: dict, device: torch.device, repeats: int) -> dict[str, float]:
    """Median wall time of each case; the cases alternate within every round, so load drifts hit all alike."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for round_index in range(repeats + 1):  # round 0 warms up
        for name, fn in cases.items():
            _sync(device)
            start = time.perf_counter()
            result = fn()
            _sync(device)
            if round_index:
                times[name].append(time.perf_counter() - start)
            del result
    return {name: statistics.median(values) for name, values in times.items()}


def peak_bytes(fn, device: torch.device, preexisting: set[int] = frozenset()) -> int:
    """Extra memory allocated at the peak of one call of `fn` (its result is released afterwards)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        result = fn()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - before
    else:
        with LiveTensorMemory(preexisting) as tracker:
            result = fn()
        peak = tracker.peak
    del result
    return peak


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", default="micro", choices=tuple(BENCH_SIZES))
    parser.add_argument("--arch", default="qwen2", choices=("qwen2", "llama"))
    parser.add_argument("--vocab_size", type=int, default=None, help="Output rows (padding rows past 106).")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--completion_share", type=float, default=0.5)
    parser.add_argument("--chunk_size", type=int, default=None)
    parser.add_argument(
        "--compare_fused",
        action="store_true",
        help="Also time the other chunk path (the reference one on CUDA, the compiled fused one elsewhere).",
    )
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)

    torch.set_grad_enabled(False)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    models = [
        build_model(args.arch, args.size, args.vocab_size, seed, max(512, args.length)).to(device, dtype)
        for seed in (0, 1)
    ]
    base, rl = models
    vocab = base.config.vocab_size
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(6, 106, (args.batch_size, args.length), generator=generator).to(device)
    attention = torch.ones_like(input_ids)
    completion = torch.zeros_like(input_ids)
    completion[:, int(args.length * (1 - args.completion_share)) :] = 1

    def plain():
        with torch.inference_mode():
            return base(input_ids=input_ids, attention_mask=attention).logits, rl(
                input_ids=input_ids, attention_mask=attention
            ).logits

    def metrics(mask, fused=None):
        return lambda: compute_token_metrics(
            base_model=base,
            rl_model=rl,
            input_ids=input_ids,
            attention_mask=attention,
            completion_mask=mask,
            chunk_size=args.chunk_size,
            fused=fused,
        )

    cases = {
        "two plain forwards": plain,
        "metrics (response)": metrics(completion),
        "metrics (all tokens)": metrics(attention),
    }
    if args.compare_fused:  # the other chunk path beside the default one (fused on CUDA, reference elsewhere)
        other = device.type != "cuda"
        cases[f"all, {'fused' if other else 'reference'}"] = metrics(attention, fused=other)
    print(
        f"device={device} dtype={args.dtype} arch={args.arch} size={args.size} vocab={vocab} "
        f"batch={args.batch_size} length={args.length} chunk_size={args.chunk_size or 'auto'} "
        f"repeats={args.repeats} threads={torch.get_num_threads()}"
    )
    seconds = median_seconds(cases, device, args.repeats)
    tensors = [*base.parameters(), *base.buffers(), *rl.parameters(), *rl.buffers(), input_ids, attention, completion]
    preexisting = {tensor.untyped_storage().data_ptr() for tensor in tensors}
    memory = {name: peak_bytes(fn, device, preexisting) for name, fn in cases.items()}
    logits_bytes = args.batch_size * args.length * vocab * torch.finfo(dtype).bits // 8
    print(f"{'case':<22}{'median s':>10}{'time ratio':>12}{'peak MiB':>10}{'mem ratio':>11}")
    for name in cases:
        print(
            f"{name:<22}{seconds[name]:>10.4f}{seconds[name] / seconds['two plain forwards']:>12.3f}"
            f"{memory[name] / 2**20:>10.1f}{memory[name] / memory['two plain forwards']:>11.3f}"
        )
    print(f"(one model's full (B, L, V) logits: {logits_bytes / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
