"""How far apart CPU kernel choices put the toy base model: train it for a few steps under each setting, each in a
fresh process, and print the largest weight difference from the reference setting.

    python benchmarks/check_cpu_kernels.py --steps 60

Settings (each a fresh process; "pinned" is `hf_dlp.cpu_kernels.PINNED_KERNELS`):
- unpinned: the CPU's own kernels (AVX-512 here) with 1 or 2 threads, ATen's AVX2 kernels, MKL's other code paths;
- pinned: 1 or 2 threads, oneDNN on or off.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from hf_dlp.cpu_kernels import PINNED_KERNELS

TRAIN = """
import sys, torch
torch.set_num_threads(int(sys.argv[1]))
torch.backends.mkldnn.enabled = sys.argv[2] == "on"
from hf_dlp.toy import BaseModelSettings
from hf_dlp.toy.base_model import train_toy_base_model
model, _ = train_toy_base_model(BaseModelSettings(max_steps=int(sys.argv[3])), progress=False)
torch.save(model.state_dict(), sys.argv[4])
"""

PINNED = PINNED_KERNELS
SETTINGS = {  # name: (environment, threads, oneDNN)
    "own kernels, 1 thread (reference of the unpinned rows)": ({}, 1, "on"),
    "own kernels, 2 threads": ({}, 2, "on"),
    "ATen AVX2 kernels": ({"ATEN_CPU_CAPABILITY": "avx2"}, 1, "on"),
    "MKL_ENABLE_INSTRUCTIONS=AVX2": ({"MKL_ENABLE_INSTRUCTIONS": "AVX2"}, 1, "on"),
    "MKL_CBWR=COMPATIBLE": ({"MKL_CBWR": "COMPATIBLE"}, 1, "on"),
    "pinned, 1 thread (reference of the pinned rows)": (PINNED, 1, "on"),
    "pinned, 2 threads": (PINNED, 2, "on"),
    "pinned, oneDNN off": (PINNED, 1, "off"),
}


def _train(folder: Path, name: str, environment: dict, threads: int, mkldnn: str, steps: int) -> Path:
    import hf_dlp

    path = folder / f"{abs(hash(name))}.pt"
    env = {key: value for key, value in os.environ.items() if key not in {*PINNED, "MKL_ENABLE_INSTRUCTIONS"}}
    env["PYTHONPATH"] = str(Path(hf_dlp.__file__).resolve().parent.parent)
    subprocess.run(
        [sys.executable, "-c", TRAIN, str(threads), mkldnn, str(steps), str(path)],
        env={**env, **environment}, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return path


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="optimizer steps of the toy base model")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args()
    rows, reference = [], None
    with tempfile.TemporaryDirectory() as folder:
        for name, (environment, threads, mkldnn) in SETTINGS.items():
            state = torch.load(_train(Path(folder), name, environment, threads, mkldnn, args.steps))
            if "reference" in name:
                reference = state
            difference = max((state[key] - reference[key]).abs().max().item() for key in state)
            rows.append({"setting": name, "max_abs_weight_difference": difference})
            print(f"{name:58s} {difference:.3g}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"steps": args.steps, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
