"""The claims a demo run judges (`hf_dlp.demo.claims`): differences, standard errors and verdicts on made-up runs."""

from __future__ import annotations

import math
import random

import pytest

from hf_dlp.demo import DemoConfig, DemoResults
from hf_dlp.demo.claims import (
    Claim,
    TrainingComparison,
    auroc_stderr,
    claims_side_by_side,
    combined_claims,
    demo_claims,
)
from hf_dlp.demo.expected import EXPECTED_DIR, load_expected


def _run(*, sweep_problems=64, sweep_samples=4, gains=None, aurocs=None, extrapolation=None):
    """A demo run's results, in `results.json`'s form, with what `demo_claims` reads: one seed, a replacement and an
    extrapolation sweep."""
    gains = gains or {"delta_logp": (0.40, 0.02), "kl": (0.35, 0.05), "random": (0.25, 0.05)}
    aurocs = aurocs or {"delta_logp": 0.9, "base_entropy": 0.55, "kl_rl_base": 0.45}
    extrapolation = extrapolation or {"base": [(0.0, -0.3, 0.30), (0.5, -0.3, 0.36)], "rl": [(0.5, -0.3, 0.42)]}
    references = {"base": 0.25, "rl": 0.40}
    config = DemoConfig(methods=("none",), eval_problems=128, sweep_problems=sweep_problems,
                        sweep_samples=sweep_samples, analysis_prompts=32, analysis_samples=2)  # fmt: skip
    return DemoResults.from_dict({
        "hf_dlp_version": "test", "config": config.to_dict(), "device": "cpu", "environment": {},
        "base_model": "toy_base", "training": {},
        "evaluation": {"base": {"avg_at_k": 0.25, "num_problems": 128, "num_samples": 4, "pass_at_k": {}},
                       "none": {"avg_at_k": 0.40, "num_problems": 128, "num_samples": 4, "pass_at_k": {}}},
        "analysis": {"summary": {}, "token_tables": {}, "table": "", "rewards": [], "prompts": [], "separation": {
            m: {"auroc_response": a, "auroc_token": 0.5, "overlap_token": 1.0} for m, a in aurocs.items()}},
        "replacement": {"kind": "replacement", "references": references, "rows": [
            {"selection": rule, "tau": -1.0, "gamma": 0.0, "avg_at_k": acc, "replacement_ratio": ratio}
            for rule, (acc, ratio) in gains.items()]},
        "extrapolation": {g: {"kind": "extrapolation", "references": references, "rows": [
            {"selection": "delta_logp", "gamma": gamma, "tau": tau, "avg_at_k": acc, "replacement_ratio": 0.05}
            for gamma, tau, acc in rows]} for g, rows in extrapolation.items()},
        "stage_seconds": {}, "reused_stages": [], "run_fingerprint": "",
    })  # fmt: skip


def _by_name(results):
    return {claim.name: claim for claim in demo_claims(results)}


def test_every_claim_has_a_difference_a_standard_error_and_the_papers_number():
    claims = demo_claims(_run())
    assert [c.name for c in claims] == [
        "RLVR training improved on the base model",
        "Δlog p separates the sources better than entropy and KL",
        "Δlog p selection recovers RL accuracy with the fewest replacements",
        "the best γ > 0 beat the RL model (base generates)",
        "the best γ > 0 beat selective replacement (γ = 0, same τ)",
        "the best γ > 0 beat the RL model (rl generates)",
    ]
    for claim in claims:
        assert claim.stderr > 0 and claim.paper and claim.detectable == 2 * claim.stderr
        assert claim.to_dict()["verdict"] == claim.verdict


def test_the_replacement_claim_needs_its_gain_beyond_two_standard_errors():
    # Δlog p gains 7.5 points per % replaced, KL 2: clear with 4096 samples, too close to call with 64.
    big, small = _run(sweep_problems=128, sweep_samples=32), _run(sweep_problems=16, sweep_samples=4)
    name = "Δlog p selection recovers RL accuracy with the fewest replacements"
    assert _by_name(big)[name].difference == pytest.approx(0.075 - 0.02)
    assert _by_name(big)[name].verdict == "yes"
    assert _by_name(small)[name].verdict == "within noise"
    worse = _run(sweep_problems=128, sweep_samples=32, gains={"delta_logp": (0.27, 0.02), "kl": (0.35, 0.02)})
    assert _by_name(worse)[name].verdict == "no"


def test_the_replacement_standard_error_matches_a_simulation():
    """The shared base reference makes the two gains correlated; the formula's s.e. agrees with resampling."""
    rng, n = random.Random(0), 256
    rows = {"delta_logp": (0.40, 0.02), "kl": (0.35, 0.05)}
    claim = _by_name(_run(sweep_problems=64, sweep_samples=4, gains=rows))[
        "Δlog p selection recovers RL accuracy with the fewest replacements"
    ]

    def draw(p):
        return sum(rng.random() < p for _ in range(n)) / n

    differences = []
    for _ in range(2000):
        base = draw(0.25)
        differences.append((draw(0.40) - base) / 2 - (draw(0.35) - base) / 5)
    mean = sum(differences) / len(differences)
    spread = math.sqrt(sum((d - mean) ** 2 for d in differences) / (len(differences) - 1))
    assert claim.stderr == pytest.approx(spread, rel=0.1)


def test_the_separation_claim_compares_with_the_best_magnitude_metric():
    name = "Δlog p separates the sources better than entropy and KL"
    claim = _by_name(_run(aurocs={"delta_logp": 0.9, "base_entropy": 0.2, "kl_rl_base": 0.6}))[name]
    assert claim.difference == pytest.approx(0.4 - 0.3)  # entropy's AUROC 0.2 separates by 0.3, inversely
    assert claim.stderr == pytest.approx(math.hypot(auroc_stderr(0.9, 64, 64), auroc_stderr(0.2, 64, 64)))
    assert _by_name(_run(aurocs={"delta_logp": 0.95, "base_entropy": 0.55}))[name].verdict == "yes"
    assert _by_name(_run(aurocs={"delta_logp": 0.55, "base_entropy": 0.95}))[name].verdict == "no"


def test_auroc_stderr_is_symmetric_and_shrinks_with_more_examples():
    assert auroc_stderr(0.8, 50, 50) == pytest.approx(auroc_stderr(0.2, 50, 50))
    assert auroc_stderr(0.8, 200, 200) < auroc_stderr(0.8, 50, 50)


def test_claims_show_in_their_units():
    assert Claim("x", 0.0123, 0.004, "gain per percent", "").shown("difference") == "+1.23 ± 0.40"
    assert Claim("x", -0.05, 0.02, "AUROC distance", "").shown("detectable") == "0.040"


@pytest.mark.parametrize("preset", sorted(path.stem for path in EXPECTED_DIR.glob("*.json")))
def test_the_shipped_claims_load_back_typed_with_their_verdicts(preset):
    """Every claim shipped in `hf_dlp/demo/expected/<preset>.json` reads back as a `Claim` (a training claim as a
    `TrainingComparison`) whose verdict and detectable difference are the ones stored beside it."""
    shipped = load_expected(preset)["claims"]
    for data in shipped:
        kind = TrainingComparison if "first" in data else Claim
        claim = kind.from_dict(data)
        assert (claim.verdict, claim.detectable) == (data["verdict"], data["detectable"]), claim.name
        assert claim.to_dict() == data
    assert combined_claims(shipped, shipped) == shipped
    assert claims_side_by_side({preset: shipped}).count("\n") == len(shipped) + 1
