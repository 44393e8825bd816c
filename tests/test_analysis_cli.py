"""`hf-dlp analyze` end to end on tiny saved models (offline)."""

from __future__ import annotations

import json

import pytest

from hf_dlp.cli import main
from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm

ROWS = [
    {"prompt": "Q: 1+1?\nA: ", "response": "The answer is 2.", "source": "base"},
    {"prompt": "Q: 2+3?\nA: ", "response": "5", "source": "rl"},
    {"prompt": "Q: 4+4?\nA: ", "response": "It is 8", "source": "rl"},
]


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("analyze_cli")
    for name, seed in (("base", 0), ("rl", 1)):
        build_tiny_causal_lm("qwen2", "nano", seed=seed).save_pretrained(root / name)
        build_char_tokenizer().save_pretrained(root / name)
    return root / "base", root / "rl"


@pytest.fixture()
def response_file(tmp_path):
    data = tmp_path / "responses.jsonl"
    data.write_text("\n".join(json.dumps(row) for row in ROWS))
    return data


def test_scores_a_response_file(model_dirs, response_file, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        ["analyze", "--base_model", str(model_dirs[0]), "--rl-model", str(model_dirs[1]), "--dataset",
         str(response_file), "--output-dir", str(out), "--batch_size", "2", "--logprobs-top-k", "20"]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "Scored 24 tokens in 3 responses (1 base, 2 rl)." in printed
    assert "delta_logp" in printed and "AUROC(resp)" in printed
    assert f"Plots:  {out / 'fig1b_histograms.png'}" in printed
    report = json.loads((out / "analysis.json").read_text())
    assert report["settings"]["logprobs_top_k"] == 20 and report["settings"]["dataset"] == str(response_file)
    assert report["settings"]["base_model"] == str(model_dirs[0])
    assert report["num_responses"] == {"base": 1, "rl": 2}


@pytest.mark.parametrize(
    "old, new", [("--base", "--base_model"), ("--rl", "--rl_model"), ("--top-k", "--logprobs_top_k")]
)
def test_flags_removed_in_0_3_are_refused(old, new, model_dirs, response_file, tmp_path, capsys):
    flags = {"--base_model": str(model_dirs[0]), "--rl_model": str(model_dirs[1]), "--logprobs_top_k": "20"}
    argv = [item for flag, value in flags.items() for item in ((old if flag == new else flag), value)]
    with pytest.raises(SystemExit) as error:
        main(["analyze", *argv, "--dataset", str(response_file), "--output_dir", str(tmp_path / "out")])
    assert error.value.code == 2 and old in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_samples_when_there_is_no_response_column(model_dirs, tmp_path, capsys):
    code = main(
        ["analyze", "--base_model", str(model_dirs[0]), "--rl_model", str(model_dirs[1]), "--dataset", "toy:easy",
         "--max_examples", "2", "--num_samples", "2", "--max_new_tokens", "6", "--output_dir", str(tmp_path),
         "--no_plots", "--device", "cpu", "--chat"]
    )  # fmt: skip
    assert code == 0
    assert "in 8 responses (4 base, 4 rl)" in capsys.readouterr().out
    settings = json.loads((tmp_path / "analysis.json").read_text())["settings"]
    assert settings["num_prompts"] == 2 and settings["max_new_tokens"] == 6 and settings["top_p"] == 0.7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["analysis.json", "index.html", "token_values.pt"]


def test_missing_model_flags_are_reported(tmp_path, capsys):
    with pytest.raises(SystemExit) as error:
        main(["analyze", "--dataset", "toy", "--output_dir", str(tmp_path)])
    assert error.value.code == 2
    assert "required: --base_model/--base-model, --rl_model/--rl-model" in capsys.readouterr().err


def test_bad_output_dir_fails_before_any_model_loads(tmp_path):
    """Defect 9 (analyze): an output dir that is a file, or cannot be created, used to fail after all the compute."""
    (tmp_path / "taken").write_text("a file")
    models = ["--base_model", "./no/such/base", "--rl_model", "./no/such/rl", "--dataset", "toy"]
    with pytest.raises(ValueError, match=r"`output_dir` \(.*taken'\) is a file; give a folder"):
        main(["analyze", *models, "--output_dir", str(tmp_path / "taken")])
    with pytest.raises(ValueError, match=r"`output_dir` \(.*taken/sub'\) cannot be created"):
        main(["analyze", *models, "--output_dir", str(tmp_path / "taken" / "sub")])


def test_missing_column_is_reported_before_any_model_loads(response_file, tmp_path):
    models = ["--base_model", "./no/such/base", "--rl_model", "./no/such/rl", "--output_dir", str(tmp_path / "out")]
    with pytest.raises(
        ValueError, match=r"has no column 'answer' \(its columns: \['prompt', 'response', 'source'\]\)"
    ):
        main(["analyze", *models, "--dataset", str(response_file), "--response_column", "answer"])
    with pytest.raises(ValueError, match="has no column 'problem'"):
        main(["analyze", *models, "--dataset", str(response_file), "--prompt_column", "problem"])
    with pytest.raises(FileNotFoundError, match="`base_model`: the local path './no/such/base' does not exist"):
        main(["analyze", *models, "--dataset", str(response_file)])


def test_bad_data_files_are_named(model_dirs, tmp_path):
    models = ["--base_model", str(model_dirs[0]), "--rl_model", str(model_dirs[1]), "--output-dir", str(tmp_path)]
    with pytest.raises(FileNotFoundError, match="Dataset file .*nope.jsonl' does not exist"):
        main(["analyze", *models, "--dataset", str(tmp_path / "nope.jsonl")])
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ValueError, match="Dataset file .*empty.jsonl' is empty"):
        main(["analyze", *models, "--dataset", str(tmp_path / "empty.jsonl")])
    (tmp_path / "broken.json").write_text('{"prompt": ')
    with pytest.raises(ValueError, match="Dataset file .*broken.json' is not valid JSON"):
        main(["analyze", *models, "--dataset", str(tmp_path / "broken.json")])


def test_the_page_is_written_by_default_and_skipped_with_no_html(model_dirs, tmp_path, capsys):
    rows = tmp_path / "rewarded.jsonl"
    rows.write_text("\n".join(json.dumps({**row, "reward": float(i % 2)}) for i, row in enumerate(ROWS)))
    models = ["analyze", "--base_model", str(model_dirs[0]), "--rl_model", str(model_dirs[1]), "--dataset", str(rows)]
    assert main([*models, "--output_dir", str(tmp_path / "page"), "--no_plots", "--page_responses", "2"]) == 0
    assert f"Page:   {tmp_path / 'page' / 'index.html'}" in capsys.readouterr().out
    page = (tmp_path / "page" / "index.html").read_text()
    assert 'id="correct-filter"' in page and "Showing 2 of 3 responses" in page
    assert "Q: 1+1?" in page  # the prompts of the scored rows
    assert main([*models, "--output_dir", str(tmp_path / "none"), "--no-html"]) == 0
    assert (
        not (tmp_path / "none" / "index.html").exists() and (tmp_path / "none" / "delta_logp_positions.png").exists()
    )
