"""The other-model scorers: cached and naive agree on a left-padded batch, k tokens in one forward equal k steps,
`crop` rewinds exactly (what block-verified speculative extrapolation will build on)."""

from __future__ import annotations

import pytest
import torch

from hf_dlp.extrapolation import (
    AdapterDisabledView,
    CachedModelScorer,
    NaiveRecomputeScorer,
    OtherModelScorer,
    SharedForwardScorer,
)
from hf_dlp.extrapolation.scorers import as_scorer
from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm


@pytest.fixture(scope="module")
def model():
    return build_tiny_causal_lm("llama", "micro", seed=4)


@pytest.fixture(scope="module")
def prompts():
    batch = build_char_tokenizer()(["Q: 12 + 7?", "Q: 3?"], return_tensors="pt", padding=True)
    return batch.input_ids, batch.attention_mask


NEW = torch.tensor([[11, 12, 13, 14], [21, 22, 23, 24]])


def test_scorers_follow_the_protocol(model):
    for scorer in (CachedModelScorer(model), NaiveRecomputeScorer(model), SharedForwardScorer(model)):
        assert isinstance(scorer, OtherModelScorer)
    assert not isinstance(model, OtherModelScorer)
    assert isinstance(as_scorer(model), CachedModelScorer)
    naive = NaiveRecomputeScorer(model)
    assert as_scorer(naive) is naive


def test_cached_and_naive_agree_on_a_left_padded_batch(model, prompts):
    cached, naive = CachedModelScorer(model), NaiveRecomputeScorer(model)
    torch.testing.assert_close(cached.prefill(*prompts), naive.prefill(*prompts), atol=1e-5, rtol=1e-5)
    for step in range(NEW.shape[1]):
        torch.testing.assert_close(
            cached.extend(NEW[:, step : step + 1]), naive.extend(NEW[:, step : step + 1]), atol=1e-5, rtol=1e-5
        )
    length = prompts[0].shape[1] + NEW.shape[1]
    assert cached.length == naive.length == length
    assert cached.tokens_processed == 2 * length
    assert naive.tokens_processed == sum(2 * (prompts[0].shape[1] + t) for t in range(NEW.shape[1] + 1))


@pytest.mark.parametrize("scorer_class", [CachedModelScorer, NaiveRecomputeScorer])
def test_k_tokens_in_one_forward_equal_k_single_steps(model, prompts, scorer_class):
    one, block = scorer_class(model), scorer_class(model)
    one.prefill(*prompts), block.prefill(*prompts)
    singles = torch.stack([one.extend(NEW[:, i : i + 1])[:, 0] for i in range(NEW.shape[1])], dim=1)
    torch.testing.assert_close(block.extend(NEW), singles, atol=1e-5, rtol=1e-5)


def test_static_cache_scorer_matches_the_dynamic_one(model, prompts):
    """`follow` a static-cache generation config: prefill, a k-token extend, crop, hide and one-token steps give the
    dynamic cache's logits."""
    from transformers import GenerationConfig

    dynamic, static = CachedModelScorer(model), CachedModelScorer(model)
    static.follow(GenerationConfig(cache_implementation="static", max_new_tokens=8))
    assert (dynamic.cache_implementation, static.cache_implementation) == ("dynamic", "static")
    close = dict(atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(static.prefill(*prompts), dynamic.prefill(*prompts), **close)
    assert type(static._cache).__name__ == "StaticCache"
    torch.testing.assert_close(static.extend(NEW), dynamic.extend(NEW), **close)
    length = prompts[0].shape[1] + 2
    static.crop(length), dynamic.crop(length)
    hidden = torch.tensor([[False], [True]])  # row 1's last token becomes a hole
    static.hide(hidden), dynamic.hide(hidden)
    for step in range(3):
        new = NEW[:, step : step + 1]
        torch.testing.assert_close(static.extend(new), dynamic.extend(new), **close)
    with pytest.raises(ValueError, match="static cache holds"):
        static.extend(NEW)
    unsized = CachedModelScorer(model)
    unsized.follow(GenerationConfig(cache_implementation="static", max_length=None))
    with pytest.raises(ValueError, match="needs `max_new_tokens` or `max_length`"):
        unsized.prefill(*prompts)


@pytest.mark.parametrize("scorer_class", [CachedModelScorer, NaiveRecomputeScorer])
def test_crop_rewinds_to_the_same_state(model, prompts, scorer_class):
    reference, rewound = scorer_class(model), scorer_class(model)
    reference.prefill(*prompts), rewound.prefill(*prompts)
    prompt_len = prompts[0].shape[1]
    expected = reference.extend(NEW[:, :2])
    rewound.extend(NEW)  # four proposed tokens, two of which are rejected
    rewound.crop(prompt_len + 1)
    assert rewound.length == prompt_len + 1
    torch.testing.assert_close(rewound.extend(NEW[:, 1:2]), expected[:, 1:], atol=1e-5, rtol=1e-5)


def test_shared_forward_scorer_needs_supplied_logits(model, prompts):
    scorer = SharedForwardScorer(model)
    with pytest.raises(RuntimeError, match="must be driven by `OneForwardLoraSampler`"):
        scorer.prefill(*prompts)
    scorer.supply(torch.zeros(2, 106))
    assert scorer.prefill(*prompts).shape == (2, 106)
    scorer.supply(torch.zeros(2, 106))
    assert scorer.extend(NEW[:, :1]).shape == (2, 1, 106)
    assert scorer.tokens_processed == prompts[0].numel() + 2


def test_adapter_disabled_view_lends_its_base_model():
    from peft import LoraConfig, get_peft_model

    lora = get_peft_model(build_tiny_causal_lm(size="nano"), LoraConfig(r=2, target_modules=["q_proj"]))
    view = AdapterDisabledView(lora)
    assert view.get_base_model() is lora.get_base_model()
    assert isinstance(as_scorer(view), CachedModelScorer)
