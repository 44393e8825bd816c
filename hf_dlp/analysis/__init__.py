"""Identify: where and how an RLVR model differs from its base model, token by token (paper sections 1 and 5).

- `metrics`: `compute_token_metrics` teacher-forces both models and returns Δlog p, entropies and KLs per token;
- `stats`: matplotlib-free summaries (quantiles, sparsity, AUROC, histogram overlap);
- `report`: `AnalysisReport`, the dataset-level result, saved as JSON + PNG;
- `plots`: the paper's Fig. 1b histograms;
- `responses`: `analyze_responses` over a dataset of responses, and `generate_responses` from both models;
- `pair`: `analyze_model_pair`, from two models (or their names) and a prompt set to a report in one call;
- `tokens`: which tokens RLVR changed (`token_table`) and Δlog p along the response (`position_profile`);
- `page`: `write_analysis_page`, the report as one self-contained HTML page, responses coloured token by token.

Vocabulary checks and pair loading live in `hf_dlp.model_pair`, prompt rendering and sampling in `hf_dlp.generation`.
"""

from __future__ import annotations

from .metrics import METRIC_NAMES, TokenMetrics, compute_token_metrics
from .page import ReplacedResponse, TokenSwap, render_analysis_page, write_analysis_page
from .pair import analyze_model_pair
from .plots import FIG1B_METRICS, plot_metric_histograms, plot_position_profile
from .report import AnalysisReport, concatenate_reports
from .responses import analyze_responses, generate_responses
from .stats import auroc, overlap_coefficient, summarize
from .tokens import position_profile, token_table

__all__ = [
    "FIG1B_METRICS",
    "METRIC_NAMES",
    "AnalysisReport",
    "ReplacedResponse",
    "TokenMetrics",
    "TokenSwap",
    "analyze_model_pair",
    "analyze_responses",
    "auroc",
    "compute_token_metrics",
    "concatenate_reports",
    "generate_responses",
    "overlap_coefficient",
    "plot_metric_histograms",
    "plot_position_profile",
    "position_profile",
    "render_analysis_page",
    "summarize",
    "token_table",
    "write_analysis_page",
]
