"""Speed-up of a data parallel sweep: one `replacement_sweep` with 1 process and with N processes, side by side.

Both runs use the same tiny random pair, data and settings; each process runs on one CPU thread (or its own GPU under
`--device cuda`). The time measured is the sweep call alone (between two barriers, models already loaded), the median
of `--repeats` launches per process count; the script prints both medians and the ratio, and checks that the rows
are identical (the results do not depend on the number of processes). On a 2-core machine expect less than 2x: the
processes share the cores with everything else, and every cell ends with a gather.

Usage: `python benchmarks/bench_distributed.py [--num_processes 2] [--repeats 3] [--num_examples 16]
[--max_new_tokens 32] [--size micro]`. Each launch goes through `accelerate launch --config_file
accelerate_configs/multi_cpu.yaml` (gloo; `--config_file accelerate_configs/multi_gpu.yaml` on GPUs).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def worker(args: argparse.Namespace) -> None:
    """One timed sweep in this (possibly launched) process; the main process writes the time and the rows."""
    import time

    import torch

    from hf_dlp.distributed import barrier, default_device, is_main_process, num_processes
    from hf_dlp.sweeps import replacement_sweep
    from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm, make_arithmetic_dataset

    torch.set_num_threads(1)
    device = default_device()
    base = build_tiny_causal_lm(size=args.size, seed=1).to(device).eval()
    rl = build_tiny_causal_lm(size=args.size, seed=2).to(device).eval()
    barrier()
    start = time.perf_counter()
    result = replacement_sweep(base_model=base, rl_model=rl, tokenizer=build_char_tokenizer(),
                               dataset=make_arithmetic_dataset(num_examples=args.num_examples),
                               selections=["delta_logp", "random"], taus={"delta_logp": [-0.5], "random": [0.1]},
                               num_samples=args.num_samples, batch_size=args.batch_size,
                               max_new_tokens=args.max_new_tokens, min_new_tokens=args.max_new_tokens,
                               progress=False)  # fmt: skip
    barrier()
    elapsed = time.perf_counter() - start
    if is_main_process():
        record = {"num_processes": num_processes(), "seconds": elapsed, "rows": [row.to_dict() for row in result.rows]}
        Path(args.worker).write_text(json.dumps(record))


def _launch(args: argparse.Namespace, num_processes: int, out: Path) -> dict:
    options = [f"--{name}={getattr(args, name)}" for name in ("num_examples", "num_samples", "batch_size",
                                                                "max_new_tokens", "size")]  # fmt: skip
    script = [str(Path(__file__).resolve()), "--worker", str(out), *options]
    if num_processes == 1:
        command = [sys.executable, *script]
    else:
        command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", args.config_file,
                   "--num_processes", str(num_processes), "--mixed_precision", "no",
                   "--main_process_port", str(_free_port()), *script]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    subprocess.run(command, env=env, cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--num_processes", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num_examples", type=int, default=16)
    parser.add_argument("--num_samples", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--max_new_tokens", type=int, default=32)
    parser.add_argument("--size", default="micro")
    parser.add_argument("--config_file", default=str(ROOT / "accelerate_configs" / "multi_cpu.yaml"))
    args = parser.parse_args()
    if args.worker is not None:
        return worker(args)
    with tempfile.TemporaryDirectory() as folder:
        runs = {count: [] for count in (1, args.num_processes)}
        for repeat in range(args.repeats):  # interleaved, so a slow spell of the machine hits both
            for count in runs:
                runs[count].append(_launch(args, count, Path(folder) / f"{count}-{repeat}.json"))
    one, many = runs[1], runs[args.num_processes]
    assert all(run["rows"] == one[0]["rows"] for run in one + many), "rows differ between process counts"
    medians = {count: statistics.median(run["seconds"] for run in group) for count, group in runs.items()}
    cells = len(one[0]["rows"]) + 2
    print(f"sweep: {cells} cells x {args.num_examples} problems x {args.num_samples} samples x "
          f"{args.max_new_tokens} tokens, tiny {args.size} models, median of {args.repeats}")  # fmt: skip
    for count, seconds in medians.items():
        print(f"  {count} process{'es' if count > 1 else ''}: {seconds:.2f} s")
    print(f"  speed-up {args.num_processes} vs 1: {medians[1] / medians[args.num_processes]:.2f}x (same rows)")


if __name__ == "__main__":
    main()
