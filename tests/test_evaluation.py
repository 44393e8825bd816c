import json
from math import comb

import evaluate
import numpy as np
import pytest
import torch
from transformers import GenerationConfig

from hf_dlp.evaluation import MATH_ACCURACY_METRIC_PATH, evaluate_model, pass_at_k
from hf_dlp.generation import render_prompts, sample_completions
from hf_dlp.rewards import signed_accuracy_reward
from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm, make_arithmetic_dataset


def test_pass_at_k_matches_hand_computed_values():
    # n=5 samples, c=2 correct, k=3: 1 - C(3,3)/C(5,3) = 1 - 1/10.
    assert pass_at_k(5, 2, 3) == pytest.approx(0.9)
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    for n, c, k in [(16, 5, 4), (32, 1, 16), (8, 8, 8), (8, 0, 1)]:
        assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k))
    with pytest.raises(ValueError, match="`k`"):
        pass_at_k(4, 1, 5)
    with pytest.raises(ValueError, match="`num_correct`"):
        pass_at_k(4, 5, 1)
    assert pass_at_k(np.int64(5), torch.tensor(2), np.int32(3)) == pytest.approx(0.9)
    with pytest.raises(ValueError, match="`k` must be an integer, got '3' \\(str\\)"):
        pass_at_k(5, 2, "3")


class ScriptedGenerator:
    """Stands in for `model.generate`: answers each prompt with scripted completions, in call order."""

    def __init__(self, tokenizer, answers):
        self.tokenizer, self.answers, self.calls = tokenizer, list(answers), 0

    def __call__(self, input_ids, attention_mask, **kwargs):
        self.calls += 1
        texts = [self.answers.pop(0) + self.tokenizer.eos_token for _ in range(input_ids.shape[0])]
        new = self.tokenizer(texts, padding=True, return_tensors="pt", add_special_tokens=False).input_ids
        return torch.cat([input_ids, new], dim=1)


def test_evaluate_model_counts_avg_and_pass_at_k(char_tokenizer, tmp_path):
    dataset = make_arithmetic_dataset(num_examples=3, seed=5)
    truths = dataset["answer"]
    # Problem 0: 2 of 2 right, problem 1: 1 of 2, problem 2: 0 of 2.
    answers = [f"\\boxed{{{truths[0]}}}"] * 2 + [f"\\boxed{{{truths[1]}}}", "\\boxed{-999}"] + ["no box"] * 2
    generator = ScriptedGenerator(char_tokenizer, answers)
    model = build_tiny_causal_lm(size="nano")
    result = evaluate_model(
        model,
        char_tokenizer,
        dataset,
        num_samples=2,
        batch_size=3,
        generate_fn=generator,
        progress=False,
        reward_fn=signed_accuracy_reward,
        keep_completions=True,
    )
    assert generator.calls == 2  # 6 sequences in batches of 3
    assert result.correct_counts == [2, 1, 0]
    assert result.avg_at_k == pytest.approx(0.5)
    assert result.pass_at_k[1] == pytest.approx(0.5)
    assert result.pass_at_k[2] == pytest.approx((1 + 1 + 0) / 3)
    assert result.completions[1] == [f"\\boxed{{{truths[1]}}}", "\\boxed{-999}"]
    saved = json.loads(result.save(tmp_path).read_text())
    assert saved["avg@2"] == pytest.approx(0.5) and saved["pass_at_k"]["2"] == pytest.approx(2 / 3)
    assert saved["hf_dlp_version"]
    # hf_dlp's one default sampling, recorded from the resolved GenerationConfig
    assert {k: result.settings[k] for k in ("do_sample", "temperature", "top_p", "max_new_tokens")} == {
        "do_sample": True,
        "temperature": 1.0,
        "top_p": 0.7,
        "max_new_tokens": 256,
    }


def test_generation_config_and_keyword_overrides_reach_generate(char_tokenizer):
    seen = []

    def generate(input_ids, attention_mask, generation_config, **kwargs):
        seen.append((generation_config, kwargs))
        return input_ids

    config = GenerationConfig(do_sample=True, top_p=0.9, max_new_tokens=16)
    dataset = make_arithmetic_dataset(num_examples=2)
    model = build_tiny_causal_lm(size="nano")
    result = evaluate_model(
        model,
        char_tokenizer,
        dataset,
        num_samples=1,
        generate_fn=generate,
        progress=False,
        generation_config=config,
        temperature=0.5,
        output_scores=False,
    )
    used, kwargs = seen[0]
    assert (used.top_p, used.temperature, used.max_new_tokens, kwargs) == (0.9, 0.5, 16, {})
    assert config.temperature is None  # the caller's config is untouched
    assert result.settings["temperature"] == 0.5 and result.settings["top_p"] == 0.9
    # the old keyword spelling still works: max_new_tokens/temperature/top_p as `generate` keywords
    evaluate_model(
        model,
        char_tokenizer,
        dataset,
        num_samples=1,
        generate_fn=generate,
        progress=False,
        max_new_tokens=8,
        temperature=1.0,
        top_p=1.0,
    )
    assert (seen[-1][0].max_new_tokens, seen[-1][0].top_p) == (8, 1.0)


def test_missing_ground_truth_is_reported_before_sampling(char_tokenizer):
    calls = []

    def generate(input_ids, attention_mask, **kwargs):
        calls.append(1)
        return input_ids

    dataset = make_arithmetic_dataset(num_examples=2).remove_columns(["answer", "solution"])
    model = build_tiny_causal_lm(size="nano")
    with pytest.raises(ValueError, match="needs the ground truth as a dataset column: none of `answer`, `solution`"):
        evaluate_model(model, char_tokenizer, dataset, num_samples=1, generate_fn=generate, progress=False)
    assert calls == []  # refused before any sampling


def test_numbers_as_numpy_or_tensor_scalars_and_lists_given_as_strings(char_tokenizer):
    model = build_tiny_causal_lm(size="nano")
    dataset = make_arithmetic_dataset(num_examples=2)
    result = evaluate_model(
        model,
        char_tokenizer,
        dataset,
        num_samples=np.int64(2),
        pass_at=np.array([1, 2]),
        batch_size=torch.tensor(4),
        seed=np.int64(3),
        max_new_tokens=np.int64(3),
        temperature=np.float32(0.5),
        progress=False,
    )
    assert result.num_samples == 2 and sorted(result.pass_at_k) == [1, 2] and result.settings["max_new_tokens"] == 3
    with pytest.raises(ValueError, match="`pass_at` must be a list of values of k, got the string '1'"):
        evaluate_model(model, char_tokenizer, dataset, pass_at="1", progress=False)
    with pytest.raises(ValueError, match="`num_samples` must be an integer >= 1, got 0"):
        evaluate_model(model, char_tokenizer, dataset, num_samples=0, progress=False)
    with pytest.raises(ValueError, match="`temperature=-1.0` is not a valid sampling setting"):
        evaluate_model(model, char_tokenizer, dataset, temperature=-1.0, progress=False)


def test_sampling_is_reproducible_and_handles_chat_prompts(char_tokenizer):
    model = build_tiny_causal_lm(size="nano", seed=2)
    prompts = make_arithmetic_dataset(num_examples=3, prompt_form="chat")["prompt"]
    kwargs = dict(num_samples=2, batch_size=4, max_new_tokens=6, do_sample=True, progress=False)
    first = sample_completions(model, char_tokenizer, prompts, seed=11, **kwargs)
    assert first == sample_completions(model, char_tokenizer, prompts, seed=11, **kwargs)
    assert [len(group) for group in first] == [2, 2, 2]
    assert render_prompts(char_tokenizer, prompts)[0].endswith("<|im_start|>assistant\n")


def test_evaluation_errors(char_tokenizer):
    model = build_tiny_causal_lm(size="nano")
    dataset = make_arithmetic_dataset(num_examples=2)
    with pytest.raises(ValueError, match="empty"):
        evaluate_model(model, char_tokenizer, dataset.select([]), progress=False)
    with pytest.raises(ValueError, match="Pass@8"):
        evaluate_model(model, char_tokenizer, dataset, num_samples=4, pass_at=[8], progress=False)
    with pytest.raises(ValueError, match="`prompt_column`"):
        evaluate_model(model, char_tokenizer, dataset, prompt_column="problem", progress=False)
    right = build_char_tokenizer(padding_side="right")
    with pytest.raises(ValueError, match="left padding"):
        sample_completions(model, right, ["Q: 1?\nA: "], progress=False)


def test_math_accuracy_metric_loads_offline_with_evaluate():
    metric = evaluate.load(MATH_ACCURACY_METRIC_PATH)
    score = metric.compute(predictions=["\\boxed{\\frac{1}{2}}", "\\boxed{3}", "three"], references=["0.5", "4", "3"])
    assert score == {"accuracy": pytest.approx(1 / 3)}
