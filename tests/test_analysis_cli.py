"""`hf-dlp analyze` end to end on tiny saved models (offline)."""

from __future__ import annotations

import json

import pytest

from hf_dlp.cli import main
from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("analyze_cli")
    for name, seed in (("base", 0), ("rl", 1)):
        build_tiny_causal_lm("qwen2", "nano", seed=seed).save_pretrained(root / name)
        build_char_tokenizer().save_pretrained(root / name)
    return root / "base", root / "rl"


def test_scores_a_response_file(model_dirs, tmp_path, capsys):
    rows = [
        {"prompt": "Q: 1+1?\nA: ", "response": "The answer is 2.", "source": "base"},
        {"prompt": "Q: 2+3?\nA: ", "response": "5", "source": "rl"},
        {"prompt": "Q: 4+4?\nA: ", "response": "It is 8", "source": "rl"},
    ]
    data = tmp_path / "responses.jsonl"
    data.write_text("\n".join(json.dumps(row) for row in rows))
    code = main(
        [
            "analyze",
            "--base",
            str(model_dirs[0]),
            "--rl",
            str(model_dirs[1]),
            "--dataset",
            str(data),
            "--output-dir",
            str(tmp_path / "out"),
            "--batch_size",
            "2",
            "--top-k",
            "20",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "Scored 24 tokens in 3 responses (1 base, 2 rl)." in printed
    assert "delta_logp" in printed and "AUROC(resp)" in printed
    assert f"Plots:  {tmp_path / 'out' / 'fig1b_histograms.png'}" in printed
    report = json.loads((tmp_path / "out" / "analysis.json").read_text())
    assert report["settings"]["top_k"] == 20 and report["settings"]["dataset"] == str(data)
    assert report["num_responses"] == {"base": 1, "rl": 2}


def test_samples_when_there_is_no_response_column(model_dirs, tmp_path, capsys):
    code = main(
        [
            "analyze",
            "--base",
            str(model_dirs[0]),
            "--rl",
            str(model_dirs[1]),
            "--dataset",
            "toy:easy",
            "--max_examples",
            "2",
            "--num_samples",
            "2",
            "--max_new_tokens",
            "6",
            "--output_dir",
            str(tmp_path),
            "--no_plots",
            "--device",
            "cpu",
            "--chat",
        ]
    )
    assert code == 0
    assert "in 8 responses (4 base, 4 rl)" in capsys.readouterr().out
    assert json.loads((tmp_path / "analysis.json").read_text())["settings"]["num_prompts"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["analysis.json", "token_values.pt"]


def test_missing_file_is_reported(model_dirs, tmp_path):
    with pytest.raises(FileNotFoundError, match="Dataset file .*nope.jsonl' does not exist"):
        main(
            [
                "analyze",
                "--base",
                str(model_dirs[0]),
                "--rl",
                str(model_dirs[1]),
                "--dataset",
                str(tmp_path / "nope.jsonl"),
                "--output-dir",
                str(tmp_path),
            ]
        )
