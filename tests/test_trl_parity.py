"""The TRL GRPO parity harness (`scripts/trl_grpo_parity.py`, `scripts/trl_parity_plugin.py`), without a TRL checkout.

Checks that a redirected Hub id loads the local stand-in (model, tokenizer, dataset), that the plugin's collection
hook binds the test module's `GRPOTrainer`/`GRPOConfig` to ours, how outcomes are recorded, and the summary.
"""

from __future__ import annotations

import doctest
import json
import pickle
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

import trl_grpo_parity  # noqa: E402
import trl_parity_plugin as plugin  # noqa: E402

QWEN2 = "tiny-Qwen2ForCausalLM-2.5"


@pytest.fixture(scope="module")
def stand_in_cache(tmp_path_factory) -> Path:
    """One model stand-in and the synthetic zen dataset, built offline (no TRL checkout)."""
    return plugin.prepare_stand_ins(tmp_path_factory.mktemp("trl_parity"), trl_repo=None, models=[QWEN2])


@pytest.fixture
def redirected(stand_in_cache, monkeypatch) -> Path:
    plugin.install_redirection(stand_in_cache, setattr_fn=monkeypatch.setattr)
    return stand_in_cache


def test_redirected_model_id_loads_the_stand_in(redirected):
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2ForCausalLM
    from transformers.utils import cached_file

    assert cached_file(f"trl-internal-testing/{QWEN2}", "config.json").startswith(str(redirected / "hub"))
    model = AutoModelForCausalLM.from_pretrained(f"trl-internal-testing/{QWEN2}")
    tokenizer = AutoTokenizer.from_pretrained(f"trl-internal-testing/{QWEN2}")
    assert isinstance(model, Qwen2ForCausalLM)
    assert model.config.hidden_size == 8 and model.config.vocab_size == len(tokenizer)
    # Byte-level: any text round-trips; the chat template is Qwen2.5's, taken from the installed trl.
    text = 'a  b\n<tool_call>{"x": 1}</tool_call> é'
    assert tokenizer.decode(tokenizer(text).input_ids) == text
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False)
    assert prompt.startswith("<|im_start|>system\nYou are Qwen")
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"


def test_redirected_dataset_id_loads_the_stand_in(redirected):
    import datasets

    train = datasets.load_dataset("trl-internal-testing/zen", "standard_prompt_only", split="train")
    assert train.column_names == ["prompt"] and len(train) == 17
    splits = datasets.load_dataset("trl-internal-testing/zen", "conversational_prompt_only")
    assert len(splits["test"]) == 2 and splits["train"][0]["prompt"][0]["role"] == "user"
    streamed = datasets.load_dataset("trl-internal-testing/zen", "standard_prompt_only", split="test", streaming=True)
    assert isinstance(streamed, datasets.IterableDataset) and len(list(streamed)) == 2
    with pytest.raises(plugin.StandInUnavailable, match="no offline stand-in for dataset"):
        datasets.load_dataset("trl-internal-testing/zen-image", "conversational_prompt_only", split="train")


def test_loads_without_stand_in_become_skips():
    error = OSError("trl-internal-testing/tiny-Gemma3ForConditionalGeneration is not in the cache (offline mode)")
    try:
        raise ValueError("while building the trainer") from error
    except ValueError as chained:
        reason = plugin._unavailable_stand_in(chained)
    assert reason == f"{plugin.SKIP_PREFIX} trl-internal-testing/tiny-Gemma3ForConditionalGeneration."
    assert plugin._unavailable_stand_in(OSError(f"trl-internal-testing/{QWEN2} broke")) is None  # has a stand-in
    assert plugin._unavailable_stand_in(RuntimeError("trl-internal-testing/tiny-Gemma3 ...")) is None


def test_collection_hook_substitutes_the_trainer(monkeypatch, tmp_path):
    from trl import GRPOConfig, GRPOTrainer

    from hf_dlp.training import ReweightedGRPOConfig, ReweightedGRPOTrainer

    module = types.ModuleType("tests.test_grpo_trainer")  # as after `from trl import GRPOConfig, GRPOTrainer`
    module.GRPOTrainer, module.GRPOConfig, module.Other = GRPOTrainer, GRPOConfig, int
    run = plugin.ParityRun(outcomes=None, classes=plugin.reweighted_classes("none"))
    monkeypatch.setattr(plugin, "_run", run)
    plugin.pytest_collection_modifyitems(None, None, [SimpleNamespace(module=module)])

    assert module.GRPOTrainer is ReweightedGRPOTrainer and module.Other is int
    assert issubclass(module.GRPOConfig, ReweightedGRPOConfig)
    assert run.substituted == {"tests.test_grpo_trainer": ["GRPOTrainer", "GRPOConfig"]}
    config = module.GRPOConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    assert config.reweighting == "none"  # where ReweightedGRPOTrainer must be exactly GRPOTrainer
    assert pickle.loads(pickle.dumps(config)).reweighting == "none"  # checkpoints pickle `training_args.bin`
    assert plugin.reweighted_classes("low_prob")[1] is ReweightedGRPOConfig


def test_outcomes_are_folded_per_test(tmp_path):
    path = tmp_path / "outcomes.jsonl"
    run = plugin.ParityRun(outcomes=str(path))
    run.write({"event": "collected", "nodeids": ["t::a", "t::b", "t::c", "t::d"], "substituted": {}})

    def report(nodeid, when, outcome, message=None, **extra):
        longrepr = (str(path), 1, f"Skipped: {message}") if outcome == "skipped" else message
        flags = {name: outcome == name for name in ("passed", "failed", "skipped")}
        return SimpleNamespace(nodeid=nodeid, when=when, duration=1.0, longrepr=longrepr, **flags, **extra)

    for nodeid, call in [
        ("t::a", report("t::a", "call", "passed")),
        ("t::b", report("t::b", "call", "failed", "AssertionError: boom\nmore")),
        ("t::c", report("t::c", "call", "failed", f"Failed: {plugin.TIMEOUT_PREFIX} 5 s")),
    ]:
        for phase in (report(nodeid, "setup", "passed"), call, report(nodeid, "teardown", "passed")):
            run.record(phase)
    run.record(report("t::d", "setup", "skipped", "test requires vllm"))  # a crash before d's teardown: no line

    outcomes, _ = trl_grpo_parity.read_outcomes(path)
    assert {k: v["outcome"] for k, v in outcomes.items()} == {
        "t::a": "passed",
        "t::b": "failed",
        "t::c": "timeout",
        "t::d": trl_grpo_parity.NOT_RUN,
    }
    assert outcomes["t::b"]["message"] == "AssertionError: boom" and outcomes["t::a"]["duration"] == 3.0
    assert all(json.loads(line)["event"] in ("collected", "outcome") for line in path.read_text().splitlines())


def test_summary_of_a_fake_outcome_table():
    table = {
        "t::same": {"grpo": {"outcome": "passed"}, "reweighted": {"outcome": "passed"}},
        "t::also": {"grpo": {"outcome": "passed"}, "reweighted": {"outcome": "passed"}},
        "t::ours_fails": {"grpo": {"outcome": "passed"}, "reweighted": {"outcome": "failed", "message": "E: x"}},
        "t::both_fail": {"grpo": {"outcome": "failed", "message": "E"}, "reweighted": {"outcome": "failed"}},
        "t::skip": {"grpo": {"outcome": "skipped"}, "reweighted": {"outcome": "skipped"}},
        "t::crashed": {"grpo": {"outcome": "passed"}},
    }
    summary = trl_grpo_parity.summarize(table)
    assert summary["total"] == 6
    assert summary["counts"][0] == {"grpo": "passed", "reweighted": "passed", "count": 2}
    assert {(c["grpo"], c["reweighted"]): c["count"] for c in summary["counts"]} == {
        ("passed", "passed"): 2,
        ("passed", "failed"): 1,
        ("failed", "failed"): 1,
        ("skipped", "skipped"): 1,
        ("passed", trl_grpo_parity.NOT_RUN): 1,
    }
    assert [(r["nodeid"], r["outcome"]) for r in summary["regressions"]] == [
        ("t::crashed", trl_grpo_parity.NOT_RUN),
        ("t::ours_fails", "failed"),
    ]
    markdown = trl_grpo_parity.render_markdown(summary)
    assert "| passed | failed | 1 |" in markdown and "- `t::ours_fails`: failed: E: x" in markdown


def test_script_doctests():
    for module in (trl_grpo_parity, plugin):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
        assert result.failed == 0, f"{module.__name__}: {result}"


def test_pytest_command_selects_the_trainer_and_stays_offline(tmp_path):
    args = trl_grpo_parity.parse_args(["--trl_repo", str(tmp_path), "-k", "test_train", "--cache_dir", str(tmp_path)])
    command = trl_grpo_parity.pytest_command(args, "reweighted", tmp_path / "o.jsonl")
    assert command[1:4] == ["-m", "pytest", trl_grpo_parity.TEST_FILE] and "--trl-parity-trainer=reweighted" in command
    assert command[command.index("-k") + 1] == "test_train"
    env = trl_grpo_parity.pytest_environment(args)
    assert env["HF_HUB_OFFLINE"] == "1" and env["HF_HUB_CACHE"] == str(tmp_path / "hub")
    assert env["PYTHONPATH"].split(":")[0] == str(SCRIPTS)
    with pytest.raises(SystemExit, match="not a TRL checkout"):
        trl_grpo_parity.main(["--trl_repo", str(tmp_path), "--output", str(tmp_path / "r.json")])
