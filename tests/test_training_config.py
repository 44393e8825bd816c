"""ReweightedGRPOConfig: defaults, validation messages, TrlParser/YAML round trip; the pure weight formulas."""

from __future__ import annotations

import inspect
import math
import typing

import pytest
import torch
from trl import GRPOConfig, TrlParser

from hf_dlp.training import ReweightedGRPOConfig
from hf_dlp.training.registry import reweighting_methods, token_weighting_names
from hf_dlp.training.reweighting import (
    dominate_weights,
    low_prob_weights,
    ppl_weight_lower_bound,
    ppl_weights,
    ppl_weights_from_log_perplexity,
    reweight_advantages,
    weight_statistics,
)
from hf_dlp.training.token_masks import TokenMaskBy, TokenMaskMode

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
        ({"reweight_alpha": -0.1}, r"`reweight_alpha` must be a number >= 0.0, got -0.1"),
        ({"reweight_alpha": math.nan}, r"`reweight_alpha` must be a finite number, got nan"),
        ({"reweight_alpha": math.inf}, r"`reweight_alpha` must be a finite number, got inf"),  # defect 7
        ({"reweight_alpha": 1e39}, r"`reweight_alpha` must be a number <= 10000.0, got 1e\+39"),
        ({"reweight_alpha": "0.2"}, r"`reweight_alpha` must be a number, got '0.2' \(str\)"),
        ({"reweighting": "ppl", "ppl_weight_max": math.inf}, r"`ppl_weight_max` must be a finite number, got inf"),
        ({"dynamic_sampling_max_rounds": 2.5}, r"`dynamic_sampling_max_rounds` must be an integer, got 2.5"),
        (
            {"reweighting": "focal"},
            r"`reweighting` must be 'none', one of the registered weightings \('low_prob', 'dominate', 'middle', "
            r"'normalize', 'ppl', .*\) or an import path .*, got 'focal'. Register a new one with "
            r"`@hf_dlp.register_token_weighting\('focal'\)`",
        ),
        ({"reweighting": "normalize", "reweight_alpha": 0.0}, r"`reweight_alpha` must be > 0 with .*'normalize'"),
        ({"reweighting": "ppl_norm", "reweight_alpha": 0.5}, r"'ppl_norm' .* groups of 8 .* <= 0.378"),
        ({"reweight_advantage_sign": "both"}, r"`reweight_advantage_sign` must be one of \('all', 'positive', 'neg"),
        ({"token_mask_by": "logp"}, r"`token_mask_by` must be one of \('none', 'delta_logp_above', "),
        ({"token_mask_mode": "clip"}, r"`token_mask_mode` must be one of \('none', 'loss_mask', 'reweight'\)"),
        ({"token_mask_mode": "loss_mask"}, r"token_mask_mode='loss_mask' needs tokens to act on: set `token_mask_by`"),
        (
            {"token_mask_by": "old_logp_below", "token_mask_quantile": 1.5},
            r"`token_mask_quantile` must be a number <=",
        ),
        ({"token_mask_by": "delta_logp_middle", "token_mask_quantile": 0.3}, r"must be >= 0.5, got 0.3"),
        ({"token_mask_start_step": 0}, r"`token_mask_start_step` must be an integer >= 1, got 0. 1 masks from"),
        ({"delta_logp_quantiles": [0.5, 2.0]}, r"`delta_logp_quantiles\[1\]` must be a number <= 1.0, got 2.0"),
        ({"delta_logp_thresholds": 0.3}, r"`delta_logp_thresholds` must be a list of numbers, got float"),
        ({"import_modules": "my_weights"}, r"`import_modules` must be a list of module names, got the string"),
        ({"import_modules": ["no_such_module_xyz"]}, r"`import_modules`: cannot import 'no_such_module_xyz'"),
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


def test_numpy_and_tensor_scalars_are_accepted():
    import numpy as np

    config = _config(reweight_alpha=np.float32(0.25), reweighting="ppl", ppl_weight_min=torch.tensor(0.5))
    assert (config.reweight_alpha, config.ppl_weight_min) == (0.25, 0.5)
    assert type(config.reweight_alpha) is float and type(config.ppl_weight_min) is float


@pytest.mark.parametrize(("alpha", "groups"), [(5.0, 4), (0.3, 16), (0.2, 64)])
def test_ppl_refuses_an_alpha_that_can_give_negative_weights(alpha, groups):
    """Defect 7: `ppl` with a large alpha gave negative weights (-6.3 at alpha=5) that flip advantage signs silently."""
    kwargs = dict(reweighting="ppl", reweight_alpha=alpha, num_generations=groups, per_device_train_batch_size=groups)
    lowest = ppl_weight_lower_bound(groups, alpha)
    assert lowest < 0
    with pytest.raises(ValueError, match=rf"groups of {groups} .* weights down to {lowest:.3g}.*ppl_weight_min"):
        _config(**kwargs)
    assert _config(**kwargs, ppl_weight_min=0.0).ppl_weight_min == 0.0  # a clamp at >= 0 makes it safe
    assert _config(**{**kwargs, "reweight_alpha": (groups**0.5) / (groups - 1)}).reweighting == "ppl"  # the bound


def test_ppl_weights_never_go_below_the_bound():
    """The bound is reached (one response apart from equal others) and never crossed, so the check is exact."""
    for groups in (2, 4, 8, 16):
        outlier = torch.tensor([10.0] + [0.0] * (groups - 1))
        noise = torch.randn(200, groups)
        log_ppl = torch.cat([outlier[None], noise]).flatten()
        weights = ppl_weights_from_log_perplexity(log_ppl, groups, coef=1.0)
        bound = ppl_weight_lower_bound(groups, 1.0)
        assert weights.min() >= bound - 1e-5
        assert weights[0] == pytest.approx(bound, abs=1e-3)


def test_ppl_without_groups_raises():
    # GRPOConfig itself refuses a single generation per prompt; ppl needs groups for training and evaluation alike.
    with pytest.raises(ValueError, match="at least 2 generations per prompt"):
        _config(reweighting="ppl", num_generations=1, per_device_train_batch_size=1)


def test_options_without_effect_warn():
    with pytest.warns(
        UserWarning, match=r"`ppl_weight_max` \(1.2\) is only used with the response-level .*'low_prob'"
    ):
        _config(reweighting="low_prob", ppl_weight_max=1.2)
    with pytest.warns(
        UserWarning, match=r"`reweight_advantage_sign` \('positive'\) has no effect with reweighting='n"
    ):
        _config(reweighting="none", reweight_advantage_sign="positive")
    with pytest.warns(UserWarning, match=r"token_mask_mode='reweight' .* reweighting='none' has no weights"):
        _config(reweighting="none", token_mask_by="old_prob_below", token_mask_mode="reweight")


def test_trl_parser_reads_yaml(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "output_dir: out\nreweighting: dominate\nreweight_alpha: 0.3\nloss_type: bnpo\nuse_cpu: true\n"
        "bf16: false\nreport_to: none\n"
    )
    (config,) = TrlParser((ReweightedGRPOConfig,)).parse_args_and_config(["--config", str(recipe)])
    assert (config.reweighting, config.reweight_alpha, config.loss_type) == ("dominate", 0.3, "bnpo")
    flags = ["--output_dir", "o", "--use_cpu", "true", "--bf16", "false", "--report_to", "none"]
    with pytest.raises(SystemExit):  # argparse choices come from the Literal annotations
        TrlParser((ReweightedGRPOConfig,)).parse_args_and_config([*flags, "--token_mask_by", "logp"])
    # `reweighting` is an open set (registered names): the config refuses unknown names, listing the known ones
    with pytest.raises(ValueError, match=r"`reweighting` must be 'none', one of the registered weightings"):
        TrlParser((ReweightedGRPOConfig,)).parse_args_and_config([*flags, "--reweighting", "focal"])
    (config,) = TrlParser((ReweightedGRPOConfig,)).parse_args_and_config(
        [*flags, "--reweighting", "ppl-norm-clamp", "--reweight_advantage_sign", "negative", "--token_mask_by",
         "delta_logp_ends", "--token_mask_mode", "loss_mask", "--delta_logp_thresholds", "0.2", "0.5"]
    )  # fmt: skip
    assert (config.reweighting, config.reweight_advantage_sign) == ("ppl_norm_clamp", "negative")
    assert (config.token_mask_by, config.token_mask_mode, config.delta_logp_thresholds) == (
        "delta_logp_ends", "loss_mask", [0.2, 0.5]
    )  # fmt: skip


def test_every_field_has_help():
    from dataclasses import fields

    new_fields = [f for f in fields(ReweightedGRPOConfig) if f.name not in {g.name for g in fields(GRPOConfig)}]
    assert {f.name for f in new_fields} == {
        "reweighting",
        "import_modules",
        "reweight_alpha",
        "reweight_advantage_sign",
        "ppl_weight_min",
        "ppl_weight_max",
        "token_mask_by",
        "token_mask_quantile",
        "token_mask_mode",
        "token_mask_start_step",
        "delta_logp_monitor",
        "delta_logp_quantiles",
        "delta_logp_thresholds",
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
    assert not low_prob_weights(logps.requires_grad_(), 0.2).requires_grad
    # `reweighting` is a plain string in the dataclass (so that registered names pass TrlParser); the registry is the
    # one source of the names, built-ins registered like user weightings, by level.
    assert typing.get_type_hints(ReweightedGRPOConfig)["reweighting"] is str
    assert reweighting_methods() == ("none", *token_weighting_names())
    assert reweighting_methods("token")[:4] == ("low_prob", "dominate", "middle", "normalize")
    assert reweighting_methods("response") == ("ppl", "ppl_raw", "ppl_norm", "ppl_norm_clamp")
    with pytest.raises(ValueError, match="`level` must be one of"):
        reweighting_methods("sequence")
    hints = typing.get_type_hints(ReweightedGRPOConfig)
    assert (hints["token_mask_by"], hints["token_mask_mode"]) == (TokenMaskBy, TokenMaskMode)


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
    with pytest.raises(ValueError, match=r"`dynamic_sampling_max_rounds` must be an integer >= 1, got 0"):
        _config(dynamic_sampling=True, dynamic_sampling_max_rounds=0, per_device_train_batch_size=8, num_generations=4)
    # With 2 processes, 2 completions each make one group of 4 that spans both: GRPO accepts it, dynamic sampling not.
    monkeypatch.setattr(ReweightedGRPOConfig, "world_size", property(lambda self: 2))
    assert _config(per_device_train_batch_size=2, num_generations=4).generation_batch_size == 4
    with pytest.raises(
        ValueError, match=r"per-process generation batch .* = 2\) must be a multiple of `num_generations` \(4\)"
    ):
        _config(dynamic_sampling=True, per_device_train_batch_size=2, num_generations=4)


@pytest.mark.parametrize(
    "old", ["hf_dlp.grpo_config", "hf_dlp.grpo_trainer", "hf_dlp.reweighting", "hf_dlp.model_card"]
)
def test_the_old_module_paths_are_gone(old):
    """Removed in hf_dlp 0.3.0: everything they forwarded is imported from `hf_dlp.training`."""
    import importlib

    with pytest.raises(ModuleNotFoundError, match=f"No module named '{old}'"):
        importlib.import_module(old)


def test_the_old_names_are_gone():
    import hf_dlp.analysis
    import hf_dlp.commands.train
    import hf_dlp.training.trainer

    for module, name in (
        (hf_dlp.commands.train, "run_training"),  # now `hf_dlp.training.script`
        (hf_dlp.training.trainer, "PPL_WEIGHTS_KEY"),  # now `RESPONSE_WEIGHTS_KEY`
        (hf_dlp.training.trainer, "replace_groups"),  # now `hf_dlp.training`
        (hf_dlp.analysis, "load_model_pair"),  # now `hf_dlp.model_pair`
    ):
        assert not hasattr(module, name), (module.__name__, name)


def test_training_all_lists_only_what_it_defines():
    import hf_dlp.training

    assert len(set(hf_dlp.training.__all__)) == len(hf_dlp.training.__all__)
    for name in hf_dlp.training.__all__:
        value = getattr(hf_dlp.training, name)
        if isinstance(value, type) or inspect.isfunction(value):  # classes and functions: defined in the package
            assert value.__module__.startswith("hf_dlp.training"), name


def test_a_new_weighting_is_one_decorated_function():
    """Registering a weighting makes it a `reweighting` value of the trainer's config, a method of the demo, and a
    labelled entry of the registry, with nothing else to edit."""
    from hf_dlp.demo.config import DemoConfig
    from hf_dlp.training import register_token_weighting, weighting_label
    from hf_dlp.training.registry import _REGISTRY

    @register_token_weighting("test_sqrt_low_prob", label="sqrt low_prob", formula="Ã_t = [1 + α √(1 − p)] · Â")
    def sqrt_low_prob(old_log_probs, advantages, masks, config):
        return 1 + config.reweight_alpha * (1 - old_log_probs.exp()).sqrt()

    try:
        assert "test_sqrt_low_prob" in reweighting_methods("token")
        config = ReweightedGRPOConfig(
            output_dir="out", reweighting="test_sqrt_low_prob", use_cpu=True, bf16=False, report_to="none"
        )
        assert config.reweighting == "test_sqrt_low_prob"
        assert DemoConfig(methods=("none", "test_sqrt_low_prob")).methods == ("none", "test_sqrt_low_prob")
        assert weighting_label("test_sqrt_low_prob") == "sqrt low_prob"
        weights = _REGISTRY["test_sqrt_low_prob"](torch.tensor([[0.0, math.log(0.75)]]), None, None, config)
        torch.testing.assert_close(weights, torch.tensor([[1.0, 1 + 0.2 * 0.5]]))
    finally:
        _REGISTRY.pop("test_sqrt_low_prob")
    with pytest.raises(ValueError, match="`methods`: 'test_sqrt_low_prob' is not a weighting"):
        DemoConfig(methods=("none", "test_sqrt_low_prob"))
