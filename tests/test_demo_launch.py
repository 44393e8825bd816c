"""The demo under `accelerate launch` with 2 CPU processes (gloo): its evaluation, analysis and sweeps are shared
between the processes and give exactly the numbers of one process.

Training under a launcher is data-parallel GRPO (each process draws its own rollouts), so it is not expected to
match one process. The test therefore trains once in one process, then reruns the same demo with two processes after
removing the records of the non-training stages: the training stages are reused, the others are recomputed by two
processes, and their results must equal the one-process run's, value for value.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ["demo", "--quick", "--seed", "7"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rounded(value, decimals: int = 4):
    """`value` with every float rounded: the swaps' recorded Δlog p come from one-token or k-token forwards, whichever
    `block_size="auto"` timed faster in that process, and the two round differently in the last bits (the tokens,
    the selections and every accuracy are exact either way, and compared exactly before rounding matters)."""
    if isinstance(value, float):
        return round(value, decimals)
    if isinstance(value, dict):
        return {key: _rounded(item, decimals) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item, decimals) for item in value]
    return value


def _run(command: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]


def test_two_processes_reproduce_the_demos_shared_stages(tmp_path):
    single, double = tmp_path / "one", tmp_path / "two"
    _run([sys.executable, "-m", "hf_dlp.cli", *DEMO, "--output_dir", str(single)])
    shutil.copytree(single, double)
    for record in (double / "stages").glob("*.json"):
        if not record.name.startswith("train__"):
            record.unlink()
    for folder in ("analysis", "replacement", "extrapolation_rl", "extrapolation_base"):
        shutil.rmtree(double / folder)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
              str(ROOT / "accelerate_configs" / "multi_cpu.yaml"), "--num_processes", "2",
              "--main_process_port", str(_free_port()), "-m", "hf_dlp.cli"]  # fmt: skip
    _run([*launch, *DEMO, "--output_dir", str(double)])

    one, two = (json.loads((folder / "results.json").read_text()) for folder in (single, double))
    assert sorted(two["reused_stages"]) == sorted(name for name in one["stage_seconds"] if name.startswith("train/"))
    assert two["evaluation"] == one["evaluation"] and two["analysis"] == one["analysis"]
    sweeps = [(one["replacement"], two["replacement"])]
    sweeps += [(one["extrapolation"][role], two["extrapolation"][role]) for role in ("rl", "base")]
    for first, second in sweeps:  # the settings name the models' folders, which differ between the two runs
        assert second["references"] == first["references"]
        assert _rounded(second["rows"]) == _rounded(first["rows"])
    assert (double / "report.md").exists() and (double / "analysis" / "analysis.json").exists()
