"""analyze_responses, generate_responses and analyze_model_pair on a tiny base model and a fine-tuned "RL" copy."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from datasets import Dataset

from hf_dlp.analysis import (
    METRIC_NAMES,
    analyze_model_pair,
    analyze_responses,
    compute_token_metrics,
    generate_responses,
)
from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm

PROMPTS = ["Q: 1+2?\nA: ", "Q: 4+4?\nA: ", "Q: 9-3?\nA: "]
RL_TARGETS = ["Q: 1+2?\nA: The answer is 3.", "Q: 4+4?\nA: The answer is 8.", "Q: 9-3?\nA: The answer is 6."]


@pytest.fixture(scope="module")
def pair(char_tokenizer):
    """A random tiny base model and an "RL" copy pulled toward a few answers by a few optimizer steps."""
    base = build_tiny_causal_lm("qwen2", "nano", seed=0)
    rl = copy.deepcopy(base).train()
    batch = char_tokenizer(RL_TARGETS, return_tensors="pt", padding=True)
    labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)
    optimizer = torch.optim.Adam(rl.parameters(), lr=2e-2)
    for _ in range(12):
        rl(**batch, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return base, rl.eval()


def _models(pair, tokenizer):
    return {"base_model": pair[0], "rl_model": pair[1], "tokenizer": tokenizer}


@pytest.fixture(scope="module")
def sampled(pair, char_tokenizer):
    return generate_responses(
        **_models(pair, char_tokenizer), prompts=PROMPTS, num_samples=4, max_new_tokens=12, progress=False
    )


def test_generate_responses_layout(sampled):
    assert sampled.column_names == ["prompt", "response", "source", "prompt_index"]
    assert list(sampled["source"]).count("base") == 12 and list(sampled["source"]).count("rl") == 12
    assert list(sampled["prompt_index"][:4]) == [0, 0, 0, 0]


def test_delta_logp_separates_who_wrote_the_response(pair, char_tokenizer, sampled):
    report = analyze_responses(**_models(pair, char_tokenizer), dataset=sampled, batch_size=5, progress=False)
    # E_{y~RL}[Δlog p] = KL(RL‖base) ≥ 0 and E_{y~base}[Δlog p] = −KL(base‖RL) ≤ 0: the signs tell who wrote it.
    assert report.values("delta_logp", "rl").mean() > 0 > report.values("delta_logp", "base").mean()
    separation = report.separation()
    assert separation["delta_logp"]["auroc_response"] > 0.9
    assert separation["delta_logp"]["overlap_token"] < 0.9
    assert set(report.summary()["delta_logp"]) == {"all", "base", "rl"}


def test_report_matches_compute_token_metrics(pair, char_tokenizer):
    data = Dataset.from_dict({"prompt": PROMPTS[:2], "response": ["The answer is 3.", "8"], "source": ["rl", "base"]})
    report = analyze_responses(**_models(pair, char_tokenizer), dataset=data, batch_size=1, progress=False)
    for row in range(2):
        prompt = char_tokenizer(PROMPTS[row], add_special_tokens=False).input_ids
        response = char_tokenizer(data["response"][row], add_special_tokens=False).input_ids
        ids = torch.tensor([prompt + response])
        completion = torch.tensor([[0] * len(prompt) + [1] * len(response)])
        expected = compute_token_metrics(
            base_model=pair[0], rl_model=pair[1], input_ids=ids, completion_mask=completion
        )
        for name in METRIC_NAMES:
            got = report.token_values[name][report.token_response == row]
            torch.testing.assert_close(got, expected.values(name), atol=1e-5, rtol=1e-5)
    assert report.num_tokens == len("The answer is 3.") + 1


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_batching_and_padding_do_not_change_values(pair, sampled, padding_side):
    tokenizer = build_char_tokenizer(padding_side=padding_side)
    one = analyze_responses(**_models(pair, tokenizer), dataset=sampled, batch_size=1, progress=False)
    many = analyze_responses(**_models(pair, tokenizer), dataset=sampled, batch_size=7, progress=False)
    assert one.sources == many.sources == list(sampled["source"])
    for name in METRIC_NAMES:
        torch.testing.assert_close(many.token_values[name], one.token_values[name], atol=1e-5, rtol=1e-5)


def test_chat_prompts_and_max_length(pair, char_tokenizer):
    messages = [[{"role": "user", "content": "What is 2+2?"}]]
    data = Dataset.from_dict({"prompt": messages, "response": ["The answer is 4."]})
    report = analyze_responses(**_models(pair, char_tokenizer), dataset=data, max_length=40, progress=False)
    rendered = char_tokenizer.apply_chat_template(messages[0], tokenize=False, add_generation_prompt=True)
    prompt_tokens = len(char_tokenizer(rendered, add_special_tokens=False).input_ids)
    assert prompt_tokens < 40 and report.num_tokens == 40 - prompt_tokens  # the response was cut to fit
    assert report.source_names == ["all"] and not report.has_separation()


def test_analyze_model_pair_from_folders(tmp_path, pair, char_tokenizer):
    for name, model in zip(("base", "rl"), pair, strict=True):
        model.save_pretrained(tmp_path / name)
        char_tokenizer.save_pretrained(tmp_path / name)
    report = analyze_model_pair(
        base_model=str(tmp_path / "base"),
        rl_model=tmp_path / "rl",
        prompts=Dataset.from_dict({"prompt": PROMPTS[:2]}),
        num_samples=np.int64(2),
        max_new_tokens=8,
        dtype="float32",
        device="cpu",
        progress=False,
    )
    assert report.num_responses == 8 and report.source_names == ["base", "rl"]
    assert report.settings["num_samples"] == 2
    assert report.settings["max_new_tokens"] == 8 and report.settings["top_p"] == 0.7  # hf_dlp's default sampling


def test_bad_inputs(pair, char_tokenizer, tmp_path):
    models = _models(pair, char_tokenizer)
    data = Dataset.from_dict({"prompt": PROMPTS[:1], "response": ["3"]})
    with pytest.raises(ValueError, match="`dataset` is empty"):
        analyze_responses(**models, dataset=data.select([]), progress=False)
    with pytest.raises(ValueError, match=r"`response_column` 'answer' is not a column"):
        analyze_responses(**models, dataset=data, response_column="answer", progress=False)
    with pytest.raises(TypeError, match="must be a datasets.Dataset, got dict"):
        analyze_responses(**models, dataset=data.to_dict(), progress=False)
    with pytest.raises(ValueError, match="Row 0 has an empty response"):
        analyze_responses(**models, dataset=Dataset.from_dict({"prompt": ["Q"], "response": [""]}))
    with pytest.raises(ValueError, match=r"`batch_size` must be an integer >= 1, got 0"):
        analyze_responses(**models, dataset=data, batch_size=0)
    with pytest.raises(ValueError, match=r"`batch_size` must be an integer, got '2' \(str\)"):
        analyze_responses(**models, dataset=data, batch_size="2")
    with pytest.raises(ValueError, match=r"Row 0: the prompt alone has 11 tokens, .* `max_length` \(5\)"):
        analyze_responses(**models, dataset=data, max_length=5)
    with pytest.raises(ValueError, match="Separation needs responses from `positive_source` 'rl'"):
        analyze_responses(**models, dataset=data, progress=False).separation()
    with pytest.raises(ValueError, match="`prompts` is empty"):
        generate_responses(**models, prompts=[])
    with pytest.raises(ValueError, match="`tokenizer` is required"):
        analyze_model_pair(base_model=pair[0], rl_model=pair[1], prompts=PROMPTS)
    with pytest.raises(TypeError, match="both be names/paths or both be loaded models"):
        analyze_model_pair(base_model=str(tmp_path), rl_model=pair[1], prompts=PROMPTS)
    with pytest.raises(ValueError, match=r"`dtype` must be one of .* got 'fp8'"):
        analyze_model_pair(base_model=str(tmp_path), rl_model=str(tmp_path), prompts=PROMPTS, dtype="fp8")
    with pytest.raises(ValueError, match="`temperature`"):  # refused by GenerationConfig before any model loads
        analyze_model_pair(base_model="./no/such/base", rl_model="./no/such/rl", prompts=PROMPTS, temperature=-1.0)
    with pytest.raises(FileNotFoundError, match="the local path './no/such/base' does not exist"):
        analyze_model_pair(base_model="./no/such/base", rl_model="./no/such/rl", prompts=PROMPTS)
    with pytest.raises(ValueError, match=r"`prompt_column` 'question' is not a column of `prompts`"):
        analyze_model_pair(**models, prompts=Dataset.from_dict({"prompt": PROMPTS}), prompt_column="question")


def test_one_prompt_string_is_refused(pair, char_tokenizer):
    """Defect 6: one prompt string used to be read one character at a time (a response per character)."""
    for prompts in ("Q: 1+2?\nA: ", Dataset.from_dict({"prompt": ["Q: 1+2?\nA: "]}).select([0])[0]["prompt"]):
        with pytest.raises(ValueError, match=r"`prompts` must be a list of prompts, got the string 'Q: 1\+2\?\\nA: '"):
            analyze_model_pair(**_models(pair, char_tokenizer), prompts=prompts, num_samples=1, max_new_tokens=2)
    with pytest.raises(ValueError, match="`prompts` must be a list of prompts, got the string"):
        generate_responses(**_models(pair, char_tokenizer), prompts="Q: 1+2?", num_samples=1, max_new_tokens=2)


def test_generation_config_and_keyword_overrides(pair, char_tokenizer):
    from transformers import GenerationConfig

    config = GenerationConfig(do_sample=True, top_p=0.9, max_new_tokens=5)
    models = _models(pair, char_tokenizer)
    report = analyze_model_pair(
        **models, prompts=PROMPTS[:1], num_samples=1, generation_config=config, max_new_tokens=3, progress=False
    )
    assert report.settings["top_p"] == 0.9 and report.settings["max_new_tokens"] == 3
    assert config.max_new_tokens == 5  # the caller's config is not modified
    responses = generate_responses(**models, prompts=PROMPTS[:1], num_samples=2, generation_config=config)
    assert all(len(char_tokenizer(r).input_ids) <= 5 for r in responses["response"])


def test_spellings_removed_in_0_3_are_refused(pair, char_tokenizer, sampled):
    """Positional pairs, `top_k` for `logprobs_top_k` and `base=`/`rl=` are plain `TypeError`s since hf_dlp 0.3.0."""
    base, rl = pair
    data = sampled.select(range(4))
    with pytest.raises(TypeError, match="positional argument"):
        analyze_responses(base, rl, char_tokenizer, data, progress=False)
    with pytest.raises(TypeError, match="unexpected keyword argument 'top_k'"):
        analyze_responses(**_models(pair, char_tokenizer), dataset=data, top_k=5, progress=False)
    with pytest.raises(TypeError, match="positional argument"):
        generate_responses(base, rl, char_tokenizer, PROMPTS[:1], num_samples=1, max_new_tokens=3, progress=False)
    with pytest.raises(TypeError, match="positional argument"):
        analyze_model_pair(base, rl, PROMPTS[:1], tokenizer=char_tokenizer, num_samples=1, progress=False)
    with pytest.raises(TypeError, match="missing 2 required keyword-only arguments: 'base_model' and 'rl_model'"):
        analyze_model_pair(base=base, rl=rl, prompts=PROMPTS[:1], tokenizer=char_tokenizer, progress=False)


def test_top_k_of_analyze_model_pair_is_the_sampling_setting(pair, char_tokenizer):
    """`top_k=` goes to `generate` like the other sampling keywords; the scoring approximation is `logprobs_top_k`."""
    report = analyze_model_pair(
        **_models(pair, char_tokenizer), prompts=PROMPTS[:1], num_samples=1, max_new_tokens=3, top_k=5, progress=False
    )
    assert report.settings["top_k"] == 5 and report.settings["logprobs_top_k"] is None


def test_mismatched_tokenizer_is_refused(pair, char_tokenizer):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {chr(ord("a") + i): i for i in range(26)}
    other = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="a")))
    data = Dataset.from_dict({"prompt": PROMPTS[:1], "response": ["3"]})
    with pytest.raises(ValueError, match="base and RL tokenizers differ on 26 of their 26 shared ids"):
        analyze_responses(**_models(pair, char_tokenizer), dataset=data, rl_tokenizer=other, progress=False)
