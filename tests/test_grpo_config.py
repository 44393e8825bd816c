"""ReweightedGRPOConfig: defaults, validation messages, TrlParser/YAML round trip; the pure weight formulas."""

from __future__ import annotations

import math

import pytest
import torch
from trl import GRPOConfig, TrlParser

from hf_dlp.grpo_config import ReweightedGRPOConfig
from hf_dlp.reweighting import (
    REWEIGHTING_METHODS,
    dominate_weights,
    low_prob_weights,
    ppl_weights,
    reweight_advantages,
    token_weights,
    weight_statistics,
)

CPU = dict(use_cpu=True, bf16=False, report_to="none")


def _config(**kwargs) -> ReweightedGRPOConfig:
    return ReweightedGRPOConfig(output_dir="unused", **CPU, **kwargs)


def test_defaults_are_the_papers():
    config = _config()
    assert isinstance(config, GRPOConfig)
    assert (config.reweighting, config.reweight_alpha) == ("low_prob", 0.2)
    assert config.ppl_weight_min is None and config.ppl_weight_max is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"reweight_alpha": -0.1}, r"`reweight_alpha` must be >= 0, got -0.1"),
        ({"reweight_alpha": math.nan}, r"`reweight_alpha` must be >= 0, got nan"),
        (
            {"reweighting": "focal"},
            r"`reweighting` must be one of \('none', 'low_prob', 'dominate', 'ppl'\), got 'focal'",
        ),
        ({"reweighting": "dominate", "reweight_alpha": 1.5}, r"must be <= 1 with reweighting='dominate', got 1.5"),
        ({"reweighting": "ppl", "num_generations_eval": 1}, r"`num_generations_eval` must be at least 2, got 1"),
        ({"reweighting": "ppl", "ppl_weight_min": -0.5}, r"`ppl_weight_min` must be >= 0, got -0.5"),
        (
            {"reweighting": "ppl", "ppl_weight_min": 1.2, "ppl_weight_max": 0.8},
            r"`ppl_weight_min` \(1.2\) must not exceed `ppl_weight_max` \(0.8\)",
        ),
    ],
)
def test_bad_configs_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _config(**kwargs)


def test_ppl_without_groups_raises():
    # GRPOConfig itself refuses a single generation per prompt; ppl needs groups for training and evaluation alike.
    with pytest.raises(ValueError, match="at least 2 generations per prompt"):
        _config(reweighting="ppl", num_generations=1, per_device_train_batch_size=1)


def test_ppl_clamp_ignored_outside_ppl_warns():
    with pytest.warns(UserWarning, match=r"`ppl_weight_max` \(1.2\) is only used with reweighting='ppl'"):
        _config(reweighting="low_prob", ppl_weight_max=1.2)


def test_trl_parser_reads_yaml(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "output_dir: out\nreweighting: dominate\nreweight_alpha: 0.3\nloss_type: bnpo\nuse_cpu: true\n"
        "bf16: false\nreport_to: none\n"
    )
    (config,) = TrlParser((ReweightedGRPOConfig,)).parse_args_and_config(["--config", str(recipe)])
    assert (config.reweighting, config.reweight_alpha, config.loss_type) == ("dominate", 0.3, "bnpo")
    with pytest.raises(SystemExit):  # argparse choices come from the Literal annotation
        TrlParser((ReweightedGRPOConfig,)).parse_args_and_config(["--output_dir", "o", "--reweighting", "focal"])


def test_every_field_has_help():
    from dataclasses import fields

    new_fields = [f for f in fields(ReweightedGRPOConfig) if f.name not in {g.name for g in fields(GRPOConfig)}]
    assert {f.name for f in new_fields} == {
        "reweighting",
        "reweight_alpha",
        "ppl_weight_min",
        "ppl_weight_max",
        "dynamic_sampling",
        "dynamic_sampling_max_rounds",
    }
    assert all(f.metadata.get("help") for f in new_fields)


def test_weight_formulas_on_hand_values():
    logps = torch.tensor([[0.0, math.log(0.25)], [math.log(0.5), math.log(1e-6)]])
    torch.testing.assert_close(
        low_prob_weights(logps, 0.2), torch.tensor([[1.0, 1.15], [1.1, 1.2]]), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(
        dominate_weights(logps, 0.2), torch.tensor([[1.0, 0.85], [0.9, 0.8]]), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(token_weights("none", logps, 0.2), torch.ones(2, 2))
    assert not low_prob_weights(logps.requires_grad_(), 0.2).requires_grad
    with pytest.raises(ValueError, match=r"`method` must be one of .* got 'ppl'"):
        token_weights("ppl", logps, 0.2)
    assert REWEIGHTING_METHODS == ("none", "low_prob", "dominate", "ppl")


def test_ppl_weights_hand_values():
    # Group 1: log-ppl 1 and 3 -> z = -/+ 1/sqrt(2); group 2: equal -> z = 0.
    logps = torch.tensor([[-1.0, -1.0], [-3.0, -3.0], [-2.0, 0.0], [-2.0, -5.0]])
    mask = torch.tensor([[1, 1], [1, 1], [1, 0], [1, 0]])
    z = 1 / math.sqrt(2)
    expected = torch.tensor([1 + 0.2 * z, 1 - 0.2 * z, 1.0, 1.0])
    torch.testing.assert_close(ppl_weights(logps, mask, num_generations=2, coef=0.2), expected, atol=1e-4, rtol=0)
    clamped = ppl_weights(logps, mask, num_generations=2, coef=1.0, weight_min=0.8, weight_max=1.2)
    torch.testing.assert_close(clamped, torch.tensor([1.2, 0.8, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"batch size \(4\) must be a multiple of `num_generations` \(3\)"):
        ppl_weights(logps, mask, num_generations=3, coef=0.2)
    with pytest.raises(ValueError, match=r"`num_generations` must be at least 2 .* got 1"):
        ppl_weights(logps, mask, num_generations=1, coef=0.2)


def test_reweight_advantages_and_statistics():
    advantages = torch.tensor([2.0, -1.0])
    weights = torch.tensor([[1.0, 1.5], [1.2, 1.0]])
    out = reweight_advantages(advantages, weights)
    torch.testing.assert_close(out, torch.tensor([[2.0, 3.0], [-1.2, -1.0]]))
    torch.testing.assert_close(advantages, torch.tensor([2.0, -1.0]))  # not modified
    torch.testing.assert_close(
        reweight_advantages(out, torch.tensor([2.0, 1.0])), torch.tensor([[4.0, 6.0], [-1.2, -1.0]])
    )
    stats = weight_statistics(torch.tensor([1.5, 1.0]), torch.tensor([[1, 1], [1, 0]]), alpha=0.5)
    torch.testing.assert_close(stats, torch.tensor([4.0, 3.0, 2.0, 1.5, 1.0]))
    empty = weight_statistics(weights, torch.zeros(2, 2), alpha=0.5)
    assert empty[1] == 0 and math.isinf(empty[3])


def test_dynamic_sampling_validation(monkeypatch):
    assert _config(dynamic_sampling=True, per_device_train_batch_size=8, num_generations=4).dynamic_sampling
    with pytest.raises(ValueError, match=r"`dynamic_sampling_max_rounds` must be at least 1, got 0"):
        _config(dynamic_sampling=True, dynamic_sampling_max_rounds=0, per_device_train_batch_size=8, num_generations=4)
    # With 2 processes, 2 completions each make one group of 4 that spans both: GRPO accepts it, dynamic sampling not.
    monkeypatch.setattr(ReweightedGRPOConfig, "world_size", property(lambda self: 2))
    assert _config(per_device_train_batch_size=2, num_generations=4).generation_batch_size == 4
    with pytest.raises(
        ValueError, match=r"per-process generation batch .* = 2\) must be a multiple of `num_generations` \(4\)"
    ):
        _config(dynamic_sampling=True, per_device_train_batch_size=2, num_generations=4)
