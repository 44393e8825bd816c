"""`hf_dlp.divergence`, the one home of the pair arithmetic: against torch's own distributions, and used by every
capability (no capability re-derives Δlog p, entropy, KL or π_extra, nor keeps its own floor)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from hf_dlp.divergence import (
    LOG_FLOOR,
    PAIR_METRIC_NAMES,
    delta_logp,
    entropy,
    extrapolate_log_probs,
    kl_divergence,
    normalize_logits_,
    pair_metrics,
    statistic_key,
    token_log_probs,
)

PACKAGE = Path(__file__).resolve().parent.parent / "hf_dlp"


def _logits(seed=0, rows=6, vocab=11):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(rows, vocab, generator=generator) * 3


def test_entropy_and_kl_match_torch_distributions():
    p, q = torch.distributions.Categorical(logits=_logits(0)), torch.distributions.Categorical(logits=_logits(1))
    torch.testing.assert_close(entropy(p.logits), p.entropy())
    torch.testing.assert_close(kl_divergence(p.logits, q.logits), torch.distributions.kl_divergence(p, q))


def test_delta_logp_is_the_signed_token_log_probability_difference():
    log_rl, log_base = F.log_softmax(_logits(2), -1), F.log_softmax(_logits(3), -1)
    tokens = torch.tensor([0, 3, 5, 10, 1, 2])
    rows = torch.arange(6)
    expected = log_rl[rows, tokens] - log_base[rows, tokens]
    torch.testing.assert_close(delta_logp(log_rl, log_base, tokens), expected)
    # Zero probability on one side: finite, read at the floor (the same floor for every quantity).
    masked = log_base.clone()
    masked[0, 0] = float("-inf")
    assert delta_logp(log_rl, masked, tokens)[0].item() == pytest.approx(log_rl[0, 0].item() - LOG_FLOOR)
    assert token_log_probs(masked, tokens)[0].item() == LOG_FLOOR


def test_the_chunked_pair_metrics_equal_the_per_position_functions():
    """`pair_metrics` (the analysis's memory-lean form) and the per-position functions (the selection rules') give
    the same numbers, masked ids included."""
    base_logits, rl_logits = _logits(4, rows=8, vocab=50), _logits(5, rows=8, vocab=50)
    base_logits[:, 40:] = float("-inf")
    tokens = torch.randint(0, 40, (8,), generator=torch.Generator().manual_seed(6))
    log_base, base_probs = normalize_logits_(base_logits.clone())
    log_rl, rl_probs = normalize_logits_(rl_logits.clone())
    metrics = pair_metrics(log_base, log_rl, tokens, base_probs=base_probs, rl_probs=rl_probs)
    assert tuple(metrics) == PAIR_METRIC_NAMES
    raw_base, raw_rl = F.log_softmax(base_logits, -1), F.log_softmax(rl_logits, -1)
    torch.testing.assert_close(metrics["delta_logp"], delta_logp(raw_rl, raw_base, tokens))
    torch.testing.assert_close(metrics["base_entropy"], entropy(raw_base))
    torch.testing.assert_close(metrics["rl_entropy"], entropy(raw_rl))
    torch.testing.assert_close(metrics["kl_rl_base"], kl_divergence(raw_rl, raw_base), rtol=1e-5, atol=1e-2)
    torch.testing.assert_close(metrics["kl_base_rl"], kl_divergence(raw_base, raw_rl))
    assert all(value.isfinite().all() for value in metrics.values())


def test_extrapolation_is_the_normalised_log_linear_combination():
    log_rl, log_base = F.log_softmax(_logits(7), -1), F.log_softmax(_logits(8), -1)
    for gamma in (0.0, 0.3, 2.0):
        expected = F.log_softmax((1 + gamma) * log_rl - gamma * log_base, -1)
        torch.testing.assert_close(extrapolate_log_probs(log_rl, log_base, gamma), expected)


def test_statistic_names_are_shared_by_the_analysis_and_the_training_monitor():
    from hf_dlp.analysis.stats import summarize
    from hf_dlp.training.token_masks import delta_logp_statistics

    monitor = delta_logp_statistics(torch.tensor([[0.0, 2.0, -3.0]]), torch.ones(1, 3), [0.5], [1.0])
    summary = summarize([0.0, 2.0, -3.0], quantiles=(0.5,), thresholds=(1.0,))
    assert monitor[statistic_key("share_abs_above", 1.0)] == summary["share_abs_above"]["1.0"] == pytest.approx(2 / 3)
    assert statistic_key("quantile", 0.5) in monitor
    with pytest.raises(ValueError, match="`statistic` must be"):
        statistic_key("frac_abs_above", 1.0)


def _defined_names(path: Path) -> set[str]:
    """The functions and constants a module defines at its top level."""
    body = ast.parse(path.read_text()).body
    names = {node.name for node in body if isinstance(node, ast.FunctionDef)}
    names |= {target.id for node in body if isinstance(node, ast.Assign) for target in node.targets
              if isinstance(target, ast.Name)}  # fmt: skip
    return names


def test_no_module_but_divergence_defines_the_pair_arithmetic():
    owned = {"LOG_FLOOR", "entropy", "kl_divergence", "extrapolate_log_probs", "delta_logp", "normalize_logits_"}
    found = {
        str(path.relative_to(PACKAGE.parent)): sorted(owned & _defined_names(path))
        for path in PACKAGE.rglob("*.py")
        if path.name != "divergence.py"
    }
    assert not {module: names for module, names in found.items() if names}
    floors = [str(path) for path in PACKAGE.rglob("*.py") if "finfo(logits.dtype).min" in path.read_text()]
    assert not floors, f"a second log-probability floor: {floors}"


@pytest.mark.parametrize("module", ["analysis/metrics.py", "extrapolation/selection.py", "training/token_masks.py"])
def test_each_capability_takes_its_arithmetic_from_divergence(module):
    assert "from ..divergence import" in (PACKAGE / module).read_text()
