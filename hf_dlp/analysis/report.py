"""`AnalysisReport`: per-token metric values of many responses, their summaries, and base-vs-RL separation."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..arguments import check_output_dir
from .metrics import METRIC_NAMES
from .stats import DEFAULT_QUANTILES, DEFAULT_THRESHOLDS, auroc, overlap_coefficient, summarize

REPORT_FILE = "analysis.json"
VALUES_FILE = "token_values.pt"
FIG1B_FILE = "fig1b_histograms.png"
ALL_METRICS_FILE = "all_metrics_histograms.png"
POSITIONS_FILE = "delta_logp_positions.png"


@dataclass
class AnalysisReport:
    """Token-level metrics of a set of scored responses, with summary statistics per metric and per source.

    Args:
        token_values (`dict[str, torch.Tensor]`): for each name in `METRIC_NAMES`, a float32 tensor of shape
            `(num_tokens,)` holding the value of every scored response token, responses one after another.
        token_response (`torch.LongTensor` of shape `(num_tokens,)`): index of the response each token belongs to.
        sources (`list[str]`): who wrote each response (`"base"`, `"rl"`, or any label; `"all"` if unknown).
        settings (`dict[str, Any]`, *optional*): how the report was made (recorded in the JSON).
        positive_source (`str`, *optional*, defaults to `"rl"`): source whose scores should be larger in AUROC.
        negative_source (`str`, *optional*, defaults to `"base"`): the other source of the separation statistics.
        quantiles (`tuple[float, ...]`, *optional*): quantiles of the summaries.
        thresholds (`tuple[float, ...]`, *optional*): |Δlog p| thresholds of the sparsity shares.
        token_ids (`torch.LongTensor` of shape `(num_tokens,)`, *optional*): the id of every scored token (recorded by
            `analyze_responses`); the token tables (`token_table`) and the page's responses need them.
        token_text (`dict[int, str]`, *optional*): the decoded text of each id in `token_ids` (`tokenizer.decode`).

    Separation (`separation()`), for every metric, between responses from `positive_source` and `negative_source`:

    - `auroc_response`: AUROC of the **per-response mean** of the metric (the mean over a response's tokens); this is
      the headline number (0.5 = the metric cannot tell who wrote a response);
    - `auroc_token`: AUROC of the per-token values, pooled over responses;
    - `overlap_token`: overlap coefficient of the two per-token histograms (the paper's Fig. 1b; 1 = identical).

    Examples:

    >>> import torch
    >>> values = {name: torch.tensor([0.0, 1.0, 2.0, -1.0, -2.0]) for name in METRIC_NAMES}
    >>> report = AnalysisReport(values, torch.tensor([0, 0, 0, 1, 1]), sources=["rl", "base"])
    >>> report.num_responses, report.num_tokens, report.response_means("delta_logp").tolist()
    (2, 5, [1.0, -1.5])
    >>> report.separation()["delta_logp"]["auroc_token"]
    1.0
    """

    token_values: dict[str, torch.Tensor]
    token_response: torch.Tensor
    sources: list[str]
    settings: dict[str, Any] = field(default_factory=dict)
    positive_source: str = "rl"
    negative_source: str = "base"
    quantiles: tuple[float, ...] = DEFAULT_QUANTILES
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    token_ids: torch.Tensor | None = None
    token_text: dict[int, str] | None = None

    def __post_init__(self):
        missing = [name for name in METRIC_NAMES if name not in self.token_values]
        if missing:
            raise ValueError(f"`token_values` lacks the metrics {missing}; give one tensor per name in METRIC_NAMES.")
        self.token_response = torch.as_tensor(self.token_response, dtype=torch.long)
        for name in METRIC_NAMES:
            if self.token_values[name].shape != self.token_response.shape:
                raise ValueError(
                    f"`token_values[{name!r}]` has shape {tuple(self.token_values[name].shape)}, but "
                    f"`token_response` has shape {tuple(self.token_response.shape)}; give one value per token."
                )
        counts = torch.bincount(self.token_response, minlength=len(self.sources))
        if counts.numel() != len(self.sources) or bool((counts == 0).any()):
            raise ValueError(
                f"`token_response` must cover responses 0..{len(self.sources) - 1} (one per entry of `sources`), "
                "each with at least one token."
            )
        self.sources = [str(source) for source in self.sources]
        if self.token_ids is not None:
            self.token_ids = torch.as_tensor(self.token_ids, dtype=torch.long)
            if self.token_ids.shape != self.token_response.shape:
                raise ValueError(
                    f"`token_ids` has shape {tuple(self.token_ids.shape)}, but `token_response` has shape "
                    f"{tuple(self.token_response.shape)}; give one id per token (or leave `token_ids` unset)."
                )
        if self.token_text is not None:
            self.token_text = {int(key): str(value) for key, value in self.token_text.items()}

    @property
    def num_responses(self) -> int:
        return len(self.sources)

    @property
    def num_tokens(self) -> int:
        return int(self.token_response.numel())

    @property
    def source_names(self) -> list[str]:
        """The distinct sources, in order of first appearance."""
        return list(dict.fromkeys(self.sources))

    def _source_mask(self, source: str | None, per: str) -> torch.Tensor:
        response_source = torch.tensor([s == source for s in self.sources], dtype=torch.bool)
        if source is not None and not bool(response_source.any()):
            raise ValueError(f"No response comes from source {source!r}; the sources are {self.source_names}.")
        if per == "response":
            return torch.ones(self.num_responses, dtype=torch.bool) if source is None else response_source
        if source is None:
            return torch.ones(self.num_tokens, dtype=torch.bool)
        return response_source[self.token_response]

    def values(self, metric: str, source: str | None = None) -> torch.Tensor:
        """Per-token values of `metric`, for every response or only those from `source`."""
        if metric not in METRIC_NAMES:
            raise KeyError(f"Unknown metric {metric!r}; choose one of {METRIC_NAMES}.")
        return self.token_values[metric][self._source_mask(source, "token")]

    def response_means(self, metric: str, source: str | None = None) -> torch.Tensor:
        """Mean of `metric` over each response's tokens (shape `(num_responses,)`, or fewer with `source`)."""
        if metric not in METRIC_NAMES:
            raise KeyError(f"Unknown metric {metric!r}; choose one of {METRIC_NAMES}.")
        sums = torch.zeros(self.num_responses, dtype=torch.float64)
        sums.index_add_(0, self.token_response, self.token_values[metric].double())
        means = (sums / torch.bincount(self.token_response, minlength=self.num_responses)).float()
        return means[self._source_mask(source, "response")]

    def summary(self) -> dict[str, dict[str, dict[str, Any]]]:
        """`{metric: {source: statistics}}` for every source and `"all"`; Δlog p adds `share_abs_above`.

        Examples:

        >>> import torch
        >>> values = {name: torch.tensor([0.0, 2.0, -1.0]) for name in METRIC_NAMES}
        >>> summary = AnalysisReport(values, torch.tensor([0, 0, 1]), ["rl", "base"]).summary()
        >>> summary["delta_logp"]["rl"]["mean"], summary["delta_logp"]["all"]["share_abs_above"]["0.5"]
        (1.0, 0.6666666666666666)
        """
        result = {}
        for metric in METRIC_NAMES:
            thresholds = self.thresholds if metric == "delta_logp" else ()
            per_source = {"all": summarize(self.values(metric), self.quantiles, thresholds)}
            for source in self.source_names:
                per_source[source] = summarize(self.values(metric, source), self.quantiles, thresholds)
            result[metric] = per_source
        return result

    def has_separation(self) -> bool:
        """Whether both `positive_source` and `negative_source` wrote responses."""
        return {self.positive_source, self.negative_source} <= set(self.sources)

    def separation(self, bins: int = 100) -> dict[str, dict[str, float]]:
        """`{metric: {"auroc_response", "auroc_token", "overlap_token"}}` between the two sources (see the class)."""
        if not self.has_separation():
            raise ValueError(
                f"Separation needs responses from `positive_source` {self.positive_source!r} and `negative_source` "
                f"{self.negative_source!r}, but the sources are {self.source_names}. Label responses with a "
                "`source` column, or set the two names."
            )
        pos, neg = self.positive_source, self.negative_source
        return {
            metric: {
                "auroc_response": auroc(self.response_means(metric, pos), self.response_means(metric, neg)),
                "auroc_token": auroc(self.values(metric, pos), self.values(metric, neg)),
                "overlap_token": overlap_coefficient(self.values(metric, pos), self.values(metric, neg), bins=bins),
            }
            for metric in METRIC_NAMES
        }

    def token_table(self, **options: Any) -> dict[str, Any]:
        """The tokens with the most negative and most positive mean Δlog p, per source (`tokens.token_table`)."""
        from .tokens import token_table

        return token_table(self, **options)

    def position_profile(self, **options: Any) -> dict[str, Any]:
        """Mean Δlog p and selected share by relative and absolute position (`tokens.position_profile`)."""
        from .tokens import position_profile

        return position_profile(self, **options)

    def response_summaries(self) -> list[dict[str, Any]]:
        """One short record per response: `index`, `source`, `num_tokens`, `mean_delta_logp`."""
        counts = torch.bincount(self.token_response, minlength=self.num_responses).tolist()
        means = self.response_means("delta_logp").tolist()
        return [
            {"index": i, "source": source, "num_tokens": counts[i], "mean_delta_logp": means[i]}
            for i, source in enumerate(self.sources)
        ]

    def to_dict(self) -> dict[str, Any]:
        """Everything but the per-token values, JSON-ready, stamped with the hf_dlp version.

        With `token_ids`, `token_tables` holds `token_table()`; `position_profile` and one summary per response
        (`responses`) are always there.
        """
        return {
            "hf_dlp_version": __version__,
            "settings": self.settings,
            "num_responses": {source: self.sources.count(source) for source in self.source_names},
            "num_tokens": self.num_tokens,
            "positive_source": self.positive_source,
            "negative_source": self.negative_source,
            "summary": self.summary(),
            "separation": self.separation() if self.has_separation() else None,
            "token_tables": self.token_table() if self.token_ids is not None else None,
            "position_profile": self.position_profile(),
            "responses": self.response_summaries(),
        }

    def format_table(self, tokens: bool = True) -> str:
        """A short text table: mean per source and, when both sources are present, the separation statistics; then,
        with `tokens` and `token_ids`, the token tables (`tokens.format_token_table`).

        Examples:

        >>> import torch
        >>> values = {name: torch.tensor([0.5, -0.5]) for name in METRIC_NAMES}
        >>> print(AnalysisReport(values, torch.tensor([0, 1]), ["rl", "base"]).format_table().splitlines()[0])
        metric            mean[rl]  mean[base]  AUROC(resp)  AUROC(tok)  overlap
        """
        sources = self.source_names
        separation = self.separation() if self.has_separation() else None
        header = f"{'metric':<14}" + "".join(f"{f'mean[{s}]':>12}" for s in sources)
        if separation is not None:
            header += f"{'AUROC(resp)':>13}{'AUROC(tok)':>12}{'overlap':>9}"
        lines = [header]
        for metric in METRIC_NAMES:
            line = f"{metric:<14}" + "".join(f"{self.values(metric, s).mean().item():>12.4f}" for s in sources)
            if separation is not None:
                stats = separation[metric]
                line += f"{stats['auroc_response']:>13.3f}{stats['auroc_token']:>12.3f}{stats['overlap_token']:>9.3f}"
            lines.append(line)
        if tokens and self.token_ids is not None:
            from .tokens import format_token_table

            lines.extend(["", format_token_table(self.token_table())])
        return "\n".join(lines)

    def save(self, directory: str | Path, plots: bool = True, html: bool = False, **page_options: Any) -> Path:
        """Write `analysis.json`, `token_values.pt`, (with `plots`) the PNG histograms and the position profile, and
        (with `html`) the page `index.html` (`page.write_analysis_page`, given `page_options`) into `directory`.

        Examples:

        >>> import tempfile, torch
        >>> values = {name: torch.tensor([0.5, -0.5]) for name in METRIC_NAMES}
        >>> folder = AnalysisReport(values, torch.tensor([0, 1]), ["rl", "base"]).save(tempfile.mkdtemp())
        >>> sorted(p.name for p in folder.iterdir())
        ['all_metrics_histograms.png', 'analysis.json', 'delta_logp_positions.png', 'fig1b_histograms.png',
         'token_values.pt']
        >>> AnalysisReport.load(folder).sources
        ['rl', 'base']
        """
        from .plots import FIG1B_METRICS, plot_metric_histograms, plot_position_profile

        directory = check_output_dir("directory", directory)
        (directory / REPORT_FILE).write_text(json.dumps(self.to_dict(), indent=2))
        torch.save(
            {
                "token_values": self.token_values,
                "token_response": self.token_response,
                "sources": self.sources,
                "settings": self.settings,
                "positive_source": self.positive_source,
                "negative_source": self.negative_source,
                "quantiles": list(self.quantiles),
                "thresholds": list(self.thresholds),
                "token_ids": self.token_ids,
                "token_text": self.token_text,
            },
            directory / VALUES_FILE,
        )
        if plots:
            plot_metric_histograms(self, FIG1B_METRICS, path=directory / FIG1B_FILE)
            plot_metric_histograms(self, METRIC_NAMES, path=directory / ALL_METRICS_FILE)
            plot_position_profile(self, path=directory / POSITIONS_FILE)
        if html:
            from .page import write_analysis_page

            write_analysis_page(self, directory, **page_options)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> AnalysisReport:
        """Reload a report written by `save` (files from before hf_dlp recorded token ids load without them)."""
        path = Path(directory) / VALUES_FILE
        if not path.exists():
            raise FileNotFoundError(
                f"No {VALUES_FILE} in {directory}; pass a folder written by `AnalysisReport.save`."
            )
        data = torch.load(path, weights_only=True)
        data["quantiles"], data["thresholds"] = tuple(data["quantiles"]), tuple(data["thresholds"])
        unknown = sorted(set(data) - {spec.name for spec in fields(cls)})
        if unknown:
            raise ValueError(
                f"{path} holds fields {unknown} that this hf_dlp ({__version__}) does not know; it was written by a "
                "newer version. Upgrade hf_dlp to load it."
            )
        return cls(**data)


def concatenate_reports(reports: Sequence[AnalysisReport]) -> AnalysisReport:
    """Join reports (e.g. from several batches of prompts) into one; settings come from the first.

    Examples:

    >>> import torch
    >>> one = AnalysisReport({name: torch.zeros(2) for name in METRIC_NAMES}, torch.tensor([0, 0]), ["rl"])
    >>> concatenate_reports([one, one]).num_responses
    2
    """
    if len(reports) == 0:
        raise ValueError("`reports` is empty: give at least one AnalysisReport.")
    offsets = torch.tensor([0] + [r.num_responses for r in reports[:-1]]).cumsum(0)
    first = reports[0]
    return AnalysisReport(
        token_values={name: torch.cat([r.token_values[name] for r in reports]) for name in METRIC_NAMES},
        token_response=torch.cat([r.token_response + int(o) for r, o in zip(reports, offsets, strict=True)]),
        sources=[source for r in reports for source in r.sources],
        settings=first.settings,
        positive_source=first.positive_source,
        negative_source=first.negative_source,
        quantiles=first.quantiles,
        thresholds=first.thresholds,
        token_ids=torch.cat([r.token_ids for r in reports]) if all(r.token_ids is not None for r in reports) else None,
        token_text={key: value for r in reports for key, value in (r.token_text or {}).items()} or None,
    )
