import string

import pytest
import torch
from transformers import AutoModelForCausalLM

from hf_dlp.evaluation import evaluate_model
from hf_dlp.toy import (
    BaseModelSettings,
    ToyTaskConfig,
    build_char_tokenizer,
    build_tiny_causal_lm,
    load_char_tokenizer,
    make_arithmetic_dataset,
    make_toy_base_model,
)
from hf_dlp.toy import base_model as base_model_module

ROUND_TRIP_TEXTS = [
    "Hello,  world!   Two spaces, three spaces.",
    " leading and trailing spaces ",
    string.printable,
    "x = \\boxed{\\frac{1}{2}}\n\tnext line {braces} [brackets] ~`|^_",
]


@pytest.mark.parametrize("text", ROUND_TRIP_TEXTS)
def test_tokenizer_round_trips_ascii(char_tokenizer, text):
    ids = char_tokenizer(text, add_special_tokens=False).input_ids
    assert len(ids) == len(text)
    assert char_tokenizer.decode(ids) == text


def test_tokenizer_round_trips_after_save_and_load(tmp_path, tiny_model_dir):
    # The folder has a qwen2 config.json: the trap is AutoTokenizer returning Qwen2Tokenizer, which drops spaces.
    tokenizer = load_char_tokenizer(str(tiny_model_dir))
    text = "What is 3 + 4? The answer is \\boxed{7}."
    assert tokenizer.decode(tokenizer(text).input_ids) == text
    assert tokenizer.padding_side == "left"
    assert tokenizer.get_vocab() == build_char_tokenizer().get_vocab()


def test_tokenizer_special_tokens_left_padding_and_chat_template(char_tokenizer):
    batch = char_tokenizer(["ab", "abcd"], padding=True, return_tensors="pt")
    assert batch.input_ids[0, :2].tolist() == [char_tokenizer.pad_token_id] * 2
    assert batch.attention_mask.tolist() == [[0, 0, 1, 1], [1, 1, 1, 1]]
    assert len({char_tokenizer.pad_token_id, char_tokenizer.eos_token_id, char_tokenizer.bos_token_id}) == 3
    text = char_tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 1 + 2?"}], tokenize=False, add_generation_prompt=True
    )
    assert text == "<|im_start|>user\nWhat is 1 + 2?<|im_end|>\n<|im_start|>assistant\n"
    # Special tokens are single ids, not spelled out character by character.
    assert char_tokenizer("<|im_end|>", add_special_tokens=False).input_ids == [char_tokenizer.eos_token_id]


def test_tokenizer_rejects_bad_padding_side():
    with pytest.raises(ValueError, match="padding_side"):
        build_char_tokenizer(padding_side="middle")


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_tiny_model_save_load_equality(tmp_path, char_tokenizer, arch):
    model = build_tiny_causal_lm(arch, "nano", seed=3)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert loaded.config.model_type == arch
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    ids = char_tokenizer(["Q: 1 + 1?\nA: "], return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded(ids).logits)
    assert loaded.generation_config.pad_token_id == char_tokenizer.pad_token_id
    assert loaded.generation_config.eos_token_id == char_tokenizer.eos_token_id


def test_tiny_model_seed_padding_rows_and_errors(char_tokenizer):
    a, b = build_tiny_causal_lm(seed=1), build_tiny_causal_lm(seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    padded = build_tiny_causal_lm(vocab_size=len(char_tokenizer) + 22)
    assert padded.get_input_embeddings().weight.shape[0] == len(char_tokenizer) + 22
    with pytest.raises(ValueError, match="`arch`"):
        build_tiny_causal_lm("gpt2")
    with pytest.raises(ValueError, match="`size`"):
        build_tiny_causal_lm(size="huge")
    with pytest.raises(ValueError, match="`vocab_size`"):
        build_tiny_causal_lm(vocab_size=10)


def _evaluate_expression(question: str) -> int:
    expression = question.removeprefix("What is ").removeprefix("Compute ").removeprefix("Find ")[:-1]
    assert set(expression) <= set("0123456789+- "), question
    return eval(expression)  # checked above: plain integer arithmetic


@pytest.mark.parametrize("level", ["easy", "medium", "hard"])
def test_dataset_answers_are_correct_and_reproducible(level):
    dataset = make_arithmetic_dataset(level=level, num_examples=50, seed=7)
    assert dataset[:] == make_arithmetic_dataset(level=level, num_examples=50, seed=7)[:]
    assert dataset["question"] != make_arithmetic_dataset(level=level, num_examples=50, seed=8)["question"]
    for row in dataset:
        assert int(row["answer"]) == _evaluate_expression(row["question"])
        assert row["solution"].endswith(f"\\boxed{{{row['answer']}}}.")
        assert row["prompt"] == f"Q: {row['question']}\nA: "
    operators = dataset[0]["question"].count("+") + dataset[0]["question"].count(" - ")
    assert operators == (2 if level == "hard" else 1)


def test_dataset_chat_form_and_errors():
    row = make_arithmetic_dataset(num_examples=1, prompt_form="chat")[0]
    assert row["prompt"] == [{"role": "user", "content": row["question"]}]
    with pytest.raises(ValueError, match="`level`"):
        ToyTaskConfig(level="olympiad")
    with pytest.raises(ValueError, match="`num_examples`"):
        make_arithmetic_dataset(num_examples=0)
    with pytest.raises(ValueError, match="either `config`"):
        make_arithmetic_dataset(ToyTaskConfig(), level="hard")


def test_base_model_maker_is_deterministic_and_cached(tmp_path, monkeypatch):
    settings = BaseModelSettings(size="nano", num_train_examples=64, max_steps=3, batch_size=8)
    first = make_toy_base_model(settings, cache_dir=tmp_path / "a", progress=False)
    second = make_toy_base_model(settings, cache_dir=tmp_path / "b", progress=False)
    a = AutoModelForCausalLM.from_pretrained(first).state_dict()
    b = AutoModelForCausalLM.from_pretrained(second).state_dict()
    assert all(torch.equal(a[name], b[name]) for name in a)

    def fail(*args, **kwargs):
        raise AssertionError("a cached model was retrained")

    monkeypatch.setattr(base_model_module, "train_toy_base_model", fail)
    assert make_toy_base_model(settings, cache_dir=tmp_path / "a", progress=False) == first
    other = BaseModelSettings(size="nano", num_train_examples=64, max_steps=3, batch_size=8, seed=1)
    assert other.cache_key() != settings.cache_key()
    with pytest.raises(ValueError, match="`wrong_answer_share`"):
        BaseModelSettings(wrong_answer_share=1.5)


def test_settings_accept_numpy_scalars_and_keep_their_cache_key():
    import numpy as np

    plain = BaseModelSettings(size="nano", max_steps=3, learning_rate=0.01)
    scalars = BaseModelSettings(size="nano", max_steps=np.int64(3), learning_rate=np.float64(0.01))
    assert scalars == plain and scalars.cache_key() == plain.cache_key()
    assert BaseModelSettings().cache_key() == "7a710c0bd7e7db99"  # the cached default base model stays valid
    with pytest.raises(ValueError, match="`max_steps` must be an integer, got '3' \\(str\\)"):
        BaseModelSettings(max_steps="3")
    with pytest.raises(ValueError, match="`size` must be one of \\('nano', 'micro', 'small'\\), got 'huge'"):
        BaseModelSettings(size="huge")


def test_toy_settings_import_no_torch():
    import subprocess
    import sys

    code = "import sys, hf_dlp.toy.settings; assert 'torch' not in sys.modules and 'datasets' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_toy_base_model_is_right_sometimes_but_not_mostly(toy_base_model):
    model, tokenizer = toy_base_model
    dataset = make_arithmetic_dataset(level="easy", num_examples=64, seed=1234)
    result = evaluate_model(model, tokenizer, dataset, num_samples=4, max_new_tokens=48, top_p=1.0, progress=False)
    assert 0.10 <= result.avg_at_k <= 0.40, result.avg_at_k
    assert result.pass_at_k[4] > result.avg_at_k  # the samples disagree: RL has something to sharpen
