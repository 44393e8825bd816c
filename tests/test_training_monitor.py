"""The training-time Δlog p monitor, token masks and response weights on real generation batches, against an
independent computation (full-logit forward passes of the policy and of a freshly loaded reference model); the
reference model TRL builds (or, for LoRA, does not build) for them; `weight_fn`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trl.trainer.grpo_trainer
from peft import LoraConfig
from transformers import AutoModelForCausalLM

from hf_dlp.toy import load_char_tokenizer, make_arithmetic_dataset
from hf_dlp.training import ReweightedGRPOConfig, ReweightedGRPOTrainer
from hf_dlp.training.batch_signals import RESPONSE_WEIGHTS_KEY, TOKEN_MASK_KEY

QUANTILES, THRESHOLDS = [0.1, 0.5, 0.9], [0.01, 0.1]
SMALL = dict(  # one prompt group of 4 per step, short completions, a learning rate that moves the policy
    per_device_train_batch_size=4, num_generations=4, max_completion_length=8, max_steps=2, learning_rate=0.05,
    logging_steps=1, use_cpu=True, bf16=False, report_to="none", save_strategy="no", gradient_checkpointing=False,
    disable_tqdm=True, seed=0, loss_type="dapo", delta_logp_quantiles=QUANTILES, delta_logp_thresholds=THRESHOLDS,
)  # fmt: skip


def variety_reward(completions, **kwargs):
    return [len(set(completion)) / 10 for completion in completions]


def _trainer(model_dir, output_dir, peft_config=None, weight_fn=None, **kwargs):
    args = ReweightedGRPOConfig(output_dir=str(output_dir), **{**SMALL, **kwargs})
    return ReweightedGRPOTrainer(
        AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32),
        variety_reward,
        args=args,
        train_dataset=make_arithmetic_dataset(num_examples=8, seed=1),
        processing_class=load_char_tokenizer(str(model_dir)),
        peft_config=peft_config,
        weight_fn=weight_fn,
    )


@torch.no_grad()
def _full_logit_logps(model, output) -> torch.Tensor:
    """log π(y_t) of the completion tokens from one plain forward pass with full logits (no TRL code)."""
    input_ids = torch.cat([output["prompt_ids"], output["completion_ids"]], dim=1)
    attention_mask = torch.cat([output["prompt_mask"], output["completion_mask"]], dim=1)
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1].float()
    logps = logits.log_softmax(-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    return logps[:, -output["completion_ids"].shape[1] :]


def _record_batches(trainer, reference):
    """Spy on the generation step: keep each batch and Δlog p computed independently at that moment."""
    records = []
    generate = trainer._generate_and_score_completions

    def spy(inputs):
        output = generate(inputs)
        policy = trainer.accelerator.unwrap_model(trainer.model)
        delta = _full_logit_logps(policy, output) - _full_logit_logps(reference, output)
        records.append((output, delta))
        return output

    trainer._generate_and_score_completions = spy
    return records


def _independent_statistics(delta, mask) -> dict[str, float]:
    active = np.sort(delta[mask.bool()].double().numpy())
    stats = {"mean": active.mean(), "abs_mean": np.abs(active).mean()}
    stats.update({f"quantile_{q:g}": active[max(int(len(active) * q), 1) - 1] for q in QUANTILES})
    stats.update({f"share_abs_above_{t:g}": (np.abs(active) > t).mean() for t in THRESHOLDS})
    return stats


def _check_monitor(trainer, records):
    logs = [log for log in trainer.state.log_history if "delta_logp/mean" in log]
    assert len(logs) == len(records) == 2
    for log, (output, delta) in zip(logs, records, strict=True):
        expected = _independent_statistics(delta, output["completion_mask"])
        for key, value in expected.items():
            assert log[f"delta_logp/{key}"] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    assert logs[0]["delta_logp/abs_mean"] == 0.0  # step 1: the policy is still the reference
    assert logs[1]["delta_logp/abs_mean"] > 1e-4  # step 2: it has moved


def test_monitor_equals_an_independent_computation_and_loads_a_reference_only_for_it(tiny_model_dir, tmp_path):
    trainer = _trainer(tiny_model_dir, tmp_path, delta_logp_monitor=True, beta=0.0)
    assert trainer.ref_model is not None and trainer.beta == 0.0 and trainer.args.beta == 0.0
    records = _record_batches(trainer, AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32))
    trainer.train()
    _check_monitor(trainer, records)
    assert all("kl" not in log for log in trainer.state.log_history)  # beta stays 0: no KL term
    assert _trainer(tiny_model_dir, tmp_path / "off", beta=0.0).ref_model is None  # nothing loaded without a need


def test_lora_monitor_uses_the_adapter_disabled_policy(tiny_model_dir, tmp_path, monkeypatch):
    """With LoRA no second model is loaded: the reference is the policy with its adapter disabled."""
    built = []
    original = trl.trainer.grpo_trainer.create_model_from_path
    monkeypatch.setattr(trl.trainer.grpo_trainer, "create_model_from_path", lambda *a, **k: built.append(a) or original(*a, **k))  # fmt: skip
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    trainer = _trainer(tiny_model_dir, tmp_path, peft_config=lora, delta_logp_monitor=True, learning_rate=0.3)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    assert trainer.ref_model is None and built == []
    held = sum(p.numel() for p in trainer.model.parameters())
    lora_only = sum(p.numel() for n, p in trainer.model.named_parameters() if "lora_" in n)
    assert held == sum(p.numel() for p in base.parameters()) + lora_only  # one copy of the base weights
    records = _record_batches(trainer, base)
    trainer.train()
    _check_monitor(trainer, records)
    assert built == []


def _authors_selection(delta: torch.Tensor, mask: torch.Tensor, q: float) -> tuple[torch.Tensor, float]:
    response = delta[mask.bool()]
    threshold = torch.kthvalue(response, int(response.numel() * q)).values.item()
    return (delta >= threshold) & mask.bool(), threshold


def test_token_mask_on_generation_batches_from_the_start_step(tiny_model_dir, tmp_path):
    trainer = _trainer(tiny_model_dir, tmp_path, max_steps=3, token_mask_by="delta_logp_above",
                       token_mask_quantile=0.6, token_mask_mode="loss_mask", token_mask_start_step=2)  # fmt: skip
    records = _record_batches(trainer, AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32))
    trainer.train()
    assert TOKEN_MASK_KEY not in records[0][0]  # step 1 is before `token_mask_start_step`
    for output, delta in records[1:]:
        mask = output["completion_mask"]
        expected, threshold = _authors_selection(delta, mask, 0.6)
        near = (delta - threshold).abs() < 1e-5  # the two forward passes agree to float precision only
        selected = output[TOKEN_MASK_KEY]
        assert torch.equal(selected[~near], expected[~near]) and near.sum() <= 2
        assert 0 < selected.sum() < mask.sum()
        assert output["num_items_in_batch"] == selected.sum()  # TRL's dapo normaliser counts the selected tokens
    logs = trainer.state.log_history
    assert "token_mask/frac_selected" not in logs[0]
    assert all(0 < log["token_mask/frac_selected"] < 1 and "token_mask/threshold" in log for log in logs[1:3])


def test_response_weights_on_generation_batches(tiny_model_dir, tmp_path):
    """`ppl_norm_clamp` on a real batch: the authors' formula on the independent log-probs of each prompt group."""
    trainer = _trainer(tiny_model_dir, tmp_path, max_steps=1, reweighting="ppl_norm_clamp", reweight_alpha=0.3)
    policy_logps = []
    generate = trainer._generate_and_score_completions

    def spy(inputs):
        output = generate(inputs)
        policy_logps.append((output, _full_logit_logps(trainer.model, output)))
        return output

    trainer._generate_and_score_completions = spy
    trainer.train()
    ((output, logps),) = policy_logps
    mask = output["completion_mask"].double()
    log_ppl = (-(logps.double() * mask).sum(1) / mask.sum(1)).numpy().reshape(-1, 4)
    z = (log_ppl - log_ppl.mean(1, keepdims=True)) / (log_ppl.std(1, keepdims=True) + 1e-6)
    expected = np.clip(1 - 0.3 * z, 0.8, 1.2).reshape(-1)
    np.testing.assert_allclose(output[RESPONSE_WEIGHTS_KEY].numpy(), expected, rtol=1e-4)


def test_weight_fn_replaces_the_configured_weighting(tiny_model_dir, tmp_path):
    def doubled(old_log_probs, advantages, masks, config):
        """Twice every advantage."""
        return torch.full_like(old_log_probs, 2.0)

    trainer = _trainer(tiny_model_dir, tmp_path, max_steps=1, weight_fn=doubled)
    trainer.train()
    log = trainer.state.log_history[0]
    assert log["reweight/weight_mean"] == log["reweight/weight_min"] == log["reweight/weight_max"] == 2.0
    trainer.create_model_card()
    card = (tmp_path / "README.md").read_text()
    assert "| `doubled` |" in card and "Twice every advantage." in card

    def wrong_shape(old_log_probs, advantages, masks, config):
        return old_log_probs[:, :1].T

    with pytest.raises(ValueError, match=r"weighting 'wrong_shape' must return a tensor of shape \(4, \d+\)"):
        _trainer(tiny_model_dir, tmp_path / "bad", max_steps=1, weight_fn=wrong_shape).train()

    def negative(old_log_probs, advantages, masks, config):
        return old_log_probs  # log-probs are <= 0

    with pytest.raises(ValueError, match=r"'negative' returned negative or non-finite weights .* `.clamp\(min=0\)`"):
        _trainer(tiny_model_dir, tmp_path / "neg", max_steps=1, weight_fn=negative).train()
    with pytest.raises(TypeError, match=r"`weight_fn` must be a callable"):
        _trainer(tiny_model_dir, tmp_path / "x", weight_fn="low_prob")
