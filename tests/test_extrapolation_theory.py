"""Theorem 4.1 on a tabular softmax bandit trained with natural policy gradient (NPG).

With softmax logits θ and the NPG step θ ← θ + η A^π (A^π(a) = r(a) − J(π), the same baseline for every arm),
T steps from the base policy give Δlog p(a) = ηT r(a) + const. Extrapolating along Δlog p,
π_extra ∝ π_RL · exp(γ Δlog p), is then the policy of (1 + γ)T steps, whose expected reward is not lower.
"""

from __future__ import annotations

import pytest
import torch

from hf_dlp.extrapolation import extrapolate_log_probs


def npg_policy(logits: torch.Tensor, rewards: torch.Tensor, steps: int, lr: float) -> torch.Tensor:
    """Log-probabilities after `steps` NPG updates of a tabular softmax policy."""
    theta = logits.clone()
    for _ in range(steps):
        probs = torch.softmax(theta, -1)
        advantage = rewards - (probs * rewards).sum()
        theta = theta + lr * advantage
    return torch.log_softmax(theta, -1)


def expected_reward(log_probs: torch.Tensor, rewards: torch.Tensor) -> float:
    return float((log_probs.exp() * rewards).sum())


@pytest.fixture
def bandit():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(12, generator=generator, dtype=torch.float64) * 2.0  # the base policy
    rewards = torch.rand(12, generator=generator, dtype=torch.float64)
    return logits, rewards


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0])
def test_extrapolation_equals_more_npg_steps(bandit, gamma):
    logits, rewards = bandit
    steps, lr = 10, 0.3
    log_base = torch.log_softmax(logits, -1)
    log_rl = npg_policy(logits, rewards, steps, lr)
    extrapolated = extrapolate_log_probs(log_rl, log_base, gamma)
    longer = npg_policy(logits, rewards, round((1 + gamma) * steps), lr)
    # J(π_t) changes from step to step but is the same for every arm, so it cancels in the softmax.
    torch.testing.assert_close(extrapolated, longer, rtol=0, atol=1e-10)


def test_extrapolation_does_not_lower_expected_reward(bandit):
    logits, rewards = bandit
    log_base = torch.log_softmax(logits, -1)
    log_rl = npg_policy(logits, rewards, steps=5, lr=0.2)
    rewards_by_gamma = [
        expected_reward(extrapolate_log_probs(log_rl, log_base, g), rewards) for g in (0.0, 0.05, 0.1, 0.5, 1.0, 3.0)
    ]
    assert expected_reward(log_base, rewards) < rewards_by_gamma[0] == pytest.approx(expected_reward(log_rl, rewards))
    assert all(a <= b + 1e-12 for a, b in zip(rewards_by_gamma, rewards_by_gamma[1:], strict=False))
    assert rewards_by_gamma[-1] <= float(rewards.max())


def test_extrapolating_the_wrong_way_lowers_reward(bandit):
    """A check that the test can fail: moving back towards the base (interpolation) loses reward."""
    logits, rewards = bandit
    log_base = torch.log_softmax(logits, -1)
    log_rl = npg_policy(logits, rewards, steps=5, lr=0.2)
    towards_base = log_rl + (-0.5) * (log_rl - log_base)
    assert expected_reward(torch.log_softmax(towards_base, -1), rewards) < expected_reward(log_rl, rewards)
