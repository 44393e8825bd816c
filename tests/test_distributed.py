"""Data parallel foundations (`hf_dlp.distributed`), results independent of the process count, resumable sweeps
(`hf_dlp.sweeps.cells`) and device checks of a model pair, in one process. The real 2-process runs are in
`tests/test_distributed_launch.py`."""

from __future__ import annotations

import json

import pytest
import torch

from hf_dlp import distributed
from hf_dlp.evaluation import evaluate_model
from hf_dlp.generation import sample_completions
from hf_dlp.model_pair import check_model_devices, check_pair_devices, load_model_pair
from hf_dlp.sweeps import extrapolation_sweep, replacement_sweep
from hf_dlp.sweeps.cells import CELLS_DIR, CellStore, cell_key
from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm, make_arithmetic_dataset

PROMPTS = [f"Q: {i}+{i + 1}?\nA: " for i in range(5)]


def parity_reward(completions, **kwargs):
    return [1.0 if len(set(completion)) % 2 else 0.0 for completion in completions]


@pytest.fixture(scope="module")
def toy():
    return build_char_tokenizer(), build_tiny_causal_lm(size="nano", seed=0)


# Computed with the code before the data parallel change (hf_dlp at commit 6164c64): one process must keep giving
# exactly these samples, since the demo's published numbers depend on them.
PINNED_COMPLETIONS = [
    [";1[hO", "krwvJ'", "~Er:&["],
    ["'`tml!", "}f**7{", "/_fBb"],
    ["W^N\n\\w", " ?Ta-", "94\tK!6"],
    ["\x0cf<0;n", "w8nEDk", "XOoBAw"],
    [" d\r\nQ", ")O \x0cLE", "g'`si "],
]


def test_one_process_samples_exactly_what_it_sampled_before(toy):
    tok, model = toy
    out = sample_completions(
        model, tok, PROMPTS, num_samples=3, batch_size=4, seed=7, max_new_tokens=6, progress=False
    )
    assert out == PINNED_COMPLETIONS
    result = evaluate_model(model, tok, make_arithmetic_dataset(num_examples=5, seed=1), num_samples=3, batch_size=4,
                            seed=3, max_new_tokens=6, reward_fn=parity_reward, progress=False)  # fmt: skip
    assert (result.avg_at_k, result.correct_counts) == (0.4, [0, 2, 2, 1, 1])
    assert result.pass_at_k == pytest.approx({1: 0.4, 3: 0.8})


class _FakeWorld:
    """Pretends to be process `rank` of `size` (for the share of work), gathering nothing: each rank runs alone here
    and the test joins the shares, as `gather_in_order` does across real processes."""

    def __init__(self, monkeypatch, size: int):
        self.monkeypatch, self.size, self.shares = monkeypatch, size, {}
        monkeypatch.setattr(distributed, "num_processes", lambda: size)

    def run(self, function):
        for rank in range(self.size):
            self.monkeypatch.setattr(distributed, "process_index", lambda rank=rank: rank)
            self.monkeypatch.setattr(distributed, "gather_in_order", lambda local, num_items: list(local))
            self.shares[rank] = function()
        return self.shares


@pytest.mark.parametrize("size", [2, 3])
def test_each_process_samples_its_batches_with_the_same_seeds(toy, monkeypatch, size):
    tok, model = toy
    kwargs = dict(num_samples=3, batch_size=4, seed=7, max_new_tokens=6, progress=False)
    shares = _FakeWorld(monkeypatch, size).run(lambda: sample_completions(model, tok, PROMPTS, **kwargs))
    # Rank r holds batches r, r + size, ... (of 4 sequences each); interleaved they give the one-process samples.
    flat = [text for group in PINNED_COMPLETIONS for text in group]
    batches = [flat[i : i + 4] for i in range(0, len(flat), 4)]
    for rank, share in shares.items():
        assert [text for group in share for text in group] == [t for b in batches[rank::size] for t in b]


def test_shards_partition_the_items_and_gather_keeps_the_order(monkeypatch):
    monkeypatch.setattr(distributed, "num_processes", lambda: 3)
    seen = []
    for rank in range(3):
        monkeypatch.setattr(distributed, "process_index", lambda rank=rank: rank)
        seen.extend(distributed.shard_indices(8))
    assert sorted(seen) == list(range(8))
    monkeypatch.setattr(distributed, "process_index", lambda: 1)
    with pytest.raises(ValueError, match="this process has 3 work items"):
        distributed.gather_in_order(["only one"], 8)


def test_each_local_process_gets_its_own_slice_of_gpus(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    slices = []
    for rank in range(4):
        monkeypatch.setenv("LOCAL_RANK", str(rank))
        slices.append(distributed.process_gpus(device_count=8))
    assert slices == [[0, 1], [2, 3], [4, 5], [6, 7]]
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert distributed.process_gpus(device_count=2) == [1]  # more processes than GPUs: they share
    assert distributed.process_gpus(device_count=0) == []


def test_one_process_helpers_are_trivial():
    assert (distributed.num_processes(), distributed.process_index(), distributed.is_main_process()) == (1, 0, True)
    assert distributed.distributed_map(lambda i: -i, 3, progress=False) == [0, -1, -2]
    assert distributed.sum_over_processes(5) == 5 and distributed.broadcast_from_main([1]) == [1]
    distributed.barrier()


# Resumable sweeps


@pytest.fixture(scope="module")
def pair():
    tok = build_char_tokenizer()
    return dict(
        base_model=build_tiny_causal_lm(size="nano", seed=1),
        rl_model=build_tiny_causal_lm(size="nano", seed=2),
        tokenizer=tok,
        dataset=make_arithmetic_dataset(num_examples=2),
    )


class CountingReward:
    """A reward that counts its calls (one per evaluated cell) and fails on call `fail_at`."""

    __name__ = "counting_reward"

    def __init__(self, fail_at: int | None = None):
        self.calls, self.fail_at = 0, fail_at

    def __call__(self, completions, **kwargs):
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt("interrupted")
        return [float(any(ch.isdigit() for ch in completion)) for completion in completions]


SWEEP = dict(selections=["random"], taus={"random": [0.0, 0.5, 1.0]}, num_samples=1, max_new_tokens=3, progress=False)


def test_an_interrupted_sweep_resumes_with_only_the_remaining_cells(pair, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        replacement_sweep(**pair, **SWEEP, reward_fn=CountingReward(fail_at=2), output_dir=tmp_path)
    assert len(list((tmp_path / CELLS_DIR).glob("*.json"))) == 1  # the first cell was written as it finished
    assert not list((tmp_path / CELLS_DIR).glob(".*"))  # no temporary file left behind
    resumed = CountingReward()
    result = replacement_sweep(**pair, **SWEEP, reward_fn=resumed, output_dir=tmp_path)
    assert resumed.calls == 2 + 2  # the two remaining grid cells and the two references, not the first cell
    fresh = replacement_sweep(**pair, **SWEEP, reward_fn=CountingReward())
    assert (result.rows, result.references) == (fresh.rows, fresh.references)
    assert json.loads((tmp_path / "replacement_sweep.json").read_text())["rows"] == [
        row.to_dict() for row in fresh.rows
    ]
    again = CountingReward()
    replacement_sweep(**pair, **SWEEP, reward_fn=again, output_dir=tmp_path)
    assert again.calls == 0  # everything reused


def test_a_cell_from_other_settings_is_recomputed_never_mixed(pair, tmp_path, caplog):
    options = dict(gammas=[0.0], taus=[-0.1], num_samples=1, max_new_tokens=3, progress=False)
    extrapolation_sweep(**pair, **options, reward_fn=CountingReward(), output_dir=tmp_path)
    changes = [{"seed": 1}, {"max_new_tokens": 4}, {"num_samples": 2}, {"dataset": pair["dataset"].select([0])}]
    for changed in changes:
        reward = CountingReward()
        extrapolation_sweep(**{**pair, **options, **changed}, reward_fn=reward, output_dir=tmp_path)
        assert reward.calls == 3, changed  # the grid cell and both references recomputed
    assert "computed with other settings" in caplog.text


def test_cell_store_compares_the_stored_settings(tmp_path):
    store = CellStore(tmp_path, {"seed": 0, "generation": {"top_p": 0.7}})
    assert store.run({"selection": "kl", "tau": 0.1}, lambda: {"avg_at_k": 0.5, "grid": (1, 2)}) == {
        "avg_at_k": 0.5,
        "grid": [1, 2],  # stored as JSON reads it back, so fresh and reused results are equal
    }
    key = cell_key({"selection": "kl", "tau": 0.1})
    saved = json.loads((tmp_path / CELLS_DIR / f"{key}.json").read_text())
    assert saved["settings"] == {"seed": 0, "generation": {"top_p": 0.7}, "cell": {"selection": "kl", "tau": 0.1}}
    (tmp_path / CELLS_DIR / f"{key}.json").write_text("{not json")
    rerun = CellStore(tmp_path, {"seed": 0, "generation": {"top_p": 0.7}})
    assert rerun.run({"selection": "kl", "tau": 0.1}, lambda: {"avg_at_k": 0.25}) == {"avg_at_k": 0.25}
    assert rerun.computed == [key] and cell_key({"tau": 0.1, "selection": "kl"}) != key  # order is part of the key


# Device placement


def test_models_that_cannot_run_are_refused_before_any_generation(pair):
    with torch.device("meta"):
        empty = build_tiny_causal_lm(size="nano")
    with pytest.raises(ValueError, match="`rl_model` has weights on the `meta` device"):
        check_pair_devices(base_model=pair["base_model"], rl_model=empty)
    offloaded = build_tiny_causal_lm(size="nano")
    offloaded.hf_device_map = {"model.embed_tokens": "cpu", "model.layers.0": "disk"}
    with pytest.raises(ValueError, match="`base_model` has layers offloaded to disk"):
        replacement_sweep(**{**pair, "base_model": offloaded}, **SWEEP)
    offloaded.hf_device_map = {"model.embed_tokens": 0, "model.layers.0": "cpu"}  # split GPU/CPU: fine
    check_model_devices(offloaded)


def test_load_model_pair_places_with_device_map(tiny_model_dir):
    folders = {"base_model": tiny_model_dir, "rl_model": tiny_model_dir}
    base, rl, _ = load_model_pair(**folders, dtype="float32", device_map={"": "cpu"})
    assert base.device.type == rl.device.type == "cpu"
    with pytest.raises(ValueError, match="Give `device` .* or `device_map`"):
        load_model_pair(**folders, device="cpu", device_map="auto")
