"""Edge cases of the shared foundations: argument checks, generation settings, model pairs, loading, CLI options."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest
import torch
from transformers import GenerationConfig

from hf_dlp.arguments import check_choice, check_number, check_output_dir, check_sequence
from hf_dlp.commands._options import add_option
from hf_dlp.generation import (
    check_left_padding,
    check_prompts,
    default_generation_config,
    generation_settings,
    resolve_generation_config,
    sample_completions,
)
from hf_dlp.loading import check_model_source, load_causal_lm, load_dataset_spec, load_tokenizer
from hf_dlp.model_pair import check_pair_devices, check_same_vocabulary, common_vocab_size, load_model_pair
from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm

# ----------------------------------------------------------------------------------------------- numbers, lists


@pytest.mark.parametrize("value", [4, 4.0, np.int64(4), np.float32(4.0), torch.tensor(4), torch.tensor(4.0)])
def test_numbers_from_numpy_and_tensors_are_accepted(value):
    assert check_number("num_samples", value, integer=True, minimum=1) == 4
    assert type(check_number("num_samples", value, integer=True)) is int
    assert type(check_number("gamma", value)) is float


@pytest.mark.parametrize(
    "value, message",
    [
        (True, r"must be an integer, got True \(bool\)"),
        ("4", r"must be an integer, got '4' \(str\)"),
        (None, r"must be an integer, got None \(NoneType\)"),
        (4.5, "must be an integer, got 4.5"),
        (torch.tensor([4]), r"must be an integer, got tensor\(\[4\]\) \(Tensor\)"),
        (0, "must be an integer >= 1, got 0"),
    ],
)
def test_bad_integers_are_refused_by_name(value, message):
    with pytest.raises(ValueError, match=f"^`num_samples` {message}"):
        check_number("num_samples", value, integer=True, minimum=1)


def test_bounds_and_non_finite_numbers():
    for bad in (math.nan, math.inf, np.float64("inf")):
        with pytest.raises(ValueError, match="`gamma` must be a finite number"):
            check_number("gamma", bad)
    with pytest.raises(ValueError, match="`gamma` must be a number <= 10000.0, got 1e\\+39"):
        check_number("gamma", 1e39, maximum=1e4)
    with pytest.raises(ValueError, match="`alpha` must be a number > 0, got 0.0. Use a small positive value."):
        check_number("alpha", 0, minimum=0, exclusive_minimum=True, hint="Use a small positive value.")
    assert check_number("limit", None, allow_none=True) is None


def test_strings_where_lists_are_expected_are_refused_by_name():
    with pytest.raises(ValueError, match=r"`selections` must be a list of rules, got the string 'kl'; .* \['kl'\]"):
        check_sequence("selections", "kl", items="rules")
    with pytest.raises(ValueError, match="`selections` must be a list of entries, got int"):
        check_sequence("selections", 3)
    with pytest.raises(ValueError, match="`selections` is empty"):
        check_sequence("selections", [])
    assert check_sequence("ks", np.array([1, 2])) == [1, 2] and check_sequence("ks", torch.tensor([3])) == [3]
    assert check_sequence("ks", (), allow_empty=True) == []
    with pytest.raises(ValueError, match=r"`generator` must be one of \('rl', 'base'\), got 'RL'"):
        check_choice("generator", "RL", ("rl", "base"))


def test_output_dir_is_checked_before_work(tmp_path):
    assert check_output_dir("output_dir", None) is None
    nested = check_output_dir("output_dir", tmp_path / "a" / "b")
    assert nested.is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"`output_dir` \(.*file'\) is a file; give a folder"):
        check_output_dir("output_dir", tmp_path / "file")
    with pytest.raises(ValueError, match=r"`output_dir` \(.*file/sub'\) cannot be created: .* Choose another folder"):
        check_output_dir("output_dir", tmp_path / "file" / "sub")


# ----------------------------------------------------------------------------------------------- generation


def test_one_prompt_string_and_bad_prompts_are_refused():
    with pytest.raises(ValueError, match="`prompts` must be a list of prompts, got the string 'Q'"):
        check_prompts("Q")
    with pytest.raises(ValueError, match=r"`prompts\[1\]` must be a string or a list of chat messages"):
        check_prompts(["Q", 3])
    with pytest.raises(ValueError, match="`prompts` is empty"):
        check_prompts([])


def test_generation_settings_resolve_once_with_one_default():
    default, rest = resolve_generation_config()
    assert generation_settings(default) == {"do_sample": True, "max_new_tokens": 256, "temperature": 1.0, "top_p": 0.7}
    given = GenerationConfig(do_sample=True, top_k=20)
    config, rest = resolve_generation_config(given, max_new_tokens=np.int64(8), temperature=np.float32(0.5),
                                             logits_processor=None)  # fmt: skip
    assert (config.top_k, config.max_new_tokens, config.temperature, rest) == (20, 8, 0.5, {"logits_processor": None})
    assert type(config.max_new_tokens) is int and type(config.temperature) is float
    assert given.max_new_tokens is None  # the caller's config is a template, never modified
    greedy, _ = resolve_generation_config(do_sample=False)
    assert (greedy.do_sample, greedy.top_p, greedy.max_new_tokens) == (False, None, 256)
    assert default_generation_config(top_p=0.9).top_p == 0.9


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"temperature": -1.0}, "`temperature=-1.0` is not a valid sampling setting"),
        ({"temperature": 0.0}, "set `do_sample=False`"),
        ({"top_p": 1.5}, "`top_p=1.5` is not a valid sampling setting"),
        ({"top_k": -3}, "`top_k=-3` is not a valid sampling setting"),
        ({"epsilon_cutoff": 2.0}, "`epsilon_cutoff=2.0` is not a valid sampling setting"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"max_new_tokens": "8"}, r"`max_new_tokens` must be an integer, got '8' \(str\)"),
    ],
)
def test_bad_sampling_settings_fail_before_any_model_runs(settings, message):
    with pytest.raises(ValueError, match=message):
        resolve_generation_config(**settings)


def test_generation_config_must_be_a_generation_config():
    with pytest.raises(TypeError, match="`generation_config` must be a transformers.GenerationConfig, got dict"):
        resolve_generation_config({"top_p": 0.9})


def test_sample_completions_accepts_scalars_and_checks_the_tokenizer(char_tokenizer):
    model = build_tiny_causal_lm(size="nano")
    out = sample_completions(
        model, char_tokenizer, ["Q: 1?"], num_samples=np.int64(2), batch_size=torch.tensor(2), seed=np.int64(1),
        max_new_tokens=2, progress=False,
    )  # fmt: skip
    assert [len(group) for group in out] == [2]
    with pytest.raises(ValueError, match="`num_samples` must be an integer >= 1, got 0"):
        sample_completions(model, char_tokenizer, ["Q"], num_samples=0, progress=False)
    no_pad = build_char_tokenizer()
    no_pad.pad_token = None
    with pytest.raises(ValueError, match="no pad token"):
        check_left_padding(no_pad)


# ----------------------------------------------------------------------------------------------- model pairs


def test_common_vocab_size_refuses_differing_heads_without_a_length():
    small, padded = build_tiny_causal_lm(size="nano"), build_tiny_causal_lm(size="nano", vocab_size=128)
    assert common_vocab_size(base_model=small, rl_model=small) == 106
    assert common_vocab_size(base_model=small, rl_model=padded, vocab_size=np.int64(100)) == 100
    with pytest.raises(ValueError, match=r"differ \(106 and 128 rows\), so some rows are padding; pass `vocab_size`"):
        common_vocab_size(base_model=small, rl_model=padded)
    with pytest.raises(ValueError, match=r"`vocab_size` must be an integer <= 106, got 128. The models have 106"):
        common_vocab_size(base_model=small, rl_model=padded, vocab_size=128)


def test_model_pair_functions_refuse_a_positional_pair():
    """Since hf_dlp 0.3.0 the pair is keyword-only everywhere, so it can never be swapped silently."""
    model = build_tiny_causal_lm(size="nano")
    with pytest.raises(TypeError, match="positional argument"):
        common_vocab_size(model, model)
    with pytest.raises(TypeError, match="positional argument"):
        check_pair_devices(model, model)
    with pytest.raises(TypeError, match="positional argument"):
        load_model_pair("./no/such/base", "./no/such/rl")


def test_load_model_pair_refuses_a_mismatched_tokenizer_before_any_weights(tmp_path, char_tokenizer):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    char_tokenizer.save_pretrained(tmp_path / "base")  # tokenizers only: weights would be loaded after the check
    other = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"a": 0, "<unk>": 1}, "<unk>")))
    other.save_pretrained(tmp_path / "rl")
    with pytest.raises(ValueError, match="base and RL tokenizers differ on 1 of their 2 shared ids"):
        load_model_pair(base_model=tmp_path / "base", rl_model=tmp_path / "rl", device="cpu")
    with pytest.raises(FileNotFoundError, match="`rl_model`: the local path './no/such/rl' does not exist"):
        load_model_pair(base_model=tmp_path / "base", rl_model="./no/such/rl")
    with pytest.raises(ValueError, match=r"`dtype` must be one of .* got 'fp8'"):
        load_model_pair(base_model=tmp_path / "base", rl_model=tmp_path / "base", dtype="fp8")
    assert check_same_vocabulary(char_tokenizer, load_tokenizer(tmp_path / "base")) == len(char_tokenizer)


# ----------------------------------------------------------------------------------------------- loading


def test_model_sources_say_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="`model`: the local path './missing/ckpt' does not exist"):
        check_model_source("./missing/ckpt")
    with pytest.raises(FileNotFoundError, match="the local path .*nope' does not exist"):
        load_causal_lm(tmp_path / "nope")
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="is a file; give the model folder that holds it"):
        check_model_source(tmp_path / "weights.bin")
    with pytest.raises(ValueError, match="`model` must be a model folder or Hub id, got ''"):
        check_model_source("")
    assert check_model_source("Qwen/Qwen2.5-32B") == "Qwen/Qwen2.5-32B"  # Hub ids are left to the Hub


def test_data_files_that_are_empty_or_broken_are_named(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "blank.json").write_text("\n\n")
    (tmp_path / "broken.json").write_text('{"prompt": ')
    (tmp_path / "bad_line.jsonl").write_text('{"prompt": "a"}\n{"prompt": \n')
    for name, message in (
        ("empty.jsonl", "is empty; it needs at least one row"),
        ("blank.json", "is empty; it needs at least one row"),
        ("broken.json", r"is not valid JSON or JSON Lines \(line 1"),
        ("bad_line.jsonl", r"is not valid JSON or JSON Lines \(line 2"),
    ):
        with pytest.raises(ValueError, match=f"Dataset file '.*{name}' {message}"):
            load_dataset_spec(str(tmp_path / name))
    with pytest.raises(FileNotFoundError, match="Dataset path './no/such/folder' does not exist"):
        load_dataset_spec("./no/such/folder")
    (tmp_path / "rows.json").write_text(json.dumps([]))
    with pytest.raises(ValueError, match=r"Dataset file '.*rows.json' holds no rows \(\[\]\)"):
        load_dataset_spec(str(tmp_path / "rows.json"))


def test_missing_columns_and_scalar_limits(tmp_path):
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps({"prompt": str(i)}) for i in range(3)))
    spec = str(tmp_path / "rows.jsonl")
    with pytest.raises(ValueError, match=r"has no column 'answer' \(its columns: \['prompt'\]\)"):
        load_dataset_spec(spec, required_columns=("prompt", "answer"))
    assert load_dataset_spec(spec, limit=np.int64(2)).num_rows == 2
    with pytest.raises(ValueError, match="`limit` must be an integer, got '2' \\(str\\)"):
        load_dataset_spec(spec, limit="2")


# ----------------------------------------------------------------------------------------------- CLI options


def test_add_option_spellings_and_types(capsys):
    parser = argparse.ArgumentParser()
    add_option(parser, "base_model", required=True)
    add_option(parser, "logprobs_top_k", type=int)
    add_option(parser, "dtype", default="auto", choices=("auto", "bfloat16"))
    args = parser.parse_args(["--base-model", "a", "--logprobs-top-k", "5"])
    assert (args.base_model, args.logprobs_top_k, args.dtype) == ("a", 5, "auto")
    with pytest.raises(SystemExit):
        parser.parse_args(["--base_model", "a", "--logprobs_top_k", "seven"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--base_model", "a", "--dtype", "fp8"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--logprobs_top_k", "5"])
    assert "the following arguments are required: --base_model" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--base", "--top_k", "--top-k"])
def test_add_option_refuses_the_spellings_removed_in_0_3(flag, capsys):
    parser = argparse.ArgumentParser()
    add_option(parser, "base_model")
    add_option(parser, "logprobs_top_k", type=int)
    with pytest.raises(SystemExit):
        parser.parse_args([flag, "7"])
    assert "error:" in capsys.readouterr().err
