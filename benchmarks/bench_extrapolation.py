"""Speed of extrapolated decoding, measured side by side in one run (median of repeats), printed as ratios.

1. Dense extrapolation (`selection="all"`) vs plain `generate` of the RL model, same batch and lengths
   (target <= 2.0x: two forwards a token).
2. Ours (the default `CachedModelScorer`) vs `NaiveRecomputeScorer`, which re-runs the other model on the whole
   prefix every step, at 512 new tokens (target: ours >= 10x faster).
3. LoRA: plain `generate` of the LoRA model vs the single-weights paths: a second, adapter-disabled call per token,
   and one batched forward of RL and base rows (`one_forward=True`; target <= 1.3x).
4. Block-verified extrapolation (issue 11): selective `delta_logp` at a τ that selects 2-5 % of positions and dense
   greedy at γ = 0.1, for B in {1, 4, 16} and tiny Llama at hidden 256 (4 layers) and 1024 (8 layers): the per-token
   processor and the block path (`block_size=8` and `"auto"`) side by side, as ratios to plain `generate`, with the
   block path's acceptance figures. Targets on CPU: selective <= 1.3x at B = 1, dense <= 1.5x, block faster than
   per-token at every B <= 4.

Usage: `python benchmarks/bench_extrapolation.py [--device cuda] [--quick] [--only blocks]`. Tiny random Llama models,
greedy decoding with `min_new_tokens` so every run generates exactly the same number of tokens.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from hf_dlp.extrapolation import ExtrapolationConfig, NaiveRecomputeScorer, generate_with_extrapolation

# Dense extrapolation (every position), the whole vocabulary: the most work per step.
DENSE = ExtrapolationConfig(gamma=0.5, selection="all", candidate_top_k=None)


def tiny_llama(seed: int, hidden: int, layers: int, device: str, dtype: torch.dtype) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=1024,
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        num_key_value_heads=max(1, hidden // 64),
        max_position_embeddings=4096,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).to(device=device, dtype=dtype).eval()


def timed(fn, repeats: int, device: str) -> float:
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def make_batch(batch: int, prompt_len: int, device: str):
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(3, 1024, (batch, prompt_len), generator=generator)
    mask = torch.ones_like(input_ids)
    mask[0, : prompt_len // 4] = 0  # one left-padded row
    input_ids[0, : prompt_len // 4] = 0
    return input_ids.to(device), mask.to(device)


def bench_dense_and_naive(args, rl, base, input_ids, mask) -> None:
    common = dict(attention_mask=mask, do_sample=False, pad_token_id=0)

    def plain(new):
        return lambda: rl.generate(input_ids, max_new_tokens=new, min_new_tokens=new, **common)

    def ours(new, other=base):
        return lambda: generate_with_extrapolation(
            rl, base_model=other, config=DENSE, input_ids=input_ids, max_new_tokens=new, min_new_tokens=new, **common
        )

    def naive(new):
        return ours(new, other=NaiveRecomputeScorer(base))

    plain(4)(), ours(4)(), naive(4)()  # warm-up
    t_plain = timed(plain(args.new_tokens), args.repeats, args.device)
    t_ours = timed(ours(args.new_tokens), args.repeats, args.device)
    print(
        f"[1] B={args.batch} P={args.prompt_len} T={args.new_tokens}: plain {t_plain:.3f}s, dense extrapolation "
        f"{t_ours:.3f}s -> ratio {t_ours / t_plain:.2f}x (target <= 2.0x)"
    )
    if args.skip_naive:
        return
    t_ours_long = timed(ours(args.naive_tokens), args.naive_repeats, args.device)
    t_naive = timed(naive(args.naive_tokens), args.naive_repeats, args.device)
    print(
        f"[2] T={args.naive_tokens}: ours {t_ours_long:.3f}s, naive full-prefix recompute {t_naive:.3f}s -> ours is "
        f"{t_naive / t_ours_long:.1f}x faster (target >= 10x)"
    )


def bench_lora(args, base, input_ids, mask) -> None:
    from peft import LoraConfig, get_peft_model

    lora = get_peft_model(
        copy.deepcopy(base), LoraConfig(r=16, target_modules=["q_proj", "v_proj", "o_proj"], init_lora_weights=False)
    )
    lora.eval()
    common = dict(
        attention_mask=mask,
        do_sample=False,
        pad_token_id=0,
        max_new_tokens=args.new_tokens,
        min_new_tokens=args.new_tokens,
    )

    def plain():
        return lora.generate(input_ids=input_ids, **common)

    def two_calls():
        return generate_with_extrapolation(lora, config=DENSE, input_ids=input_ids, **common)

    def one_forward():
        return generate_with_extrapolation(lora, config=DENSE, input_ids=input_ids, one_forward=True, **common)

    plain(), two_calls(), one_forward()
    t_plain = timed(plain, args.repeats, args.device)
    t_two = timed(two_calls, args.repeats, args.device)
    t_one = timed(one_forward, args.repeats, args.device)
    print(
        f"[3] LoRA (r=16) T={args.new_tokens}: plain {t_plain:.3f}s, adapter-disabled second call {t_two:.3f}s "
        f"({t_two / t_plain:.2f}x), one batched forward {t_one:.3f}s ({t_one / t_plain:.2f}x; target <= 1.3x)"
    )


def calibrate_tau(rl, base, input_ids, mask, new_tokens: int, share: float = 0.035) -> float:
    """A Δlog p threshold selecting about `share` of the RL model's greedy tokens (the 3.5 % quantile)."""
    out = rl.generate(input_ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                      do_sample=False, pad_token_id=0)  # fmt: skip
    full_mask = torch.cat([mask, torch.ones_like(out[:, input_ids.shape[1] :])], dim=-1)
    positions = (full_mask.cumsum(-1) - 1).clamp(min=0)
    logits = [
        m(out, attention_mask=full_mask, position_ids=positions).logits[:, input_ids.shape[1] - 1 : -1]
        for m in (rl, base)
    ]
    tokens = out[:, input_ids.shape[1] :, None]
    rl_lp, base_lp = (torch.log_softmax(x.float(), dim=-1).gather(-1, tokens) for x in logits)
    return float(torch.quantile((rl_lp - base_lp).flatten(), share))


def selective_config(rl, base, input_ids, mask, new_tokens: int) -> ExtrapolationConfig:
    """`delta_logp` at γ = 0.1 with a τ selecting 2-5 % of the extrapolated run's positions (a few refinements)."""
    share = 0.035
    for _ in range(4):
        tau = calibrate_tau(rl, base, input_ids, mask, new_tokens, share)
        config = ExtrapolationConfig(gamma=0.1, selection="delta_logp", tau=tau)
        _, stats = generate_with_extrapolation(
            rl, base_model=base, config=config, input_ids=input_ids, attention_mask=mask, do_sample=False,
            pad_token_id=0, max_new_tokens=new_tokens, min_new_tokens=new_tokens, return_stats=True,
        )  # fmt: skip
        if 0.02 <= stats.replacement_ratio <= 0.05:
            break
        share = min(0.5, share * 0.035 / max(stats.replacement_ratio, 1e-3))
    return config


def _block_row(args, rl, base, input_ids, mask, config, label) -> str:
    common = dict(attention_mask=mask, do_sample=False, pad_token_id=0, max_new_tokens=args.new_tokens,
                  min_new_tokens=args.new_tokens)  # fmt: skip

    def run(block_size):
        return lambda: generate_with_extrapolation(
            rl, base_model=base, config=config, block_size=block_size, input_ids=input_ids, return_stats=True, **common
        )

    run(None)(), run(8)()  # warm-up
    t_plain = timed(lambda: rl.generate(input_ids, **common), args.repeats, args.device)
    cells, figures = [], []
    for block_size in (None, *args.block_sizes):
        cells.append(timed(run(block_size), args.repeats, args.device) / t_plain)
        _, stats = run(block_size)()
        if block_size is None:
            selected = stats.replacement_ratio
        else:
            figures.append(f"{stats.mean_accepted_block_length:.1f}/{stats.acceptance_rate:.2f}")
    ratios = " | ".join(f"{r:.2f}x" for r in cells)
    return f"| {label} | {args.batch} | {selected:.1%} | {t_plain:.3f}s | {ratios} | {' | '.join(figures)} |"


def bench_blocks(args, dtype) -> None:
    """Table 4: per-token vs block path, ratios to plain `generate` (median of `--repeats`)."""
    sizes = " | ".join(f"block {b}" for b in args.block_sizes)
    print(f"[4] T={args.new_tokens} P={args.prompt_len}; cells: time / plain generate; accept: mean block length / "
          "acceptance rate")  # fmt: skip
    print(
        f"| setting | B | selected | plain | per-token | {sizes} | "
        + " | ".join(f"accept {b}" for b in args.block_sizes)
        + " |"
    )
    print("|---" * (5 + 2 * len(args.block_sizes)) + "|")
    for hidden, layers in args.shapes:
        rl = tiny_llama(1, hidden, layers, args.device, dtype)
        base = tiny_llama(2, hidden, layers, args.device, dtype)
        for batch in args.batches:
            args.batch = batch
            input_ids, mask = make_batch(batch, args.prompt_len, args.device)
            selective = selective_config(rl, base, input_ids, mask, args.new_tokens)
            tau = selective.tau
            dense = ExtrapolationConfig(gamma=0.1, selection="all")
            print(_block_row(args, rl, base, input_ids, mask, selective, f"h{hidden} selective τ={tau:.3f}"))
            print(_block_row(args, rl, base, input_ids, mask, dense, f"h{hidden} dense γ=0.1"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default=None, help="float32 (CPU default) or bfloat16 (CUDA default).")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--prompt_len", type=int, default=128)
    parser.add_argument("--new_tokens", type=int, default=128)
    parser.add_argument("--naive_tokens", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--naive_repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads.")
    parser.add_argument("--quick", action="store_true", help="Smaller settings for a fast check.")
    parser.add_argument("--skip_naive", action="store_true", help="Skip the (slow, quadratic) naive baseline.")
    parser.add_argument("--only", choices=["all", "blocks", "per-token"], default="all", help="Which tables to run.")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16], help="Batch sizes of table 4.")
    parser.add_argument("--block_sizes", nargs="+", default=["8", "auto"], help="Block sizes of table 4.")
    args = parser.parse_args(argv)
    args.block_sizes = [b if b == "auto" else int(b) for b in args.block_sizes]
    args.shapes = [(256, 4), (1024, 8)]
    if args.quick:
        args.new_tokens, args.naive_tokens, args.repeats, args.naive_repeats = 32, 128, 3, 1
        args.prompt_len, args.batches, args.shapes = 32, [1, 4], [(256, 4)]
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.bfloat16 if args.device == "cuda" else torch.float32)
    print(
        f"device={args.device} dtype={dtype} threads={torch.get_num_threads()} torch={torch.__version__} "
        f"llama hidden={args.hidden} layers={args.layers}"
    )
    with torch.inference_mode():
        if args.only in ("all", "per-token"):
            rl = tiny_llama(1, args.hidden, args.layers, args.device, dtype)
            base = tiny_llama(2, args.hidden, args.layers, args.device, dtype)
            input_ids, mask = make_batch(args.batch, args.prompt_len, args.device)
            bench_dense_and_naive(args, rl, base, input_ids, mask)
            bench_lora(args, base, input_ids, mask)
        if args.only in ("all", "blocks"):
            bench_blocks(args, dtype)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
