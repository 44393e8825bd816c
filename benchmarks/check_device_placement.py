"""Device placement of a model pair on a GPU machine: each model on its own device, or both spread by `device_map`.

Checks, on tiny random Llama models saved to a temporary folder (nothing downloaded):

1. generator on `cuda:0`, other model on the CPU (and on `cuda:1` when there are two GPUs): per-token and block-verified
   extrapolation run, the sequences come back on the generator's device, and they equal the run with both models
   on `cuda:0` (greedy decoding, so the comparison is exact up to float noise of the devices);
2. `load_model_pair(..., device_map="auto")` and `device_map={"": "cpu"}` load, and a small `replacement_sweep` runs
   on the placed pair;
3. a pair with layers offloaded to disk is refused before any generation, naming the model.

Usage: `python benchmarks/check_device_placement.py` (about a minute on one GPU; `--cpu` dry-runs the script). Prints one line per check and
exits non-zero on the first failure.
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from hf_dlp.extrapolation import ExtrapolationConfig, generate_with_extrapolation
from hf_dlp.model_pair import check_pair_devices, load_model_pair
from hf_dlp.sweeps import replacement_sweep
from hf_dlp.toy import build_char_tokenizer, make_arithmetic_dataset


def tiny_llama(seed: int) -> LlamaForCausalLM:
    tokenizer = build_char_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id)  # fmt: skip
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


def extrapolate(generator, other, block_size):
    tokenizer = build_char_tokenizer()
    batch = tokenizer(["Q: 1+2?\nA: ", "Q: 13+4?\nA: "], return_tensors="pt", padding=True).to(generator.device)
    config = ExtrapolationConfig(gamma=0.3, selection="delta_logp", tau=-0.05, block_size=block_size)
    return generate_with_extrapolation(generator, base_model=other, config=config, tokenizer=tokenizer,
                                       input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                                       do_sample=False, max_new_tokens=12, min_new_tokens=12)  # fmt: skip


def check_split_devices(gpu: str) -> None:
    rl, base = tiny_llama(1), tiny_llama(2)
    placements = [(gpu, "cpu")] + ([(gpu, "cuda:1")] if torch.cuda.device_count() > 1 else [])
    for block_size in (None, 8):
        reference = extrapolate(rl.to(gpu), base.to(gpu), block_size)
        for rl_device, base_device in placements:
            out = extrapolate(rl.to(rl_device), base.to(base_device), block_size)
            assert out.device == torch.device(rl_device), out.device
            assert torch.equal(out.cpu(), reference.cpu()), (rl_device, base_device, block_size)
            print(f"ok: generator {rl_device}, other {base_device}, block_size={block_size}: same tokens")


def check_device_map(folder: str) -> None:
    for device_map in ("auto", {"": "cpu"}):
        base, rl, tokenizer = load_model_pair(
            base_model=folder + "/base", rl_model=folder + "/rl", dtype="float32", device_map=device_map
        )
        result = replacement_sweep(base_model=base, rl_model=rl, tokenizer=tokenizer,
                                   dataset=make_arithmetic_dataset(num_examples=2), selections=["random"],
                                   taus={"random": [0.5]}, num_samples=2, max_new_tokens=6, progress=False)  # fmt: skip
        print(f"ok: device_map={device_map!r} -> {base.device}/{rl.device}; sweep row {result.rows[0].avg_at_k}")


def check_disk_offload_refused() -> None:
    base, rl = tiny_llama(1), tiny_llama(2)
    rl.hf_device_map = {"model.embed_tokens": 0, "model.layers": "disk"}
    try:
        check_pair_devices(base_model=base, rl_model=rl)
    except ValueError as error:
        assert "`rl_model` has layers offloaded to disk" in str(error)
        print("ok: disk offload refused before generation")
    else:
        raise AssertionError("a disk-offloaded model was accepted")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="Dry run of the script on the CPU only (no GPU check).")
    cpu = parser.parse_args().cpu
    if not cpu and not torch.cuda.is_available():
        raise SystemExit("This check needs a CUDA GPU (or `--cpu` for a dry run of the script).")
    with tempfile.TemporaryDirectory() as folder:
        for name, seed in (("base", 2), ("rl", 1)):
            tiny_llama(seed).save_pretrained(f"{folder}/{name}")
            build_char_tokenizer().save_pretrained(f"{folder}/{name}")
        check_split_devices("cpu" if cpu else "cuda:0")
        check_device_map(folder)
    check_disk_offload_refused()
    print("all device placement checks passed")


if __name__ == "__main__":
    main()
