"""Which tokens RLVR changed: token tables of Δlog p and its profile along the response (matplotlib-free).

- `token_table`: per source, the tokens with the most negative and the most positive mean Δlog p among those seen at
  least `min_count` times, each with its count, mean ± standard error of Δlog p, the share of its occurrences a
  selective rule `Δlog p <= tau` picks, its mean entropy and KL (the Fig. 1b metrics `base_entropy` and `kl_rl_base`)
  and a few short contexts. Rows are token ids: two BPE pieces that decode to the same text stay apart, and their
  labels (`token_labels`) then carry the id.
- `position_profile`: the mean Δlog p and the selected share by relative position (10 bins) and by absolute position.

Both read an `AnalysisReport`; the token tables need its `token_ids` (`analyze_responses` records them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..arguments import check_number

if TYPE_CHECKING:
    from .report import AnalysisReport

DEFAULT_TAU = -0.35
"""τ of the selected shares: the selective rule `Δlog p <= τ` at `ExtrapolationConfig`'s default τ."""

DEFAULT_MIN_COUNT = 5
"""Tokens seen fewer times than this (per source) are left out of the token tables."""

DEFAULT_TABLE_SIZE = 10
"""Rows of each token table (most negative, most positive)."""

DEFAULT_CONTEXTS = 3
"""Contexts shown per token (its first occurrences, distinct responses first)."""

CONTEXT_BEFORE, CONTEXT_AFTER = 4, 2
"""Tokens shown before and after the token in a context."""

RELATIVE_BINS = 10
"""Bins of the relative position (token index / response length)."""

ABSOLUTE_BINS = 20
"""Equal-width bins of the absolute token index, over the longest response."""

_VISIBLE = {" ": "␣", "\n": "⏎", "\t": "⇥", "\r": "␍"}


def readable(text: str) -> str:
    """`text` with whitespace and control characters made visible (`␣`, `⏎`, `⇥`, `\\xNN`); `∅` when empty.

    Examples:

    >>> readable(" the\\n"), readable(""), readable("\\x00")
    ('␣the⏎', '∅', '\\\\x00')
    """
    if text == "":
        return "∅"
    out = []
    for char in text:
        if char in _VISIBLE:
            out.append(_VISIBLE[char])
        elif ord(char) < 32 or ord(char) == 127:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return "".join(out)


def token_labels(token_ids: Iterable[int], token_text: Mapping[int, str] | None) -> dict[int, str]:
    """A readable label per id: its decoded text (`readable`), with `#id` added when two ids share that text.

    Examples:

    >>> token_labels([5, 7, 9], {5: " a", 7: " a", 9: "b"})
    {5: '␣a #5', 7: '␣a #7', 9: 'b'}
    >>> token_labels([3], None)
    {3: '#3'}
    """
    ids = sorted({int(i) for i in token_ids})
    if token_text is None:
        return {i: f"#{i}" for i in ids}
    texts = {i: readable(token_text.get(i, f"#{i}")) for i in ids}
    seen: dict[str, int] = {}
    for text in texts.values():
        seen[text] = seen.get(text, 0) + 1
    return {i: text if seen[text] == 1 else f"{text} #{i}" for i, text in texts.items()}


def token_positions(token_response: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(index of each token within its response, length of that response), in order of appearance.

    Examples:

    >>> positions, lengths = token_positions(torch.tensor([0, 0, 1, 0, 1]))
    >>> positions.tolist(), lengths.tolist()
    ([0, 1, 0, 2, 1], [3, 3, 2, 3, 2])
    """
    order = torch.sort(token_response, stable=True).indices
    counts = torch.bincount(token_response)
    starts = counts.cumsum(0) - counts
    sorted_positions = torch.arange(token_response.numel()) - starts[token_response[order]]
    positions = torch.empty_like(token_response)
    positions[order] = sorted_positions
    return positions, counts[token_response]


def _group_means(inverse: np.ndarray, counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.bincount(inverse, weights=values, minlength=counts.size) / counts


def _contexts(report: AnalysisReport, token_mask: torch.Tensor, text: Mapping[int, str], limit: int) -> list[dict]:
    """The first `limit` occurrences among `token_mask` (distinct responses first), with their neighbours' text."""
    found = token_mask.nonzero().flatten()[:10_000]  # enough to find `limit` distinct responses in practice
    responses = report.token_response
    first, rest, seen = [], [], set()
    for index, response in zip(found.tolist(), responses[found].tolist(), strict=True):
        (rest if response in seen else first).append(index)
        seen.add(response)
        if len(first) >= limit:
            break
    chosen = sorted((first + rest)[:limit])
    ids, out = report.token_ids, []
    for index in chosen:
        response = int(responses[index])
        start, stop = max(0, index - CONTEXT_BEFORE), min(responses.numel(), index + CONTEXT_AFTER + 1)
        same = [i for i in range(start, stop) if int(responses[i]) == response]
        piece = {i: text.get(int(ids[i]), "") for i in same}
        out.append(
            {
                "response": response,
                "before": "".join(piece[i] for i in same if i < index),
                "token": piece[index],
                "after": "".join(piece[i] for i in same if i > index),
            }
        )
    return out


def _table_rows(report: AnalysisReport, source: str, tau: float, min_count: int) -> list[dict[str, Any]]:
    """Per token id of `source` seen at least `min_count` times: count, mean ± s.e. of Δlog p and the rest."""
    mask = report._source_mask(source, "token")
    ids = report.token_ids[mask].numpy()
    delta = report.token_values["delta_logp"][mask].double().numpy()
    unique, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    mean = _group_means(inverse, counts, delta)
    squares = np.bincount(inverse, weights=(delta - mean[inverse]) ** 2, minlength=unique.size)
    se = np.sqrt(squares / np.maximum(counts - 1, 1) / counts) * (counts > 1)
    selected = _group_means(inverse, counts, (delta <= tau).astype(float))
    entropy = _group_means(inverse, counts, report.token_values["base_entropy"][mask].double().numpy())
    kl = _group_means(inverse, counts, report.token_values["kl_rl_base"][mask].double().numpy())
    return [
        {
            "token_id": int(unique[k]),
            "count": int(counts[k]),
            "mean_delta_logp": float(mean[k]),
            "se_delta_logp": float(se[k]),
            "share_selected": float(selected[k]),
            "mean_entropy": float(entropy[k]),
            "mean_kl": float(kl[k]),
        }
        for k in range(unique.size)
        if counts[k] >= min_count
    ]


def token_table(
    report: AnalysisReport,
    *,
    tau: float = DEFAULT_TAU,
    min_count: int = DEFAULT_MIN_COUNT,
    size: int = DEFAULT_TABLE_SIZE,
    contexts: int = DEFAULT_CONTEXTS,
) -> dict[str, Any]:
    """The token tables of `report`, per source: `{"tau", "min_count", "tables": {source: {"negative", "positive"}}}`.

    `negative` lists the tokens with the most negative mean Δlog p (below 0, most negative first) and `positive` those
    with the most positive (above 0), at most `size` each, among the tokens a source wrote at least `min_count` times.
    Each row holds `token_id`, `token` (its readable label), `count`, `mean_delta_logp`, `se_delta_logp` (sample
    standard deviation over √count; 0 for a single occurrence), `share_selected` (share of its occurrences with
    Δlog p <= `tau`), `mean_entropy` (`base_entropy`), `mean_kl` (`kl_rl_base`) and `contexts` (`{"response",
    "before", "token", "after"}` texts). Ties are broken by token id.

    Examples:

    >>> import torch
    >>> from hf_dlp.analysis import METRIC_NAMES, AnalysisReport
    >>> values = {name: torch.zeros(6) for name in METRIC_NAMES}
    >>> values["delta_logp"] = torch.tensor([-1.0, -0.5, 0.2, 0.4, 0.0, -2.0])
    >>> report = AnalysisReport(values, torch.tensor([0, 0, 0, 1, 1, 1]), ["rl", "rl"],
    ...                         token_ids=torch.tensor([7, 7, 8, 8, 9, 7]), token_text={7: "a", 8: "b", 9: "c"})
    >>> rows = token_table(report, min_count=2)["tables"]["rl"]
    >>> [(r["token"], r["count"], round(r["mean_delta_logp"], 3), r["share_selected"]) for r in rows["negative"]]
    [('a', 3, -1.167, 1.0)]
    >>> [(r["token"], round(r["mean_delta_logp"], 3)) for r in rows["positive"]], rows["negative"][0]["contexts"][0]
    ([('b', 0.3)], {'response': 0, 'before': '', 'token': 'a', 'after': 'ab'})
    """
    if report.token_ids is None:
        raise ValueError(
            "The report has no `token_ids`, so it cannot say which tokens changed; build it with "
            "`analyze_responses` (which records them), or pass `token_ids=` to `AnalysisReport`."
        )
    tau = check_number("tau", tau)
    min_count = check_number("min_count", min_count, integer=True, minimum=1)
    size = check_number("size", size, integer=True, minimum=1)
    contexts = check_number("contexts", contexts, integer=True, minimum=0)
    text = report.token_text or {}
    labels = token_labels(report.token_ids.tolist(), report.token_text)
    tables = {}
    for source in report.source_names:
        rows = _table_rows(report, source, tau, min_count)
        negative = sorted(
            (r for r in rows if r["mean_delta_logp"] < 0), key=lambda r: (r["mean_delta_logp"], r["token_id"])
        )
        positive = sorted(
            (r for r in rows if r["mean_delta_logp"] > 0), key=lambda r: (-r["mean_delta_logp"], r["token_id"])
        )
        source_mask = report._source_mask(source, "token")
        for row in (*negative[:size], *positive[:size]):
            row["token"] = labels[row["token_id"]]
            occurrences = source_mask & (report.token_ids == row["token_id"])
            row["contexts"] = _contexts(report, occurrences, text, contexts) if contexts else []
        tables[source] = {"negative": negative[:size], "positive": positive[:size]}
    return {"tau": tau, "min_count": min_count, "tables": tables}


def _binned(bins: torch.Tensor, num_bins: int, delta: torch.Tensor, tau: float) -> dict[str, list]:
    counts = torch.bincount(bins, minlength=num_bins)
    sums = torch.zeros(num_bins, dtype=torch.float64).index_add_(0, bins, delta.double())
    chosen = torch.zeros(num_bins, dtype=torch.float64).index_add_(0, bins, (delta <= tau).double())
    return {
        "count": counts.tolist(),
        "mean_delta_logp": [float(s / c) if c else None for s, c in zip(sums.tolist(), counts.tolist(), strict=True)],
        "share_selected": [float(s / c) if c else None for s, c in zip(chosen.tolist(), counts.tolist(), strict=True)],
    }


def position_profile(
    report: AnalysisReport,
    *,
    tau: float = DEFAULT_TAU,
    relative_bins: int = RELATIVE_BINS,
    absolute_bins: int = ABSOLUTE_BINS,
) -> dict[str, Any]:
    """Δlog p along the response, per source: the mean and the share with Δlog p <= `tau` in each position bin.

    `relative`: bin `floor(index · relative_bins / length)` of each token's index within its response; `absolute`:
    `absolute_bins` equal-width bins of the index over the longest response (`edges` are token indices, the last
    one excluded). Each holds, per source, `count`, `mean_delta_logp` and `share_selected` (`None` for an empty bin).

    Examples:

    >>> import torch
    >>> from hf_dlp.analysis import METRIC_NAMES, AnalysisReport
    >>> values = {name: torch.tensor([-1.0, 0.0, 1.0, 2.0]) for name in METRIC_NAMES}
    >>> report = AnalysisReport(values, torch.tensor([0, 0, 1, 1]), ["base", "rl"])
    >>> profile = position_profile(report, relative_bins=2, absolute_bins=2)
    >>> profile["relative"]["base"]["mean_delta_logp"], profile["absolute"]["rl"]["share_selected"]
    ([-1.0, 0.0], [0.0, 0.0])
    """
    tau = check_number("tau", tau)
    relative_bins = check_number("relative_bins", relative_bins, integer=True, minimum=1)
    absolute_bins = check_number("absolute_bins", absolute_bins, integer=True, minimum=1)
    positions, lengths = token_positions(report.token_response)
    longest = int(lengths.max())
    relative = torch.div(positions * relative_bins, lengths, rounding_mode="floor")
    absolute = torch.div(positions * absolute_bins, longest, rounding_mode="floor").clamp(max=absolute_bins - 1)
    delta = report.token_values["delta_logp"]
    result: dict[str, Any] = {
        "tau": tau,
        "relative": {"edges": [k / relative_bins for k in range(relative_bins + 1)]},
        "absolute": {"edges": [longest * k / absolute_bins for k in range(absolute_bins + 1)]},
    }
    for source in report.source_names:
        mask = report._source_mask(source, "token")
        result["relative"][source] = _binned(relative[mask], relative_bins, delta[mask], tau)
        result["absolute"][source] = _binned(absolute[mask], absolute_bins, delta[mask], tau)
    return result


def _context_text(context: Mapping[str, Any], width: int = 24) -> str:
    before, after = context["before"].replace("\n", "⏎"), context["after"].replace("\n", "⏎")
    return f"{before[-width:]}[{context['token'].replace(chr(10), '⏎')}]{after[:width]}"


def format_token_table(tables: Mapping[str, Any], rows: int = 5) -> str:
    """The token tables of `token_table` as text, `rows` per direction and source.

    Examples:

    >>> table = {"tau": -0.35, "min_count": 2, "tables": {"rl": {"negative": [], "positive": [{"token": "a",
    ...     "count": 3, "mean_delta_logp": 0.5, "se_delta_logp": 0.1, "share_selected": 0.0, "mean_entropy": 1.0,
    ...     "mean_kl": 0.2, "contexts": [{"response": 0, "before": "x", "token": "a", "after": "y"}]}]}}}
    >>> print(format_token_table(table).splitlines()[-1])
      a                        3   +0.500 ± 0.100     0.0%    1.000   0.2000  x[a]y
    """
    lines = []
    for source, table in tables["tables"].items():
        for direction in ("negative", "positive"):
            lines.append(
                f"[{source}-written] most {direction} mean Δlog p (count >= {tables['min_count']}; selected: "
                f"Δlog p <= {tables['tau']:g})\n  {'token':<20}{'count':>7}{'mean ± s.e.':>17}{'selected':>9}"
                f"{'H(base)':>9}{'KL':>9}  context"
            )
            for row in table[direction][:rows]:
                context = _context_text(row["contexts"][0]) if row["contexts"] else ""
                lines.append(
                    f"  {row['token'][:20]:<20}{row['count']:>7}{row['mean_delta_logp']:>+9.3f} ± "
                    f"{row['se_delta_logp']:.3f}{100 * row['share_selected']:>8.1f}%{row['mean_entropy']:>9.3f}"
                    f"{row['mean_kl']:>9.4f}  {context}"
                )
            if not table[direction]:
                lines.append("  (none)")
    return "\n".join(lines)


__all__ = [
    "DEFAULT_MIN_COUNT",
    "DEFAULT_TAU",
    "format_token_table",
    "position_profile",
    "readable",
    "token_labels",
    "token_positions",
    "token_table",
]
