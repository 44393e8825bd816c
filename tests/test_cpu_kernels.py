"""Pinned CPU kernels (`hf_dlp.cpu_kernels`): they take effect in a fresh process, are refused honestly when too late,
and make training bitwise reproducible across thread counts and oneDNN settings."""

import json
import os
import subprocess
import sys

import pytest
import torch

from hf_dlp.cpu_kernels import PINNED_KERNELS, cpu_kernels, pin_cpu_kernels

TRAIN = """
import json, sys, torch
from hf_dlp.cpu_kernels import pin_cpu_kernels
pinned = pin_cpu_kernels()
torch.set_num_threads(int(sys.argv[1]))
torch.backends.mkldnn.enabled = sys.argv[2] == "on"
from hf_dlp.toy import BaseModelSettings
from hf_dlp.toy.base_model import train_toy_base_model
model, _ = train_toy_base_model(BaseModelSettings(size="nano", num_train_examples=64, max_steps=8, batch_size=8),
                                progress=False)
torch.save(model.state_dict(), sys.argv[3])
print(json.dumps({"pinned": pinned, "threads": torch.get_num_threads()}))
"""


def _clean_environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key not in PINNED_KERNELS}


def _train(tmp_path, threads: int, mkldnn: str) -> tuple[dict, dict]:
    path = tmp_path / f"model-{threads}-{mkldnn}.pt"
    done = subprocess.run(
        [sys.executable, "-c", TRAIN, str(threads), mkldnn, str(path)],
        capture_output=True, text=True, env=_clean_environment(), check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1]), torch.load(path)


def test_pinning_in_a_fresh_process_takes_effect():
    code = "from hf_dlp.cpu_kernels import pin_cpu_kernels, cpu_kernels; pin_cpu_kernels(); print(cpu_kernels())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_clean_environment())
    assert done.stdout.strip() == "{'aten': 'AVX2', 'mkl_cbwr': 'AVX2', 'pinned': True}"


def test_pinning_too_late_reports_it_and_leaves_the_environment_as_it_was(monkeypatch):
    torch.ones(4).softmax(0)  # torch has chosen its kernels for this process
    if cpu_kernels()["aten"] == "AVX2":
        pytest.skip("this CPU's own kernels are the pinned ones: pinning late cannot fail here")
    for name in PINNED_KERNELS:
        monkeypatch.delenv(name, raising=False)
    assert pin_cpu_kernels() is False
    assert not set(PINNED_KERNELS) & set(os.environ)  # nothing leaks to child processes
    assert cpu_kernels()["pinned"] is False


def test_pinned_kernels_train_the_same_model_with_one_or_two_threads_and_onednn_on_or_off(tmp_path):
    info, reference = _train(tmp_path, 1, "on")
    assert info == {"pinned": True, "threads": 1}
    for threads, mkldnn in ((2, "on"), (1, "off")):
        info, other = _train(tmp_path, threads, mkldnn)
        assert info["pinned"] and info["threads"] == threads
        assert all(torch.equal(reference[name], other[name]) for name in reference), (threads, mkldnn)


def test_the_toy_base_model_cache_is_keyed_by_the_kernels(tmp_path):
    from hf_dlp.toy import BaseModelSettings, make_toy_base_model

    settings = BaseModelSettings(size="nano", num_train_examples=16, max_steps=2, batch_size=4)
    path = make_toy_base_model(settings, cache_dir=tmp_path, progress=False)
    assert path.name.startswith(settings.cache_key() + "-" + cpu_kernels()["aten"].lower())
