"""compute_token_metrics against an independent per-row, full-vocabulary computation."""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hf_dlp.analysis import METRIC_NAMES, compute_token_metrics
from hf_dlp.model_pair import check_same_vocabulary
from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm

TEXTS = ["Q: 3+4?\nA: 7", "Q: 12-5?\nA: The answer is 7.", "Q: 9+9?\nA: 18!"]
PROMPT_LENGTHS = [text.index("A: ") + 3 for text in TEXTS]  # characters up to "A: ": the rest is the completion


def _finetune(model, tokenizer, texts: list[str], steps: int = 8, lr: float = 5e-2):
    """A stand-in "RL" model: a few SGD steps of a copy toward `texts`, so Δlog p is non-zero and structured."""
    model = copy.deepcopy(model).train()
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval()


@pytest.fixture(scope="module")
def model_pair(char_tokenizer):
    """Base (106 output rows) and RL (130 rows: 24 padding rows, as real checkpoints pad their vocabulary)."""
    base = build_tiny_causal_lm("qwen2", "micro", seed=0)
    padded = build_tiny_causal_lm("qwen2", "micro", seed=0, vocab_size=len(char_tokenizer) + 24)
    with torch.no_grad():  # give the padded model the base weights, then random padding rows
        state = base.state_dict()
        for name, tensor in padded.state_dict().items():
            tensor[: state[name].shape[0]].copy_(state[name])
    rl = _finetune(padded, char_tokenizer, ["The answer is 7.", "A: 18!"])
    return base, rl


def _batch(tokenizer, padding_side: str):
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.padding_side = padding_side
    batch = tokenizer(TEXTS, return_tensors="pt", padding=True, add_special_tokens=False)
    completion = torch.zeros_like(batch.input_ids)
    for row, prompt_length in enumerate(PROMPT_LENGTHS):
        real = batch.attention_mask[row].nonzero().flatten()
        completion[row, real[prompt_length:]] = 1
    return {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask, "completion_mask": completion}


def _reference(base, rl, input_ids, attention_mask, completion_mask, vocab: int) -> dict[str, torch.Tensor]:
    """Each row alone (no padding), full logits, full log-softmax at every position, library distributions."""
    out = {name: torch.zeros(input_ids.shape) for name in METRIC_NAMES}
    for row in range(input_ids.shape[0]):
        real = attention_mask[row].bool().nonzero().flatten()
        ids = input_ids[row, real][None]
        with torch.no_grad():
            base_lp = F.log_softmax(base(ids).logits[0, :-1, :vocab].float(), -1)
            rl_lp = F.log_softmax(rl(ids).logits[0, :-1, :vocab].float(), -1)
        targets = ids[0, 1:]
        values = {
            "base_logp": base_lp[torch.arange(len(targets)), targets],
            "rl_logp": rl_lp[torch.arange(len(targets)), targets],
            "base_entropy": torch.distributions.Categorical(logits=base_lp).entropy(),
            "rl_entropy": torch.distributions.Categorical(logits=rl_lp).entropy(),
            "kl_rl_base": F.kl_div(base_lp, rl_lp, log_target=True, reduction="none").sum(-1),
            "kl_base_rl": F.kl_div(rl_lp, base_lp, log_target=True, reduction="none").sum(-1),
        }
        values["delta_logp"] = values["rl_logp"] - values["base_logp"]
        keep = completion_mask[row, real[1:]].bool()
        for name, value in values.items():
            out[name][row, real[1:][keep]] = value[keep]
    return out


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_matches_reference_float32(model_pair, char_tokenizer, padding_side):
    base, rl = model_pair
    inputs = _batch(char_tokenizer, padding_side)
    input_ids, attention_mask, completion = inputs.values()
    metrics = compute_token_metrics(base_model=base, rl_model=rl, **inputs, tokenizer=char_tokenizer)
    reference = _reference(base, rl, input_ids, attention_mask, completion, len(char_tokenizer))
    assert torch.equal(metrics.mask, completion.bool())
    for name in METRIC_NAMES:
        torch.testing.assert_close(metrics[name], reference[name], atol=1e-5, rtol=1e-5, msg=name)
    assert metrics.delta_logp[metrics.mask].abs().max() > 0.1  # the pair really differs
    assert (metrics.kl_rl_base[metrics.mask] >= -1e-6).all() and (metrics.kl_base_rl[metrics.mask] >= -1e-6).all()


def test_tokenizer_says_which_ids_are_real(model_pair, char_tokenizer):
    base, rl = model_pair  # 106 and 130 output rows
    inputs = _batch(char_tokenizer, "left")
    with_tokenizer = compute_token_metrics(base_model=base, rl_model=rl, **inputs, tokenizer=char_tokenizer)
    explicit = compute_token_metrics(base_model=base, rl_model=rl, **inputs, vocab_size=len(char_tokenizer))
    for name in METRIC_NAMES:
        torch.testing.assert_close(with_tokenizer[name], explicit[name], atol=0, rtol=0)


def test_differing_heads_without_tokenizer_are_refused(char_tokenizer):
    """Defect 1 (analysis): two padded heads (128 and 130 rows over a 106-token tokenizer) used to be scored over the
    first min(128, 130) ids, 22 padding rows included; nothing says which ids are real, so it is refused."""
    base = build_tiny_causal_lm(size="nano", vocab_size=128)
    rl = build_tiny_causal_lm(size="nano", vocab_size=130, seed=1)
    ids = torch.tensor([[7, 8, 9, 10]])
    with pytest.raises(ValueError, match=r"differ \(128 and 130 rows\).*pass `tokenizer=` or `vocab_size=`"):
        compute_token_metrics(base_model=base, rl_model=rl, input_ids=ids)
    metrics = compute_token_metrics(base_model=base, rl_model=rl, input_ids=ids, tokenizer=char_tokenizer)
    with torch.no_grad():
        real = torch.distributions.Categorical(logits=base(ids).logits[0, :-1, : len(char_tokenizer)])
    torch.testing.assert_close(metrics.base_entropy[0, 1:], real.entropy(), atol=1e-5, rtol=1e-5)
    same = build_tiny_causal_lm(size="nano", vocab_size=128, seed=1)  # equal heads: all rows scored, as given
    assert compute_token_metrics(base_model=base, rl_model=same, input_ids=ids).mask.sum() == 3


@pytest.mark.parametrize("top_k", [None, 5])
def test_chunked_equals_unchunked(model_pair, char_tokenizer, top_k):
    pair = {"base_model": model_pair[0], "rl_model": model_pair[1], "tokenizer": char_tokenizer}
    inputs = _batch(char_tokenizer, "left")
    whole = compute_token_metrics(**pair, **inputs, logprobs_top_k=top_k, chunk_size=10_000)
    chunked = compute_token_metrics(**pair, **inputs, logprobs_top_k=top_k, chunk_size=3)
    for name in METRIC_NAMES:
        torch.testing.assert_close(chunked[name], whole[name], atol=1e-6, rtol=1e-6, msg=name)


def test_bfloat16_weights(model_pair, char_tokenizer):
    base, rl = (copy.deepcopy(model).to(torch.bfloat16) for model in model_pair)
    inputs = _batch(char_tokenizer, "right")
    input_ids, attention_mask, completion = inputs.values()
    metrics = compute_token_metrics(base_model=base, rl_model=rl, **inputs, tokenizer=char_tokenizer, chunk_size=4)
    assert metrics.delta_logp.dtype == torch.float32
    reference = _reference(base, rl, input_ids, attention_mask, completion, len(char_tokenizer))
    exact = compute_token_metrics(base_model=model_pair[0], rl_model=model_pair[1], **inputs, tokenizer=char_tokenizer)
    for name in METRIC_NAMES:  # bf16 rounding of the weights and activations: looser tolerance
        torch.testing.assert_close(metrics[name], reference[name], atol=5e-2, rtol=5e-2, msg=name)
        torch.testing.assert_close(metrics[name], exact[name], atol=0.15, rtol=0.1, msg=name)


def _top_k_reference(base_lp: torch.Tensor, rl_lp: torch.Tensor, target: int, k: int) -> dict[str, float]:
    """One position, written out with Python sets and dicts (the vLLM top-k log-prob lists of the paper's code)."""
    lists = []
    for lp in (base_lp, rl_lp):
        values, ids = lp.topk(k)
        top = dict(zip(ids.tolist(), values.tolist(), strict=True))
        norm = torch.tensor(list(top.values())).logsumexp(0).item()
        lists.append((top, {i: v - norm for i, v in top.items()}, lp[target].item()))
    result = {}
    for prefix, (top, renorm, raw) in zip(("base", "rl"), lists, strict=True):
        result[f"{prefix}_logp"] = raw if target in top else min(top.values())
        result[f"{prefix}_entropy"] = -sum(torch.tensor(v).exp().item() * v for v in renorm.values())
    for name, (p, q) in (("kl_rl_base", (lists[1][1], lists[0][1])), ("kl_base_rl", (lists[0][1], lists[1][1]))):
        floor = min(q.values())
        result[name] = sum(torch.tensor(v).exp().item() * (v - q.get(i, floor)) for i, v in p.items())
    result["delta_logp"] = result["rl_logp"] - result["base_logp"]
    return result


def test_top_k_matches_reference(model_pair, char_tokenizer):
    base, rl = model_pair
    inputs = _batch(char_tokenizer, "right")
    input_ids, attention_mask, completion = inputs.values()
    vocab = len(char_tokenizer)
    metrics = compute_token_metrics(base_model=base, rl_model=rl, **inputs, logprobs_top_k=4, vocab_size=vocab)
    with torch.no_grad():
        base_lp = F.log_softmax(base(input_ids, attention_mask=attention_mask).logits[..., :vocab], -1)
        rl_lp = F.log_softmax(rl(input_ids, attention_mask=attention_mask).logits[..., :vocab], -1)
    floored = 0
    for row, col in metrics.mask.nonzero().tolist():
        target = int(input_ids[row, col])
        expected = _top_k_reference(base_lp[row, col - 1], rl_lp[row, col - 1], target, 4)
        floored += expected["rl_logp"] != rl_lp[row, col - 1, target].item()
        for name, value in expected.items():
            assert metrics[name][row, col].item() == pytest.approx(value, abs=1e-5), (name, row, col)
    assert floored > 0  # some targets fall outside a top-4, so the floor rule is exercised


def test_top_k_full_vocab_is_exact(model_pair, char_tokenizer):
    inputs = _batch(char_tokenizer, "left")
    input_ids, attention_mask, completion = inputs.values()
    exact = compute_token_metrics(base_model=model_pair[0], rl_model=model_pair[1], **inputs, tokenizer=char_tokenizer)
    full = compute_token_metrics(
        base_model=model_pair[0],
        rl_model=model_pair[1],
        **inputs,
        tokenizer=char_tokenizer,
        logprobs_top_k=len(char_tokenizer),
    )
    for name in METRIC_NAMES:
        torch.testing.assert_close(full[name], exact[name], atol=1e-5, rtol=1e-5, msg=name)


def test_fallback_without_decoder_matches(model_pair, char_tokenizer):
    base, rl = model_pair
    opaque = copy.deepcopy(rl)
    opaque.get_decoder = lambda: opaque  # a model that exposes no separate decoder stack: full-logits fallback
    inputs = _batch(char_tokenizer, "left")
    input_ids, attention_mask, completion = inputs.values()
    expected = compute_token_metrics(base_model=base, rl_model=rl, **inputs, tokenizer=char_tokenizer, chunk_size=5)
    metrics = compute_token_metrics(base_model=base, rl_model=opaque, **inputs, tokenizer=char_tokenizer, chunk_size=5)
    for name in METRIC_NAMES:
        torch.testing.assert_close(metrics[name], expected[name], atol=1e-6, rtol=1e-6, msg=name)


def _tiny_config(model_type: str):
    from transformers import CohereConfig, Gemma2Config, GraniteConfig

    common = dict(
        vocab_size=106,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=64,
        pad_token_id=0,
    )
    if model_type == "gemma2":
        return Gemma2Config(**common, head_dim=16, final_logit_softcapping=2.0)
    if model_type == "granite":
        return GraniteConfig(**common, logits_scaling=4.0)
    return CohereConfig(**common, logit_scale=0.5)


@pytest.mark.parametrize("model_type", ["gemma2", "granite", "cohere"])
def test_output_scaling_architectures(char_tokenizer, model_type):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_config(_tiny_config(model_type)).eval()
    torch.manual_seed(1)
    rl = AutoModelForCausalLM.from_config(_tiny_config(model_type)).eval()
    inputs = _batch(char_tokenizer, "right")
    input_ids, attention_mask, completion = inputs.values()
    metrics = compute_token_metrics(base_model=base, rl_model=rl, **inputs)
    reference = _reference(base, rl, input_ids, attention_mask, completion, 106)
    for name in METRIC_NAMES:
        torch.testing.assert_close(metrics[name], reference[name], atol=1e-5, rtol=1e-5, msg=name)


def test_sequence_mean_and_values(model_pair, char_tokenizer):
    inputs = _batch(char_tokenizer, "left")
    input_ids, attention_mask, completion = inputs.values()
    metrics = compute_token_metrics(
        base_model=model_pair[0], rl_model=model_pair[1], **inputs, tokenizer=char_tokenizer
    )
    means = metrics.sequence_mean("delta_logp")
    for row in range(len(TEXTS)):
        assert means[row].item() == pytest.approx(metrics.delta_logp[row][metrics.mask[row]].mean().item(), abs=1e-6)
    assert metrics.values("kl_rl_base").shape == (int(completion.sum()),)
    with pytest.raises(KeyError, match="Unknown metric 'entropy'"):
        metrics["entropy"]


# ----------------------------------------------------------------------------------------------- bad inputs


def test_mismatched_tokenizers_are_refused(char_tokenizer):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({"a": 0, "b": 1, "<unk>": 2}, "<unk>"))
    other = PreTrainedTokenizerFast(tokenizer_object=backend)
    with pytest.raises(ValueError, match=r"differ on 3 of their 3 shared ids .*id 0: '<pad>' vs 'a'"):
        check_same_vocabulary(char_tokenizer, other)
    extended = build_char_tokenizer()
    extended.add_tokens(["<think>"])
    assert check_same_vocabulary(char_tokenizer, extended) == len(char_tokenizer)


def test_bad_inputs(model_pair, char_tokenizer):
    base, rl = model_pair
    pair = {"base_model": base, "rl_model": rl}
    ids = torch.tensor([[7, 8, 9, 10]])
    with pytest.raises(ValueError, match=r"`attention_mask` has shape \(1, 3\) but `input_ids` has shape \(1, 4\)"):
        compute_token_metrics(**pair, input_ids=ids, attention_mask=torch.ones(1, 3))
    with pytest.raises(ValueError, match=r"`completion_mask` has shape \(2, 4\)"):
        compute_token_metrics(**pair, input_ids=ids, completion_mask=torch.ones(2, 4))
    with pytest.raises(ValueError, match="must be a 2-D LongTensor"):
        compute_token_metrics(**pair, input_ids=ids[0])
    with pytest.raises(ValueError, match="must be a 2-D LongTensor"):
        compute_token_metrics(**pair, input_ids=ids.float())
    with pytest.raises(ValueError, match=r"`input_ids` is empty"):
        compute_token_metrics(**pair, input_ids=torch.zeros(0, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="`completion_mask` must be a torch.Tensor, got list"):
        compute_token_metrics(**pair, input_ids=ids, completion_mask=[[1, 1, 1, 1]])
    with pytest.raises(ValueError, match=r"Rows \[1\] of `completion_mask` select no response token"):
        completion = torch.tensor([[0, 0, 1, 1], [1, 0, 0, 0]])
        compute_token_metrics(**pair, input_ids=ids.repeat(2, 1), completion_mask=completion, tokenizer=char_tokenizer)
    scored = {**pair, "input_ids": ids, "tokenizer": char_tokenizer}
    with pytest.raises(ValueError, match=r"`logprobs_top_k` must be an integer >= 1, got 0"):
        compute_token_metrics(**scored, logprobs_top_k=0)
    with pytest.raises(ValueError, match=r"`logprobs_top_k` must be an integer <= 106, got 107"):
        compute_token_metrics(**scored, logprobs_top_k=107)
    with pytest.raises(ValueError, match="`chunk_size` must be an integer >= 1, got 0"):
        compute_token_metrics(**scored, chunk_size=0)
    with pytest.raises(ValueError, match=r"`vocab_size` must be an integer <= 106, got 200.*106 and 130 output rows"):
        compute_token_metrics(**pair, input_ids=ids, vocab_size=200)
    with pytest.raises(ValueError, match=r"token id 120, outside the scored vocabulary \(106 ids"):
        compute_token_metrics(**pair, input_ids=torch.tensor([[7, 120]]), tokenizer=char_tokenizer)
    with pytest.raises(TypeError, match="unexpected keyword argument 'topk'"):
        compute_token_metrics(**scored, topk=5)


def test_numpy_and_tensor_scalars_are_accepted(model_pair, char_tokenizer):
    inputs = {**_batch(char_tokenizer, "left"), "tokenizer": char_tokenizer}
    pair = {"base_model": model_pair[0], "rl_model": model_pair[1]}
    plain = compute_token_metrics(**pair, **inputs, logprobs_top_k=5, chunk_size=3)
    scalars = compute_token_metrics(**pair, **inputs, logprobs_top_k=np.int64(5), chunk_size=torch.tensor(3))
    torch.testing.assert_close(scalars.delta_logp, plain.delta_logp, atol=0, rtol=0)


def test_positional_pair_and_top_k_are_refused(model_pair, char_tokenizer):
    """Removed in hf_dlp 0.3.0: the positional pair and `top_k` (now `logprobs_top_k`)."""
    base, rl = model_pair
    input_ids, attention_mask, completion = _batch(char_tokenizer, "left").values()
    with pytest.raises(TypeError, match="positional argument"):
        compute_token_metrics(base, rl, input_ids, attention_mask, completion)
    with pytest.raises(TypeError, match="unexpected keyword argument 'top_k'"):
        compute_token_metrics(base_model=base, rl_model=rl, input_ids=input_ids, top_k=5)


def test_minus_infinity_logits_give_finite_metrics():
    from hf_dlp.divergence import LOG_FLOOR, normalize_logits_, pair_metrics

    logits = torch.randn(4, 2, 10)
    logits[:, 0, 7:] = float("-inf")  # e.g. banned ids: zero probability, yet entropy and KL stay finite
    base_lp, base_p = normalize_logits_(logits[:, 0].clone())
    rl_lp, rl_p = normalize_logits_(logits[:, 1].clone())
    chunk = pair_metrics(base_lp, rl_lp, torch.tensor([0, 1, 2, 3]), base_probs=base_p, rl_probs=rl_p)
    base = torch.distributions.Categorical(logits=logits[:, 0, :7])
    torch.testing.assert_close(chunk["base_entropy"], base.entropy())
    kl = F.kl_div(F.log_softmax(logits[:, 1], -1)[:, :7], base.logits, log_target=True, reduction="none").sum(-1)
    torch.testing.assert_close(chunk["kl_base_rl"], kl)
    # KL(RL‖base) is truly infinite there: with the one floor of `hf_dlp.divergence` it is the finite, huge value
    # that reads log π_base as LOG_FLOOR on the banned ids.
    rl_log = F.log_softmax(logits[:, 1], -1)
    floored_base = torch.where(
        logits[:, 0].isinf(), torch.full_like(rl_log, LOG_FLOOR), F.log_softmax(logits[:, 0], -1)
    )
    torch.testing.assert_close(chunk["kl_rl_base"], (rl_log.exp() * (rl_log - floored_base)).sum(-1))
    assert (chunk["kl_rl_base"] > 100).all() and chunk["kl_rl_base"].isfinite().all()


def _peak_new_tensor_bytes(fn, existing: list[torch.Tensor]) -> int:
    """Peak bytes of tensor storage allocated inside `fn` and still alive (a `TorchDispatchMode` tracker); views of
    the `existing` tensors (weights, inputs) are not allocations."""
    import weakref

    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class Tracker(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.preexisting = {tensor.untyped_storage().data_ptr() for tensor in existing}
            self.live: dict[int, list[int]] = {}
            self.current = self.peak = 0

        def release(self, key):
            self.live[key][1] -= 1
            if self.live[key][1] == 0:
                self.current -= self.live.pop(key)[0]

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for tensor in tree_leaves(out):
                if isinstance(tensor, torch.Tensor) and tensor.untyped_storage().data_ptr() not in self.preexisting:
                    storage = tensor.untyped_storage()
                    entry = self.live.setdefault(storage.data_ptr(), [storage.nbytes(), 0])
                    if entry[1] == 0:
                        self.current += entry[0]
                        self.peak = max(self.peak, self.current)
                    entry[1] += 1
                    weakref.finalize(tensor, self.release, storage.data_ptr())
            return out

    with Tracker() as tracker:
        fn()
    return tracker.peak


def test_peak_memory_is_bounded_by_the_chunk(char_tokenizer):
    vocab = 4096  # a large padded vocabulary: the full (B, L, V) logits dominate a plain forward
    base = build_tiny_causal_lm("qwen2", "nano", vocab_size=vocab, seed=0)
    rl = build_tiny_causal_lm("qwen2", "nano", vocab_size=vocab, seed=1)
    input_ids = torch.randint(6, len(char_tokenizer), (2, 128), generator=torch.Generator().manual_seed(0))
    one_logits = input_ids.numel() * vocab * 4
    existing = [*base.parameters(), *base.buffers(), *rl.parameters(), *rl.buffers(), input_ids]
    with torch.inference_mode():
        plain = _peak_new_tensor_bytes(lambda: (base(input_ids).logits, rl(input_ids).logits), existing)
    chunked = _peak_new_tensor_bytes(
        lambda: compute_token_metrics(base_model=base, rl_model=rl, input_ids=input_ids, chunk_size=8), existing
    )
    assert plain >= 2 * one_logits
    assert chunked < 0.5 * one_logits  # four (8, V) float32 chunks (0.5 MiB) plus activations


def test_fused_chunks_equal_the_reference_path(model_pair, char_tokenizer, monkeypatch):
    """`fused=True` routes every chunk through `compiled_pair_metrics` (here run eagerly: compiling is the slow test
    below) and agrees with the reference path; `None` picks the reference path off CUDA."""
    from hf_dlp import divergence

    calls = []

    def eager():
        calls.append(1)
        return divergence.pair_metrics_from_logits

    monkeypatch.setattr("hf_dlp.analysis.metrics.compiled_pair_metrics", eager)
    pair = {"base_model": model_pair[0], "rl_model": model_pair[1], "tokenizer": char_tokenizer}
    inputs = _batch(char_tokenizer, "left")
    reference = compute_token_metrics(**pair, **inputs, chunk_size=3)
    assert not calls  # CPU default: the reference path
    fused = compute_token_metrics(**pair, **inputs, chunk_size=3, fused=True)
    assert len(calls) == -(-int(reference.mask.sum()) // 3)  # one call per chunk
    for name in METRIC_NAMES:
        torch.testing.assert_close(fused[name], reference[name], atol=1e-5, rtol=1e-5, msg=name)
    with pytest.raises(ValueError, match="`fused=True` computes the exact metrics"):
        compute_token_metrics(**pair, **inputs, fused=True, logprobs_top_k=5)
    with pytest.raises(TypeError, match="`fused` must be True, False or None"):
        compute_token_metrics(**pair, **inputs, fused="yes")


def test_chunk_size_follows_free_cuda_memory(monkeypatch):
    from hf_dlp.analysis import metrics

    free = {"bytes": 8 * 2**30}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free["bytes"], 80 * 2**30))
    cuda = torch.device("cuda", 0)
    vocab = 152_064
    expected = int(free["bytes"] * metrics.CUDA_FREE_MEMORY_SHARE) // (metrics.BYTES_PER_CHUNK_ELEMENT * vocab)
    assert metrics.default_chunk_size(vocab, cuda) == expected == 588
    free["bytes"] = 200 * 2**30  # plenty: capped
    assert metrics.default_chunk_size(vocab, cuda) == metrics.CUDA_MAX_CHUNK_POSITIONS
    free["bytes"] = 2**20  # almost none: one position at a time
    assert metrics.default_chunk_size(vocab, cuda) == 1
    assert metrics.default_chunk_size(vocab, torch.device("cpu")) == metrics.DEFAULT_CHUNK_ELEMENTS // vocab


@pytest.mark.skipif(
    os.environ.get("HF_DLP_RUN_SLOW") != "1",
    reason="compiles with Inductor's C++ backend on CPU (opt-in compile budget); set HF_DLP_RUN_SLOW=1 to run",
)
def test_compiled_fused_chunks_on_cpu(model_pair, char_tokenizer):
    pair = {"base_model": model_pair[0], "rl_model": model_pair[1], "tokenizer": char_tokenizer}
    inputs = _batch(char_tokenizer, "right")
    reference = compute_token_metrics(**pair, **inputs, chunk_size=4)
    fused = compute_token_metrics(**pair, **inputs, chunk_size=4, fused=True)
    for name in METRIC_NAMES:
        torch.testing.assert_close(fused[name], reference[name], atol=1e-5, rtol=1e-5, msg=name)
