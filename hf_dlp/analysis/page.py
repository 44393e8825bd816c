"""The analysis page: one self-contained `index.html` a researcher reads (no network fetch, no library).

`write_analysis_page(report, directory)` writes it; `render_analysis_page` returns its text. It holds:

- the summary table (mean per source, AUROC, overlap) and the figures, embedded as base64 PNG data URIs (Fig. 1b,
  every metric, Δlog p along the response);
- the token tables (`tokens.token_table`): the tokens with the most negative and most positive mean Δlog p;
- a list of responses, each token a `<span>` coloured by Δlog p on a diverging scale (blue: the base model preferred
  the token, red: the RL model did; `delta_level` and `level_color` give the colour), whose hover shows its Δlog p,
  both log-probabilities, entropy and KL; a τ slider outlines the positions the selective rule `Δlog p <= τ` picks
  and shows how many of the shown tokens it picks (`selected_count` computes the same number); filters by source and,
  with `rewards`, by correctness; and an option to show the responses with the largest |Δlog p| first;
- with `replaced`, a few responses of the replacement intervention with each swap (base token → RL token) marked.

Pages stay small: at most `max_responses` responses (by default `DEFAULT_MAX_RESPONSES`, taken in turn from each
source) and `max_tokens` tokens of each are embedded; every response's values stay in `token_values.pt` and its
summary in `analysis.json`. Response text is embedded as JSON with `<` escaped and rendered with `textContent`, so a
completion holding `<script>` shows as text.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .. import __version__
from ..arguments import check_number, check_output_dir
from ._page_assets import SCRIPT, STYLE
from .metrics import METRIC_NAMES
from .tokens import DEFAULT_TAU

if TYPE_CHECKING:
    from .report import AnalysisReport

PAGE_FILE = "index.html"
DEFAULT_MAX_RESPONSES = 100
"""Responses embedded in the page by default (the others stay in `token_values.pt` and `analysis.json`)."""
DEFAULT_MAX_TOKENS = 512
"""Tokens of each response embedded in the page by default (a longer response is cut, and says so)."""
DEFAULT_MAX_REPLACED = 6
"""Replaced responses shown by default."""
COLOR_LIMIT = 2.0
"""|Δlog p| at which the colour saturates."""
COLOR_STEPS = 8
"""Colour levels on each side of 0."""
_NEGATIVE, _POSITIVE = (33, 102, 172), (178, 24, 43)  # the base model's blue, the RL model's red


@dataclass
class TokenSwap:
    """One position the replacement intervention selected: the base model's token, the RL model's, their Δlog p.

    `position` indexes the response's tokens (where `rl_token` now stands).

    Examples:

    >>> TokenSwap(position=3, base_token=" 7", rl_token=" 8", base_delta_logp=-1.2, rl_delta_logp=0.4).rl_token
    ' 8'
    """

    position: int
    base_token: str
    rl_token: str
    base_delta_logp: float
    rl_delta_logp: float


@dataclass
class ReplacedResponse:
    """A response generated with replacement, token by token, with its swaps (`hf_dlp.sweeps.replaced_responses`).

    Examples:

    >>> swap = TokenSwap(1, "b", "c", -0.9, 0.3)
    >>> ReplacedResponse("delta_logp, τ = -0.5", tokens=["a", "c"], swaps=[swap]).swaps[0].position
    1
    """

    label: str
    tokens: list[str]
    swaps: list[TokenSwap] = field(default_factory=list)
    correct: bool | None = None


def delta_level(value: float, limit: float = COLOR_LIMIT, steps: int = COLOR_STEPS) -> int:
    """The colour level of a Δlog p value, from `-steps` (most negative) to `steps`, as the page's script computes it.

    Examples:

    >>> delta_level(0.0), delta_level(-0.2), delta_level(1.0), delta_level(-50.0)
    (0, -1, 4, -8)
    """
    return max(-steps, min(steps, math.floor(value / limit * steps + 0.5)))


def level_color(level: int, steps: int = COLOR_STEPS) -> str:
    """The CSS background of a colour level: white at 0, the base model's blue below, the RL model's red above.

    Examples:

    >>> level_color(0), level_color(-8), level_color(4)
    ('rgb(255, 255, 255)', 'rgb(33, 102, 172)', 'rgb(217, 140, 149)')
    """
    target = _NEGATIVE if level < 0 else _POSITIVE
    weight = abs(level) / steps
    r, g, b = (math.floor(255 + (t - 255) * weight + 0.5) for t in target)
    return f"rgb({r}, {g}, {b})"


def _finite(value: float, digits: int) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


def _shown_responses(report: AnalysisReport, max_responses: int) -> list[int]:
    """Up to `max_responses` response indices, taken in turn from each source, in order within a source."""
    queues = {source: [i for i, s in enumerate(report.sources) if s == source] for source in report.source_names}
    chosen: list[int] = []
    while len(chosen) < max_responses and any(queues.values()):
        for queue in queues.values():
            if queue and len(chosen) < max_responses:
                chosen.append(queue.pop(0))
    return sorted(chosen)


def page_responses(
    report: AnalysisReport,
    *,
    max_responses: int = DEFAULT_MAX_RESPONSES,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    rewards: Sequence[float | None] | None = None,
    prompts: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """The responses the page embeds, as it embeds them: `i` (index), `s` (source), `c` (correct, or `None`), `n`
    (tokens), `m` (mean Δlog p), `p` (prompt), and per shown token `t` (id), `d` (Δlog p), `b`/`l` (base/RL log-prob),
    `h` (base entropy) and `k` (KL(RL‖base)), rounded, `None` where not finite. Empty without `token_ids`.

    Examples:

    >>> import torch
    >>> from hf_dlp.analysis import METRIC_NAMES, AnalysisReport
    >>> values = {name: torch.tensor([0.5, -0.25, 1.0]) for name in METRIC_NAMES}
    >>> report = AnalysisReport(values, torch.tensor([0, 0, 1]), ["rl", "base"], token_ids=torch.tensor([4, 5, 4]))
    >>> [(r["i"], r["s"], r["t"], r["d"]) for r in page_responses(report, max_tokens=1)]
    [(0, 'rl', [4], [0.5]), (1, 'base', [4], [1.0])]
    """
    if report.token_ids is None:
        return []
    max_responses = check_number("max_responses", max_responses, integer=True, minimum=0)
    max_tokens = check_number("max_tokens", max_tokens, integer=True, minimum=1)
    for name, given in (("rewards", rewards), ("prompts", prompts)):
        if given is not None and len(given) != report.num_responses:
            raise ValueError(
                f"`{name}` has {len(given)} entries but the report has {report.num_responses} responses; give one "
                "per response, in the report's order."
            )
    means = report.response_means("delta_logp").tolist()
    order = torch.sort(report.token_response, stable=True).indices  # each response's tokens, in order
    counts = torch.bincount(report.token_response, minlength=report.num_responses)
    starts = (counts.cumsum(0) - counts).tolist()
    responses = []
    for index in _shown_responses(report, max_responses):
        where = order[starts[index] : starts[index] + int(counts[index])]
        shown = where[:max_tokens]
        values = {name: report.token_values[name][shown].tolist() for name in METRIC_NAMES}
        reward = None if rewards is None else rewards[index]
        responses.append(
            {
                "i": index,
                "s": report.sources[index],
                "c": None if reward is None else bool(reward > 0),
                "n": int(where.numel()),
                "m": _finite(means[index], 4),
                "p": None if prompts is None else str(prompts[index])[-600:],
                "t": report.token_ids[shown].tolist(),
                "d": [_finite(v, 3) for v in values["delta_logp"]],
                "b": [_finite(v, 3) for v in values["base_logp"]],
                "l": [_finite(v, 3) for v in values["rl_logp"]],
                "h": [_finite(v, 4) for v in values["base_entropy"]],
                "k": [_finite(v, 4) for v in values["kl_rl_base"]],
            }
        )
    return responses


def selected_count(responses: Sequence[dict[str, Any]], tau: float) -> tuple[int, int]:
    """(tokens with Δlog p <= `tau`, tokens) over `page_responses` output: the count the page's slider shows.

    Examples:

    >>> selected_count([{"d": [-1.0, 0.0, None]}, {"d": [-0.5]}], tau=-0.5)
    (2, 4)
    """
    picked = sum(1 for r in responses for d in r["d"] if d is not None and d <= tau)
    return picked, sum(len(r["d"]) for r in responses)


def _png_uri(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figures(report: AnalysisReport, tau: float) -> str:
    from .plots import FIG1B_METRICS, plot_metric_histograms, plot_position_profile

    figures = (
        (plot_metric_histograms(report, FIG1B_METRICS), "Fig. 1b: per-token densities, base- vs RL-written"),
        (plot_metric_histograms(report, METRIC_NAMES), "Every metric"),
        (plot_position_profile(report, tau=tau), f"Δlog p along the response (selected: Δlog p <= {tau:g})"),
    )
    return "".join(
        f'<figure><img src="{_png_uri(figure)}" alt="{html.escape(caption)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        for figure, caption in figures
    )


def _summary_table(report: AnalysisReport) -> str:
    sources = report.source_names
    separation = report.separation() if report.has_separation() else None
    head = "".join(f"<th>mean [{html.escape(s)}]</th>" for s in sources)
    if separation is not None:
        head += "<th>AUROC (responses)</th><th>AUROC (tokens)</th><th>overlap</th>"
    rows = []
    for metric in METRIC_NAMES:
        cells = "".join(f"<td>{report.values(metric, s).mean().item():.4f}</td>" for s in sources)
        if separation is not None:
            stats = separation[metric]
            cells += "".join(
                f"<td>{stats[key]:.3f}</td>" for key in ("auroc_response", "auroc_token", "overlap_token")
            )
        rows.append(f'<tr><td class="text">{metric}</td>{cells}</tr>')
    return f'<table><tr><th class="text">metric</th>{head}</tr>{"".join(rows)}</table>'


def _context_html(context: dict[str, Any]) -> str:
    def shown(text: str) -> str:
        return html.escape(text.replace("\n", "⏎"))

    return f"{shown(context['before'][-30:])}<mark>{shown(context['token'])}</mark>{shown(context['after'][:30])}"


def _token_tables(report: AnalysisReport, tau: float) -> str:
    if report.token_ids is None:
        return '<p class="note">This report has no token ids (it predates them), so it has no token tables.</p>'
    tables = report.token_table(tau=tau)
    parts = [
        f'<p class="note">Tokens seen at least {tables["min_count"]} times in a source; "selected" is the share of '
        f"their occurrences with Δlog p &lt;= {tau:g}; H and KL are the base entropy and KL(RL‖base).</p>"
    ]
    header = (
        '<tr><th class="text">token</th><th>id</th><th>count</th><th>mean Δlog p ± s.e.</th><th>selected</th>'
        '<th>H(base)</th><th>KL(RL‖base)</th><th class="text">contexts</th></tr>'
    )
    for source, table in tables["tables"].items():
        for direction in ("negative", "positive"):
            rows = "".join(
                f'<tr><td class="text">{html.escape(row["token"])}</td><td>{row["token_id"]}</td>'
                f"<td>{row['count']}</td><td>{row['mean_delta_logp']:+.3f} ± {row['se_delta_logp']:.3f}</td>"
                f"<td>{100 * row['share_selected']:.1f}%</td><td>{row['mean_entropy']:.3f}</td>"
                f"<td>{row['mean_kl']:.4f}</td>"
                f'<td class="context">{"<br>".join(_context_html(c) for c in row["contexts"])}</td></tr>'
                for row in table[direction]
            )
            title = f"{source}-written: most {direction} mean Δlog p"
            parts.append(f"<h3>{html.escape(title)}</h3>")
            parts.append(f"<table>{header}{rows}</table>" if rows else '<p class="note">none</p>')
    return "".join(parts)


def _controls(report: AnalysisReport, tau: float, with_rewards: bool) -> str:
    options = "".join(
        f'<option value="{html.escape(s)}">{html.escape(s)}-written</option>' for s in report.source_names
    )
    correct = (
        '<label>correctness <select id="correct-filter"><option value="">all</option>'
        '<option value="correct">correct</option><option value="incorrect">incorrect</option></select></label>'
        if with_rewards
        else ""
    )
    legend = "".join(
        f'<span class="lv{level + COLOR_STEPS}">{level * COLOR_LIMIT / COLOR_STEPS:+.1f}</span>'
        for level in range(-COLOR_STEPS, COLOR_STEPS + 1, 2)
    )
    return (
        '<div id="controls"><label>τ <input type="range" id="tau" min="-5" max="5" step="0.05" '
        f'value="{tau:g}"></label><output id="tau-value">{tau:.2f}</output> · selected (Δlog p &lt;= τ): '
        '<span id="selected-count">0</span> of <span id="shown-tokens">0</span> shown tokens '
        '(<span id="selected-share">n/a</span>) '
        f'<label>source <select id="source-filter"><option value="">all</option>{options}</select></label>'
        f'{correct}<label><input type="checkbox" id="sort-abs"> largest |Δlog p| first</label>'
        f'<div class="legend">Δlog p: {legend}</div></div>'
    )


def _color_css() -> str:
    """One class per colour level, `lv0` (most negative) to `lv{2 · COLOR_STEPS}`; white text on the darkest."""
    return "".join(
        f".lv{level + COLOR_STEPS} {{ background: {level_color(level)};"
        f"{' color: #fff;' if abs(level) > 0.6 * COLOR_STEPS else ''} }}\n"
        for level in range(-COLOR_STEPS, COLOR_STEPS + 1)
    )


def _embedded_json(data: Any) -> str:
    """JSON safe inside `<script>`: every `<`, `>` and `&` escaped (so `</script>` and `<!--` cannot appear)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _replaced_data(replaced: Sequence[ReplacedResponse], max_replaced: int, max_tokens: int) -> list[dict]:
    out = []
    for response in list(replaced)[:max_replaced]:
        if not isinstance(response, ReplacedResponse):
            raise TypeError(f"`replaced` must hold ReplacedResponse objects, got {type(response).__name__}.")
        out.append(
            {
                "label": response.label,
                "c": response.correct,
                "tokens": [str(t) for t in response.tokens[:max_tokens]],
                "swaps": [
                    {
                        "position": s.position,
                        "base_token": s.base_token,
                        "rl_token": s.rl_token,
                        "base_delta_logp": _finite(s.base_delta_logp, 3),
                        "rl_delta_logp": _finite(s.rl_delta_logp, 3),
                    }
                    for s in response.swaps
                    if s.position < max_tokens
                ],
            }
        )
    return out


def _navigation(with_replaced: bool) -> str:
    links = [("summary", "summary"), ("figures", "figures"), ("tokens", "tokens RLVR changed")]
    links.append(("responses-section", "responses"))
    if with_replaced:
        links.append(("replaced-section", "what the replacement swapped"))
    return '<p class="meta">' + " · ".join(f'<a href="#{a}">{text}</a>' for a, text in links) + "</p>"


def render_analysis_page(
    report: AnalysisReport,
    *,
    tau: float = DEFAULT_TAU,
    max_responses: int = DEFAULT_MAX_RESPONSES,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    rewards: Sequence[float | None] | None = None,
    prompts: Sequence[str] | None = None,
    replaced: Sequence[ReplacedResponse] | None = None,
    max_replaced: int = DEFAULT_MAX_REPLACED,
    title: str = "hf_dlp analysis: what RLVR changed",
) -> str:
    """The page's HTML (see the module): one self-contained document, no network fetch.

    Args:
        report (`AnalysisReport`): the analysis; its `token_ids`/`token_text` give the token tables and responses.
        tau (`float`, *optional*, defaults to `DEFAULT_TAU`): the slider's start and the τ of the tables.
        max_responses, max_tokens (`int`, *optional*): responses embedded, and tokens of each (`DEFAULT_MAX_*`).
        rewards (`list[float | None]`, *optional*): a reward per response (correct when above 0): adds the
            correctness filter. prompts (`list[str]`, *optional*): the prompt of each response, shown above it.
        replaced (`list[ReplacedResponse]`, *optional*): responses of the replacement intervention, with their swaps
            (`hf_dlp.sweeps.replaced_responses`); at most `max_replaced` are shown.
        title (`str`, *optional*): the page title.

    Examples:

    >>> import torch
    >>> from hf_dlp.analysis import METRIC_NAMES, AnalysisReport
    >>> values = {name: torch.tensor([0.5, -0.5]) for name in METRIC_NAMES}
    >>> report = AnalysisReport(values, torch.tensor([0, 1]), ["rl", "base"], token_ids=torch.tensor([3, 4]),
    ...                         token_text={3: "<b>", 4: "x"})
    >>> page = render_analysis_page(report)
    >>> page.startswith("<!DOCTYPE html>"), "<b>" in page, page.count("<html")
    (True, False, 1)
    """
    tau = check_number("tau", tau)
    max_replaced = check_number("max_replaced", max_replaced, integer=True, minimum=0)
    responses = page_responses(
        report, max_responses=max_responses, max_tokens=max_tokens, rewards=rewards, prompts=prompts
    )
    shown_ids = {i for r in responses for i in r["t"]}
    data = {
        "color_steps": COLOR_STEPS,
        "color_limit": COLOR_LIMIT,
        "vocab": {str(i): (report.token_text or {}).get(i, f"#{i}") for i in sorted(shown_ids)},
        "responses": responses,
        "replaced": _replaced_data(replaced or [], max_replaced, max_tokens),
    }
    settings = ", ".join(f"{k}: {v}" for k, v in report.settings.items() if isinstance(v, str | int | float))
    counts = ", ".join(f"{report.sources.count(s)} {s}-written" for s in report.source_names)
    note = (
        f"Showing {len(responses)} of {report.num_responses} responses (taken in turn from each source; at most "
        f"{max_tokens} tokens each). Every response's per-token values are in token_values.pt and its summary in "
        "analysis.json."
        if report.token_ids is not None
        else "This report has no token ids (it predates them), so its responses cannot be shown token by token."
    )
    replaced_section = (
        '<h2 id="replaced-section">What the replacement swapped</h2><p class="note">Base token struck through, the RL model\'s token in '
        'bold; hover for both Δlog p.</p><div id="replaced"></div>'
        if data["replaced"]
        else '<div id="replaced"></div>'
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}{_color_css()}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f'<p class="meta">hf_dlp {__version__} · {report.num_tokens} tokens in {report.num_responses} responses '
        f"({html.escape(counts)}) · {html.escape(settings)}</p>"
        f"{_navigation(bool(data['replaced']))}"
        f'<h2 id="summary">Summary</h2>{_summary_table(report)}'
        f'<h2 id="figures">Figures</h2>{_figures(report, tau)}'
        f'<h2 id="tokens">Tokens RLVR changed</h2>{_token_tables(report, tau)}'
        f'<h2 id="responses-section">Responses</h2><p class="note">{html.escape(note)} Blue: the base model preferred the token (Δlog p &lt; '
        f"0), red: the RL model did; the colour saturates at |Δlog p| = {COLOR_LIMIT:g}. Outlined: picked by "
        "Δlog p &lt;= τ. Hover a token for its values.</p>"
        f'{_controls(report, tau, rewards is not None)}<div id="responses"></div>{replaced_section}'
        '<div id="hover-info"></div>'
        f'<script type="application/json" id="hf-dlp-data">{_embedded_json(data)}</script>'
        f"<script>{SCRIPT}</script></body></html>\n"
    )


def write_analysis_page(report: AnalysisReport, directory: str | Path, **options: Any) -> Path:
    """Write `render_analysis_page(report, **options)` to `directory/index.html`; return its path.

    Examples:

    >>> import tempfile, torch
    >>> from hf_dlp.analysis import METRIC_NAMES, AnalysisReport
    >>> values = {name: torch.tensor([0.5, -0.5]) for name in METRIC_NAMES}
    >>> write_analysis_page(AnalysisReport(values, torch.tensor([0, 1]), ["rl", "base"]), tempfile.mkdtemp()).name
    'index.html'
    """
    directory = check_output_dir("directory", directory)
    path = directory / PAGE_FILE
    path.write_text(render_analysis_page(report, **options), encoding="utf-8")
    return path


__all__ = [
    "DEFAULT_MAX_RESPONSES",
    "DEFAULT_MAX_TOKENS",
    "PAGE_FILE",
    "ReplacedResponse",
    "TokenSwap",
    "delta_level",
    "level_color",
    "page_responses",
    "render_analysis_page",
    "selected_count",
    "write_analysis_page",
]
