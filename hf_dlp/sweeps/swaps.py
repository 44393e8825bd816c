"""What the replacement swapped: the (base token → RL token) pairs of a sweep cell run with `record_swaps=True`.

`replacement_sweep(..., record_swaps=True)` has every selected position recorded by the extrapolation
(`ExtrapolationStats.swaps`: the base model's candidate, the RL model's token, and Δlog p = log π_RL − log π_base of
each). Each grid row then holds `swaps`:

- `num_selected`: positions selected; `num_changed`: those where the RL model's token differs from the base's;
- `top`: the `MAX_SWAPS_SAVED` most frequent changed pairs, each with `base_id`, `rl_id`, `base_token`, `rl_token`
  (decoded text), `count`, `share` (of the changed positions) and the mean Δlog p of each token;
- `examples`: up to `MAX_SWAP_EXAMPLES` replaced responses (those with the most changes), token by token, with their
  swaps, for the analysis page (`replaced_responses` turns them into `hf_dlp.analysis.ReplacedResponse`).

`format_swaps_table` writes the most frequent swaps of every row as a Markdown table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..analysis.page import ReplacedResponse, TokenSwap
from ..distributed import num_processes
from .result import SweepResult, SweepRow

if TYPE_CHECKING:
    import torch

    from ..extrapolation.step import ExtrapolationStats

MAX_SWAPS_SAVED = 20
"""Most frequent (base → RL) swaps saved per sweep cell."""
MAX_SWAP_EXAMPLES = 3
"""Replaced responses saved per sweep cell (those with the most changed positions)."""


def _gathered(local: list[Any]) -> list[Any]:
    """Every process's `local` items, concatenated (one process: `local` itself)."""
    if num_processes() == 1:
        return local
    from accelerate.utils import gather_object

    return gather_object(local)


class SwapCollector:
    """The swaps of one sweep cell, over its `generate` batches; `summary()` gives the row's `swaps` entry.

    Examples:

    >>> import torch
    >>> from hf_dlp.extrapolation.step import ExtrapolationStats, Swap
    >>> from hf_dlp.toy import build_char_tokenizer
    >>> tok = build_char_tokenizer()
    >>> a, b = tok.convert_tokens_to_ids(["a", "b"])
    >>> collector = SwapCollector(tok)
    >>> stats = ExtrapolationStats([2], [3], swaps=[[Swap(0, a, b, -1.0, 0.5), Swap(2, a, a, -0.7, -0.7)]])
    >>> collector.add(torch.tensor([[9, b, a, a]]), prompt_length=1, stats=stats)
    >>> summary = collector.summary()
    >>> summary["num_selected"], summary["num_changed"], [(t["base_token"], t["rl_token"]) for t in summary["top"]]
    (2, 1, [('a', 'b')])
    """

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.pairs: dict[tuple[int, int], list[float]] = {}  # (base id, RL id) -> [count, Σ Δ base, Σ Δ RL]
        self.selected = 0
        self.examples: list[tuple[int, list[int], list[tuple]]] = []

    def add(self, output: torch.Tensor, prompt_length: int, stats: ExtrapolationStats) -> None:
        """Record one batch: `output` the generated `(batch, prompt + new)` ids, `stats` with `swaps`."""
        for row, swaps in enumerate(stats.swaps):
            self.selected += len(swaps)
            changed = [swap for swap in swaps if swap.candidate != swap.chosen]
            for swap in changed:
                entry = self.pairs.setdefault((swap.candidate, swap.chosen), [0, 0.0, 0.0])
                entry[0] += 1
                entry[1] += swap.candidate_delta_logp
                entry[2] += swap.chosen_delta_logp
            if changed:
                ids = output[row, prompt_length : prompt_length + stats.num_generated[row]].tolist()
                self.examples.append((len(changed), ids, [tuple(swap) for swap in swaps]))
        self.examples = sorted(self.examples, key=lambda e: (-e[0], e[1]))[:MAX_SWAP_EXAMPLES]

    def _text(self, token_id: int) -> str:
        return self.tokenizer.decode([token_id])

    def summary(self) -> dict[str, Any]:
        """The cell's `swaps` entry (see the module), over the batches of every process."""
        pairs: dict[tuple[int, int], list[float]] = {}
        for local in _gathered([self.pairs]):
            for key, (count, base, rl) in local.items():
                entry = pairs.setdefault(key, [0, 0.0, 0.0])
                entry[0], entry[1], entry[2] = entry[0] + count, entry[1] + base, entry[2] + rl
        selected = sum(_gathered([self.selected]))
        examples = sorted(_gathered(list(self.examples)), key=lambda e: (-e[0], e[1]))[:MAX_SWAP_EXAMPLES]
        changed = int(sum(entry[0] for entry in pairs.values()))
        ranked = sorted(pairs.items(), key=lambda item: (-item[1][0], item[0]))[:MAX_SWAPS_SAVED]
        top = [
            {
                "base_id": base_id,
                "rl_id": rl_id,
                "base_token": self._text(base_id),
                "rl_token": self._text(rl_id),
                "count": int(count),
                "share": count / changed,
                "mean_base_delta_logp": base / count,
                "mean_rl_delta_logp": rl / count,
            }
            for (base_id, rl_id), (count, base, rl) in ranked
        ]
        return {
            "num_selected": int(selected),
            "num_changed": changed,
            "top": top,
            "examples": [self._example(ids, swaps) for _, ids, swaps in examples],
        }

    def _example(self, ids: list[int], swaps: list[tuple]) -> dict[str, Any]:
        return {
            "tokens": [self._text(token_id) for token_id in ids],
            "swaps": [
                {
                    "position": position,
                    "base_token": self._text(candidate),
                    "rl_token": self._text(chosen),
                    "base_delta_logp": base_delta,
                    "rl_delta_logp": rl_delta,
                }
                for position, candidate, chosen, base_delta, rl_delta in swaps
            ],
        }


def _rows(result: SweepResult | Iterable[SweepRow]) -> list[SweepRow]:
    rows = result.rows if isinstance(result, SweepResult) else list(result)
    return [row for row in rows if row.swaps]


def top_swaps(result: SweepResult | Iterable[SweepRow], limit: int = 5) -> list[dict[str, Any]]:
    """The `limit` most frequent swaps of every row recorded with `record_swaps=True`, one record per swap with the
    row's `selection`, `tau`, `num_selected` and `num_changed` (a `SweepResult` or some of its rows).

    Examples:

    >>> from hf_dlp.sweeps import SweepRow
    >>> row = SweepRow("delta_logp", -0.5, 0.0, avg_at_k=0.5, pass_at_k={}, replacement_ratio=0.1, swaps={
    ...     "num_selected": 4, "num_changed": 3, "top": [{"base_token": "7", "rl_token": "8", "count": 3, "share": 1.0}],
    ...     "examples": []})
    >>> [(s["selection"], s["base_token"], s["rl_token"], s["count"]) for s in top_swaps([row])]
    [('delta_logp', '7', '8', 3)]
    """
    out = []
    for row in _rows(result):
        swaps = row.swaps
        for swap in swaps["top"][:limit]:
            out.append(
                {
                    "selection": row.selection,
                    "tau": row.tau,
                    "num_selected": swaps["num_selected"],
                    "num_changed": swaps["num_changed"],
                    **swap,
                }
            )
    return out


def format_swaps_table(result: SweepResult | Iterable[SweepRow], limit: int = 5) -> str:
    """A Markdown table of the `limit` most frequent (base → RL) swaps per rule and τ (`top_swaps`); an empty string
    when the sweep recorded none.

    Examples:

    >>> from hf_dlp.sweeps import SweepRow
    >>> row = SweepRow("delta_logp", -0.5, 0.0, avg_at_k=0.5, pass_at_k={}, replacement_ratio=0.1, swaps={
    ...     "num_selected": 4, "num_changed": 3, "top": [{"base_token": " 7", "rl_token": "8", "count": 3,
    ...     "share": 1.0, "mean_base_delta_logp": -1.25, "mean_rl_delta_logp": 0.5}], "examples": []})
    >>> print(format_swaps_table([row]).splitlines()[2])
    | delta_logp | -0.5 | `␣7` → `8` | 3 | 100.0% | -1.250 | +0.500 |
    """
    from ..analysis.tokens import readable

    swaps = top_swaps(result, limit)
    if not swaps:
        return ""
    lines = [
        "| selection | τ | base → RL | count | share of changed | Δlog p (base token) | Δlog p (RL token) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for swap in swaps:
        lines.append(
            f"| {swap['selection']} | {swap['tau']:g} | `{readable(swap['base_token'])}` → "
            f"`{readable(swap['rl_token'])}` | {swap['count']} | {100 * swap['share']:.1f}% | "
            f"{swap['mean_base_delta_logp']:.3f} | {swap['mean_rl_delta_logp']:+.3f} |"
        )
    return "\n".join(lines)


def replaced_responses(result: SweepResult | Iterable[SweepRow], limit: int = 6) -> list[ReplacedResponse]:
    """Up to `limit` replaced responses for `hf_dlp.analysis.write_analysis_page(..., replaced=...)`, taken in turn
    from each row recorded with `record_swaps=True` (a `SweepResult` or some of its rows).

    Examples:

    >>> from hf_dlp.sweeps import SweepRow
    >>> row = SweepRow("delta_logp", -0.5, 0.0, avg_at_k=0.5, pass_at_k={}, replacement_ratio=0.1, swaps={
    ...     "num_selected": 1, "num_changed": 1, "top": [], "examples": [{"tokens": ["1", "8"], "swaps": [
    ...     {"position": 1, "base_token": "7", "rl_token": "8", "base_delta_logp": -1.0, "rl_delta_logp": 0.5}]}]})
    >>> [(r.label, r.swaps[0].base_token) for r in replaced_responses([row])]
    [('delta_logp, τ = -0.5', '7')]
    """
    queues: Sequence[tuple[str, list]] = [(row.label, list(row.swaps["examples"])) for row in _rows(result)]
    out: list[ReplacedResponse] = []
    while len(out) < limit and any(examples for _, examples in queues):
        for label, examples in queues:
            if examples and len(out) < limit:
                example = examples.pop(0)
                swaps = [TokenSwap(**swap) for swap in example["swaps"]]
                out.append(ReplacedResponse(label, tokens=list(example["tokens"]), swaps=swaps))
    return out


__all__ = [
    "MAX_SWAPS_SAVED",
    "MAX_SWAP_EXAMPLES",
    "SwapCollector",
    "format_swaps_table",
    "replaced_responses",
    "top_swaps",
]
