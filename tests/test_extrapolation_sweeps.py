"""Sweeps (`replacement_sweep`, `extrapolation_sweep`), their JSON/PNG outputs and the `hf-dlp replace` /
`hf-dlp extrapolate` commands, on tiny offline models."""

from __future__ import annotations

import json

import pytest
from matplotlib.figure import Figure

from hf_dlp import __version__
from hf_dlp.cli import main
from hf_dlp.commands.replace import parse_taus
from hf_dlp.extrapolation import SweepResult, extrapolation_sweep, replacement_sweep
from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm, make_arithmetic_dataset


@pytest.fixture(scope="module")
def setup():
    tok = build_char_tokenizer()
    base, rl = build_tiny_causal_lm(size="nano", seed=1), build_tiny_causal_lm(size="nano", seed=2)
    return tok, base, rl, make_arithmetic_dataset(num_examples=3)


def nonempty_reward(completions, **kwargs):
    """1.0 for a completion with a digit in it: random tiny models sometimes write one, so accuracies vary."""
    return [float(any(ch.isdigit() for ch in completion)) for completion in completions]


def test_replacement_sweep_rows_ratios_and_files(setup, tmp_path):
    tok, base, rl, data = setup
    result = replacement_sweep(
        base,
        rl,
        tok,
        data,
        selections=["random", "delta_logp"],
        taus={"random": [0.0, 1.0], "delta_logp": [-1e9, 1e9]},
        reward_fn=nonempty_reward,
        num_samples=2,
        max_new_tokens=6,
        progress=False,
        output_dir=tmp_path,
    )
    ratios = {(row["selection"], row["tau"]): row["replacement_ratio"] for row in result.rows}
    assert ratios == {("random", 0.0): 0.0, ("random", 1.0): 1.0, ("delta_logp", -1e9): 0.0, ("delta_logp", 1e9): 1.0}
    # No replacement is the base model's own sampling (same seeds), so its accuracy equals the base reference.
    never = next(row for row in result.rows if row["tau"] == -1e9)
    assert never["avg_at_k"] == pytest.approx(result.references["base"])
    saved = json.loads((tmp_path / "replacement_sweep.json").read_text())
    assert (
        saved["hf_dlp_version"] == __version__ and len(saved["rows"]) == 4 and saved["settings"]["generator"] == "base"
    )
    assert (tmp_path / "replacement_sweep.png").stat().st_size > 0


def test_extrapolation_sweep_grid_and_plot(setup, tmp_path):
    tok, base, rl, data = setup
    result = extrapolation_sweep(
        rl,
        base,
        tok,
        data,
        gammas=[0.0, 1.0],
        taus=[-1e9, 1e9],
        reward_fn=nonempty_reward,
        num_samples=2,
        max_new_tokens=6,
        top_k=None,
        progress=False,
    )
    assert [(row["gamma"], row["tau"]) for row in result.rows] == [(0.0, -1e9), (0.0, 1e9), (1.0, -1e9), (1.0, 1e9)]
    # A threshold that never fires leaves the RL model's own samples (same seeds): the RL reference, for any γ.
    assert result.rows[0]["avg_at_k"] == pytest.approx(result.references["rl"])
    assert result.rows[2]["avg_at_k"] == pytest.approx(result.references["rl"])
    assert result.rows[1]["replacement_ratio"] == result.rows[3]["replacement_ratio"] == 1.0
    figure = result.plot()
    assert isinstance(figure, Figure) and not list(tmp_path.iterdir())  # no path: nothing written
    result.plot(tmp_path / "grid.png")
    assert (tmp_path / "grid.png").is_file()
    dense = extrapolation_sweep(
        rl,
        base,
        tok,
        data,
        gammas=[0.5],
        taus=[-0.3],
        selection="all",
        num_samples=1,
        max_new_tokens=3,
        progress=False,
        generator="base",
    )
    assert dense.rows[0]["tau"] is None and dense.rows[0]["replacement_ratio"] == 1.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"selections": ["all"]}, r"`selections` entries must be selective rules"),
        ({"selections": ["random"], "taus": {"random": [2.0]}}, r"selection probability; got `tau=2.0`"),
        ({"num_samples": 0}, r"`num_samples` must be at least 1, got 0"),
    ],
)
def test_replacement_sweep_validation(setup, kwargs, match):
    tok, base, rl, data = setup
    with pytest.raises(ValueError, match=match):
        replacement_sweep(base, rl, tok, data, progress=False, **kwargs)


def test_extrapolation_sweep_validation(setup):
    tok, base, rl, data = setup
    with pytest.raises(ValueError, match="`generator` must be 'rl'"):
        extrapolation_sweep(rl, base, tok, data, generator="critic")
    with pytest.raises(ValueError, match="`gammas` and `taus` must be non-empty"):
        extrapolation_sweep(rl, base, tok, data, gammas=[])
    with pytest.raises(ValueError, match="`gamma` must be a finite number >= 0"):
        extrapolation_sweep(rl, base, tok, data, gammas=[-1.0])
    with pytest.raises(ValueError, match="non-empty `datasets.Dataset`"):
        extrapolation_sweep(rl, base, tok, data.select([]))


def test_sweep_result_round_trip(tmp_path):
    result = SweepResult(
        "extrapolation",
        [{"selection": "delta_logp", "tau": -0.3, "gamma": 0.1, "avg_at_k": 0.5, "replacement_ratio": 0.04}],
        {"base": 0.1, "rl": 0.4},
    )
    path = result.save(tmp_path / "out.json")
    assert json.loads(path.read_text())["rows"][0]["gamma"] == 0.1


def test_parse_taus():
    assert parse_taus(["delta_logp=-1,-0.5", "random=0.1"]) == {"delta_logp": [-1.0, -0.5], "random": [0.1]}
    with pytest.raises(ValueError, match="RULE=T1,T2"):
        parse_taus(["delta_logp"])


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory, setup):
    tok, base, rl, _ = setup
    root = tmp_path_factory.mktemp("cli_models")
    for name, model in (("base", base), ("rl", rl)):
        model.save_pretrained(root / name)
        tok.save_pretrained(root / name)
    return root


def test_cli_replace(model_dirs, tmp_path, capsys):
    code = main(
        [
            "replace",
            "--base_model",
            str(model_dirs / "base"),
            "--rl_model",
            str(model_dirs / "rl"),
            "--num_examples",
            "2",
            "--num_samples",
            "1",
            "--max_new_tokens",
            "3",
            "--selections",
            "random",
            "--taus",
            "random=0,1",
            "--output_dir",
            str(tmp_path),
            "--no_progress",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    rows = json.loads((tmp_path / "replacement_sweep.json").read_text())["rows"]
    assert [row["replacement_ratio"] for row in rows] == [0.0, 1.0]
    assert (tmp_path / "replacement_sweep.png").is_file() and "ratio=1.0000" in capsys.readouterr().out


def test_cli_extrapolate(model_dirs, tmp_path, capsys):
    code = main(
        [
            "extrapolate",
            "--base_model",
            str(model_dirs / "base"),
            "--rl_model",
            str(model_dirs / "rl"),
            "--num_examples",
            "2",
            "--num_samples",
            "1",
            "--max_new_tokens",
            "3",
            "--gammas",
            "0",
            "0.5",
            "--taus",
            "-0.3",
            "--output_dir",
            str(tmp_path),
            "--no_progress",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    assert len(json.loads((tmp_path / "extrapolation_sweep.json").read_text())["rows"]) == 2
    assert (tmp_path / "extrapolation_sweep.png").is_file() and "best: gamma=" in capsys.readouterr().out
