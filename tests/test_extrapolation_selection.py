"""The selection rules against a per-step reference that recomputes both models on the whole prefix, and the mapping
from the authors' `get_enable_mask` criteria (extrapolate.py) to ours, for both generator roles."""

from __future__ import annotations

import pytest
import torch

from hf_dlp.extrapolation import (
    AUTHORS_CRITERIA,
    SELECTION_RULES,
    ExtrapolationConfig,
    from_authors_criteria,
    generate_with_extrapolation,
)
from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm

GAMMA = 0.5


def _entropy(log_p):
    return -torch.where(log_p.isfinite(), log_p.exp() * log_p, 0.0).sum(-1)


def _kl(log_p, log_q):
    return torch.where(log_p.isfinite(), log_p.exp() * (log_p - log_q), 0.0).sum(-1)


def reference_selected(rule, tau, token, log_gen, log_other, role):
    """The rule written out from its definition, at one position of one row."""
    log_rl, log_base = (log_gen, log_other) if role == "rl" else (log_other, log_gen)
    delta = float(log_rl[token] - log_base[token])
    scores = {
        "delta_logp": delta <= tau,
        "delta_logp_positive": delta >= tau,
        "entropy": float(_entropy(log_gen)) >= tau,
        "other_entropy": float(_entropy(log_other)) >= tau,
        "kl": float(_kl(log_rl, log_base)) >= tau,
        "kl_reverse": float(_kl(log_base, log_rl)) >= tau,
        "kl_mean": float(0.5 * (_kl(log_rl, log_base) + _kl(log_base, log_rl))) >= tau,
    }
    return scores[rule]


def generator_log_probs(generator, ids, eos_id):
    """The generator's next-token log-probabilities with EOS masked, as `min_new_tokens` masks it before extrapolation."""
    logits = generator(ids).logits[0, -1].float()
    logits[eos_id] = float("-inf")
    return torch.log_softmax(logits, -1)


@torch.no_grad()
def reference_generate(generator, other, role, rule, tau, input_ids, steps, eos_id):
    """Greedy decoding, no cache: each step runs both models on the full prefix, the generator proposes its argmax,
    and a selected position takes the argmax of π_extra ∝ exp((1 + γ) log π_RL − γ log π_base)."""
    ids, selected = input_ids.clone(), 0
    for _ in range(steps):
        log_gen = generator_log_probs(generator, ids, eos_id)
        log_other = torch.log_softmax(other(ids).logits[0, -1].float(), -1)
        token = int(log_gen.argmax())
        if reference_selected(rule, tau, token, log_gen, log_other, role):
            log_rl, log_base = (log_gen, log_other) if role == "rl" else (log_other, log_gen)
            extra = (1 + GAMMA) * log_rl - GAMMA * log_base
            token = int(torch.where(log_gen.isfinite(), extra, float("-inf")).argmax())  # on the generator's support
            selected += 1
        ids = torch.cat([ids, torch.tensor([[token]])], dim=-1)
    return ids, selected


@pytest.mark.parametrize("role", ["rl", "base"])
@pytest.mark.parametrize("rule", ["delta_logp_positive", "other_entropy", "delta_logp", "entropy"])
def test_rules_are_token_exact_against_a_per_step_reference(rule, role):
    tokenizer = build_char_tokenizer()
    rl, base = build_tiny_causal_lm(size="nano", seed=1), build_tiny_causal_lm(size="nano", seed=2)
    generator, other = (rl, base) if role == "rl" else (base, rl)
    input_ids = tokenizer(["Q: 12 + 7?"], return_tensors="pt").input_ids
    # A threshold between the two middle scores of the plain greedy trajectory (never equal to a score, so float
    # rounding cannot flip a decision), so the rule fires at some positions.
    with torch.no_grad():
        plain = generator.generate(input_ids, max_new_tokens=12, min_new_tokens=12, do_sample=False)
        scores = []
        for t in range(input_ids.shape[1], plain.shape[1]):
            log_gen = generator_log_probs(generator, plain[:, :t], tokenizer.eos_token_id)
            log_other = torch.log_softmax(other(plain[:, :t]).logits[0, -1], -1)
            token = int(plain[0, t])
            log_rl, log_base = (log_gen, log_other) if role == "rl" else (log_other, log_gen)
            scores.append(
                {
                    "delta_logp": float(log_rl[token] - log_base[token]),
                    "delta_logp_positive": float(log_rl[token] - log_base[token]),
                    "entropy": float(_entropy(log_gen)),
                    "other_entropy": float(_entropy(log_other)),
                }[rule]
            )
    ordered = sorted(scores)
    tau = 0.5 * (ordered[len(ordered) // 2 - 1] + ordered[len(ordered) // 2])
    expected, expected_selected = reference_generate(
        generator, other, role, rule, tau, input_ids, steps=12, eos_id=tokenizer.eos_token_id
    )
    other_side = {"base_model": base} if role == "rl" else {"rl_model": rl}
    config = ExtrapolationConfig(gamma=GAMMA, selection=rule, tau=tau, candidate_top_k=None)
    for block_size in (None, 4):
        out, stats = generate_with_extrapolation(
            generator, **other_side, config=config, block_size=block_size, input_ids=input_ids,
            max_new_tokens=12, min_new_tokens=12, do_sample=False, return_stats=True,
        )  # fmt: skip
        assert torch.equal(out, expected), (rule, role, block_size)
        assert stats.num_selected == [expected_selected]
    assert 0 < expected_selected < 12


def test_every_authors_criterion_has_a_rule_for_both_roles():
    names = ("entropy", "assist_entropy", "logp", "neg_logp", "none", "all", "rand", "js", "kl", "kl_r")
    assert set(AUTHORS_CRITERIA) == set(names)
    for name in names:
        for role in ("rl", "base"):
            setting = from_authors_criteria(name, 0.3, generator=role)
            assert setting["selection"] in SELECTION_RULES
            ExtrapolationConfig(gamma=0.1, **setting)  # a valid configuration
    # The paper's runs: the base model generates, criterion neg_logp, threshold -0.3 (DAPO-32B).
    assert from_authors_criteria("neg_logp", -0.3, generator="base") == {"selection": "delta_logp", "tau": -0.3}
    assert from_authors_criteria("kl", 0.1, generator="base") == {"selection": "kl", "tau": 0.1}
    assert from_authors_criteria("kl", 0.1, generator="rl") == {"selection": "kl_reverse", "tau": 0.1}
    with pytest.raises(ValueError, match="`criteria` must be one of"):
        from_authors_criteria("logp_diff", 0.3, generator="base")


def test_new_rules_validate_their_threshold():
    with pytest.raises(ValueError, match="score is never negative"):
        ExtrapolationConfig(selection="other_entropy", tau=-1.0)
    with pytest.raises(ValueError, match="a gap such as 0.35"):
        ExtrapolationConfig(selection="delta_logp_positive", tau=None)
