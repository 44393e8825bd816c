"""Exactness of `ExtrapolationLogitsProcessor`: its cached two-model decoding against full recomputation and plain
`generate`, its counts, masks, vocabulary handling and state checks. Tiny offline models only."""

from __future__ import annotations

import pytest
import torch
from transformers import GenerationConfig

from hf_dlp.extrapolation import ExtrapolationLogitsProcessor, generate_with_extrapolation
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
    generator, other = (rl, base) if role == "rl" else (base, rl)
    other_kwargs = {"base_model": base} if role == "rl" else {"rl_model": rl}
    max_new = 10
    out, stats = generate_with_extrapolation(
        generator,
        **other_kwargs,
        gamma=gamma,
        selection=selection,
        tau=tau,
        top_k=top_k,
        **batch,
        max_new_tokens=max_new,
        do_sample=False,
        return_stats=True,
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
    # `top_k` of generate_with_extrapolation is the candidate set of π_extra; generate's own top-k goes in the config.
    config = GenerationConfig(**sampling, max_new_tokens=10)
    torch.manual_seed(123)
    plain = rl.generate(**batch, generation_config=config)
    torch.manual_seed(123)
    if role == "rl":
        ours = generate_with_extrapolation(rl, base_model=base, gamma=0.0, **batch, generation_config=config)
    else:
        ours = generate_with_extrapolation(base, rl_model=rl, gamma=0.0, **batch, generation_config=config)
    assert torch.equal(plain, ours)


@pytest.mark.parametrize("role", ["rl", "base"])
@pytest.mark.parametrize("selection, tau", [("delta_logp", -1e9), ("random", 0.0), ("kl", 1e9)])
def test_selection_that_never_fires_equals_generator_output(pair, batch, role, selection, tau):
    rl, base = pair
    generator, other_kwargs = (rl, {"base_model": base}) if role == "rl" else (base, {"rl_model": rl})
    sampling = dict(do_sample=True, temperature=0.9, top_p=0.95, max_new_tokens=10, num_return_sequences=2)
    torch.manual_seed(7)
    plain = generator.generate(**batch, **sampling)
    torch.manual_seed(7)
    ours, stats = generate_with_extrapolation(
        generator,
        **other_kwargs,
        gamma=0.5,
        selection=selection,
        tau=tau,
        top_k=50,
        **batch,
        **sampling,
        return_stats=True,
    )
    assert torch.equal(plain, ours)
    assert stats.num_selected == [0] * 6 and stats.replacement_ratio == 0.0


def test_sampling_is_reproducible_and_selection_changes_output(pair, batch):
    rl, base = pair
    kwargs = dict(
        base_model=base,
        gamma=1.0,
        selection="delta_logp",
        tau=-0.5,
        top_k=10,
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
        top_k=5,
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
        for copy in range(3):  # row i*k + j is copy j of prompt i, as generate expands
            assert out[row * 3 + copy, prompt_len : prompt_len + len(expected)].tolist() == expected
            assert stats.num_selected[row * 3 + copy] == selected


@pytest.mark.parametrize("role", ["rl", "base"])
@pytest.mark.parametrize("selection, tau", [("all", None), ("delta_logp", 0.0)])
def test_min_new_tokens_mask_survives(pair, batch, role, selection, tau):
    rl, base = pair
    generator, other_kwargs = (rl, {"base_model": base}) if role == "rl" else (base, {"rl_model": rl})
    prompt_len = batch.input_ids.shape[1]
    kwargs = dict(gamma=2.0, selection=selection, tau=tau, **batch, max_new_tokens=6, do_sample=False)
    free = generate_with_extrapolation(generator, **other_kwargs, **kwargs)
    stop_id = int(free[0, prompt_len])  # make the first token row 0 would emit the EOS token ...
    masked = generate_with_extrapolation(generator, **other_kwargs, **kwargs, eos_token_id=stop_id, min_new_tokens=5)
    # ... so min_new_tokens masks it with -inf: the mask must survive extrapolation for 5 tokens in every row.
    assert stop_id not in masked[:, prompt_len : prompt_len + 5].flatten().tolist()


def test_padded_vocabulary_rows_are_never_produced(tok, batch):
    rl, base = peaked_model(seed=1, vocab_size=len(tok) + 8), peaked_model(seed=2, vocab_size=len(tok) + 8)
    greedy = rl.generate(**batch, max_new_tokens=6, do_sample=False)[:, -6:].flatten().unique()[:8]
    with torch.no_grad():  # padding rows that copy (twice as large) the rows of tokens greedy decoding picks
        weight = rl.get_output_embeddings().weight
        weight[len(tok) : len(tok) + len(greedy)] = 2.0 * weight[greedy]
    plain = rl.generate(**batch, max_new_tokens=6, do_sample=False)
    assert int(plain[:, -6:].max()) >= len(tok)
    ours = generate_with_extrapolation(
        rl, base_model=base, gamma=0.5, tokenizer=tok, **batch, max_new_tokens=6, do_sample=False
    )
    assert int(ours[:, -6:].max()) < len(tok)


def test_bfloat16_models_on_cpu(pair, batch):
    rl, base = (model.to(torch.bfloat16) for model in (peaked_model(seed=1), peaked_model(seed=2)))
    processor = ExtrapolationLogitsProcessor(
        base_model=base, gamma=0.5, selection="delta_logp", tau=-0.5, prompt_attention_mask=batch.attention_mask
    )
    scores = torch.randn(3, rl.config.vocab_size)
    processed = processor(batch.input_ids, scores)
    assert processed.dtype == torch.float32 and processed.shape == scores.shape
    out = rl.generate(
        **batch,
        logits_processor=[
            processor.__class__(
                base_model=base,
                gamma=0.5,
                selection="delta_logp",
                tau=-0.5,
                prompt_attention_mask=batch.attention_mask,
                generation_config=rl.generation_config,
            )
        ],
        max_new_tokens=5,
        min_new_tokens=5,
    )
    assert out.shape == (3, batch.input_ids.shape[1] + 5)


def test_processor_does_not_modify_scores_in_place(pair, batch):
    rl, base = pair
    processor = ExtrapolationLogitsProcessor(base_model=base, gamma=0.5, prompt_attention_mask=batch.attention_mask)
    scores = torch.randn(3, rl.config.vocab_size)
    before = scores.clone()
    processed = processor(batch.input_ids, scores)
    assert torch.equal(scores, before)
    assert torch.allclose(processed.exp().sum(-1), torch.ones(3), atol=1e-5)  # dense mode returns log-probs


def test_reused_processor_is_detected(pair, batch):
    rl, base = pair
    processor = ExtrapolationLogitsProcessor(
        base_model=base, gamma=0.5, prompt_attention_mask=batch.attention_mask, generation_config=rl.generation_config
    )
    rl.generate(**batch, logits_processor=[processor], max_new_tokens=3, do_sample=False)
    with pytest.raises(RuntimeError, match="reused across `generate` calls"):
        rl.generate(**batch, logits_processor=[processor], max_new_tokens=3, do_sample=False)
    processor.reset()
    out = rl.generate(**batch, logits_processor=[processor], max_new_tokens=3, do_sample=False)
    assert out.shape[1] == batch.input_ids.shape[1] + 3


def test_beam_search_through_a_bare_processor_is_detected(pair, tok):
    rl, base = pair
    single = tok(["Q: 12 + 7?\nA: "], return_tensors="pt")
    processor = ExtrapolationLogitsProcessor(base_model=base, gamma=0.5, prompt_attention_mask=single.attention_mask)
    with pytest.raises(RuntimeError, match="beam search"):  # beams expand the batch and reorder rows
        rl.generate(**single, logits_processor=[processor], num_beams=2, max_new_tokens=4, do_sample=False)
