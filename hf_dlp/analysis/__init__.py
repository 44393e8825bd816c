"""Identify: where and how an RLVR model differs from its base model, token by token (paper sections 1 and 5).

- `metrics`: `compute_token_metrics` teacher-forces both models and returns Δlog p, entropies and KLs per token;
- `vocab`: tokenizer and output-layer compatibility checks;
- `stats`: matplotlib-free summaries (quantiles, sparsity, AUROC, histogram overlap);
- `report`: `AnalysisReport`, the dataset-level result, saved as JSON + PNG;
- `plots`: the paper's Fig. 1b histograms;
- `responses`: `analyze_responses` over a dataset of responses, and `generate_responses` from both models;
- `pair`: `analyze_model_pair`, from two model names and a prompt set to a report in one call.
"""

from .metrics import METRIC_NAMES, TokenMetrics, compute_token_metrics
from .pair import analyze_model_pair, load_model_pair, load_tokenizer
from .plots import FIG1B_METRICS, plot_metric_histograms
from .report import AnalysisReport, concatenate_reports
from .responses import analyze_responses, generate_responses
from .stats import auroc, overlap_coefficient, summarize
from .vocab import check_same_vocabulary, common_vocab_size, output_vocab_size

__all__ = [
    "FIG1B_METRICS",
    "METRIC_NAMES",
    "AnalysisReport",
    "TokenMetrics",
    "analyze_model_pair",
    "analyze_responses",
    "auroc",
    "check_same_vocabulary",
    "common_vocab_size",
    "compute_token_metrics",
    "concatenate_reports",
    "generate_responses",
    "load_model_pair",
    "load_tokenizer",
    "output_vocab_size",
    "overlap_coefficient",
    "plot_metric_histograms",
    "summarize",
]
