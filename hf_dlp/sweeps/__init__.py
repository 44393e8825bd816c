"""Experiments above the capabilities: sweeps of the extrapolation settings against a verifiable reward.

`replacement_sweep` (paper Fig. 1c) and `extrapolation_sweep` (Fig. 4) evaluate `hf_dlp.extrapolation` with
`hf_dlp.evaluation.evaluate_model` over a grid and return a `SweepResult` (JSON and PNG); with an `output_dir` each
finished cell is stored as it finishes, so an interrupted sweep resumes (`hf_dlp.sweeps.cells`).
`replacement_sweep(..., record_swaps=True)` also keeps what the replacement swapped (`hf_dlp.sweeps.swaps`). Moved here from
`hf_dlp.extrapolation` in hf_dlp 0.2; the old location is gone since 0.3.0.
"""

from .cells import CellStore
from .plots import plot_extrapolation_sweep, plot_replacement_sweep
from .result import SWEEP_KINDS, SweepResult, SweepRow
from .swaps import format_swaps_table, replaced_responses, top_swaps
from .sweep import DEFAULT_TAUS, SELECTIVE_RULES, extrapolation_sweep, replacement_sweep

__all__ = [
    "DEFAULT_TAUS",
    "SELECTIVE_RULES",
    "SWEEP_KINDS",
    "CellStore",
    "SweepResult",
    "SweepRow",
    "extrapolation_sweep",
    "format_swaps_table",
    "plot_extrapolation_sweep",
    "plot_replacement_sweep",
    "replaced_responses",
    "replacement_sweep",
    "top_swaps",
]
