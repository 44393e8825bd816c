"""ReweightedGRPOTrainer's loss on hand-built batches, against formulas computed here from an independent forward pass."""

from __future__ import annotations

import contextlib
import io

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM
from trl import GRPOTrainer

from hf_dlp.training import ReweightedGRPOConfig, ReweightedGRPOTrainer, check_trl_compatibility
from hf_dlp.training.reweighting import dominate_weights, low_prob_weights, ppl_weights
from hf_dlp.training.trainer import RESPONSE_WEIGHTS_KEY, TOKEN_MASK_KEY, _LossSlot

ALPHA = 0.5  # larger than the paper's 0.2 so that the weights differ clearly from 1


def _reward(completions, **kwargs):
    return [float(len(c) % 3) for c in completions]


@pytest.fixture(scope="module")
def trainer(tiny_model_dir, char_tokenizer, tmp_path_factory):
    args = ReweightedGRPOConfig(
        output_dir=str(tmp_path_factory.mktemp("loss")),
        reweighting="low_prob",
        reweight_alpha=ALPHA,
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=6,
        use_cpu=True,
        bf16=False,
        report_to="none",
        gradient_checkpointing=False,
    )
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    with torch.no_grad():  # sharpen the random model so that token probabilities (hence weights) spread out
        model.get_output_embeddings().weight.mul_(40.0)
    dataset = Dataset.from_dict({"prompt": ["1+1=", "2+2="]})
    with contextlib.redirect_stdout(io.StringIO()):
        trainer = ReweightedGRPOTrainer(
            model, _reward, args=args, train_dataset=dataset, processing_class=char_tokenizer
        )
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by transformers' loop only; `_compute_loss` reads it
    return trainer


ARGS = ("reweight_alpha", "ppl_weight_min", "reweight_advantage_sign", "token_mask_mode")


@pytest.fixture()
def configure(trainer):
    """Set loss type, reweighting and config fields on the shared trainer for one test (a new `AdvantageReweighter`
    from the changed config, as a trainer builds one), and restore them afterwards."""
    from hf_dlp.training import AdvantageReweighter

    saved = (trainer.loss_type, trainer.reweighter)
    saved_args = {name: getattr(trainer.args, name) for name in (*ARGS, "reweighting")}

    def _configure(loss_type: str, reweighting: str, alpha: float = ALPHA, **args):
        trainer.loss_type = loss_type
        trainer.args.reweighting, trainer.args.reweight_alpha = reweighting, alpha
        for name, value in args.items():
            setattr(trainer.args, name, value)
        trainer.reweighter = AdvantageReweighter(trainer.args, num_generations_eval=trainer.num_generations_eval)
        return trainer

    yield _configure
    trainer.loss_type, trainer.reweighter = saved
    for name, value in saved_args.items():
        setattr(trainer.args, name, value)


def _batch(generator_seed: int = 0) -> dict[str, torch.Tensor]:
    """Two prompt groups of two completions, left-padded prompts, right-padded completions (vocab ids 5..30)."""
    generator = torch.Generator().manual_seed(generator_seed)
    prompt_ids = torch.randint(5, 30, (4, 3), generator=generator)
    prompt_mask = torch.ones(4, 3, dtype=torch.long)
    prompt_mask[1, 0] = 0
    completion_ids = torch.randint(5, 30, (4, 5), generator=generator)
    completion_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 0, 0, 0, 0]])
    return {
        "prompt_ids": prompt_ids,
        "prompt_mask": prompt_mask,
        "completion_ids": completion_ids,
        "completion_mask": completion_mask,
        "advantages": torch.tensor([1.0, -0.5, 0.8, -0.3]),
        "num_items_in_batch": completion_mask.sum(),
    }


def _logps(model, batch) -> torch.Tensor:
    """log π(y_t) of the completion tokens, from a plain forward pass (full logits), with gradients."""
    input_ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    attention_mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1].float()
    logps = logits.log_softmax(-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    return logps[:, -batch["completion_ids"].shape[1] :] * batch["completion_mask"]


def _hand_loss(trainer, batch, weights, logps, old_logps=None) -> torch.Tensor:
    """TRL's clipped loss with Ã = w·Â in place of Â, aggregated by the trainer's loss type (GA = 1, one process)."""
    mask = batch["completion_mask"].float()
    old = logps.detach() if old_logps is None else old_logps
    advantages = batch["advantages"][:, None] * (weights if weights.dim() == 2 else weights[:, None])
    ratio = torch.exp(logps - old)
    clipped = ratio.clamp(1 - trainer.epsilon_low, 1 + trainer.epsilon_high)
    per_token = -torch.min(ratio * advantages, clipped * advantages)
    if trainer.loss_type == "bnpo":
        return (per_token * mask).sum() / mask.sum()
    if trainer.loss_type == "grpo":
        return ((per_token * mask).sum(-1) / mask.sum(-1)).mean()
    if trainer.loss_type == "dapo":
        return (per_token * mask).sum() / (batch["num_items_in_batch"] / trainer.args.steps_per_generation)
    raise AssertionError(trainer.loss_type)


def _weights(method: str, logps: torch.Tensor, batch) -> torch.Tensor:
    if method == "low_prob":
        return low_prob_weights(logps, ALPHA)
    if method == "dominate":
        return dominate_weights(logps, ALPHA)
    return ppl_weights(logps, batch["completion_mask"], num_generations=2, coef=ALPHA)


@pytest.mark.parametrize("loss_type", ["bnpo", "grpo", "dapo"])
@pytest.mark.parametrize("method", ["low_prob", "dominate", "ppl"])
def test_loss_matches_hand_formula(configure, loss_type, method):
    trainer = configure(loss_type, method)
    batch = _batch()
    with torch.no_grad():
        logps = _logps(trainer.model, batch)
    weights = _weights(method, logps, batch)
    if method == "ppl":
        batch[RESPONSE_WEIGHTS_KEY] = weights
    loss = trainer._compute_loss(trainer.model, batch)
    expected = _hand_loss(trainer, batch, weights, logps)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    # The weights really change the loss (on-policy the plain GRPO loss is -mean(Â) per token).
    assert not torch.allclose(loss, _hand_loss(trainer, batch, torch.ones(4), logps), atol=1e-4)


def test_loss_uses_stored_old_logps_and_keeps_clipping(configure):
    """With `old_per_token_logps` in the batch (num_iterations > 1), π_old is the stored one, and the ratio is clipped."""
    trainer = configure("bnpo", "low_prob")
    batch = _batch(1)
    with torch.no_grad():
        logps = _logps(trainer.model, batch)
    old_probs = torch.tensor([[0.9, 0.5, 0.2, 0.05, 0.7]]).expand(4, -1)
    batch["old_per_token_logps"] = old_probs.log() * batch["completion_mask"]
    loss = trainer._compute_loss(trainer.model, batch)
    expected = _hand_loss(
        trainer, batch, low_prob_weights(batch["old_per_token_logps"], ALPHA), logps, batch["old_per_token_logps"]
    )
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    # Weights from the current probabilities would give another value.
    wrong = _hand_loss(trainer, batch, low_prob_weights(logps, ALPHA), logps, batch["old_per_token_logps"])
    assert not torch.allclose(loss, wrong, atol=1e-5)


def test_gradient_equals_hand_formula_gradient(configure):
    trainer = configure("bnpo", "low_prob")
    batch = _batch(2)
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    loss = trainer._compute_loss(trainer.model, batch)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    logps = _logps(trainer.model, batch)
    expected = _hand_loss(trainer, batch, low_prob_weights(logps, ALPHA), logps)
    expected_grads = torch.autograd.grad(expected, params, allow_unused=True)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        if expected_grad is None:
            continue
        torch.testing.assert_close(grad, expected_grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("method", ["low_prob", "dominate"])
def test_gradient_scales_by_token_weight(configure, method):
    """With a single active token, the reweighted gradient is w_t times the plain GRPO gradient."""
    batch = _batch(3)
    batch["completion_mask"] = torch.zeros_like(batch["completion_mask"])
    batch["completion_mask"][0, 2] = 1
    batch["num_items_in_batch"] = batch["completion_mask"].sum()
    params = [p for p in configure("bnpo", "none").model.parameters() if p.requires_grad]
    plain = torch.autograd.grad(
        configure("bnpo", "none")._compute_loss(configure("bnpo", "none").model, batch), params
    )
    trainer = configure("bnpo", method)
    reweighted = torch.autograd.grad(trainer._compute_loss(trainer.model, batch), params)
    with torch.no_grad():
        weight = _weights(method, _logps(trainer.model, batch), batch)[0, 2]
    assert weight > 1.01 if method == "low_prob" else weight < 0.99
    plain, reweighted = torch.cat([g.flatten() for g in plain]), torch.cat([g.flatten() for g in reweighted])
    assert (reweighted.norm() / plain.norm()).item() == pytest.approx(weight.item(), rel=1e-4)
    torch.testing.assert_close(reweighted, weight * plain, rtol=1e-3, atol=1e-4 * plain.abs().max().item())


def test_none_equals_grpo_trainer_loss(configure):
    trainer = configure("dapo", "none")
    batch = _batch(4)
    torch.testing.assert_close(
        trainer._compute_loss(trainer.model, batch), GRPOTrainer._compute_loss(trainer, trainer.model, batch)
    )


@pytest.mark.parametrize("method", ["low_prob", "ppl"])
def test_inputs_not_mutated(configure, method):
    trainer = configure("dapo", method)
    batch = _batch(5)
    if method == "ppl":
        batch[RESPONSE_WEIGHTS_KEY] = torch.tensor([1.1, 0.9, 1.0, 1.0])
    snapshot = {key: value.clone() for key, value in batch.items()}
    objects = {key: id(value) for key, value in batch.items()}
    trainer._compute_loss(trainer.model, batch)
    assert sorted(batch) == sorted(snapshot)
    for key, value in batch.items():
        assert id(value) == objects[key]
        torch.testing.assert_close(value, snapshot[key], rtol=0, atol=0)
    assert trainer._reweight_slot is None


def test_weight_metrics_logged(configure):
    trainer = configure("bnpo", "low_prob")
    trainer._metrics["train"].clear()
    batch = _batch(6)
    trainer._compute_loss(trainer.model, batch)
    metrics = trainer._metrics["train"]
    with torch.no_grad():
        weights = low_prob_weights(_logps(trainer.model, batch), ALPHA)[batch["completion_mask"].bool()]
    assert metrics["reweight/weight_mean"][-1] == pytest.approx(weights.mean().item(), rel=1e-5)
    assert metrics["reweight/weight_max"][-1] == pytest.approx(weights.max().item(), rel=1e-5)
    assert metrics["reweight/weight_min"][-1] == pytest.approx(weights.min().item(), rel=1e-5)
    assert metrics["reweight/high_weight_frac"][-1] == pytest.approx((weights > 1 + ALPHA / 2).float().mean().item())


def test_trl_compatibility_guard_detects_changes(monkeypatch):
    check_trl_compatibility(GRPOTrainer)

    class ChangedTrainer(GRPOTrainer):
        def _compute_loss(self, model, inputs):  # reads the advantages first and never unsqueezes them
            advantages = inputs["advantages"]
            return self._get_per_token_logps_and_entropies(model, advantages)

    with pytest.raises(RuntimeError, match=r"log-probs before reading .*per-token \(B, T\) advantages.*Pin"):
        check_trl_compatibility(ChangedTrainer)

    class LigerTrainer(GRPOTrainer):
        def compute_liger_loss(self):
            return None

    with pytest.raises(RuntimeError, match="compute_liger_loss"):
        check_trl_compatibility(LigerTrainer)
    import trl

    monkeypatch.setattr(trl, "__version__", "1.17.0")
    with pytest.raises(RuntimeError, match=r"supports trl >=1.15,<1.17, found trl 1.17.0"):
        check_trl_compatibility(GRPOTrainer)


def test_vllm_importance_ratio_and_kl_stay_trls(configure):
    """Under vLLM the weights come from the trainer's own old log-probs; the IS ratio and the (unweighted) KL apply."""
    trainer = configure("bnpo", "low_prob")
    batch = _batch(7)
    with torch.no_grad():
        logps = _logps(trainer.model, batch)
    mask = batch["completion_mask"]
    batch["old_per_token_logps"] = logps * mask  # the trainer's recomputation of the rollout log-probs
    batch["sampling_per_token_logps"] = (logps - 0.3) * mask  # vLLM's, slightly off
    batch["importance_sampling_ratio"] = torch.tensor([[0.5], [1.0], [2.0], [1.5]])
    batch["ref_per_token_logps"] = (logps + 0.2) * mask
    saved = (trainer.use_vllm, trainer.vllm_importance_sampling_correction, trainer.beta)
    trainer.use_vllm, trainer.vllm_importance_sampling_correction, trainer.beta = True, True, 0.1
    try:
        loss = trainer._compute_loss(trainer.model, batch)
    finally:
        trainer.use_vllm, trainer.vllm_importance_sampling_correction, trainer.beta = saved
    weights = low_prob_weights(batch["old_per_token_logps"], ALPHA)
    kl = torch.exp(batch["ref_per_token_logps"] - logps) - (batch["ref_per_token_logps"] - logps) - 1
    per_token = -batch["advantages"][:, None] * weights * batch["importance_sampling_ratio"] + 0.1 * kl
    expected = (per_token * mask).sum() / mask.sum()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------------------------------
# Every weight form with every TRL loss type; sign gating and token masks in the loss
# ------------------------------------------------------------------------------------------------------------------

LOSS_TYPES = ["grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo"]
TOKEN_FORMS = {  # the authors' formulas (p = pi_old(y_t), c = alpha), written out here
    "low_prob": lambda p, c: 1 + c - c * p,
    "dominate": lambda p, c: c * p + 1 - c,
    "middle": lambda p, c: c + (1 - p) * p,
    "normalize": lambda p, c: 1 / (1 + c - p),
}
RESPONSE_FORMS = ("ppl", "ppl_raw", "ppl_norm", "ppl_norm_clamp")


def _independent_weights(form: str, logps: torch.Tensor, mask: torch.Tensor, group: int = 2) -> torch.Tensor:
    """The weights of `form` from log-probs, in plain torch (no hf_dlp code): (B, T) or (B,)."""
    if form in TOKEN_FORMS:
        return TOKEN_FORMS[form](logps.exp(), ALPHA)
    mask = mask.float()
    log_ppl = -(logps * mask).sum(1) / mask.sum(1)
    if form == "ppl_raw":
        return (1 - ALPHA * log_ppl).clamp(min=0)
    grouped = log_ppl.view(-1, group)
    unbiased = form == "ppl"
    std = grouped.std(1, keepdim=True, correction=int(unbiased)) + (1e-4 if unbiased else 1e-6)
    weights = (1 - ALPHA * (grouped - grouped.mean(1, keepdim=True)) / std).view(-1)
    return weights.clamp(0.8, 1.2) if form == "ppl_norm_clamp" else weights


def _trl_loss(trainer, batch, advantages=None, **overrides) -> torch.Tensor:
    """TRL's own `_compute_loss` on `batch` with the advantages (and other fields) replaced."""
    reference = {k: v for k, v in batch.items() if k not in (RESPONSE_WEIGHTS_KEY, TOKEN_MASK_KEY)}
    if advantages is not None:
        reference["advantages"] = advantages
    return GRPOTrainer._compute_loss(trainer, trainer.model, {**reference, **overrides})


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
@pytest.mark.parametrize("form", [*TOKEN_FORMS, *RESPONSE_FORMS])
def test_every_form_with_every_loss_type_is_trls_loss_on_reweighted_advantages(configure, loss_type, form):
    """Ã = w · Â with w the form's formula, fed to TRL's own loss, for each of TRL's loss types."""
    trainer = configure(loss_type, form)
    batch = _batch(8)
    with torch.no_grad():
        weights = _independent_weights(form, _logps(trainer.model, batch), batch["completion_mask"])
    if form in RESPONSE_FORMS:
        batch[RESPONSE_WEIGHTS_KEY] = weights
    loss = trainer._compute_loss(trainer.model, batch)
    weights = weights if weights.dim() == 2 else weights[:, None]
    expected = _trl_loss(trainer, batch, batch["advantages"][:, None] * weights)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(loss, _trl_loss(trainer, batch), atol=1e-5)  # the weights matter


@pytest.mark.parametrize("sign", ["positive", "negative"])
def test_sign_gate_in_the_loss(configure, sign):
    trainer = configure("bnpo", "low_prob", reweight_advantage_sign=sign)
    batch = _batch(9)
    with torch.no_grad():
        logps = _logps(trainer.model, batch)
    weights = _independent_weights("low_prob", logps, batch["completion_mask"])
    advantages = batch["advantages"]
    gate = (advantages > 0 if sign == "positive" else advantages < 0)[:, None]
    expected = _trl_loss(trainer, batch, torch.where(gate, advantages[:, None] * weights, advantages[:, None]))
    torch.testing.assert_close(trainer._compute_loss(trainer.model, batch), expected, rtol=1e-5, atol=1e-6)
    # The tokens outside the gate keep their advantage bit for bit.
    slot = _LossSlot(dict(batch), None, None)
    trainer._reweight(slot, logps)
    reweighted = slot.inputs["advantages"]
    for row in range(4):
        if gate[row]:
            assert not torch.equal(reweighted[row], advantages[row].expand_as(reweighted[row]))
        else:
            assert torch.equal(reweighted[row], advantages[row].expand_as(reweighted[row]))


def _selection(batch) -> torch.Tensor:
    selected = torch.zeros_like(batch["completion_mask"], dtype=torch.bool)
    selected[:, 1::2] = True
    return selected & batch["completion_mask"].bool()


@pytest.mark.parametrize("reweighting", ["low_prob", "none"])
@pytest.mark.parametrize("loss_type", ["dapo", "grpo"])
def test_loss_mask_mode_trains_only_on_the_selected_tokens(configure, reweighting, loss_type):
    """[`clip`] The selection becomes TRL's loss mask (through `tool_mask`, so attention is unchanged)."""
    trainer = configure(loss_type, reweighting, token_mask_mode="loss_mask")
    batch = _batch(10)
    selected = _selection(batch)
    batch[TOKEN_MASK_KEY] = selected
    batch["num_items_in_batch"] = selected.sum()  # what the generation step sets in this mode
    with torch.no_grad():
        weights = _independent_weights("low_prob", _logps(trainer.model, batch), batch["completion_mask"])
    advantages = batch["advantages"][:, None] * (weights if reweighting == "low_prob" else 1.0)
    expected = _trl_loss(trainer, batch, advantages, tool_mask=selected.long())
    torch.testing.assert_close(trainer._compute_loss(trainer.model, batch), expected, rtol=1e-5, atol=1e-6)
    assert TOKEN_MASK_KEY in batch and "tool_mask" not in batch  # the caller's dict is left alone


def test_reweight_mode_applies_the_weights_only_inside_the_selection(configure):
    """[`reweight`] Ã = where(selected, w · Â, Â), combined with the sign gate as the authors combine their masks."""
    trainer = configure("bnpo", "normalize", reweight_advantage_sign="positive", token_mask_mode="reweight")
    batch = _batch(11)
    selected = _selection(batch)
    batch[TOKEN_MASK_KEY] = selected
    with torch.no_grad():
        weights = _independent_weights("normalize", _logps(trainer.model, batch), batch["completion_mask"])
    advantages = batch["advantages"][:, None]
    region = selected & (advantages > 0)
    expected = _trl_loss(trainer, batch, torch.where(region, advantages * weights, advantages))
    torch.testing.assert_close(trainer._compute_loss(trainer.model, batch), expected, rtol=1e-5, atol=1e-6)
