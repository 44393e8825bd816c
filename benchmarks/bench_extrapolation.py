"""Speed of extrapolated decoding, measured side by side in one run (median of repeats), printed as ratios.

1. Dense extrapolation (`selection="all"`) vs plain `generate` of the RL model, same batch and lengths
   (target <= 2.0x: two forwards a token).
2. Ours (the default `CachedModelScorer`) vs `NaiveRecomputeScorer`, which re-runs the other model on the whole
   prefix every step, at 512 new tokens (target: ours >= 10x faster).
3. LoRA: plain `generate` of the LoRA model vs the single-weights paths: a second, adapter-disabled call per token,
   and one batched forward of RL and base rows (`one_forward=True`; target <= 1.3x).
4. Block-verified extrapolation (issues 11, 18): selective `delta_logp` at τ −0.35 and dense at γ = 0.1, for B in
   {1, 4, 8, 16}, per `--shape` (`tiny`: Llama at hidden 256 / 4 layers and 1024 / 8 layers; `qwen2.5-0.5b`,
   `qwen2.5-7b`: those layouts and vocabularies). Random weights, the base's logits scaled to a trained model's
   spread (std 4, a few nats of entropy), the RL side a copy with its final norm perturbed, the perturbation bisected
   so `--selected` of its tokens fall below τ. Per row: plain `generate`, plain `generate` with a static cache
   (compiled on CUDA), the per-token processor, `block_size=8` and `"auto"`, as ratios to plain `generate`, with the
   selected share, "auto" / per-token, the block paths' acceptance, and "bound 8": what block 8 would cost if no
   token were re-drawn (plain `generate` + the other model's prefill and 8-token extends, timed on the same batch).
   `--sampling greedy|paper` (temperature 1.0, top-p 0.7). Targets on CPU: B = 1 selective hidden 1024 <= 1.3x, B = 16 selective <= 1.4x, auto / per-token
   <= 1.05 at every B.
5. `--distribution_rows N`: dense sampling's output distribution on the block path against the per-token path in the
   run's dtype (bf16 on CUDA), as token-histogram distances beside the sampling noise.

Usage: `python benchmarks/bench_extrapolation.py [--device cuda] [--quick] [--only blocks] [--shape ...] [--json F]`.
Every run generates exactly the same number of tokens (`min_new_tokens`).
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


def run_timed(fn, device: str):
    """`(fn(), seconds)`, the device's queued work included."""
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def timed(fn, repeats: int, device: str, results: list | None = None) -> float:
    """Median wall time of `repeats` calls; the last call's result is appended to `results` when given."""
    medians, _, last = timed_side_by_side({"fn": fn}, repeats, device)
    if results is not None:
        results.append(last["fn"])
    return medians["fn"]


def timed_side_by_side(fns: dict, repeats: int, device: str) -> tuple[dict[str, float], dict[str, list[float]], dict]:
    """Each repeat runs every function once, in an order rotated by one per repeat, so a slow phase of a shared
    machine hits all of them alike. Returns each function's median seconds, its per-repeat seconds and its last
    result."""
    names, times, results = list(fns), {name: [] for name in fns}, {}
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            results[name], seconds = run_timed(fns[name], device)
            times[name].append(seconds)
    return {name: statistics.median(t) for name, t in times.items()}, times, results


def paired_ratio(times: dict[str, list[float]], name: str, baseline: str) -> float:
    """The median over repeats of `name`'s time / `baseline`'s time in the same repeat."""
    return statistics.median(a / b for a, b in zip(times[name], times[baseline], strict=True))


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


# --- table 4: block-verified extrapolation (issues 11 and 18) ---------------------------------------------------------
# Model layouts: tiny Llama (two sizes, 1,024 ids), and Qwen2.5-0.5B / -7B layouts with their vocabularies.
SHAPES = {
    "tiny": [
        dict(arch="llama", hidden=256, layers=4, heads=4, kv_heads=4, intermediate=1024, vocab=1024, tied=False),
        dict(arch="llama", hidden=1024, layers=8, heads=16, kv_heads=16, intermediate=4096, vocab=1024, tied=False),
    ],
    "qwen2.5-0.5b": [
        dict(arch="qwen2", hidden=896, layers=24, heads=14, kv_heads=2, intermediate=4864, vocab=151936, tied=True)
    ],
    "qwen2.5-7b": [
        dict(arch="qwen2", hidden=3584, layers=28, heads=28, kv_heads=4, intermediate=18944, vocab=152064, tied=False)
    ],
}
SAMPLING = {"greedy": dict(do_sample=False), "paper": dict(do_sample=True, temperature=1.0, top_p=0.7)}
TAU = -0.35  # the paper's Δlog p threshold; the RL side's perturbation is calibrated to select `--selected` at it
LOGIT_STD = 4.0  # random models are flat; trained models' logits have a std of about 4 (a few nats of entropy)


def build_model(shape: dict, seed: int, device: str, dtype: torch.dtype):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    common = dict(
        vocab_size=shape["vocab"],
        hidden_size=shape["hidden"],
        intermediate_size=shape["intermediate"],
        num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"],
        num_key_value_heads=shape["kv_heads"],
        max_position_embeddings=4096,
        tie_word_embeddings=shape["tied"],
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )
    config_class, model_class = (LlamaConfig, LlamaForCausalLM) if shape["arch"] == "llama" else (Qwen2Config,
                                                                                                   Qwen2ForCausalLM)  # fmt: skip
    torch.manual_seed(seed)
    with torch.device(device):
        model = model_class(config_class(**common)).to(dtype=dtype).eval()
    return model


@torch.inference_mode()
def peaked_pair(shape: dict, args, dtype: torch.dtype, input_ids, mask):
    """(RL, base): a random base with logits scaled to std `LOGIT_STD` (its final norm), and the RL side a copy whose
    final norm is perturbed by `eps` · N(0, 1), `eps` bisected so `--selected` of the RL model's tokens (sampled as the
    table samples) have Δlog p <= τ. Returns the pair, the share reached and the base's mean entropy (nats)."""
    base = build_model(shape, 2, args.device, dtype)
    logits = base(input_ids, attention_mask=mask).logits.float()
    base.model.norm.weight.mul_(LOGIT_STD / logits.std().item())
    rl = copy.deepcopy(base)
    noise = torch.randn(rl.model.norm.weight.shape, generator=torch.Generator().manual_seed(7)).to(args.device, dtype)
    original = rl.model.norm.weight.clone()

    # Δlog p of the RL model's own tokens is not monotone in eps (a strongly moved model prefers tokens the base also
    # finds unlikely, so Δ > 0): scan eps upwards until the share is reached, then bisect between the last two.
    def share_at(eps: float) -> float:
        rl.model.norm.weight.copy_(original * (1 + eps * noise))
        return selected_share(rl, base, input_ids, mask, args)

    low, high, share = 0.0, 1e-3, 0.0
    while high < 2.0:
        share = share_at(high)
        if share >= args.selected:
            break
        low, high = high, high * 1.5
    for _ in range(args.calibration_steps):
        if abs(share - args.selected) <= 0.25 * args.selected:
            break
        eps = (low + high) / 2
        share = share_at(eps)
        low, high = (eps, high) if share < args.selected else (low, eps)
    else:
        share = share_at(high)
    log_probs = torch.log_softmax(base(input_ids, attention_mask=mask).logits.float()[:, -8:], dim=-1)
    entropy = float(-(log_probs.exp() * log_probs).sum(-1).mean())
    return rl, base, share, entropy


def selected_share(rl, base, input_ids, mask, args) -> float:
    """The share of the RL model's tokens (sampled as the table samples, `--new_tokens` of them) with Δlog p <= τ."""
    torch.manual_seed(0)
    new = getattr(args, "new_tokens", 64)
    out = rl.generate(input_ids, attention_mask=mask, max_new_tokens=new, suppress_tokens=[1], pad_token_id=0,
                      **SAMPLING[args.sampling])  # fmt: skip
    full_mask = torch.cat([mask, torch.ones_like(out[:, input_ids.shape[1] :])], dim=-1)
    positions = (full_mask.cumsum(-1) - 1).clamp(min=0)
    tokens = out[:, input_ids.shape[1] :, None]
    rl_lp, base_lp = (
        torch.log_softmax(m(out, attention_mask=full_mask, position_ids=positions).logits[:, input_ids.shape[1] - 1 : -1]
                          .float(), dim=-1).gather(-1, tokens)
        for m in (rl, base)
    )  # fmt: skip
    return float(((rl_lp - base_lp) <= TAU).float().mean())


def make_prompts(batch: int, prompt_len: int, vocab: int, device: str):
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(3, vocab, (batch, prompt_len), generator=generator)
    mask = torch.ones_like(input_ids)
    mask[0, : prompt_len // 4] = 0  # one left-padded row
    input_ids[0, : prompt_len // 4] = 0
    return input_ids.to(device), mask.to(device)


def block_cell(args, rl, base, input_ids, mask, config: ExtrapolationConfig) -> dict:
    """One row: plain `generate` (eager and static/compiled), per-token, block 8 and "auto", timed side by side."""
    # EOS suppressed (a processor that reads no ids), so every path generates exactly `--new_tokens` tokens
    common = dict(attention_mask=mask, pad_token_id=0, max_new_tokens=args.new_tokens, suppress_tokens=[1],
                  **SAMPLING[args.sampling])  # fmt: skip

    def run(block_size):
        return lambda: generate_with_extrapolation(
            rl, base_model=base, config=config, block_size=block_size, input_ids=input_ids, return_stats=True, **common
        )

    def plain():
        return rl.generate(input_ids, **common)

    def static():
        return rl.generate(input_ids, cache_implementation="static", **common, **args.static_kwargs)

    paths = {"per-token": run(None), **{f"block {b}": run(b) for b in args.block_sizes}}
    for fn in (plain, *paths.values()):
        fn()  # warm-up
    if args.static_baseline:
        static()  # compiles on CUDA
    # side by side: every repeat runs every path (rotated order); a ratio is the median of per-repeat ratios
    fns = {"plain": plain, **({"static": static} if args.static_baseline else {}), **paths}
    medians, times, last = timed_side_by_side(fns, args.repeats, args.device)
    cell = {"plain_s": medians["plain"]}
    if args.static_baseline:
        cell["static_ratio"] = paired_ratio(times, "static", "plain")
    outputs = {}
    for name in paths:
        cell[f"{name}_ratio"] = paired_ratio(times, name, "plain")
        outputs[name], stats = last[name]
        if name == "per-token":  # how the re-draws spread over the rows: the batch waits for its slowest row
            shares = [k / max(n, 1) for k, n in zip(stats.num_selected, stats.num_generated, strict=True)]
            cell["row_selected_max"] = max(shares)
        cell[f"{name}_stats"] = {k: stats.to_dict()[k] for k in ("replacement_ratio", "acceptance_rate",
                                 "mean_accepted_block_length", "num_blocks", "fell_back")}  # fmt: skip
    # Greedy: the share of generated tokens each block path shares with the per-token path (1.0 in float32; bf16
    # rounds a k-token verify forward differently from k one-token forwards).
    new = slice(input_ids.shape[1], None)
    for name in paths:
        cell[f"{name}_agreement"] = float((outputs[name][:, new] == outputs["per-token"][:, new]).float().mean())
    cell["selected"] = cell["per-token_stats"]["replacement_ratio"]
    cell["bound_ratio"] = block_bound(args, base, input_ids, mask, cell["plain_s"])
    if "block auto_ratio" in cell:
        cell["auto_over_per_token"] = paired_ratio(times, "block auto", "per-token")
    return cell


BOUND_BLOCK = 8


@torch.inference_mode()
def block_bound(args, other, input_ids, mask, plain_s: float) -> float:
    """The time / plain `generate` the block path would take if no token were ever re-drawn: plain `generate` plus
    the other model's prompt prefill plus one `BOUND_BLOCK`-token extend per block, each timed here on this batch
    (median of `--repeats`). What the hardware allows a block path of that size; the table's block columns sit
    above it by the re-draws and the per-block work."""
    from transformers import DynamicCache

    def prefill():
        cache = DynamicCache(config=other.config)
        other(input_ids, attention_mask=mask, cache=cache)
        return cache

    ids = torch.randint(3, other.config.vocab_size, (input_ids.shape[0], BOUND_BLOCK), device=input_ids.device)
    extend_mask = torch.cat([mask, torch.ones_like(ids)], dim=-1)
    prefill_s, extend_s = [], []
    for _ in range(args.repeats):
        cache, seconds = run_timed(prefill, args.device)
        prefill_s.append(seconds)
        extend_s.append(run_timed(lambda c=cache: other(ids, attention_mask=extend_mask, cache=c), args.device)[1])
    blocks = -(-args.new_tokens // BOUND_BLOCK)
    return (plain_s + statistics.median(prefill_s) + blocks * statistics.median(extend_s)) / plain_s


def format_row(cell: dict, args) -> str:
    ratios = " | ".join(f"{cell[f'{name}_ratio']:.2f}x" for name in ["per-token", *(f"block {b}" for b in
                        args.block_sizes)])  # fmt: skip
    accept = " | ".join(
        "{:.1f}/{:.2f}{}".format(
            st["mean_accepted_block_length"], st["acceptance_rate"], " fb" if st["fell_back"] else ""
        )
        for st in (cell[f"block {b}_stats"] for b in args.block_sizes)
    )
    static = f"{cell['static_ratio']:.2f}x" if "static_ratio" in cell else "-"
    auto = f"{cell['auto_over_per_token']:.2f}" if "auto_over_per_token" in cell else "-"
    agree = " | ".join(f"{cell[f'block {b}_agreement']:.0%}" if args.sampling == "greedy" else "-"
                       for b in args.block_sizes)  # fmt: skip
    return (f"| {cell['setting']} | {cell['batch']} | {cell['selected']:.1%} ({cell['row_selected_max']:.0%}) | "
            f"{cell['plain_s']:.3f}s | {static} | "
            f"{cell['bound_ratio']:.2f}x | "
            f"{ratios} | {auto} | {accept} | {agree} |")  # fmt: skip


def bench_blocks(args, dtype) -> None:
    """Table 4: per-token vs block path, ratios to plain `generate` (median over `--repeats` of the ratio within a
    repeat, the paths interleaved), JSON after every cell."""
    names = ["per-token", *(f"block {b}" for b in args.block_sizes)]
    print(f"[4] shape={args.shape} sampling={args.sampling} T={args.new_tokens} P={args.prompt_len}; cells: time / "
          "plain generate; static: plain generate with a static cache (compiled on CUDA); bound 8: block 8 if no token "
          "were re-drawn (the other model's prefill and 8-token extends, timed); auto/pt: block auto / "
          "per-token; accept: mean block length / acceptance rate (fb: auto fell back to one token per step); "
          "same: greedy tokens equal to the per-token path's")  # fmt: skip
    print(f"| setting | B | selected (max row) | plain | static | bound {BOUND_BLOCK} | {' | '.join(names)} | auto/pt | "
          + " | ".join(f"accept {b}" for b in args.block_sizes) + " | "
          + " | ".join(f"same {b}" for b in args.block_sizes) + " |")  # fmt: skip
    print("|---" * (8 + 3 * len(args.block_sizes)) + "|")
    cells = []
    for shape in SHAPES[args.shape]:
        for batch in args.batches:
            input_ids, mask = make_prompts(batch, args.prompt_len, shape["vocab"], args.device)
            rl, base, share, entropy = peaked_pair(shape, args, dtype, input_ids, mask)
            for rule in args.rules:
                config = (ExtrapolationConfig(gamma=0.1, selection="delta_logp", tau=TAU) if rule == "selective"
                          else ExtrapolationConfig(gamma=0.1, selection="all"))  # fmt: skip
                cell = block_cell(args, rl, base, input_ids, mask, config)
                label = f"h{shape['hidden']} {rule}" + (f" τ={TAU}" if rule == "selective" else " γ=0.1")
                cell.update(setting=label, batch=batch, shape=args.shape, hidden=shape["hidden"], rule=rule,
                            sampling=args.sampling, calibrated_share=share, base_entropy=entropy)  # fmt: skip
                cells.append(cell)
                print(format_row(cell, args), flush=True)
                if args.json:
                    write_json(args, cells)
            del rl, base
            if args.device == "cuda":
                torch.cuda.empty_cache()


def histogram_distance(a: torch.Tensor, b: torch.Tensor, vocab: int) -> float:
    """Total variation distance between the token histograms of two `(rows, positions)` samples, mean over positions."""
    distances = []
    for position in range(a.shape[1]):
        p = torch.bincount(a[:, position].cpu(), minlength=vocab).double() / a.shape[0]
        q = torch.bincount(b[:, position].cpu(), minlength=vocab).double() / b.shape[0]
        distances.append(0.5 * float((p - q).abs().sum()))
    return statistics.mean(distances)


@torch.inference_mode()
def bench_distribution(args, dtype) -> None:
    """Table 5: dense sampling's output distribution on the block path (speculative sampling) against the per-token
    path, in `dtype`: one prompt repeated `--distribution_rows` times, the paper's sampling, `--distribution_tokens`
    new tokens; total variation distance of each position's token histogram (mean over positions), beside the
    distance between two per-token runs with other seeds (the sampling noise). Close to that noise: the distribution
    is still right."""
    shape = SHAPES[args.shape][0]
    rows, new_tokens = args.distribution_rows, args.distribution_tokens
    prompt, mask = make_prompts(1, args.prompt_len, shape["vocab"], args.device)
    rl, base, _, _ = peaked_pair(shape, args, dtype, prompt, mask)
    input_ids, mask = prompt[-1:].expand(rows, -1).contiguous(), torch.ones(rows, prompt.shape[1], dtype=torch.long,
                                                                            device=args.device)  # fmt: skip
    common = dict(attention_mask=mask, pad_token_id=0, max_new_tokens=new_tokens, suppress_tokens=[1],
                  **SAMPLING["paper"])  # fmt: skip
    config = ExtrapolationConfig(gamma=0.1, selection="all")

    def sample(seed: int, block_size):
        torch.manual_seed(seed)
        out = generate_with_extrapolation(rl, base_model=base, config=config, block_size=block_size,
                                          input_ids=input_ids, **common)  # fmt: skip
        return out[:, input_ids.shape[1] :]

    reference = sample(0, None)
    noise = histogram_distance(reference, sample(1, None), shape["vocab"])
    print(f"[5] dense sampling (paper settings), {rows} rows x {new_tokens} tokens, {dtype}: TV distance of the "
          "token histograms to the per-token path's (mean over positions)")  # fmt: skip
    print("| path | TV to per-token | per-token vs per-token (noise) |")
    print("|---|---|---|")
    result = {"rows": rows, "tokens": new_tokens, "dtype": str(dtype), "noise": noise}
    for block_size in args.block_sizes:
        distance = histogram_distance(reference, sample(2, block_size), shape["vocab"])
        result[f"block {block_size}"] = distance
        print(f"| block {block_size} | {distance:.3f} | {noise:.3f} |", flush=True)
    if args.json:
        import json
        from pathlib import Path

        path = Path(args.json).with_name(Path(args.json).stem + "_distribution.json")
        path.write_text(json.dumps(result, indent=2) + "\n")


def write_json(args, cells: list[dict]) -> None:
    import json
    from pathlib import Path

    settings = {k: v for k, v in vars(args).items() if k not in ("static_kwargs",) and not k.startswith("_")}
    Path(args.json).write_text(json.dumps({"settings": settings, "cells": cells}, indent=2, default=str) + "\n")


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
    parser.add_argument(
        "--only",
        choices=["all", "blocks", "per-token", "distribution"],
        default="all",
        help="Which tables to run (table 5 also needs --distribution_rows).",
    )
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8, 16], help="Batch sizes of table 4.")
    parser.add_argument("--block_sizes", nargs="+", default=["8", "auto"], help="Block sizes of table 4.")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny", help="Model layouts of table 4 (random "
                        "weights, peaked logits, RL side a calibrated perturbation).")  # fmt: skip
    parser.add_argument("--hiddens", type=int, nargs="+", default=None, help="Only these hidden sizes of --shape.")
    parser.add_argument("--sampling", choices=sorted(SAMPLING), default="greedy",
                        help="greedy, or the paper's sampling (temperature 1.0, top-p 0.7).")  # fmt: skip
    parser.add_argument("--rules", nargs="+", choices=["selective", "dense"], default=["selective", "dense"])
    parser.add_argument(
        "--selected",
        type=float,
        default=None,
        help="Share of tokens delta_logp selects at τ -0.35 (default 0.04 tiny, 0.07 Qwen layouts).",
    )
    parser.add_argument("--calibration_steps", type=int, default=8, help="Bisection steps of the RL perturbation.")
    parser.add_argument(
        "--static_baseline",
        choices=["auto", "on", "off"],
        default="auto",
        help="Plain generate with cache_implementation='static' (compiled on CUDA); auto: CUDA only.",
    )
    parser.add_argument(
        "--distribution_rows",
        type=int,
        default=0,
        help="Table 5 (dense sampling's distribution, block vs per-token) with this many rows; 0: off.",
    )
    parser.add_argument("--distribution_tokens", type=int, default=4, help="New tokens per row in table 5.")
    parser.add_argument("--json", default=None, help="Write table 4 as JSON here (after every cell).")
    args = parser.parse_args(argv)
    args.block_sizes = [b if b == "auto" else int(b) for b in args.block_sizes]
    if args.selected is None:
        args.selected = 0.04 if args.shape == "tiny" else 0.07
    if args.hiddens:
        SHAPES[args.shape] = [s for s in SHAPES[args.shape] if s["hidden"] in args.hiddens]
    if args.quick:
        args.new_tokens, args.naive_tokens, args.repeats, args.naive_repeats = 32, 128, 3, 1
        args.prompt_len, args.batches = 32, [1, 4]
        SHAPES["tiny"] = SHAPES["tiny"][:1]
    args.static_baseline = args.static_baseline == "on" or (args.static_baseline == "auto" and args.device == "cuda")
    args.static_kwargs = {}
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
        if args.distribution_rows and args.only in ("all", "distribution"):
            bench_distribution(args, dtype)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
