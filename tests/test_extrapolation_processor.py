"""Exactness of `ExtrapolationLogitsProcessor`: its cached two-model decoding against full recomputation and plain
`generate` (for every generation setting it accepts), its counts, masks, vocabulary handling and state checks.
Tiny offline models only."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import GenerationConfig

from hf_dlp.extrapolation import (
    ExtrapolationConfig,
    ExtrapolationLogitsProcessor,
    NaiveRecomputeScorer,
    generate_with_extrapolation,
)
from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm

PROMPTS = ["Q: 12 + 7?\nA: ", "Q: 3-1?", "Compute 100 + 250 please.\n"]  # different lengths: left padding


def peaked_model(arch: str = "qwen2", seed: int = 1, vocab_size: int | None = None):
    """A tiny random model whose next-token distributions are peaked like a trained model's (no argmax near-ties).

    The output layer is untied from the input embeddings: tied random weights make a model repeat its last token.
    """
    model = build_tiny_causal_lm(arch, "micro", seed=seed, vocab_size=vocab_size)
    generator = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        model.model.norm.weight.mul_(6.0)
        weight = torch.randn(model.lm_head.weight.shape, generator=generator) * 0.02
        model.lm_head.weight = torch.nn.Parameter(weight)
    return model


@pytest.fixture(scope="module")
def tok():
    return build_char_tokenizer()


_PAIRS: dict[str, tuple] = {}


def make_pair(arch: str):
    if arch not in _PAIRS:
        _PAIRS[arch] = peaked_model(arch, seed=1), peaked_model(arch, seed=2)
    return _PAIRS[arch]


@pytest.fixture(scope="module")
def pair():
    """(RL model, base model): two different peaked tiny Qwen2 models."""
    return make_pair("qwen2")


@pytest.fixture(scope="module")
def batch(tok):
    return tok(PROMPTS, return_tensors="pt", padding=True)


def roles(rl, base, role):
    """(generator, keyword arguments naming the other model) for a generator role."""
    return (rl, {"base_model": base}) if role == "rl" else (base, {"rl_model": rl})


@torch.inference_mode()
def reference_decode(generator, other, role, prompt_ids, *, gamma, selection, tau, top_k, max_new_tokens, eos_id):
    """Greedy selective extrapolation by full recomputation of both models on the unpadded prefix at every step."""
    sequence, selected = list(prompt_ids), 0
    for _ in range(max_new_tokens):
        ids = torch.tensor([sequence])
        log_gen = torch.log_softmax(generator(ids).logits[0, -1].float(), -1)
        log_other = torch.log_softmax(other(ids).logits[0, -1].float(), -1)
        log_rl, log_base = (log_gen, log_other) if role == "rl" else (log_other, log_gen)
        extra = log_rl + gamma * (log_rl - log_base)
        candidate = int(log_gen.argmax())
        allowed = torch.zeros_like(extra, dtype=torch.bool)
        allowed[log_gen.topk(top_k).indices if top_k else slice(None)] = True
        if selection == "all":
            is_selected = True
        else:
            is_selected = bool(log_rl[candidate] - log_base[candidate] <= tau)
            allowed[candidate] = True
        token = int(extra.masked_fill(~allowed, float("-inf")).argmax()) if is_selected else candidate
        sequence.append(token)
        selected += is_selected
        if token == eos_id:
            break
    return sequence[len(prompt_ids) :], selected


def _unpadded(batch, row):
    return batch.input_ids[row][batch.attention_mask[row].bool()].tolist()


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
@pytest.mark.parametrize("role", ["rl", "base"])
@pytest.mark.parametrize(
    "selection, gamma, tau, top_k",
    [("all", 0.5, None, None), ("delta_logp", 1.0, 2.0, 5), ("delta_logp", 0.0, 2.0, None)],
)
def test_cached_equals_full_recompute(arch, tok, batch, role, selection, gamma, tau, top_k):
    rl, base = make_pair(arch)
    # Greedy RL tokens have Δlog p > 0 and greedy base tokens Δlog p < 0: a threshold of the right sign selects some.
    tau = tau if tau is None or role == "rl" else -tau
    generator, other_kwargs = roles(rl, base, role)
    other = base if role == "rl" else rl
    config = ExtrapolationConfig(gamma=gamma, selection=selection, tau=tau, candidate_top_k=top_k)
    max_new = 10
    out, stats = generate_with_extrapolation(
        generator, **other_kwargs, config=config, **batch, max_new_tokens=max_new, do_sample=False, return_stats=True
    )
    prompt_len = batch.input_ids.shape[1]
    for row in range(len(PROMPTS)):
        expected, selected = reference_decode(
            generator,
            other,
            role,
            _unpadded(batch, row),
            gamma=gamma,
            selection=selection,
            tau=tau,
            top_k=top_k,
            max_new_tokens=max_new,
            eos_id=tok.eos_token_id,
        )
        got = out[row, prompt_len:].tolist()
        assert got[: len(expected)] == expected
        assert all(token == tok.pad_token_id for token in got[len(expected) :])
        assert stats.num_generated[row] == len(expected)
        assert stats.num_selected[row] == selected
    if selection != "all":
        assert 0.0 < stats.replacement_ratio < 1.0, "the threshold should select some positions, not all"
    # The other model saw the prompt once and then one token per step: B * (P + T - 1), never the whole prefix.
    assert stats.other_tokens == len(PROMPTS) * (prompt_len + out.shape[1] - prompt_len - 1)


@pytest.mark.parametrize("role", ["rl", "base"])
@pytest.mark.parametrize(
    "sampling", [{"do_sample": False}, {"do_sample": True, "temperature": 0.8, "top_p": 0.9, "top_k": 20}]
)
def test_gamma_zero_dense_equals_plain_rl_generate(pair, batch, role, sampling):
    rl, base = pair
    # generate's own top-k goes in the GenerationConfig; the candidate set of π_extra is `candidate_top_k`.
    config = GenerationConfig(**sampling, max_new_tokens=10)
    dense = ExtrapolationConfig(gamma=0.0, selection="all", candidate_top_k=None)
    torch.manual_seed(123)
    plain = rl.generate(**batch, generation_config=config)
    torch.manual_seed(123)
    generator, other = roles(rl, base, role)
    ours = generate_with_extrapolation(generator, **other, config=dense, **batch, generation_config=config)
    assert torch.equal(plain, ours)


# Every generation setting the extrapolation accepts: a selection that never fires must reproduce plain `generate`.
NEVER_FIRING_SETTINGS = {
    "greedy": {"do_sample": False},
    "greedy_penalties": {"do_sample": False, "repetition_penalty": 1.3, "no_repeat_ngram_size": 2},
    "temperature": {"temperature": 0.7},
    "top_k": {"top_k": 5},
    "top_p": {"top_p": 0.8},
    "min_p": {"min_p": 0.1},
    "typical_p": {"typical_p": 0.7},
    "epsilon_cutoff": {"epsilon_cutoff": 0.03},
    "eta_cutoff": {"eta_cutoff": 0.03},
    "top_h": {"top_h": 0.5},
    "repetition_penalty": {"repetition_penalty": 1.5},
    "no_repeat_ngram_size": {"no_repeat_ngram_size": 2},
    "min_new_tokens": {"min_new_tokens": 8},
    "bad_words_ids": {"bad_words_ids": [[10], [11, 12]]},
    "suppress_tokens": {"suppress_tokens": [10, 11]},
    "sequence_bias": {"sequence_bias": {(10,): 4.0}},
    "renormalize_logits": {"renormalize_logits": True, "top_p": 0.9},
    "num_return_sequences": {"num_return_sequences": 2, "top_p": 0.9},
    "combined": {"temperature": 0.8, "top_k": 20, "top_p": 0.9, "typical_p": 0.9, "repetition_penalty": 1.2},
}


@pytest.mark.parametrize("role", ["rl", "base"])
@pytest.mark.parametrize("setting", sorted(NEVER_FIRING_SETTINGS))
def test_selection_that_never_fires_reproduces_plain_generate(pair, batch, role, setting):
    rl, base = pair
    generator, other = roles(rl, base, role)
    values = {"do_sample": True, **NEVER_FIRING_SETTINGS[setting]}
    if not hasattr(GenerationConfig(), next(iter(NEVER_FIRING_SETTINGS[setting]))):
        pytest.skip(f"this transformers has no `{setting}`")
    config = GenerationConfig(**values, max_new_tokens=10)
    torch.manual_seed(7)
    plain = generator.generate(**batch, generation_config=config)
    torch.manual_seed(7)
    never = ExtrapolationConfig(gamma=0.5, selection="delta_logp", tau=-1e9, candidate_top_k=50)
    ours, stats = generate_with_extrapolation(
        generator, **other, config=never, **batch, generation_config=config, return_stats=True
    )
    assert torch.equal(plain, ours), setting
    assert sum(stats.num_selected) == 0 and stats.replacement_ratio == 0.0


@pytest.mark.parametrize("role", ["rl", "base"])
@pytest.mark.parametrize("selection, tau", [("random", 0.0), ("kl", 1e9)])
def test_other_rules_that_never_fire_reproduce_plain_generate(pair, batch, role, selection, tau):
    rl, base = pair
    generator, other = roles(rl, base, role)
    sampling = dict(do_sample=True, temperature=0.9, top_p=0.95, max_new_tokens=10, num_return_sequences=2)
    torch.manual_seed(7)
    plain = generator.generate(**batch, **sampling)
    torch.manual_seed(7)
    ours, stats = generate_with_extrapolation(
        generator, **other, gamma=0.5, selection=selection, tau=tau, **batch, **sampling, return_stats=True
    )
    assert torch.equal(plain, ours)
    assert stats.num_selected == [0] * 6


def test_sampling_is_reproducible_and_selection_changes_output(pair, batch):
    rl, base = pair
    kwargs = dict(
        base_model=base,
        config=ExtrapolationConfig(gamma=1.0, selection="delta_logp", tau=-0.5, candidate_top_k=10),
        **batch,
        max_new_tokens=12,
        do_sample=True,
        top_p=0.9,
    )
    torch.manual_seed(3)
    first, stats = generate_with_extrapolation(rl, **kwargs, return_stats=True)
    torch.manual_seed(3)
    second = generate_with_extrapolation(rl, **kwargs)
    torch.manual_seed(3)
    plain = rl.generate(**batch, max_new_tokens=12, do_sample=True, top_p=0.9)
    assert torch.equal(first, second)
    assert stats.replacement_ratio > 0 and not torch.equal(first, plain)


class _ForceEos:
    """Forces EOS for row 0 at its third step (a constructed case for the counts)."""

    def __init__(self, eos_id, prompt_len):
        self.eos_id, self.prompt_len = eos_id, prompt_len

    def __call__(self, input_ids, scores):
        scores = scores.clone()
        if input_ids.shape[1] - self.prompt_len == 2:
            scores[0] = float("-inf")
            scores[0, self.eos_id] = 0.0
        return scores


def test_counts_on_constructed_cases(pair, tok, batch):
    rl, _ = pair
    force = _ForceEos(tok.eos_token_id, batch.input_ids.shape[1])
    common = dict(**batch, max_new_tokens=6, do_sample=False, logits_processor=[force], return_stats=True)
    # Random selection with probability 1: every generated token (EOS included, padding after it not) is selected.
    out, stats = generate_with_extrapolation(rl, base_model=rl, gamma=0.3, selection="random", tau=1.0, **common)
    assert out[0, -3:].tolist() == [tok.pad_token_id] * 3
    assert stats.num_generated == [3, 6, 6] and stats.num_selected == [3, 6, 6]
    # The base model equal to the RL model: Δlog p = 0 wherever the RL scores are the model's own, so tau just above 0
    # selects those positions and tau just below none. At row 0's forced EOS the RL side is one-hot on EOS, so there
    # Δlog p = -log π_base(EOS) > 0 and the position is not selected.
    _, all_stats = generate_with_extrapolation(rl, base_model=rl, selection="delta_logp", tau=1e-4, **common)
    _, none_stats = generate_with_extrapolation(rl, base_model=rl, selection="delta_logp", tau=-1e-4, **common)
    assert all_stats.num_selected == [2, 6, 6] and none_stats.num_selected == [0, 0, 0]
    assert all_stats.num_generated == [3, 6, 6] and none_stats.replacement_ratio == 0.0


@pytest.mark.parametrize("selection, tau", [("all", None), ("delta_logp", -0.5)])
def test_num_return_sequences_expands_the_other_side(pair, tok, batch, selection, tau):
    rl, base = pair
    # Greedy decoding refuses num_return_sequences; sampling with generate's top-k = 1 is greedy in effect.
    config = GenerationConfig(do_sample=True, top_k=1, max_new_tokens=8, num_return_sequences=3)
    out, stats = generate_with_extrapolation(
        rl,
        base_model=base,
        gamma=0.5,
        selection=selection,
        tau=tau,
        candidate_top_k=5,
        **batch,
        generation_config=config,
        return_stats=True,
    )
    assert out.shape[0] == 9 and len(stats.num_selected) == 9
    prompt_len = batch.input_ids.shape[1]
    for row in range(len(PROMPTS)):
        expected, selected = reference_decode(
            rl,
            base,
            "rl",
            _unpadded(batch, row),
            gamma=0.5,
            selection=selection,
            tau=tau,
            top_k=5,
            max_new_tokens=8,
            eos_id=tok.eos_token_id,
        )
        for copy_index in range(3):  # row i*k + j is copy j of prompt i, as generate expands
            assert out[row * 3 + copy_index, prompt_len : prompt_len + len(expected)].tolist() == expected
            assert stats.num_selected[row * 3 + copy_index] == selected


@pytest.mark.parametrize("role", ["rl", "base"])
@pytest.mark.parametrize("selection, tau", [("all", None), ("delta_logp", 0.0)])
def test_min_new_tokens_mask_survives(pair, batch, role, selection, tau):
    rl, base = pair
    generator, other_kwargs = roles(rl, base, role)
    prompt_len = batch.input_ids.shape[1]
    kwargs = dict(gamma=2.0, selection=selection, tau=tau, **batch, max_new_tokens=6, do_sample=False)
    free = generate_with_extrapolation(generator, **other_kwargs, **kwargs)
    stop_id = int(free[0, prompt_len])  # make the first token row 0 would emit the EOS token ...
    masked = generate_with_extrapolation(generator, **other_kwargs, **kwargs, eos_token_id=stop_id, min_new_tokens=5)
    # ... so min_new_tokens masks it with -inf: the mask must survive extrapolation for 5 tokens in every row.
    assert stop_id not in masked[:, prompt_len : prompt_len + 5].flatten().tolist()


# --- defect 3: masks of other processors with the base model as generator gave NaN at every γ ------------------------
MASKS = {
    "min_new_tokens": {"min_new_tokens": 6},
    "bad_words_ids": {"bad_words_ids": [[10], [11]]},
    "suppress_tokens": {"suppress_tokens": [10, 11]},
}


@pytest.mark.parametrize("role", ["rl", "base"])
@pytest.mark.parametrize("gamma", [0.0, 0.5])
@pytest.mark.parametrize("selection, tau", [("all", None), ("delta_logp", 0.0)])
@pytest.mark.parametrize("mask", sorted(MASKS))
def test_masks_from_other_processors_never_give_nan(pair, batch, role, gamma, selection, tau, mask):
    rl, base = pair
    generator, other = roles(rl, base, role)
    config = GenerationConfig(
        do_sample=True, max_new_tokens=6, output_scores=True, return_dict_in_generate=True, **MASKS[mask]
    )
    torch.manual_seed(0)
    out = generate_with_extrapolation(
        generator, **other, gamma=gamma, selection=selection, tau=tau, **batch, generation_config=config
    )
    scores = torch.stack(out.scores)
    assert not torch.isnan(scores).any()
    new = out.sequences[:, batch.input_ids.shape[1] :]
    if mask != "min_new_tokens":
        assert not torch.isin(new, torch.tensor([10, 11])).any()
    else:
        assert not (new == generator.generation_config.eos_token_id).any()


def test_processor_output_is_finite_where_the_generator_allows(pair, batch):
    rl, _ = pair
    # The base model generates (rl_model= is the other side); a processor before ours masked three ids with -inf.
    scores = torch.randn(3, rl.config.vocab_size)
    scores[:, [3, 10, 11]] = float("-inf")
    for gamma in (0.0, 0.5, 1e4):
        processor = ExtrapolationLogitsProcessor(
            rl_model=rl, gamma=gamma, selection="all", prompt_attention_mask=batch.attention_mask
        )
        out = processor(batch.input_ids, scores)
        assert not torch.isnan(out).any()
        assert torch.isneginf(out[:, [3, 10, 11]]).all()
        torch.testing.assert_close(out.exp().sum(-1), torch.ones(3))


# --- defect 2: a huge γ overflowed float32 --------------------------------------------------------------------------
def test_huge_gamma_is_refused_and_the_largest_allowed_is_finite(pair, tok, batch):
    rl, base = pair
    with pytest.raises(ValueError, match=r"`gamma` must be a number <= 10000.0, got 1e\+39"):
        generate_with_extrapolation(rl, base_model=base, gamma=1e39, selection="all", **batch, max_new_tokens=2)
    out = generate_with_extrapolation(
        rl,
        base_model=base,
        gamma=1e4,
        selection="all",
        **batch,
        max_new_tokens=6,
        min_new_tokens=6,
        do_sample=True,
        output_scores=True,
        return_dict_in_generate=True,
    )
    assert not torch.isnan(torch.stack(out.scores)).any()
    assert (out.sequences[:, -6:] != tok.pad_token_id).all()


# --- defect 4: beam search and mismatched prompt masks under a bare processor ---------------------------------------
def test_beam_search_through_a_bare_processor_is_refused(pair, batch):
    rl, base = pair
    processor = ExtrapolationLogitsProcessor(
        base_model=base,
        gamma=0.5,
        tau=-0.5,
        prompt_attention_mask=batch.attention_mask,
        generation_config=rl.generation_config,
    )
    with pytest.raises(ValueError, match=r"Beam search \(`num_beams`\)"):  # the batch grew to B * num_beams
        rl.generate(**batch, logits_processor=[processor], num_beams=2, max_new_tokens=4, do_sample=False)
    with pytest.raises(ValueError, match=r"does not support beam search \(`num_beams=2`\)"):
        ExtrapolationLogitsProcessor(base_model=base, generation_config=GenerationConfig(num_beams=2))


def test_one_row_prompt_mask_for_a_two_row_batch_is_refused(pair, tok):
    rl, base = pair
    two = tok(PROMPTS[:2], return_tensors="pt", padding=True)
    processor = ExtrapolationLogitsProcessor(
        base_model=base,
        gamma=0.5,
        tau=-0.5,
        prompt_attention_mask=two.attention_mask[:1],
        generation_config=GenerationConfig(),
    )
    with pytest.raises(ValueError, match="has 1 prompts and the processor's `generation_config` asks for 1"):
        processor(two.input_ids, torch.zeros(2, rl.config.vocab_size))


def test_unsupported_settings_in_the_processor_config_are_refused(pair):
    _, base = pair
    with pytest.raises(ValueError, match="greedy decoding and sampling only"):
        ExtrapolationLogitsProcessor(base_model=base, generation_config=GenerationConfig(penalty_alpha=0.6, top_k=4))


# --- defect 5: a left-padded batch without attention_mask -----------------------------------------------------------
def test_left_padded_batch_without_mask_follows_generates_inferred_mask(pair, batch):
    rl, _ = pair
    twin = copy.deepcopy(rl)  # the other model equals the generator: π_extra is π_RL whatever γ, if both see one mask
    plain = rl.generate(input_ids=batch.input_ids, max_new_tokens=8, do_sample=False)
    ours = generate_with_extrapolation(
        rl, base_model=twin, gamma=1.0, selection="all", input_ids=batch.input_ids, max_new_tokens=8, do_sample=False
    )
    assert torch.equal(plain, ours)
    processor = ExtrapolationLogitsProcessor(
        base_model=twin, gamma=1.0, selection="all", generation_config=rl.generation_config
    )
    raw = rl.generate(input_ids=batch.input_ids, logits_processor=[processor], max_new_tokens=8, do_sample=False)
    assert torch.equal(plain, raw)


def test_right_padding_inferred_from_pad_tokens_is_refused(pair, batch):
    rl, base = pair
    right = batch.input_ids.flip(-1)
    with pytest.raises(ValueError, match="right padded"):
        generate_with_extrapolation(rl, base_model=base, gamma=0.1, input_ids=right, max_new_tokens=2)


# --- vocabulary ------------------------------------------------------------------------------------------------------
def test_padded_vocabulary_rows_are_never_produced(tok, batch):
    rl, base = peaked_model(seed=1, vocab_size=len(tok) + 8), peaked_model(seed=2, vocab_size=len(tok) + 8)
    greedy = rl.generate(**batch, max_new_tokens=6, do_sample=False)[:, -6:].flatten().unique()[:8]
    with torch.no_grad():  # padding rows that copy (twice as large) the rows of tokens greedy decoding picks
        weight = rl.get_output_embeddings().weight
        weight[len(tok) : len(tok) + len(greedy)] = 2.0 * weight[greedy]
    plain = rl.generate(**batch, max_new_tokens=6, do_sample=False)
    assert int(plain[:, -6:].max()) >= len(tok)
    ours = generate_with_extrapolation(
        rl, base_model=base, gamma=0.5, selection="all", tokenizer=tok, **batch, max_new_tokens=6, do_sample=False
    )
    assert int(ours[:, -6:].max()) < len(tok)


def test_output_layers_of_different_widths_need_the_real_vocabulary(tok, batch):
    # Defect 1 (Python API): without a tokenizer, a padded head paired with an unpadded one was sliced silently.
    rl, padded_base = peaked_model(seed=1), peaked_model(seed=2, vocab_size=len(tok) + 8)
    with pytest.raises(ValueError, match=r"output layers differ \(114 and 106 rows\).*`tokenizer=`"):
        generate_with_extrapolation(rl, base_model=padded_base, gamma=0.5, **batch, max_new_tokens=2)
    processor = ExtrapolationLogitsProcessor(base_model=padded_base, gamma=0.5, selection="all")
    with pytest.raises(ValueError, match="output layers differ, so some rows are padding. Pass `valid_vocab_size`"):
        processor(batch.input_ids, torch.zeros(3, len(tok)))
    out = generate_with_extrapolation(
        rl, base_model=padded_base, gamma=0.5, tokenizer=tok, **batch, max_new_tokens=3, do_sample=False
    )
    assert int(out.max()) < len(tok)


# --- processor contract ----------------------------------------------------------------------------------------------
def test_bfloat16_models_on_cpu(batch):
    rl, base = (model.to(torch.bfloat16) for model in (peaked_model(seed=1), peaked_model(seed=2)))
    settings = ExtrapolationConfig(gamma=0.5, tau=-0.5)
    processor = ExtrapolationLogitsProcessor(
        base_model=base,
        config=settings,
        prompt_attention_mask=batch.attention_mask,
        generation_config=GenerationConfig(),
    )
    scores = torch.randn(3, rl.config.vocab_size)
    processed = processor(batch.input_ids, scores)
    assert processed.dtype == torch.float32 and processed.shape == scores.shape
    fresh = ExtrapolationLogitsProcessor(
        base_model=base,
        config=settings,
        prompt_attention_mask=batch.attention_mask,
        generation_config=rl.generation_config,
    )
    out = rl.generate(**batch, logits_processor=[fresh], max_new_tokens=5, min_new_tokens=5)
    assert out.shape == (3, batch.input_ids.shape[1] + 5)


def test_processor_does_not_modify_scores_in_place(pair, batch):
    rl, base = pair
    processor = ExtrapolationLogitsProcessor(
        base_model=base, gamma=0.5, selection="all", prompt_attention_mask=batch.attention_mask
    )
    scores = torch.randn(3, rl.config.vocab_size)
    before = scores.clone()
    processed = processor(batch.input_ids, scores)
    assert torch.equal(scores, before)
    assert torch.allclose(processed.exp().sum(-1), torch.ones(3), atol=1e-5)  # dense mode returns log-probs


def test_reused_processor_is_detected(pair, batch):
    rl, base = pair
    processor = ExtrapolationLogitsProcessor(
        base_model=base,
        gamma=0.5,
        selection="all",
        prompt_attention_mask=batch.attention_mask,
        generation_config=rl.generation_config,
    )
    rl.generate(**batch, logits_processor=[processor], max_new_tokens=3, do_sample=False)
    with pytest.raises(RuntimeError, match="reused across `generate` calls"):
        rl.generate(**batch, logits_processor=[processor], max_new_tokens=3, do_sample=False)
    processor.reset()
    out = rl.generate(**batch, logits_processor=[processor], max_new_tokens=3, do_sample=False)
    assert out.shape[1] == batch.input_ids.shape[1] + 3


@pytest.mark.parametrize("selection, tau", [("all", None), ("delta_logp", 0.5)])
def test_an_injected_naive_scorer_gives_the_same_tokens(pair, batch, selection, tau):
    rl, base = pair
    settings = ExtrapolationConfig(gamma=0.5, selection=selection, tau=tau)
    kwargs = dict(config=settings, **batch, max_new_tokens=6, do_sample=False, return_stats=True)
    cached, cached_stats = generate_with_extrapolation(rl, base_model=base, **kwargs)
    naive, naive_stats = generate_with_extrapolation(rl, base_model=NaiveRecomputeScorer(base), **kwargs)
    assert torch.equal(cached, naive) and cached_stats.num_selected == naive_stats.num_selected
    batch_size, prompt_len, steps = 3, batch.input_ids.shape[1], 6
    assert naive_stats.other_tokens == sum(batch_size * (prompt_len + t) for t in range(steps))
    assert cached_stats.other_tokens == batch_size * (prompt_len + steps - 1)
