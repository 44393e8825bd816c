"""Lemma 3.1 of the paper, checked with autograd: ‖∇_z (w · log softmax(z)_y)‖₁ = 2|w|(1 − π_y)."""

from __future__ import annotations

import pytest
import torch


@pytest.mark.parametrize("vocab_size", [2, 7, 1000])
@pytest.mark.parametrize("scale", [0.1, 3.0, 12.0])
def test_lemma_3_1_gradient_l1_norm(vocab_size, scale):
    generator = torch.Generator().manual_seed(vocab_size)
    for _ in range(10):
        logits = (scale * torch.randn(vocab_size, generator=generator, dtype=torch.float64)).requires_grad_()
        token = int(torch.randint(vocab_size, (1,), generator=generator))
        weight = float(torch.randn(1, generator=generator, dtype=torch.float64))  # r · Â, either sign
        (weight * torch.log_softmax(logits, -1)[token]).backward()
        probability = torch.softmax(logits.detach(), -1)[token].item()
        expected = 2 * abs(weight) * (1 - probability)
        assert logits.grad.abs().sum().item() == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_lemma_3_1_low_probability_tokens_get_most_gradient():
    """The consequence the paper draws: at equal |w|, a rare token moves the logits more than a likely one."""
    logits = torch.tensor([4.0, 1.0, -2.0], requires_grad=True)
    norms = []
    for token in range(3):
        logits.grad = None
        torch.log_softmax(logits, -1)[token].backward()
        norms.append(logits.grad.abs().sum().item())
    assert norms[0] < norms[1] < norms[2] < 2.0
