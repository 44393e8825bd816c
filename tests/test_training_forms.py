"""Every weight form of the authors' code against its formula, the registry, and the exact cross-process quantiles
behind the token masks and the Δlog p monitor (checked against independent NumPy / `torch.kthvalue` versions)."""

from __future__ import annotations

import math
import sys
import textwrap
import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from hf_dlp.training import ReweightedGRPOConfig, register_token_weighting
from hf_dlp.training.registry import (
    canonical_weighting_name,
    get_token_weighting,
    import_weighting_modules,
    token_weighting_names,
)
from hf_dlp.training.reweighter import AdvantageReweighter
from hf_dlp.training.reweighting import AUTHORS_METHOD_NAMES, reweight_advantages
from hf_dlp.training.token_masks import (
    AUTHORS_MASK_NAMES,
    TOKEN_MASK_BY,
    delta_logp_statistics,
    kth_smallest,
    quantile_rank,
    select_tokens,
)

ALPHA = 0.3
PROBS = np.array([[1.0, 0.9, 0.5, 0.1], [0.25, 1e-4, 0.7, 1.0]])
MASK = np.array([[1, 1, 1, 0], [1, 1, 1, 1]])


def _config(**kwargs):
    base = dict(reweight_alpha=ALPHA, num_generations=2, ppl_weight_min=None, ppl_weight_max=None)
    return SimpleNamespace(**{**base, **kwargs})


def _weights(name: str, probs=PROBS, mask=MASK, **config) -> np.ndarray:
    logps = torch.tensor(np.log(probs), dtype=torch.float32) * torch.tensor(mask)
    weighting = get_token_weighting(name)
    out = weighting(logps, torch.ones(len(probs)), torch.tensor(mask), _config(**config))
    return out.double().numpy()


TOKEN_FORMULAS = {  # the authors' formulas, written out with p = pi_old(y_t) and c = alpha
    "low_prob": lambda p, c: 1 + c - c * p,
    "dominate": lambda p, c: c * p + 1 - c,
    "middle": lambda p, c: c + (1 - p) * p,
    "normalize": lambda p, c: 1 / (1 + c - p),
}


@pytest.mark.parametrize("name", list(TOKEN_FORMULAS))
def test_token_forms_equal_the_authors_formulas(name):
    expected = TOKEN_FORMULAS[name](np.where(MASK == 1, PROBS, 1.0), ALPHA)
    np.testing.assert_allclose(_weights(name), expected, rtol=1e-5)
    assert get_token_weighting(name).level == "token"


def test_token_forms_on_hand_values():
    p = np.array([[0.5]])
    one = np.array([[1]])
    assert _weights("middle", p, one)[0, 0] == pytest.approx(0.3 + 0.25)
    assert _weights("normalize", p, one)[0, 0] == pytest.approx(1 / 0.8)
    assert _weights("low_prob", p, one)[0, 0] == pytest.approx(1.15)
    assert _weights("dominate", p, one)[0, 0] == pytest.approx(0.85)


def _log_ppl(probs=PROBS, mask=MASK) -> np.ndarray:
    return -(np.log(probs) * mask).sum(1) / mask.sum(1)


def test_response_forms_equal_the_authors_formulas():
    """`ppl_raw` is their `ppl`, `ppl_norm` their `ppl-norm` (np.std + 1e-6 per uid group), `ppl_norm_clamp` their
    `ppl-norm-clamp`; our original `ppl` standardises with TRL's unbiased std + 1e-4."""
    log_ppl = _log_ppl()  # one group of two responses
    np.testing.assert_allclose(_weights("ppl_raw"), np.maximum(1 - ALPHA * log_ppl, 0), rtol=1e-5)
    z = (log_ppl - log_ppl.mean()) / (np.std(log_ppl) + 1e-6)
    np.testing.assert_allclose(_weights("ppl_norm"), 1 - ALPHA * z, rtol=1e-5)
    np.testing.assert_allclose(_weights("ppl_norm_clamp"), np.clip(1 - ALPHA * z, 0.8, 1.2), rtol=1e-5)
    z_unbiased = (log_ppl - log_ppl.mean()) / (np.std(log_ppl, ddof=1) + 1e-4)
    np.testing.assert_allclose(_weights("ppl"), 1 - ALPHA * z_unbiased, rtol=1e-5)
    np.testing.assert_allclose(_weights("ppl", ppl_weight_min=0.8, ppl_weight_max=1.2), np.clip(1 - ALPHA * z_unbiased,
                               0.8, 1.2), rtol=1e-5)  # fmt: skip
    assert {get_token_weighting(name).level for name in ("ppl", "ppl_raw", "ppl_norm", "ppl_norm_clamp")} == {
        "response"
    }
    # ppl_raw can go below zero for a high-perplexity response; the weight is clamped at 0 rather than flipping Â
    assert _weights("ppl_raw", np.array([[1e-6, 1e-6]]), np.array([[1, 1]]), num_generations=1)[0] == 0.0


def test_ppl_norm_over_several_groups_against_numpy():
    rng = np.random.default_rng(0)
    probs = rng.uniform(0.01, 1.0, size=(8, 5))
    mask = (rng.uniform(size=(8, 5)) > 0.2).astype(int)
    mask[:, 0] = 1
    log_ppl = _log_ppl(probs, mask).reshape(-1, 4)
    z = ((log_ppl - log_ppl.mean(1, keepdims=True)) / (log_ppl.std(1, keepdims=True) + 1e-6)).reshape(-1)
    np.testing.assert_allclose(_weights("ppl_norm", probs, mask, num_generations=4), 1 - ALPHA * z, rtol=1e-4)


def test_authors_names_are_aliases():
    for ours, theirs in AUTHORS_METHOD_NAMES.items():
        if theirs == "ppl":  # their `ppl` would shadow our original `ppl`: it is "ppl_raw"
            assert canonical_weighting_name("ppl") == "ppl"
            continue
        assert canonical_weighting_name(theirs) == ours
    config = ReweightedGRPOConfig(output_dir="unused", reweighting="reshape_reversed", use_cpu=True, report_to="none")
    assert config.reweighting == "low_prob"


# ------------------------------------------------------------------------------------------------------------------
# Sign gating
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sign", ["positive", "negative"])
def test_sign_gate_leaves_the_other_advantages_unchanged_exactly(sign):
    advantages = torch.tensor([0.7, -1.3, 0.0, 2.1])
    weights = torch.rand(4, 5) + 0.5
    gate = advantages > 0 if sign == "positive" else advantages < 0
    out = reweight_advantages(advantages, weights, gate[:, None])
    for row in range(4):
        if gate[row]:
            torch.testing.assert_close(out[row], advantages[row] * weights[row])
        else:
            assert torch.equal(out[row], advantages[row].expand(5))  # bit for bit


# ------------------------------------------------------------------------------------------------------------------
# The registry
# ------------------------------------------------------------------------------------------------------------------


def test_registered_weighting_is_accepted_by_the_config(tmp_path):
    @register_token_weighting("test_constant_two", formula="Ã = 2 Â", overwrite=True)
    def constant_two(old_log_probs, advantages, masks, config):
        """Doubles every advantage."""
        return torch.full_like(old_log_probs, 2.0)

    config = ReweightedGRPOConfig(output_dir="unused", reweighting="test_constant_two", use_cpu=True, report_to="none")
    assert config.reweighting == "test_constant_two"
    weighting = get_token_weighting("test_constant_two")
    assert (weighting.function, weighting.level, weighting.builtin) == (constant_two, "token", False)
    assert weighting.description == "Doubles every advantage."
    assert "test_constant_two" in token_weighting_names()
    with pytest.raises(ValueError, match=r"named 'test_constant_two' is already registered .*overwrite=True"):
        register_token_weighting("test_constant_two")(constant_two)
    with pytest.raises(ValueError, match=r"`name` 'none' is reserved"):
        register_token_weighting("none")
    with pytest.raises(ValueError, match=r"`level` must be one of \('token', 'response'\), got 'sequence'"):
        register_token_weighting("x", level="sequence")


def test_import_modules_and_import_paths_register_user_weightings(tmp_path, monkeypatch):
    module = tmp_path / "user_weights_for_test.py"
    module.write_text(textwrap.dedent('''
        from hf_dlp import training

        @training.register_token_weighting("user_sharp", overwrite=True)
        def sharp(old_log_probs, advantages, masks, config):
            return 1 + config.reweight_alpha * (1 - old_log_probs.exp()) ** 2

        def plain(old_log_probs, advantages, masks, config):
            return 1 + 0 * old_log_probs
    '''))  # fmt: skip
    monkeypatch.chdir(tmp_path)  # the current folder is importable, as for TRL's reward-function paths
    monkeypatch.delitem(sys.modules, "user_weights_for_test", raising=False)
    config = ReweightedGRPOConfig(output_dir="unused", import_modules=["user_weights_for_test"],
                                  reweighting="user_sharp", use_cpu=True, report_to="none")  # fmt: skip
    assert config.reweighting == "user_sharp"
    # An import path to a registered function resolves to its name; a plain function registers under its path.
    assert canonical_weighting_name("user_weights_for_test.sharp") == "user_sharp"
    assert canonical_weighting_name("user_weights_for_test.plain") == "user_weights_for_test.plain"
    import_weighting_modules([str(module)])  # a .py path works too (already imported: no second registration)
    with pytest.raises(ValueError, match=r"module 'user_weights_for_test' has no function 'missing'"):
        canonical_weighting_name("user_weights_for_test.missing")


# ------------------------------------------------------------------------------------------------------------------
# Exact quantiles across processes, the masks and the monitor
# ------------------------------------------------------------------------------------------------------------------


def _run_on_threads(shards, function):
    """Run `function(shard, reduce)` on one thread per shard, `reduce` summing over the threads (a fake all-reduce)."""
    barrier, slots, results = threading.Barrier(len(shards)), [None] * len(shards), [None] * len(shards)

    def worker(rank):
        def reduce(tensor):
            slots[rank] = tensor.clone()
            barrier.wait()
            total = torch.stack(slots).sum(0)
            barrier.wait()
            return total

        results[rank] = function(shards[rank], reduce)

    threads = [threading.Thread(target=worker, args=(rank,)) for rank in range(len(shards))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_kth_smallest_is_exact_on_one_and_several_processes():
    generator = torch.Generator().manual_seed(0)
    values = torch.cat([torch.randn(997, generator=generator) * 3, torch.tensor([0.0, -0.0, 0.0, 1e-30, -1e30])])
    values = values[torch.randperm(values.numel(), generator=generator)]
    ranks = [1, 2, 50, 500, 501, values.numel()]
    expected = torch.stack([torch.kthvalue(values, k).values for k in ranks])
    assert torch.equal(kth_smallest(values, ranks), expected)
    shards = list(values.tensor_split(3))  # uneven shards, one per "process"
    for result in _run_on_threads(shards, lambda shard, reduce: kth_smallest(shard, ranks, reduce)):
        assert torch.equal(result, expected)


def _authors_mask(by: str, values: np.ndarray, mask: np.ndarray, q: float) -> np.ndarray:
    """The authors' `logp_diff` selection, written independently with `torch.kthvalue` (their implementation)."""
    response = torch.tensor(values[mask.astype(bool)])
    n = response.numel()

    def kth(fraction):
        return torch.kthvalue(response, int(n * fraction)).values.item()

    if by in ("delta_logp_above", "old_logp_above"):
        selected = values >= kth(q)
    elif by in ("delta_logp_below", "old_logp_below"):
        selected = values <= kth(q)
    elif by == "delta_logp_middle":
        selected = (values >= kth(1 - q)) & (values <= kth(q))
    elif by == "delta_logp_ends":
        selected = (values <= kth(1 - q)) | (values >= kth(q))
    elif by == "old_prob_below":
        selected = np.exp(values) <= q
    else:  # old_prob_middle
        selected = (np.exp(values) <= q) & (np.exp(values) >= 1 - q)
    return selected & mask.astype(bool)


@pytest.mark.parametrize("by", [name for name in TOKEN_MASK_BY if name != "none"])
@pytest.mark.parametrize("q", [0.7, 0.8])
def test_masks_equal_the_authors_selection_on_one_and_two_processes(by, q):
    rng = np.random.default_rng(1)
    values = np.log(rng.uniform(0.001, 1.0, size=(6, 9))).astype(np.float32)  # log-probs (or Δlog p) of 6 x 9 tokens
    mask = (rng.uniform(size=(6, 9)) > 0.25).astype(np.int64)
    expected = _authors_mask(by, values, mask, q)
    selected, _ = select_tokens(by, torch.tensor(values), torch.tensor(mask), q)
    np.testing.assert_array_equal(selected.numpy(), expected)
    shards = [(torch.tensor(values[:2]), torch.tensor(mask[:2])), (torch.tensor(values[2:]), torch.tensor(mask[2:]))]
    results = _run_on_threads(shards, lambda shard, reduce: select_tokens(by, *shard, q, reduce)[0])
    np.testing.assert_array_equal(torch.cat(results).numpy(), expected)
    assert by in AUTHORS_MASK_NAMES


def test_quantile_rank_is_the_authors_and_stays_in_range():
    assert [quantile_rank(10, q) for q in (0.0, 0.05, 0.7, 0.8, 1.0)] == [1, 1, 7, 8, 10]
    assert quantile_rank(7, 0.7) == int(7 * 0.7) == 4


def test_monitor_statistics_equal_an_independent_computation():
    rng = np.random.default_rng(2)
    delta = rng.normal(0, 0.5, size=(5, 7)).astype(np.float32)
    mask = (rng.uniform(size=(5, 7)) > 0.3).astype(np.int64)
    active = np.sort(delta[mask.astype(bool)])
    quantiles, thresholds = [0.05, 0.5, 0.95], [0.1, 0.5]
    stats = delta_logp_statistics(torch.tensor(delta), torch.tensor(mask), quantiles, thresholds)
    assert stats["mean"] == pytest.approx(active.mean(), rel=1e-6)
    assert stats["abs_mean"] == pytest.approx(np.abs(active).mean(), rel=1e-6)
    for q in quantiles:
        assert stats[f"quantile_{q:g}"] == active[max(int(len(active) * q), 1) - 1]
    for t in thresholds:
        assert stats[f"share_abs_above_{t:g}"] == pytest.approx((np.abs(active) > t).mean())
    shards = [(torch.tensor(delta[:3]), torch.tensor(mask[:3])), (torch.tensor(delta[3:]), torch.tensor(mask[3:]))]
    for result in _run_on_threads(
        shards, lambda shard, reduce: delta_logp_statistics(*shard, quantiles, thresholds, reduce)
    ):
        assert result == pytest.approx(stats, rel=1e-6)
    assert delta_logp_statistics(torch.tensor(delta), torch.zeros(5, 7), quantiles, thresholds) == {}
    assert math.isfinite(stats["quantile_0.05"])


def test_response_weights_of_groups_split_across_processes():
    """A group of 8 split over two processes (4 rows each, different widths): rank 1 weighs the gathered batch and
    keeps its own rows, which equal the weights of the whole batch computed at once."""
    import torch.nn.functional as F

    from hf_dlp.training.batch_signals import GenerationBatchMixin

    generator = torch.Generator().manual_seed(3)
    rows = [(torch.rand(4, width, generator=generator).log(), torch.randn(4, generator=generator)) for width in (6, 4)]
    masks = [torch.ones(4, 6, dtype=torch.long), torch.tensor([[1, 1, 1, 0]] * 2 + [[1, 1, 1, 1]] * 2)]
    config = SimpleNamespace(reweight_alpha=0.3, num_generations=8, ppl_weight_min=None, ppl_weight_max=None)
    weighting = get_token_weighting("ppl_norm")
    whole = weighting(
        torch.cat([rows[0][0], F.pad(rows[1][0], (0, 2))]), torch.cat([rows[0][1], rows[1][1]]),
        torch.cat([masks[0], F.pad(masks[1], (0, 2))]), config,
    )  # fmt: skip
    other = [rows[0][0], rows[0][1], masks[0]]  # rank 0's tensors, in the order rank 1 gathers its own

    class FakeAccelerator:  # rank 1 of 2
        process_index = 1

        @staticmethod
        def pad_across_processes(tensor, dim):
            return F.pad(tensor, (0, 6 - tensor.shape[1])) if tensor.dim() == 2 else tensor

        @staticmethod
        def gather(tensor):
            return torch.cat([other.pop(0), tensor])

    reweighter = AdvantageReweighter(SimpleNamespace(reweighting="ppl_norm", **vars(config)))
    stub = SimpleNamespace(accelerator=FakeAccelerator(), reweighter=reweighter, model=SimpleNamespace(training=True))
    stub._old_logps = lambda output, cache: output["old_per_token_logps"]
    stub._loss_mask = lambda output: output["completion_mask"]
    output = {"old_per_token_logps": rows[1][0], "advantages": rows[1][1], "completion_mask": masks[1]}
    weights = GenerationBatchMixin._response_weights(stub, output, {})
    torch.testing.assert_close(weights, whole[4:])
    assert other == []


def test_the_reweighter_resolves_the_weighting_once_and_checks_its_inputs():
    config = SimpleNamespace(reweighting="ppl_norm", reweight_alpha=0.2, num_generations=2, ppl_weight_min=None,
                             ppl_weight_max=None, reweight_advantage_sign="all")  # fmt: skip
    reweighter = AdvantageReweighter(config, num_generations_eval=4)
    config.reweighting = "low_prob"  # resolved when built: a later change of the config does not switch it
    assert reweighter.weighting.name == "ppl_norm" and reweighter.level == "response"
    assert reweighter.weighting_config(evaluation=True).num_generations == 4
    old, mask = torch.log(torch.full((2, 3), 0.5)), torch.ones(2, 3)
    with pytest.raises(ValueError, match="weighs whole responses"):
        reweighter.step(old, torch.tensor([1.0, -1.0]), mask)
    advantages, weights = reweighter.step(
        old, torch.tensor([1.0, -1.0]), mask, response_weights=torch.tensor([2.0, 1.0])
    )
    torch.testing.assert_close(advantages, torch.tensor([2.0, -1.0]))
    with pytest.raises(TypeError, match="`weight_fn` must be a callable"):
        AdvantageReweighter(config, weight_fn="low_prob")
    negative = AdvantageReweighter(
        config, weight_fn=lambda old_log_probs, advantages, masks, cfg: -old_log_probs.exp()
    )
    with pytest.raises(ValueError, match="negative or non-finite weights"):
        negative.weights(old)
