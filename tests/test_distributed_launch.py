"""Real 2-process CPU runs (gloo) of `hf-dlp analyze`, an evaluation and the sweep CLIs, against one process.

The worker runs `hf-dlp analyze` (sampling from both models, then scoring), `evaluate_model` (the main process saves
the result) and a small `hf-dlp replace` sweep, each writing into its own folder. Work is shared by fixed batches
seeded by their index, so two processes sample the same completions and score the same batches as one: the output
files must be identical, numbers included (exact equality, not a tolerance). `torchrun` runs `hf-dlp extrapolate`
and must match the one-process run of the same command, and a rerun of it on one process reuses every cell.

This file is also the worker: `python tests/test_distributed_launch.py OUT_DIR BASE_DIR RL_DIR`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _analyze_args(out: Path, base: str, rl: str) -> list[str]:
    return ["analyze", "--base_model", base, "--rl_model", rl, "--dataset", "toy:easy", "--max_examples", "3",
            "--num_samples", "2", "--max_new_tokens", "5", "--generation_batch_size", "2", "--batch_size", "3",
            "--no_plots", "--output_dir", str(out / "analyze")]  # fmt: skip


def _sweep_args(command: str, out: Path, base: str, rl: str) -> list[str]:
    grid = (["--selections", "random", "--taus", "random=0,0.5"] if command == "replace"
            else ["--gammas", "0.0", "0.5", "--taus", "-0.2"])  # fmt: skip
    return [command, "--base_model", base, "--rl_model", rl, "--dataset", "toy", "--num_examples", "3",
            "--num_samples", "2", "--max_new_tokens", "4", "--batch_size", "2", "--no_progress",
            "--output_dir", str(out / command), *grid]  # fmt: skip


def _worker(out_dir: str, base_dir: str, rl_dir: str) -> None:
    """`hf-dlp analyze`, an evaluation and `hf-dlp replace`, in whatever launched environment this runs in."""
    import torch
    from accelerate.utils import gather_object

    from hf_dlp.cli import main
    from hf_dlp.distributed import is_main_process, num_processes
    from hf_dlp.evaluation import evaluate_model
    from hf_dlp.loading import load_causal_lm, load_tokenizer
    from hf_dlp.toy import make_arithmetic_dataset

    torch.set_num_threads(1)
    out = Path(out_dir)
    assert main(_analyze_args(out, base_dir, rl_dir)) == 0
    model, calls = load_causal_lm(rl_dir, "float32", "cpu"), []

    def counting_generate(**kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        return model.generate(**kwargs)

    result = evaluate_model(model, load_tokenizer(rl_dir), make_arithmetic_dataset(num_examples=5, seed=2),
                            num_samples=3, batch_size=2, max_new_tokens=5, keep_completions=True, progress=False,
                            generate_fn=counting_generate)  # fmt: skip
    calls = gather_object([calls])  # the batches each process ran (15 sequences in 8 batches)
    if is_main_process():
        result.save(out / "evaluation.json")
        (out / "world.json").write_text(json.dumps({"num_processes": num_processes(), "calls": calls}))
    assert main(_sweep_args("replace", out, base_dir, rl_dir)) == 0


def _run(command: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]


def _outputs(folder: Path) -> dict[str, object]:
    """Every JSON file under `folder` (paths relative), and the analysis' token values."""
    import torch

    files: dict[str, object] = {}
    for path in sorted(folder.rglob("*.json")):
        data = json.loads(path.read_text())
        if path.name == "world.json":
            continue
        if path.name == "analysis.json":  # the folder names differ between the runs
            data["settings"].pop("dataset", None)
        files[str(path.relative_to(folder))] = json.dumps(data, sort_keys=True).replace(str(folder), "OUT")
    values = torch.load(folder / "analyze" / "token_values.pt", weights_only=True)
    files["token_values"] = {name: value.tolist() for name, value in values["token_values"].items()}
    return files


@pytest.fixture(scope="module")
def pair_dirs(tmp_path_factory, char_tokenizer):
    from hf_dlp.toy import build_tiny_causal_lm

    dirs = []
    for seed in (1, 2):
        path = tmp_path_factory.mktemp(f"pair{seed}")
        build_tiny_causal_lm(size="nano", seed=seed).save_pretrained(path)
        char_tokenizer.save_pretrained(path)
        dirs.append(str(path))
    return dirs


@pytest.fixture(scope="module")
def one_process(pair_dirs, tmp_path_factory):
    out = tmp_path_factory.mktemp("one")
    _worker(str(out), *pair_dirs)  # in this process: conftest keeps torch on one thread, like each worker
    return out


def test_two_processes_write_the_same_files_as_one(one_process, pair_dirs, tmp_path):
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                str(ROOT / "accelerate_configs" / "multi_cpu.yaml"), "--num_processes", "2",
                "--mixed_precision", "no", "--main_process_port", str(_free_port())]  # fmt: skip
    _run([*launcher, str(Path(__file__).resolve()), str(tmp_path), *pair_dirs])
    world = json.loads((tmp_path / "world.json").read_text())
    assert world == {"num_processes": 2, "calls": [[2, 2, 2, 2], [2, 2, 2, 1]]}  # the work was shared, not repeated
    assert json.loads((one_process / "world.json").read_text())["calls"] == [[2] * 7 + [1]]
    one, two = _outputs(one_process), _outputs(tmp_path)
    assert sorted(one) == sorted(two) and len([name for name in one if name.startswith("replace/cells/")]) == 4
    for name in one:
        assert one[name] == two[name], name  # identical numbers: same batches, same seeds, same reductions


def test_torchrun_sweep_matches_one_process_and_resumes_on_any_count(pair_dirs, tmp_path):
    from hf_dlp.cli import main

    one, two = tmp_path / "one", tmp_path / "two"
    assert main(_sweep_args("extrapolate", one, *pair_dirs)) == 0
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                str(_free_port()), "-m", "hf_dlp.cli"]  # fmt: skip
    _run([*torchrun, *_sweep_args("extrapolate", two, *pair_dirs)])
    first, second = (json.loads((d / "extrapolate" / "extrapolation_sweep.json").read_text()) for d in (one, two))
    assert first["rows"] == second["rows"] and first["references"] == second["references"]
    cells = sorted((two / "extrapolate" / "cells").glob("*.json"))
    assert len(cells) == 4
    stamps = {path: path.stat().st_mtime_ns for path in cells}
    assert main(_sweep_args("extrapolate", two, *pair_dirs)) == 0  # one process finishing a 2-process run
    assert {path: path.stat().st_mtime_ns for path in cells} == stamps  # every cell reused, none rewritten


if __name__ == "__main__":
    _worker(*sys.argv[1:4])
