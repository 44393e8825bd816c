"""Block-verified (speculative) extrapolation (`generate_with_extrapolation(..., block_size=...)`) against the per-token
processor: token-identical under greedy decoding, seeded-identical under sampling for selective rules, the same
distribution for dense speculative sampling (and a statistical check that catches a wrong acceptance rule), the
adaptive schedule, the LoRA single-weights path, the exported `custom_generate`, and the acceptance statistics.

Nano toy models only (hidden 32, one layer, 106 tokens); the sampling checks batch 2,000 rows in one `generate` call.
"""

from __future__ import annotations

import copy
import os
import sys

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, GenerationConfig, LogitsProcessor

from hf_dlp.extrapolation import (
    BlockSchedule,
    CachedModelScorer,
    ExtrapolationConfig,
    ExtrapolationLogitsProcessor,
    acceptance,
    disable_extrapolation,
    enable_extrapolation,
    export_custom_generate,
    generate_with_extrapolation,
)
from hf_dlp.extrapolation import block as block_module
from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm

PROMPTS = ["Q: 12 + 7?\nA: ", "Q: 3-1?", "Compute 100 + 250 please.\n"]  # different lengths: left padding
# Thresholds at which each rule fires at some positions of these models (nano models are nearly flat: entropy ~4.4).
TAUS = {
    "all": None,
    "delta_logp": {"rl": 1.0, "base": -2.0},
    "delta_logp_positive": {"rl": 1.0, "base": -2.0},
    "entropy": 4.45,
    "other_entropy": 4.45,
    "kl": 0.4,
    "kl_reverse": 0.4,
    "kl_mean": 0.4,
    "random": 0.2,
}


def peaked_model(seed: int):
    """A nano Qwen2 with peaked next-token distributions (scaled final norm, untied output layer)."""
    model = build_tiny_causal_lm("qwen2", "nano", seed=seed)
    generator = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        model.model.norm.weight.mul_(6.0)
        model.lm_head.weight = torch.nn.Parameter(torch.randn(model.lm_head.weight.shape, generator=generator) * 0.02)
    return model


@pytest.fixture(scope="module")
def tok():
    return build_char_tokenizer()


@pytest.fixture(scope="module")
def pair():
    return peaked_model(1), peaked_model(2)


@pytest.fixture(scope="module")
def batch(tok):
    return tok(PROMPTS, return_tensors="pt", padding=True)


def tau_for(selection: str, role: str):
    tau = TAUS[selection]
    return tau[role] if isinstance(tau, dict) else tau


def sides(pair, role: str):
    rl, base = pair
    return (rl, {"base_model": base}) if role == "rl" else (base, {"rl_model": rl})


def both_paths(model, block_size, seed=0, **kwargs):
    torch.manual_seed(seed)
    per_token = generate_with_extrapolation(model, return_stats=True, **kwargs)
    torch.manual_seed(seed)
    blocks = generate_with_extrapolation(model, block_size=block_size, return_stats=True, **kwargs)
    return per_token, blocks


def assert_same(per_token, blocks):
    (expected, expected_stats), (got, stats) = per_token, blocks
    assert torch.equal(got, expected)
    assert stats.num_selected == expected_stats.num_selected
    assert stats.num_generated == expected_stats.num_generated


# --- greedy: token-identical to the per-token processor -------------------------------------------------------------
@pytest.mark.parametrize("gamma", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("role", ["rl", "base"])
@pytest.mark.parametrize("selection", list(TAUS))
def test_greedy_block_path_equals_per_token_path(pair, batch, selection, role, gamma):
    model, other = sides(pair, role)
    kwargs = dict(**other, gamma=gamma, selection=selection, tau=tau_for(selection, role), candidate_top_k=8, **batch)
    kwargs.update(max_new_tokens=10, do_sample=False, return_stats=True)  # 10 new tokens: not a multiple of 3 or 8
    expected = generate_with_extrapolation(model, **kwargs)
    for block_size in (1, 3, 8):
        blocks = generate_with_extrapolation(model, block_size=block_size, **kwargs)
        assert_same(expected, blocks)
        stats = blocks[1]
        assert stats.num_blocks >= -(-10 // block_size) and stats.block_tokens == sum(stats.num_generated)
        assert stats.accepted_tokens <= stats.drafted_tokens
        assert stats.other_forwards == stats.num_blocks + (1 if block_size > 1 else 0)


def test_greedy_rules_fire_at_some_positions(pair, batch):
    """The thresholds above make each selective rule select some positions, not all (so the tests test a cut)."""
    for selection in TAUS:
        for role in ("rl", "base"):
            model, other = sides(pair, role)
            _, stats = generate_with_extrapolation(
                model, **other, selection=selection, tau=tau_for(selection, role), gamma=0.1, **batch,
                max_new_tokens=13, do_sample=False, return_stats=True, block_size=8,
            )  # fmt: skip
            assert 0 < sum(stats.num_selected) <= sum(stats.num_generated), (selection, role)
            if selection != "all":
                assert sum(stats.num_selected) < sum(stats.num_generated), (selection, role)


@pytest.mark.parametrize("selection", ["delta_logp", "all"])
def test_eos_inside_a_block_and_min_new_tokens(pair, batch, selection):
    rl, base = pair
    kwargs = dict(base_model=base, selection=selection, tau=tau_for(selection, "rl"), gamma=0.1, **batch)
    free = generate_with_extrapolation(rl, **kwargs, max_new_tokens=12, do_sample=False)
    eos = int(free[0, batch["input_ids"].shape[1] + 3])  # row 0 emits it 4 tokens in: rows stop inside blocks
    for extra in ({}, {"min_new_tokens": 5}):
        for block_size in (3, 8):
            per_token, blocks = both_paths(
                rl, block_size, **kwargs, max_new_tokens=12, do_sample=False, eos_token_id=[5, eos], **extra
            )
            assert_same(per_token, blocks)
            generated = blocks[1].num_generated
            assert min(generated) >= 5 if extra else min(generated) < 12


def test_other_processors_masks_are_followed(pair, batch):
    class NoDigits(LogitsProcessor):
        def __call__(self, input_ids, scores):
            return scores.index_fill(-1, torch.arange(10, 20), float("-inf"))

    rl, base = pair
    kwargs = dict(base_model=base, selection="delta_logp", tau=1.0, gamma=0.5, **batch, max_new_tokens=12)
    settings = dict(do_sample=False, repetition_penalty=1.3, no_repeat_ngram_size=2, logits_processor=[NoDigits()])
    per_token, blocks = both_paths(rl, 4, **kwargs, **settings)
    assert_same(per_token, blocks)


def ticking_clock(step: float = 1.0):
    ticks = iter(range(10**6))
    return lambda: step * next(ticks)


def test_auto_schedule():
    """Four timed one-token probes, then blocks from 8 that grow by 2 when whole and shrink by 1 when cut."""
    schedule = BlockSchedule("auto", clock=ticking_clock())
    sizes = []
    for whole in (True,) * 4 + (True, True, False, False):
        schedule.start()
        sizes.append(schedule.size)
        schedule.update(whole=whole, advanced=schedule.size)  # every block takes one tick: blocks pay
    assert sizes == [1, 1, 1, 1, 8, 10, 12, 11] and schedule.size == 10 and not schedule.fell_back
    small = BlockSchedule("auto", clock=ticking_clock())
    for _ in range(30):
        small.start()
        small.update(whole=False, advanced=small.size)
    assert small.size == 1
    fixed = BlockSchedule(5)
    fixed.start()
    assert fixed.update(whole=False, advanced=1) == 5 and not fixed.fell_back


def test_auto_schedule_falls_back_when_blocks_do_not_pay():
    slow = BlockSchedule("auto", clock=ticking_clock())
    for _ in range(4):
        slow.start()
        slow.update(whole=True)
    slow.start()
    slow.update(whole=False, advanced=1.0)  # 1 tick for 1 token: a one-token step costs the same
    slow.start()
    assert slow.update(whole=False, advanced=1.0) == 1 and slow.fell_back
    for _ in range(5):
        slow.start()
        assert slow.update(whole=True, advanced=1.0) == 1  # for the rest of the call
    first = BlockSchedule("auto", clock=ticking_clock())
    for _ in range(4):
        first.start()
        first.update(whole=True)
    first.start()
    first.update(whole=False, advanced=0.5)  # the first block alone is twice as slow per token
    assert first.fell_back


def test_auto_schedule_for_batches_judges_all_blocks_so_far():
    """A batch's blocks are judged together: four blocks in which the slowest row advanced one token each (as
    slow as one-token steps) do not end blocks that bought 8 tokens a tick before them; four that lose by far (a
    quarter token a tick) do, and so do blocks that never pay."""

    def run(advances) -> BlockSchedule:
        schedule = BlockSchedule("auto", clock=ticking_clock())
        for advanced in (1,) * 4 + advances:  # four probes, then one tick per block
            schedule.start()
            schedule.update(whole=advanced > 1, advanced=advanced)
        return schedule

    unlucky = run((8,) * 4 + (1,) * 4)
    assert not unlucky.fell_back and unlucky.size > 1
    assert run((8,) * 4 + (0.25,) * 4).fell_back
    assert run((1,) * 6).fell_back


def test_auto_schedule_for_one_row_judges_the_firing_rate():
    """One row: the fallback weighs the expected advance from the firing rate seen (prior 5 %), not single blocks."""

    def run(fires: bool, draft_cost: float) -> BlockSchedule:
        now = [0.0]
        schedule = BlockSchedule("auto", judge_first=False, clock=lambda: now[0])
        for _ in range(12):
            schedule.start()
            now[0] += 1.0 if schedule.size == 1 else draft_cost * schedule.size  # a one-token step takes 1
            schedule.update(whole=not fires, advanced=1 if fires else schedule.size, fired=fires)
        return schedule

    assert not run(fires=True, draft_cost=0.05).fell_back  # drafts nearly free: blocks pay even if always cut
    assert not run(fires=False, draft_cost=0.6).fell_back  # blocks kept whole: 0.6 per token
    assert run(fires=True, draft_cost=1.0).fell_back  # a draft costs a whole step: no block can pay
    assert run(fires=False, draft_cost=1.0).fell_back


@pytest.mark.parametrize("selection, tau, falls_back", [("delta_logp", 10.0, True), ("delta_logp", -50.0, False)])
def test_auto_falls_back_with_the_same_greedy_tokens(pair, batch, monkeypatch, selection, tau, falls_back):
    """Each block takes one tick of a fake clock: blocks cut at their first position (tau 10 fires everywhere)
    cost as much per token as a one-token step, so "auto" falls back; blocks kept whole (tau -50) do not."""
    monkeypatch.setattr(acceptance, "block_clock", ticking_clock())
    rl, base = pair
    kwargs = dict(base_model=base, selection=selection, tau=tau, gamma=0.5, **batch, max_new_tokens=24)
    per_token, blocks = both_paths(rl, "auto", **kwargs, do_sample=False)
    assert_same(per_token, blocks)
    assert blocks[1].fell_back is falls_back
    if falls_back:  # after the fallback every block is one token
        assert blocks[1].num_blocks >= 24 - 2 * 8
    sampled = both_paths(rl, "auto", seed=4, **kwargs, do_sample=True, top_p=0.9)
    assert_same(*sampled)


def test_auto_blocks_of_a_batch_stop_growing_at_the_start_size(pair, batch, monkeypatch):
    """Blocks that pay grow by 2 up to `MAX_BLOCK_SIZE` for one row, and up to `AUTO_BLOCK_START` for a batch (its
    slowest row cuts them); the tokens stay the per-token path's."""
    monkeypatch.setattr(acceptance, "block_clock", ticking_clock())  # every block one tick: blocks pay
    sizes: list[int] = []

    class Recorded(acceptance.BlockSchedule):
        def start(self):
            sizes.append(self.size)
            super().start()

    monkeypatch.setattr(block_module, "BlockSchedule", Recorded)
    rl, base = pair
    kwargs = dict(base_model=base, selection="delta_logp", tau=-50.0, gamma=0.5, max_new_tokens=60, do_sample=False)
    assert_same(*both_paths(rl, "auto", **batch, **kwargs))
    assert max(sizes) == acceptance.AUTO_BLOCK_START
    sizes.clear()
    one_row = {key: value[:1] for key, value in batch.items()}
    assert_same(*both_paths(rl, "auto", **one_row, **kwargs))
    assert max(sizes) > acceptance.AUTO_BLOCK_START


# --- sampling: seeded equality (selective) --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "selection, role", [("delta_logp", "rl"), ("delta_logp", "base"), ("random", "rl"), ("entropy", "base")]
)
def test_seeded_selective_sampling_equals_per_token_path(pair, batch, selection, role):
    """The global random state advances once per committed token, the re-draws use the per-token processor's private
    numbers: a seeded run gives the per-token processor's tokens (`num_return_sequences=2`, top-p)."""
    model, other = sides(pair, role)
    kwargs = dict(**other, selection=selection, tau=tau_for(selection, role), gamma=0.5, **batch)
    settings = dict(do_sample=True, top_p=0.9, num_return_sequences=2, max_new_tokens=13)
    for block_size in (3, 8):
        per_token, blocks = both_paths(model, block_size, seed=3, **kwargs, **settings)
        assert_same(per_token, blocks)
        assert blocks[0].shape[0] == 6 and 0 < sum(blocks[1].num_selected)


def test_gamma_zero_dense_sampling_is_plain_generate(pair, batch):
    rl, base = pair
    config = GenerationConfig(do_sample=True, top_p=0.9, max_new_tokens=12, num_return_sequences=2)
    torch.manual_seed(5)
    plain = rl.generate(**batch, generation_config=config)
    torch.manual_seed(5)
    ours, stats = generate_with_extrapolation(
        rl, base_model=base, gamma=0.0, selection="all", candidate_top_k=None, block_size=4, **batch,
        generation_config=config, return_stats=True,
    )  # fmt: skip
    assert torch.equal(plain, ours)
    assert stats.acceptance_rate == 1.0 and stats.mean_accepted_block_length == 4.0


# --- sampling: statistical checks -----------------------------------------------------------------------------------
def homogeneity_p_value(first: torch.Tensor, second: torch.Tensor, min_count: int = 10) -> float:
    """Chi-square test that two samples of token tuples (rows) come from one distribution; rare ones are pooled."""
    labels = {}
    counts = torch.zeros(2, len(first) + len(second) + 1)
    for sample, rows in enumerate((first, second)):
        for row in map(tuple, rows.tolist()):
            counts[sample, labels.setdefault(row, len(labels))] += 1
    counts = counts[:, : len(labels)]
    common = counts.sum(0) >= min_count
    table = torch.cat([counts[:, common], counts[:, ~common].sum(1, keepdim=True)], dim=1)
    table = table[:, table.sum(0) > 0]
    expected = table.sum(1, keepdim=True) * table.sum(0, keepdim=True) / table.sum()
    statistic = ((table - expected) ** 2 / expected).sum()
    dof = table.shape[1] - 1
    return float(torch.special.gammaincc(torch.tensor(dof / 2), statistic / 2))


SAMPLES = 2000


@pytest.fixture(scope="module")
def many(tok):
    return tok(["Q: 1+2?"] * SAMPLES, return_tensors="pt")


def sample(model, many, seed, new_tokens=3, **kwargs):
    """The first two generated tokens of 2,000 rows: with 2,000 rows in lockstep nearly every block of 2 is cut after
    its first position (some row re-draws there), so a block boundary falls between them."""
    config = GenerationConfig(do_sample=True, top_k=3, max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    torch.manual_seed(seed)
    output = generate_with_extrapolation(model, **kwargs, **many, generation_config=config)
    return output[:, many["input_ids"].shape[1] : many["input_ids"].shape[1] + 2]


@pytest.mark.parametrize("selection, tau", [("delta_logp", 1.0), ("all", None)])
def test_sampling_distribution_across_a_block_boundary_matches_per_token_path(pair, many, selection, tau):
    rl, base = pair
    kwargs = dict(base_model=base, selection=selection, tau=tau, gamma=1.0, candidate_top_k=3)
    per_token = sample(rl, many, seed=1, **kwargs)
    blocks = sample(rl, many, seed=2, block_size=2, **kwargs)
    assert homogeneity_p_value(per_token, blocks) > 1e-3
    plain = sample(rl, many, seed=3, **{**kwargs, "gamma": 0.0, "selection": "all", "tau": None})
    assert homogeneity_p_value(per_token, plain) < 1e-6  # the check has power: extrapolation changes the tokens


def test_gamma_zero_dense_distribution_is_plain_generate(pair, many):
    rl, base = pair
    config = GenerationConfig(do_sample=True, top_k=3, max_new_tokens=3, min_new_tokens=3)
    torch.manual_seed(1)
    plain = rl.generate(**many, generation_config=config)[:, -3:-1]
    ours = sample(rl, many, seed=2, base_model=base, selection="all", gamma=0.0, candidate_top_k=None, block_size=2)
    assert homogeneity_p_value(plain, ours) > 1e-3


def _always_accept(p_token, q_token, uniform):
    return torch.ones_like(uniform, dtype=torch.bool)


def _residual_is_target(p, q):
    return p


@pytest.mark.parametrize(
    "target, wrong", [("speculative_accept", _always_accept), ("residual_probs", _residual_is_target)]
)
def test_statistical_check_catches_a_wrong_acceptance_rule(pair, many, monkeypatch, target, wrong):
    rl, base = pair
    kwargs = dict(base_model=base, selection="all", gamma=1.0, candidate_top_k=3)
    per_token = sample(rl, many, seed=1, **kwargs)
    monkeypatch.setattr(acceptance, target, wrong)
    broken = sample(rl, many, seed=2, block_size=2, **kwargs)
    assert homogeneity_p_value(per_token, broken) < 1e-5


def test_dense_sampling_with_blocks_accepted_past_their_first_position(tok):
    """Close models (a base and a slightly moved RL copy) and small batches: blocks are often kept past their first
    position, so the acceptance at later positions and the cropping after it are exercised too."""
    base = peaked_model(4)
    rl = copy.deepcopy(base)
    with torch.no_grad():
        rl.lm_head.weight.add_(torch.randn(rl.lm_head.weight.shape, generator=torch.Generator().manual_seed(9)) * 1e-3)
    kwargs = dict(base_model=base, selection="all", gamma=1.0, candidate_top_k=3)
    per_token = sample(rl, tok(["Q: 1+2?"] * SAMPLES, return_tensors="pt"), seed=1, **kwargs)
    small = tok(["Q: 1+2?"] * 40, return_tensors="pt")
    config = GenerationConfig(do_sample=True, top_k=3, max_new_tokens=3, min_new_tokens=3)
    pieces, lengths = [], []
    torch.manual_seed(2)
    for _ in range(SAMPLES // 40):
        output, stats = generate_with_extrapolation(
            rl, **kwargs, block_size=3, **small, generation_config=config, return_stats=True
        )
        pieces.append(output[:, -3:-1])
        lengths.append(stats.mean_accepted_block_length)
    assert sum(lengths) / len(lengths) > 1.3
    assert homogeneity_p_value(per_token, torch.cat(pieces)) > 1e-3


# --- LoRA, custom_generate, config ----------------------------------------------------------------------------------
def test_lora_single_weights_block_path(batch):
    base = peaked_model(3)
    lora = get_peft_model(
        base, LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    ).eval()
    with torch.no_grad():
        for name, parameter in lora.named_parameters():
            if "lora_B" in name:
                parameter.mul_(20.0)
    kwargs = dict(selection="delta_logp", tau=1.0, gamma=0.5, **batch, max_new_tokens=10, do_sample=False)
    per_token, blocks = both_paths(lora, 4, **kwargs)  # the base side: the adapter-disabled forward over the block
    assert_same(per_token, blocks)
    assert sum(blocks[1].num_selected) > 0
    with pytest.raises(ValueError, match="cannot be combined with `block_size=4`"):
        generate_with_extrapolation(lora, one_forward=True, block_size=4, **kwargs)
    # A static cache on both sides: the adapter-disabled view's scorer builds its own StaticCache too.
    for block_size in (None, 4):
        static = generate_with_extrapolation(
            lora, **kwargs, block_size=block_size, cache_implementation="static", return_stats=True
        )
        assert_same(per_token, static)


def test_exported_custom_generate_honours_block_size(tmp_path, pair, batch):
    rl, base = pair
    folder = tmp_path / "rl"
    rl.save_pretrained(folder)
    config = ExtrapolationConfig(gamma=0.5, tau=1.0, candidate_top_k=5, block_size=4)
    export_custom_generate(folder, config)
    loaded = AutoModelForCausalLM.from_pretrained(folder)
    common = dict(**batch, max_new_tokens=9, do_sample=False)
    expected = generate_with_extrapolation(loaded, base_model=base, config=config, **common)
    got = loaded.generate(**common, custom_generate=str(folder), trust_remote_code=True, base_model=base)
    assert torch.equal(got, expected) and loaded.extrapolation_stats.num_blocks > 0
    loaded.generate(**common, custom_generate=str(folder), trust_remote_code=True, base_model=base, block_size="none")
    assert loaded.extrapolation_stats.num_blocks == 0


def test_block_size_in_the_config(tmp_path):
    assert ExtrapolationConfig(block_size="8").block_size == 8
    assert ExtrapolationConfig(block_size="AUTO").block_size == "auto"
    assert ExtrapolationConfig(block_size="none").block_size is None
    config = ExtrapolationConfig(block_size="auto")
    assert ExtrapolationConfig.from_pretrained(config.save_pretrained(tmp_path)) == config
    for bad, match in [(0, r"`block_size` must be an integer >= 1"), (65, r"<= 64"), ("eight", r"'auto' or None")]:
        with pytest.raises(ValueError, match=match):
            ExtrapolationConfig(block_size=bad)


def test_block_path_refuses_what_it_cannot_follow(pair, batch):
    rl, base = pair
    kwargs = dict(base_model=base, block_size=4, **batch, max_new_tokens=3)
    with pytest.raises(ValueError, match="returns token ids only"):
        generate_with_extrapolation(rl, **kwargs, return_dict_in_generate=True)
    with pytest.raises(ValueError, match="classifier-free guidance"):
        generate_with_extrapolation(rl, **kwargs, guidance_scale=2.0)
    with pytest.raises(ValueError, match="does not support beam search"):
        generate_with_extrapolation(rl, **kwargs, num_beams=2)
    with pytest.raises(ValueError, match="cannot follow `stop_strings`"):
        generate_with_extrapolation(rl, **kwargs, stop_strings=["="])


def test_enable_extrapolation_and_the_processor_with_a_block_size(pair, batch):
    rl, base = pair
    rl = copy.deepcopy(rl)
    settings = dict(gamma=0.5, selection="delta_logp", tau=1.0)
    common = dict(**batch, max_new_tokens=8, do_sample=False)
    expected = generate_with_extrapolation(rl, base_model=base, **settings, **common)
    enable_extrapolation(rl, base_model=base, block_size=3, **settings)
    assert torch.equal(rl.generate(**common), expected) and rl.extrapolation_stats.num_blocks > 0
    disable_extrapolation(rl)
    with pytest.warns(UserWarning, match="`block_size=3` is ignored by ExtrapolationLogitsProcessor"):
        ExtrapolationLogitsProcessor(base_model=base, block_size=3, generation_config=rl.generation_config)


# --- ragged rows, one host round trip per block (issue 18) ------------------------------------------------------------
PROMPTS_4 = ["Q: 12 + 7?\nA: ", "Q: 3-1?", "Compute 100 + 250 please.\n", "Hi"]


def kept_per_block(monkeypatch):
    """Record what each block's host round trip returns: the committed tokens of each row (first third)."""
    seen = []
    original = block_module.to_host

    def spy(tensor):
        values = original(tensor)
        seen.append(values[: len(values) // 3])
        return values

    monkeypatch.setattr(block_module, "to_host", spy)
    return seen


@pytest.mark.parametrize(
    "selection, role",
    [("delta_logp", "rl"), ("delta_logp", "base"), ("all", "rl"), ("entropy", "base"), ("random", "rl")],
)
def test_ragged_rows_accept_different_numbers_of_drafts(pair, tok, monkeypatch, selection, role):
    """B = 4 greedy: within one block the rows keep different numbers of drafts, and the tokens are still the
    per-token path's (rows re-drawing early leave holes in both caches, masked out, positions counting real tokens)."""
    model, other = sides(pair, role)
    batch = tok(PROMPTS_4, return_tensors="pt", padding=True)
    kwargs = dict(**other, selection=selection, tau=tau_for(selection, role), gamma=0.1, **batch, max_new_tokens=20)
    expected = generate_with_extrapolation(model, **kwargs, do_sample=False, return_stats=True)
    seen = kept_per_block(monkeypatch)
    got = generate_with_extrapolation(model, **kwargs, do_sample=False, return_stats=True, block_size=6)
    assert_same(expected, got)
    assert any(len({k for k in kept if k}) > 1 for kept in seen), seen  # some block ended at different places
    assert got[1].mean_accepted_block_length > 1.0


def test_ragged_rows_with_processors_that_read_each_rows_ids(pair, tok, monkeypatch):
    """N-gram blocking, bad words and min_new_tokens see each row's own committed ids (grouped by length)."""
    rl, base = pair
    batch = tok(PROMPTS_4, return_tensors="pt", padding=True)
    free = generate_with_extrapolation(rl, base_model=base, tau=1.0, gamma=0.5, **batch, max_new_tokens=8,
                                       do_sample=False)  # fmt: skip
    eos = int(free[1, batch["input_ids"].shape[1] + 2])
    settings = dict(do_sample=False, no_repeat_ngram_size=2, min_new_tokens=4, bad_words_ids=[[40, 41]],
                    eos_token_id=[5, eos], max_new_tokens=16)  # fmt: skip
    kwargs = dict(base_model=base, selection="delta_logp", tau=1.0, gamma=0.5, **batch, **settings)
    seen = kept_per_block(monkeypatch)
    per_token, blocks = both_paths(rl, 5, **kwargs)
    assert_same(per_token, blocks)
    assert any(len({k for k in kept if k}) > 1 for kept in seen)


def test_processors_that_cannot_follow_ragged_rows_keep_lockstep(pair, batch, monkeypatch):
    """A processor not known to work row by row is named, and the rows advance in lockstep (still exact)."""
    messages = []
    monkeypatch.setattr(block_module, "log_info", messages.append)
    rl, base = pair

    def allowed(batch_id, ids):  # PrefixConstrainedLogitsProcessor: depends on the row's index in the batch
        return list(range(20, 60)) if batch_id == 0 else list(range(30, 90))

    kwargs = dict(base_model=base, selection="delta_logp", tau=1.0, gamma=0.5, **batch, max_new_tokens=10)
    per_token, blocks = both_paths(rl, 4, **kwargs, do_sample=False, prefix_allowed_tokens_fn=allowed)
    assert_same(per_token, blocks)
    assert messages and "PrefixConstrainedLogitsProcessor" in messages[0] and "lockstep" in messages[0]
    seen = kept_per_block(monkeypatch)
    per_token, blocks = both_paths(rl, 4, **kwargs, do_sample=False, repetition_penalty=1.3)  # per-row padding state
    assert_same(per_token, blocks)
    assert "RepetitionPenaltyLogitsProcessor" in messages[-1]
    assert all(len(set(kept)) == 1 for kept in seen)  # lockstep: every row keeps the same number


HOST_SYNCS = ("item", "tolist", "__bool__", "__int__", "__float__", "__index__")


@pytest.mark.parametrize(
    "selection, sampling", [("delta_logp", False), ("all", False), ("delta_logp", True), ("all", True)]
)
def test_at_most_one_host_round_trip_per_block(pair, batch, monkeypatch, selection, sampling):
    """Count the host-device syncs made from hf_dlp.extrapolation's code (tensor -> Python value) during a run:
    one per block, plus a constant number at the start and the end."""
    folder = str(block_module.__file__).rsplit("/", 1)[0]
    calls = []
    for name in HOST_SYNCS:
        original = getattr(torch.Tensor, name)

        def counting(self, *args, __original=original, __name=name, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if caller.startswith(folder):
                calls.append((__name, caller.rsplit("/", 1)[-1], sys._getframe(1).f_lineno))
            return __original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    rl, base = pair
    kwargs = dict(base_model=base, selection=selection, tau=tau_for(selection, "rl"), gamma=0.5, **batch)
    _, stats = generate_with_extrapolation(
        rl, **kwargs, max_new_tokens=24, do_sample=sampling, top_p=0.9, block_size=4, return_stats=True
    )
    monkeypatch.undo()
    # start: the right-padding check and the private generator's seed; end: three statistics transfers
    assert len(calls) <= stats.num_blocks + 5, calls
    assert stats.num_blocks >= 6


def test_record_swaps_on_the_block_path(pair, batch):
    rl, base = pair
    kwargs = dict(base_model=base, selection="delta_logp", tau=1.0, gamma=0.5, **batch, max_new_tokens=12)
    _, expected = generate_with_extrapolation(rl, **kwargs, do_sample=False, return_stats=True, record_swaps=True)
    _, got = generate_with_extrapolation(
        rl, **kwargs, do_sample=False, return_stats=True, record_swaps=True, block_size=4
    )
    assert sum(map(len, got.swaps)) > 0
    for row_expected, row_got in zip(expected.swaps, got.swaps, strict=True):
        assert [s[:3] for s in row_got] == [s[:3] for s in row_expected]
        flat = [value for swap in row_got for value in swap[3:]]
        assert flat == pytest.approx([value for swap in row_expected for value in swap[3:]], abs=1e-4)


@pytest.mark.parametrize("selection", ["delta_logp", "all"])
@pytest.mark.parametrize("sampling", [False, True])
def test_static_cache_on_both_paths(pair, batch, selection, sampling):
    """`cache_implementation="static"` (eager, float32): both paths give the dynamic-cache per-token tokens (the block
    path keeps a static cache's rows in lockstep: holes would outgrow its fixed length)."""
    rl, base = pair
    kwargs = dict(selection=selection, tau=tau_for(selection, "rl"), gamma=0.5, **batch)
    settings = dict(max_new_tokens=10, do_sample=sampling, top_p=0.9, return_stats=True)
    torch.manual_seed(2)
    expected = generate_with_extrapolation(rl, base_model=base, **kwargs, **settings)
    for block_size in (None, 4):
        if sampling and selection == "all" and block_size:
            continue  # dense sampling: same distribution, not the same random numbers
        scorer = CachedModelScorer(base)  # the other model follows the generator's cache kind
        torch.manual_seed(2)
        got = generate_with_extrapolation(
            rl, base_model=scorer, **kwargs, **settings, block_size=block_size, cache_implementation="static"
        )
        assert_same(expected, got)
        assert scorer.cache_implementation == "static" and type(scorer._cache).__name__ == "StaticCache"


RUN_SLOW = os.environ.get("HF_DLP_RUN_SLOW") == "1"


@pytest.mark.skipif(not RUN_SLOW, reason="compiles the decode step (about 25 s on 2 cores); set HF_DLP_RUN_SLOW=1")
def test_compiled_static_decode_step_on_both_paths(pair, batch):
    """The decode step compiled as `generate` compiles it (static cache; `_compile_all_devices` so CPU compiles too):
    both paths give the eager dynamic-cache tokens in float32, and the block path runs the compiled call."""
    from transformers import CompileConfig

    rl, base = copy.deepcopy(pair[0]), copy.deepcopy(pair[1])
    kwargs = dict(tau=1.0, gamma=0.5, **batch, max_new_tokens=10, do_sample=False)
    expected = generate_with_extrapolation(rl, base_model=base, **kwargs)
    compile_config = CompileConfig(mode="default")
    compile_config._compile_all_devices = True
    for block_size in (None, 4):
        got = generate_with_extrapolation(
            rl,
            base_model=base,
            **kwargs,
            block_size=block_size,
            cache_implementation="static",
            compile_config=compile_config,
        )
        assert torch.equal(got, expected)
    assert hasattr(rl, "_compiled_call") and hasattr(base, "_compiled_call")  # both models' one-token steps
