"""Selection rules as registered objects (`hf_dlp.selection_rules`, `hf_dlp.extrapolation.register_selection_rule`):
one decorated function makes a new rule work in the config, both decoding paths, the sweeps, plots and help."""

from __future__ import annotations

import pytest
import torch

from hf_dlp.extrapolation import (
    ExtrapolationConfig,
    export_custom_generate,
    generate_with_extrapolation,
    register_selection_rule,
    unregister_selection_rule,
)
from hf_dlp.selection_rules import (
    BUILTIN_RULE_NAMES,
    SELECTION_RULE_SPECS,
    SelectionRuleSpec,
    rule_label,
    selection_rules,
    selective_rules,
)
from hf_dlp.sweeps import replacement_sweep
from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm, make_arithmetic_dataset


@pytest.fixture
def generator_logp_rule():
    """A user rule: re-draw where the generator's own log-probability of its candidate is at most τ."""

    @register_selection_rule(
        "generator_logp", formula="log π_gen(y) ≤ τ", threshold="at_most", default_taus=(-4.6, -4.4), label="log π_gen"
    )
    def generator_logp(candidate, log_rl, log_base, log_generator):
        return log_generator.gather(-1, candidate[:, None])[:, 0]

    yield "generator_logp"
    unregister_selection_rule("generator_logp")


@pytest.fixture(scope="module")
def toy():
    tok = build_char_tokenizer()
    return tok, build_tiny_causal_lm(size="nano", seed=1), build_tiny_causal_lm(size="nano", seed=2)


def test_the_builtin_specs_cover_every_rule_and_threshold_semantics():
    assert selection_rules()[: len(BUILTIN_RULE_NAMES)] == BUILTIN_RULE_NAMES
    assert "all" not in selective_rules() and "random" in selective_rules()
    assert {SELECTION_RULE_SPECS[name].threshold for name in BUILTIN_RULE_NAMES} == {
        "none", "at_most", "at_least", "probability"
    }  # fmt: skip
    with pytest.raises(ValueError, match="`tau >= 0`"):
        ExtrapolationConfig(selection="kl", tau=-0.1)
    with pytest.raises(ValueError, match=r"probability.*\[0, 1\]"):
        ExtrapolationConfig(selection="random", tau=2.0)
    with pytest.raises(ValueError, match="negative log-probability gap such as -0.35"):
        ExtrapolationConfig(selection="delta_logp", tau=None)


def test_a_registered_rule_works_on_both_paths_and_in_the_sweeps(generator_logp_rule, toy, tmp_path):
    tok, base, rl = toy
    name = generator_logp_rule
    assert name in selection_rules() and name in selective_rules() and rule_label(name) == "log π_gen"
    config = ExtrapolationConfig(selection=name, tau=-4.67, gamma=0.5)  # about the median sampled token's log p
    batch = tok(["Q: 12 + 7?\nA: ", "3-1="], return_tensors="pt", padding=True)
    kwargs = dict(base_model=base, config=config, do_sample=True, max_new_tokens=8, return_stats=True, **batch)
    torch.manual_seed(0)
    per_token, stats = generate_with_extrapolation(rl, **kwargs)
    torch.manual_seed(0)  # seeded selective sampling: the block path draws the same tokens
    blocks, block_stats = generate_with_extrapolation(rl, block_size=4, **kwargs)
    assert torch.equal(per_token, blocks) and stats.num_selected == block_stats.num_selected
    assert 0 < sum(stats.num_selected) < sum(stats.num_generated)  # it fires at some positions, not all
    result = replacement_sweep(base_model=base, rl_model=rl, tokenizer=tok, dataset=make_arithmetic_dataset(
        num_examples=2), selections=[name], num_samples=1, max_new_tokens=4, progress=False, output_dir=tmp_path)  # fmt: skip
    assert [row.tau for row in result.rows] == [-4.6, -4.4]  # the rule's own default grid
    with pytest.raises(ValueError, match="registered in this process"):
        export_custom_generate(tmp_path / "checkpoint", config)
    assert not (tmp_path / "checkpoint" / "extrapolation_config.json").exists()  # refused before writing anything


def test_registration_is_checked(generator_logp_rule):
    with pytest.raises(ValueError, match="already registered.*overwrite=True"):
        register_selection_rule(generator_logp_rule, formula="x", threshold="at_most", default_taus=(-1.0,))(len)
    with pytest.raises(ValueError, match="built-in rule cannot be replaced"):
        register_selection_rule("kl", formula="x", threshold="at_least", default_taus=(0.1,), overwrite=True)(len)
    with pytest.raises(ValueError, match="'at_most' or 'at_least'"):
        register_selection_rule("coin", formula="x", threshold="probability", default_taus=(0.1,))
    with pytest.raises(ValueError, match="`default_taus` must be empty exactly when"):
        SelectionRuleSpec("x", "x", "at_least", "x", ())
    with pytest.raises(ValueError, match="built-in selection rule and cannot be removed"):
        unregister_selection_rule("delta_logp")
    with pytest.raises(TypeError, match="decorates a function"):
        register_selection_rule("odd", formula="x", threshold="at_most", default_taus=(-1.0,))(3)
    assert "odd" not in selection_rules()


def test_the_cli_help_lists_the_rules_from_the_registry():
    from hf_dlp.cli import make_parser

    parser, _ = make_parser()
    help_text = parser._subparsers._group_actions[0].choices["extrapolate"].format_help()
    for name in BUILTIN_RULE_NAMES:
        assert name in help_text.replace("\n", " ").replace("- ", "-")
