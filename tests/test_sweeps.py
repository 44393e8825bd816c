"""Sweeps (`hf_dlp.sweeps.replacement_sweep`, `extrapolation_sweep`), their JSON/PNG outputs, the old import location,
and the `hf-dlp replace` / `hf-dlp extrapolate` commands, on tiny offline models."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import pytest
from matplotlib.figure import Figure
from tokenizers import Tokenizer, models
from transformers import GenerationConfig, PreTrainedTokenizerFast

from hf_dlp import __version__
from hf_dlp.cli import main
from hf_dlp.commands.replace import parse_taus
from hf_dlp.extrapolation import ExtrapolationConfig
from hf_dlp.sweeps import SweepResult, extrapolation_sweep, replacement_sweep
from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm, make_arithmetic_dataset


@pytest.fixture(scope="module")
def setup():
    tok = build_char_tokenizer()
    base, rl = build_tiny_causal_lm(size="nano", seed=1), build_tiny_causal_lm(size="nano", seed=2)
    return tok, base, rl, make_arithmetic_dataset(num_examples=3)


def pair_kwargs(setup):
    tok, base, rl, data = setup
    return dict(base_model=base, rl_model=rl, tokenizer=tok, dataset=data)


def nonempty_reward(completions, **kwargs):
    """1.0 for a completion with a digit in it: random tiny models sometimes write one, so accuracies vary."""
    return [float(any(ch.isdigit() for ch in completion)) for completion in completions]


def test_replacement_sweep_rows_ratios_and_files(setup, tmp_path):
    result = replacement_sweep(
        **pair_kwargs(setup),
        selections=["random", "delta_logp"],
        taus={"random": [0.0, 1.0], "delta_logp": [-1e9, 1e9]},
        reward_fn=nonempty_reward,
        num_samples=2,
        max_new_tokens=6,
        progress=False,
        output_dir=tmp_path,
    )
    ratios = {(row.selection, row.tau): row.replacement_ratio for row in result.rows}
    assert ratios == {("random", 0.0): 0.0, ("random", 1.0): 1.0, ("delta_logp", -1e9): 0.0, ("delta_logp", 1e9): 1.0}
    # No replacement is the base model's own sampling (same seeds), so its accuracy equals the base reference.
    never = next(row for row in result.rows if row.tau == -1e9)
    assert never.avg_at_k == pytest.approx(result.references["base"])
    saved = json.loads((tmp_path / "replacement_sweep.json").read_text())
    assert saved["hf_dlp_version"] == __version__ and len(saved["rows"]) == 4
    assert saved["settings"]["generator"] == "base" and saved["settings"]["generation"]["max_new_tokens"] == 6
    assert saved["rows"][0]["gamma"] == 0.0 and saved["rows"][0]["candidate_top_k"] == 50
    assert (tmp_path / "replacement_sweep.png").stat().st_size > 0


def test_extrapolation_sweep_grid_and_plot(setup, tmp_path):
    result = extrapolation_sweep(
        **pair_kwargs(setup),
        config=ExtrapolationConfig(candidate_top_k=None),
        gammas=[0.0, 1.0],
        taus=[-1e9, 1e9],
        reward_fn=nonempty_reward,
        num_samples=2,
        generation_config=GenerationConfig(do_sample=True, top_p=0.7, max_new_tokens=6),
        progress=False,
    )
    assert [(row.gamma, row.tau) for row in result.rows] == [(0.0, -1e9), (0.0, 1e9), (1.0, -1e9), (1.0, 1e9)]
    # A threshold that never fires leaves the RL model's own samples (same seeds): the RL reference, for any γ.
    assert result.rows[0].avg_at_k == pytest.approx(result.references["rl"])
    assert result.rows[2].avg_at_k == pytest.approx(result.references["rl"])
    assert result.rows[1].replacement_ratio == result.rows[3].replacement_ratio == 1.0
    figure = result.plot()
    assert isinstance(figure, Figure) and not list(tmp_path.iterdir())  # no path: nothing written
    result.plot(tmp_path / "grid.png")
    assert (tmp_path / "grid.png").is_file()
    dense = extrapolation_sweep(
        **pair_kwargs(setup),
        gammas=[0.5],
        taus=[-0.3],
        selection="all",
        generator="base",
        num_samples=1,
        max_new_tokens=3,
        progress=False,
    )
    assert dense.rows[0].tau is None and dense.rows[0].replacement_ratio == 1.0
    assert dense.settings["generator"] == "base"


def test_positional_models_are_refused(setup):
    tok, base, rl, data = setup
    with pytest.raises(TypeError, match="positional argument"):
        extrapolation_sweep(rl, base, tok, data, gammas=[0.0], taus=[-1e9], num_samples=1, progress=False)
    with pytest.raises(TypeError, match="positional argument"):
        replacement_sweep(base, rl, tok, data, num_samples=1, progress=False)


def test_the_sweeps_are_not_importable_from_hf_dlp_extrapolation():
    """Their old location, removed in hf_dlp 0.3.0."""
    import hf_dlp.extrapolation as extrapolation

    for name in ("replacement_sweep", "extrapolation_sweep", "SweepResult", "DEFAULT_TAUS"):
        assert not hasattr(extrapolation, name)
    with pytest.raises(ImportError):
        from hf_dlp.extrapolation import replacement_sweep  # noqa: F401


def test_the_extrapolation_package_does_not_load_evaluation_or_sweeps():
    code = "import sys, hf_dlp.extrapolation; print(sorted(m for m in sys.modules if m.startswith('hf_dlp.')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for name in ("hf_dlp.evaluation", "hf_dlp.sweeps", "hf_dlp.analysis"):
        assert f"'{name}" not in loaded, loaded


def test_top_k_keyword_in_a_sweep_is_the_sampling_setting(setup):
    """Since hf_dlp 0.3.0 `top_k=` is `generate`'s top-k sampling, as everywhere; the candidate set is
    `candidate_top_k=`."""
    kwargs = dict(
        **pair_kwargs(setup),
        selections=["random"],
        taus={"random": [1.0]},
        num_samples=1,
        max_new_tokens=2,
        progress=False,
    )
    result = replacement_sweep(top_k=7, candidate_top_k=5, **kwargs)
    assert result.rows[0].candidate_top_k == 5
    assert result.settings["generation"]["top_k"] == 7


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"selections": ["all"]}, r"`selections` entries must be selective rules"),
        ({"selections": "random"}, r"`selections` must be a list of selection rules, got the string 'random'"),
        ({"selections": ["random"], "taus": {"random": [2.0]}}, r"selection probability; got `tau=2.0`"),
        ({"selections": ["random"], "taus": {"bogus": [0.1]}}, r"grid for 'bogus', which is not a selective rule"),
        ({"selections": ["random"], "taus": {"kl": [0.1]}}, r"grid for 'kl', which is not in `selections`"),
        ({"tau": 0.1}, r"sweeps `tau`; give the grid as `taus=\[...\]`"),
        ({"gamma": 1e39}, r"`gamma` must be a number <= 10000.0"),
        ({"generator": "rl"}, r"has the base model generate"),
        ({"num_samples": 0}, r"`num_samples` must be an integer >= 1, got 0"),
        ({"temperature": -1.0}, r"temperature"),
    ],
)
def test_replacement_sweep_validation(setup, kwargs, match):
    with pytest.raises(ValueError, match=match):
        replacement_sweep(**pair_kwargs(setup), progress=False, **kwargs)


def test_extrapolation_sweep_validation(setup):
    kwargs = pair_kwargs(setup)
    with pytest.raises(ValueError, match=r"`generator` must be one of \('rl', 'base'\)"):
        extrapolation_sweep(**kwargs, generator="critic")
    with pytest.raises(ValueError, match="`gammas` is empty"):
        extrapolation_sweep(**kwargs, gammas=[])
    with pytest.raises(ValueError, match=r"`gamma` must be a number >= 0.0"):
        extrapolation_sweep(**kwargs, gammas=[-1.0])
    with pytest.raises(ValueError, match=r"sweeps `gamma`; give the grid as `gammas="):
        extrapolation_sweep(**kwargs, gamma=0.1)
    with pytest.raises(ValueError, match="non-empty `datasets.Dataset`"):
        extrapolation_sweep(**{**kwargs, "dataset": kwargs["dataset"].select([])})


def test_an_output_dir_that_is_a_file_fails_before_any_compute(setup, tmp_path, monkeypatch):
    import hf_dlp.sweeps.sweep as sweep_module

    def no_compute(*args, **kwargs):
        raise AssertionError("evaluate_model ran before the output folder was checked")

    monkeypatch.setattr(sweep_module, "evaluate_model", no_compute)
    file = tmp_path / "taken"
    file.write_text("")
    with pytest.raises(ValueError, match="`output_dir` .* is a file"):
        extrapolation_sweep(**pair_kwargs(setup), output_dir=file)


def test_plots_never_switch_the_global_backend(monkeypatch):
    import matplotlib

    backend = matplotlib.get_backend()
    monkeypatch.setattr(matplotlib, "use", lambda *args, **kwargs: pytest.fail("matplotlib.use was called"))
    rows = [{"selection": "random", "tau": 0.1, "gamma": g, "avg_at_k": 0.2, "replacement_ratio": 0.1} for g in (0, 1)]
    SweepResult("replacement", rows, {"base": 0.1, "rl": 0.4}).plot()
    SweepResult("extrapolation", rows, {"base": 0.1, "rl": 0.4}).plot()
    assert matplotlib.get_backend() == backend


def test_sweep_result_round_trip(tmp_path):
    result = SweepResult(
        "extrapolation",
        [{"selection": "delta_logp", "tau": -0.3, "gamma": 0.1, "avg_at_k": 0.5, "replacement_ratio": 0.04}],
        {"base": 0.1, "rl": 0.4},
    )
    path = result.save(tmp_path / "out.json")
    assert json.loads(path.read_text())["rows"][0]["gamma"] == 0.1


# --- the commands ----------------------------------------------------------------------------------------------------
def test_parse_taus():
    assert parse_taus(["delta_logp=-1,-0.5", "random=0.1"]) == {"delta_logp": [-1.0, -0.5], "random": [0.1]}
    with pytest.raises(ValueError, match="RULE=T1,T2"):
        parse_taus(["delta_logp"])
    with pytest.raises(ValueError, match="unknown selection rule 'bogus'"):
        parse_taus(["bogus=0.1"])
    with pytest.raises(ValueError, match="thresholds must be numbers"):
        parse_taus(["kl=low"])


def test_building_the_parsers_imports_no_torch():
    code = (
        "import argparse, sys\n"
        "from hf_dlp.commands import extrapolate, replace\n"
        "for module in (replace, extrapolate): module.add_arguments(argparse.ArgumentParser())\n"
        "print('torch' in sys.modules)"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory, setup):
    tok, base, rl, _ = setup
    root = tmp_path_factory.mktemp("cli_models")
    for name, model in (("base", base), ("rl", rl)):
        model.save_pretrained(root / name)
        tok.save_pretrained(root / name)
    vocab = tok.get_vocab()
    swapped = {**vocab, "a": vocab["b"], "b": vocab["a"]}  # same size, two ids exchanged
    other = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel(vocab=swapped, unk_token="<unk>")), pad_token="<pad>"
    )
    rl.save_pretrained(root / "rl_other_tokenizer")
    other.save_pretrained(root / "rl_other_tokenizer")
    return root


def cli(command: str, model_dirs, output, *extra: str, rl: str = "rl") -> list[str]:
    return [
        command,
        "--base_model",
        str(model_dirs / "base"),
        "--rl-model",  # dash spelling: the same flags on every command
        str(model_dirs / rl),
        "--num_examples",
        "2",
        "--num_samples",
        "1",
        "--max_new_tokens",
        "3",
        "--output_dir",
        str(output),
        "--no_progress",
        "--device",
        "cpu",
        *extra,
    ]


def test_cli_replace(model_dirs, tmp_path, capsys):
    code = main(cli("replace", model_dirs, tmp_path, "--selections", "random", "--taus", "random=0,1"))
    assert code == 0
    rows = json.loads((tmp_path / "replacement_sweep.json").read_text())["rows"]
    assert [row["replacement_ratio"] for row in rows] == [0.0, 1.0]  # the saved JSON
    assert (tmp_path / "replacement_sweep.png").is_file() and "ratio=1.0000" in capsys.readouterr().out


def test_cli_extrapolate(model_dirs, tmp_path, capsys):
    code = main(
        cli(
            "extrapolate",
            model_dirs,
            tmp_path,
            "--gammas",
            "0",
            "0.5",
            "--taus",
            "-0.3",
            "--candidate_top_k",
            "0",
            "--block_size",
            "auto",
        )
    )
    assert code == 0
    saved = json.loads((tmp_path / "extrapolation_sweep.json").read_text())
    assert len(saved["rows"]) == 2 and saved["rows"][0]["candidate_top_k"] is None
    assert saved["settings"]["extrapolation"]["block_size"] == "auto"
    assert (tmp_path / "extrapolation_sweep.png").is_file() and "best: gamma=" in capsys.readouterr().out


@pytest.mark.parametrize("flag", ["--top_k", "--base", "--rl"])
def test_cli_refuses_the_flags_removed_in_0_3(model_dirs, tmp_path, flag, capsys):
    with pytest.raises(SystemExit) as error:
        main(cli("extrapolate", model_dirs, tmp_path, "--gammas", "0", "--taus", "-0.3", flag, "7"))
    assert error.value.code == 2 and flag in capsys.readouterr().err
    assert not (tmp_path / "extrapolation_sweep.json").exists()


@pytest.mark.parametrize("command", ["replace", "extrapolate"])
def test_cli_requires_both_models(tmp_path, command, capsys):
    with pytest.raises(SystemExit) as error:
        main([command, "--rl_model", "rl", "--output_dir", str(tmp_path)])
    assert error.value.code == 2
    assert "the following arguments are required: --base_model/--base-model" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["replace", "extrapolate"])
def test_cli_refuses_mismatched_tokenizers(model_dirs, tmp_path, command, monkeypatch):
    import hf_dlp.sweeps.sweep as sweep_module

    monkeypatch.setattr(sweep_module, "evaluate_model", lambda *a, **k: pytest.fail("compute before the check"))
    with pytest.raises(ValueError, match="tokenizers differ on 2 of their"):
        main(cli(command, model_dirs, tmp_path, rl="rl_other_tokenizer"))


@pytest.mark.parametrize("command", ["replace", "extrapolate"])
def test_cli_checks_the_output_folder_before_loading_anything(model_dirs, tmp_path, command, monkeypatch):
    import hf_dlp.model_pair

    monkeypatch.setattr(hf_dlp.model_pair, "load_model_pair", lambda *a, **k: pytest.fail("models loaded first"))
    file = tmp_path / "results"
    file.write_text("")
    with pytest.raises(ValueError, match="`output_dir` .* is a file"):
        main(cli(command, model_dirs, file))


def test_cli_refuses_unknown_tau_rules_and_bad_settings(model_dirs, tmp_path, monkeypatch):
    import hf_dlp.model_pair

    monkeypatch.setattr(hf_dlp.model_pair, "load_model_pair", lambda *a, **k: pytest.fail("models loaded first"))
    with pytest.raises(ValueError, match="unknown selection rule 'bogus'"):
        main(cli("replace", model_dirs, tmp_path, "--taus", "bogus=0.1"))
    with pytest.raises(ValueError, match=r"`selection` must be one of"):
        main(cli("extrapolate", model_dirs, tmp_path, "--selection", "magnitude"))
    with pytest.raises(ValueError, match=r"`generator` must be one of"):
        main(cli("extrapolate", model_dirs, tmp_path, "--generator", "critic"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=r"`gamma` must be a number <= 10000.0"):
            main(cli("replace", model_dirs, tmp_path, "--gamma", "1e39"))


# --- what the replacement swapped (record_swaps) --------------------------------------------------------------------
@pytest.mark.parametrize("block_size", [None, 4])
def test_extrapolation_records_the_swapped_tokens(setup, block_size):
    import torch

    from hf_dlp.extrapolation import generate_with_extrapolation

    tok, base, rl, _ = setup
    batch = tok(["Q: 1+2?", "Q: 10+7?"], return_tensors="pt", padding=True)
    runs = {}
    for record in (False, True):
        torch.manual_seed(0)
        runs[record] = generate_with_extrapolation(
            base, rl_model=rl, tokenizer=tok, config=ExtrapolationConfig(gamma=0.0, tau=0.05, block_size=block_size),
            **batch, max_new_tokens=10, do_sample=True, return_stats=True, record_swaps=record,
        )  # fmt: skip
    (plain, plain_stats), (output, stats) = runs[False], runs[True]
    assert torch.equal(plain, output) and plain_stats.swaps is None  # recording changes nothing
    assert [len(row) for row in stats.swaps] == stats.num_selected and sum(stats.num_selected) > 0
    prompt = batch.input_ids.shape[1]
    for row, swaps in enumerate(stats.swaps):
        for swap in swaps:
            assert output[row, prompt + swap.position].item() == swap.chosen
            assert swap.candidate_delta_logp <= 0.05 + 1e-6  # the rule that selected it: Δlog p of the base token
    assert "swaps" in stats.to_dict() and "swaps" not in plain_stats.to_dict()


def test_the_block_path_records_the_per_token_swaps(setup):
    import torch

    from hf_dlp.extrapolation import generate_with_extrapolation

    tok, base, rl, _ = setup
    batch = tok(["Q: 1+2?", "Q: 10+7?"], return_tensors="pt", padding=True)
    swaps = []
    for block_size in (None, 4):
        torch.manual_seed(0)
        _, stats = generate_with_extrapolation(
            base, rl_model=rl, tokenizer=tok, config=ExtrapolationConfig(gamma=0.0, tau=0.05, block_size=block_size),
            **batch, max_new_tokens=10, do_sample=True, return_stats=True, record_swaps=True,
        )  # fmt: skip
        swaps.append([[(s.position, s.candidate, s.chosen) for s in row] for row in stats.swaps])
    assert swaps[0] == swaps[1]


def test_record_swaps_needs_a_selective_rule_and_a_bool(setup):
    from hf_dlp.extrapolation import generate_with_extrapolation

    tok, base, rl, _ = setup
    batch = tok(["Q: 1+2?"], return_tensors="pt")
    with pytest.raises(ValueError, match="`record_swaps=True` records the positions a selective rule re-draws"):
        generate_with_extrapolation(base, rl_model=rl, selection="all", **batch, max_new_tokens=2, record_swaps=True)
    with pytest.raises(TypeError, match="`record_swaps` must be True or False, got 'yes'"):
        replacement_sweep(**pair_kwargs(setup), selections=["random"], record_swaps="yes")


def test_replacement_sweep_saves_the_most_frequent_swaps(setup, tmp_path):
    from hf_dlp.analysis import ReplacedResponse
    from hf_dlp.sweeps import format_swaps_table, replaced_responses, top_swaps

    kwargs = dict(
        selections=["random", "delta_logp"], taus={"random": [0.0, 1.0], "delta_logp": [0.0]}, num_samples=2,
        max_new_tokens=6, progress=False, output_dir=tmp_path, record_swaps=True,
    )  # fmt: skip
    result = replacement_sweep(**pair_kwargs(setup), **kwargs)
    rows = {(row.selection, row.tau): row for row in result.rows}
    assert rows[("random", 0.0)].swaps == {"num_selected": 0, "num_changed": 0, "top": [], "examples": []}
    every = rows[("random", 1.0)].swaps  # every position selected: as many as tokens generated
    assert every["num_selected"] > 0 and rows[("random", 1.0)].replacement_ratio == 1.0
    counts = [swap["count"] for swap in every["top"]]
    assert counts == sorted(counts, reverse=True) and sum(counts) <= every["num_changed"] <= every["num_selected"]
    assert all(swap["base_token"] != swap["rl_token"] for swap in every["top"])
    for example in every["examples"]:
        assert all(example["tokens"][swap["position"]] == swap["rl_token"] for swap in example["swaps"])
    assert all(s["base_delta_logp"] <= 0.0 for e in rows[("delta_logp", 0.0)].swaps["examples"] for s in e["swaps"])
    saved = json.loads((tmp_path / "replacement_sweep.json").read_text())
    assert saved["rows"][1]["swaps"] == json.loads(json.dumps(every))
    assert saved["settings"]["record_swaps"] is True
    table = format_swaps_table(SweepResult.from_dict(saved), limit=2)
    assert table.startswith("| selection | τ | base → RL |") and "| random | 1 |" in table
    assert len(top_swaps(result, limit=1)) <= 2
    replaced = replaced_responses(result, limit=3)
    assert replaced and all(isinstance(r, ReplacedResponse) for r in replaced)
    again = replacement_sweep(**pair_kwargs(setup), **kwargs)  # resumes: every cell reused, swaps included
    assert again.rows == result.rows
    assert format_swaps_table(replacement_sweep(**pair_kwargs(setup), selections=["random"], taus={"random": [1.0]},
                                                num_samples=1, max_new_tokens=2, progress=False)) == ""  # fmt: skip


def test_references_measured_by_another_sweep_are_reused_not_recomputed(setup, tmp_path, monkeypatch):
    common = dict(**pair_kwargs(setup), reward_fn=nonempty_reward, num_samples=2, max_new_tokens=6, progress=False)
    first = replacement_sweep(selections=["random"], taus={"random": [0.5]}, **common)
    from hf_dlp.sweeps import sweep as sweep_module

    evaluated = []
    real = sweep_module.evaluate_model

    def counting(model, *args, **kwargs):
        evaluated.append(kwargs.get("generate_fn") is None)  # True: a model alone, a reference
        return real(model, *args, **kwargs)

    monkeypatch.setattr(sweep_module, "evaluate_model", counting)
    again = extrapolation_sweep(
        gammas=[0.5], taus=[-0.3], generator="base", references=first.references, output_dir=tmp_path, **common
    )
    assert again.references == first.references and evaluated == [False]  # the grid cell only
    saved = json.loads((tmp_path / "extrapolation_sweep.json").read_text())
    assert saved["references"] == first.references
    # Computed ones equal the given ones: the same problems, sampling and seeds.
    computed = extrapolation_sweep(gammas=[0.5], taus=[-0.3], generator="base", **common)
    assert computed.references == first.references
    for bad in ({"base": 0.5}, {"base": 0.5, "rl": 2.0}, [0.1, 0.2]):
        with pytest.raises(ValueError, match="references"):
            extrapolation_sweep(gammas=[0.5], taus=[-0.3], references=bad, **common)
