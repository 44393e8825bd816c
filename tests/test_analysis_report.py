"""Statistics, AnalysisReport and plots on hand-made values (no models needed)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

import hf_dlp
from hf_dlp.analysis import (
    FIG1B_METRICS,
    METRIC_NAMES,
    AnalysisReport,
    auroc,
    concatenate_reports,
    overlap_coefficient,
    plot_metric_histograms,
    summarize,
)


def _brute_force_auroc(pos, neg) -> float:
    return sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg) / (len(pos) * len(neg))


def test_auroc_matches_pair_counting():
    rng = random.Random(0)
    for _ in range(20):
        pos = [rng.choice(range(6)) for _ in range(rng.randint(1, 9))]
        neg = [rng.choice(range(6)) for _ in range(rng.randint(1, 9))]
        assert auroc(pos, neg) == pytest.approx(_brute_force_auroc(pos, neg), abs=1e-12)
    assert auroc(torch.tensor([1.0, 2.0]), torch.tensor([3.0])) == 0.0


def test_overlap_and_summary():
    same = np.random.default_rng(0).normal(size=4000)
    assert overlap_coefficient(same, same) == pytest.approx(1.0)
    assert overlap_coefficient([0.0, 0.1], [5.0, 5.1], bins=10) == 0.0
    assert overlap_coefficient([2.0], [2.0]) == 1.0
    stats = summarize(torch.tensor([-2.0, 0.0, 0.05, 3.0]), quantiles=(0.0, 1.0), thresholds=(0.01, 2.5))
    assert stats["quantiles"] == {"0.0": -2.0, "1.0": 3.0}
    assert stats["share_abs_above"] == {"0.01": 0.75, "2.5": 0.25}
    assert "share_abs_above" not in summarize([1.0])


def test_stats_bad_inputs():
    with pytest.raises(ValueError, match="`values` is empty"):
        summarize([])
    with pytest.raises(ValueError, match=r"`quantiles` must lie in \[0, 1\], got \[1.5\]"):
        summarize([1.0], quantiles=(1.5,))
    with pytest.raises(ValueError, match=r"`positive` must be one-dimensional, got shape \(1, 2\)"):
        auroc([[1.0, 2.0]], [1.0])
    with pytest.raises(ValueError, match="`bins` must be an integer >= 1, got 0"):
        overlap_coefficient([1.0], [2.0], bins=0)
    assert overlap_coefficient([0.0, 1.0], [1.0, 2.0], bins=np.int64(2)) == overlap_coefficient(
        [0.0, 1.0], [1.0, 2.0], 2
    )


def _synthetic_report(num_responses: int = 40, tokens: int = 30) -> AnalysisReport:
    """Δlog p shifted by who wrote the response (positive tail for RL, negative for base), the rest identical."""
    generator = torch.Generator().manual_seed(0)
    sources = ["base", "rl"] * (num_responses // 2)
    sign = torch.tensor([1.0 if s == "rl" else -1.0 for s in sources]).repeat_interleave(tokens)
    values = {name: torch.randn(num_responses * tokens, generator=generator).abs() for name in METRIC_NAMES}
    spikes = (torch.rand(num_responses * tokens, generator=generator) < 0.1).float() * 4.0
    values["delta_logp"] = 0.05 * torch.randn(num_responses * tokens, generator=generator) + sign * spikes
    token_response = torch.arange(num_responses).repeat_interleave(tokens)
    return AnalysisReport(values, token_response, sources, {"note": "synthetic"})


def test_separation_only_for_the_directional_metric():
    separation = _synthetic_report().separation()
    assert separation["delta_logp"]["auroc_response"] == 1.0
    assert separation["delta_logp"]["auroc_token"] > 0.55
    assert separation["delta_logp"]["overlap_token"] < 0.91  # the opposite 10% tails cannot overlap
    for name in ("base_entropy", "kl_rl_base"):
        assert 0.2 < separation[name]["auroc_response"] < 0.8
        assert 0.45 < separation[name]["auroc_token"] < 0.55
        assert separation[name]["overlap_token"] > 0.75


def test_summary_per_source_and_sparsity():
    report = _synthetic_report()
    summary = report.summary()
    assert set(summary) == set(METRIC_NAMES)
    assert summary["delta_logp"]["all"]["count"] == report.num_tokens == 1200
    assert summary["delta_logp"]["rl"]["count"] == 600
    share = summary["delta_logp"]["all"]["share_abs_above"]
    assert 0.05 < share["1.0"] < 0.15 and share["0.1"] > share["1.0"]
    assert "share_abs_above" not in summary["kl_rl_base"]["all"]


def test_save_load_round_trip(tmp_path):
    report = _synthetic_report()
    folder = report.save(tmp_path / "out")
    data = json.loads((folder / "analysis.json").read_text())
    assert data["hf_dlp_version"] == hf_dlp.__version__
    assert data["num_responses"] == {"base": 20, "rl": 20}
    assert data["separation"]["delta_logp"]["auroc_response"] == 1.0
    for name in ("fig1b_histograms.png", "all_metrics_histograms.png"):
        assert (folder / name).read_bytes()[:4] == b"\x89PNG"
    loaded = AnalysisReport.load(folder)
    assert loaded.sources == report.sources and loaded.settings == {"note": "synthetic"}
    for name in METRIC_NAMES:
        assert torch.equal(loaded.token_values[name], report.token_values[name])
    with pytest.raises(FileNotFoundError, match="No token_values.pt in"):
        AnalysisReport.load(tmp_path)


def test_save_without_plots_and_table(tmp_path):
    report = _synthetic_report()
    report.save(tmp_path, plots=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["analysis.json", "token_values.pt"]
    table = report.format_table().splitlines()
    assert len(table) == 1 + len(METRIC_NAMES) and table[3].startswith("delta_logp")


def test_concatenate_reports():
    one = _synthetic_report(4, 3)
    joined = concatenate_reports([one, one])
    assert joined.num_responses == 8 and joined.num_tokens == 24
    torch.testing.assert_close(joined.response_means("delta_logp")[4:], one.response_means("delta_logp"))
    with pytest.raises(ValueError, match="`reports` is empty"):
        concatenate_reports([])


def test_report_bad_inputs():
    values = {name: torch.zeros(3) for name in METRIC_NAMES}
    with pytest.raises(ValueError, match=r"`token_values` lacks the metrics \['kl_base_rl'\]"):
        AnalysisReport({k: v for k, v in values.items() if k != "kl_base_rl"}, torch.zeros(3), ["rl"])
    with pytest.raises(ValueError, match=r"`token_values\['base_logp'\]` has shape \(3,\), but `token_response`"):
        AnalysisReport(values, torch.zeros(2), ["rl"])
    with pytest.raises(ValueError, match=r"must cover responses 0..1 .* each with at least one token"):
        AnalysisReport(values, torch.zeros(3), ["rl", "base"])
    report = AnalysisReport(values, torch.tensor([0, 1, 1]), ["rl", "base"])
    with pytest.raises(ValueError, match=r"No response comes from source 'RL'; the sources are \['rl', 'base'\]"):
        report.values("delta_logp", "RL")
    with pytest.raises(KeyError, match="Unknown metric 'kl'"):
        report.response_means("kl")


def test_plot_layout_and_writing(tmp_path):
    report = _synthetic_report()
    figure = plot_metric_histograms(report)
    assert len(figure.axes) == len(FIG1B_METRICS)
    assert all(ax.get_yscale() == "log" for ax in figure.axes)
    assert "Delta" in figure.axes[2].get_xlabel()
    assert not list(tmp_path.iterdir())  # nothing written without a path
    plot_metric_histograms(report, ["delta_logp"], sources=["rl"], bins=10, path=tmp_path / "sub" / "d.png")
    assert (tmp_path / "sub" / "d.png").exists()
    with pytest.raises(ValueError, match=r"`metrics` holds unknown names \['entropy'\]; choose from"):
        plot_metric_histograms(report, ["entropy"])
    with pytest.raises(ValueError, match="`metrics` must be a list of metric names, got the string 'delta_logp'"):
        plot_metric_histograms(report, "delta_logp")
    with pytest.raises(ValueError, match="`sources` must be a list of sources, got the string 'rl'"):
        plot_metric_histograms(report, sources="rl")
    with pytest.raises(ValueError, match=r"`sources` \['sft'\] wrote no response"):
        plot_metric_histograms(report, sources=["sft"])
    with pytest.raises(ValueError, match="`bins` must be an integer >= 1, got -1"):
        plot_metric_histograms(report, bins=-1)
    with pytest.raises(ValueError, match="`directory` .* is a file; give a folder"):
        report.save(tmp_path / "sub" / "d.png")


def test_plots_leave_matplotlib_global_state_alone(tmp_path, monkeypatch):
    """Saving a report's figures never imports pyplot nor switches the backend (safe inside notebooks and apps)."""
    import sys

    import matplotlib

    def switch(*args, **kwargs):
        raise AssertionError("the global matplotlib backend was switched")

    backend = matplotlib.rcParams._get_backend_or_none()
    monkeypatch.setattr(matplotlib, "use", switch)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # any `import matplotlib.pyplot` now fails
    _synthetic_report(4, 3).save(tmp_path)
    assert (tmp_path / "fig1b_histograms.png").read_bytes()[:4] == b"\x89PNG"
    assert matplotlib.rcParams._get_backend_or_none() == backend
