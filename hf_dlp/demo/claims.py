"""The paper's claims as a demo run judges them: each a measured difference with its standard error and a verdict.

A claim holds ("yes") when its difference is above two standard errors, fails ("no") below minus two, and is "within
noise" between; `Claim.detectable` is the smallest difference the run could have told from zero. The paper's number
for the same comparison sits beside each (`../shared/paper.md`). `report.md` and the README's claims table are
rendered from these objects, and `headline_numbers.json` stores them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from ..evaluation import EvaluationResult, binomial_stderr
from ..sweeps.result import SweepResult, SweepRow

if TYPE_CHECKING:
    from .config import DemoConfig
    from .results import DemoResults

MAGNITUDE_METRICS = ("base_entropy", "rl_entropy", "kl_rl_base", "kl_base_rl")


@dataclass
class Claim:
    """One of the paper's claims, judged on one run.

    Args:
        name (`str`): the claim, as the report states it.
        difference (`float`): the measured effect (accuracy as a fraction, an AUROC distance, or accuracy gained per
            percent of tokens replaced: see `unit`); positive means the claim's direction.
        stderr (`float`): its standard error.
        unit (`str`): what `difference` is measured in.
        paper (`str`): the paper's number for the same comparison.
        per_seed (`list[float]`, *optional*): paired per-seed differences, when the claim compares trained models
            over several seeds.

    Examples:

    >>> claim = Claim("RLVR training improved on the base model", 0.19, 0.023, "accuracy", "+20.9")
    >>> claim.verdict, round(claim.detectable, 3), claim.shown("difference")
    ('yes', 0.046, '+19.0 ± 2.3')
    >>> Claim("a", 0.02, 0.03, "accuracy", "").verdict
    'within noise'
    >>> Claim.from_dict(claim.to_dict()) == claim
    True
    """

    name: str
    difference: float
    stderr: float
    unit: str
    paper: str
    per_seed: list[float] = field(default_factory=list)

    @property
    def detectable(self) -> float:
        return 2 * self.stderr

    @property
    def verdict(self) -> str:
        return verdict(self.difference, self.stderr)

    def shown(self, what: str) -> str:
        """`difference` (with its s.e.) or `detectable`, in the claim's unit as the report prints it."""
        scale, digits = (100, 1) if self.unit == "accuracy" else (1, 3) if self.unit == "AUROC distance" else (100, 2)
        if what == "difference":
            return f"{scale * self.difference:+.{digits}f} ± {scale * self.stderr:.{digits}f}"
        return f"{scale * self.detectable:.{digits}f}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict, "detectable": self.detectable}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Claim:
        """A claim from its JSON form (`to_dict`, an entry of `headline_numbers.json`'s `"claims"`): `verdict` and
        `detectable` follow from the numbers, and a subclass's fields (`TrainingComparison.first`, ...) are read only
        by that subclass."""
        known = {spec.name for spec in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


UNIT_LABELS = {
    "accuracy": "points",
    "AUROC distance": "AUROC distance from 0.5",
    "gain per percent": "points per 1% of tokens replaced",
}


def verdict(difference: float, stderr: float) -> str:
    """ "yes" beyond two standard errors of the difference, "no" below minus two, "within noise" between."""
    if difference > 2 * stderr:
        return "yes"
    return "no" if difference < -2 * stderr else "within noise"


def mean_and_stderr(values: list[float]) -> tuple[float, float]:
    """The mean of several values (seeds, per-seed differences) and its standard error, sample standard deviation
    over √n (at least two values).

    Examples:

    >>> mean_and_stderr([0.5, 0.6])
    (0.55, 0.04999999999999999)
    """
    mean = sum(values) / len(values)
    spread = sum((value - mean) ** 2 for value in values) / (len(values) - 1)
    return mean, math.sqrt(spread / len(values))


def auroc_stderr(auroc: float, positives: int, negatives: int) -> float:
    """Hanley and McNeil's (1982) standard error of an AUROC from `positives` and `negatives` examples.

    Examples:

    >>> round(auroc_stderr(0.9, 32, 32), 4)
    0.0403
    """
    a = max(auroc, 1 - auroc)  # the formula is for the side above 0.5
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    variance = (a * (1 - a) + (positives - 1) * (q1 - a * a) + (negatives - 1) * (q2 - a * a)) / (
        positives * negatives
    )
    return math.sqrt(max(variance, 0.0))


def seed_count(config: DemoConfig) -> int:
    """Training seeds behind the results: one when a given RL model replaced training."""
    return 1 if config.rl_model else config.seeds


def method_scores(
    evaluation: dict[str, EvaluationResult], config: DemoConfig
) -> dict[str, tuple[list[float], float, float]]:
    """Per model name (`base` and each trained method): its Avg@k of every seed, their mean and standard error.

    One seed: the binomial standard error of that Avg@k. Several: the standard error of the across-seed mean
    (sample standard deviation / sqrt(seeds)), the spread training seeds actually produce.
    """
    seeds = seed_count(config)
    scores = {}
    for name in ("base", *config.methods):
        keys = [name] if name == "base" else [name] + [f"{name}-seed{i}" for i in range(1, seeds)]
        values = [evaluation[key].avg_at_k for key in keys]
        if len(values) == 1:
            first = evaluation[keys[0]]
            mean, stderr = values[0], binomial_stderr(values[0], first.num_problems * first.num_samples)
        else:
            mean, stderr = mean_and_stderr(values)
        scores[name] = (values, mean, stderr)
    return scores


@dataclass
class TrainingComparison(Claim):
    """A training claim (`name`): model `first` against `second` (Avg@k), the difference of their means and its
    standard error, `paired` seed by seed when both were trained with the same seeds (`per_seed` then holds the
    differences; else the two standard errors combine)."""

    first: str = ""
    second: str = ""
    paired: bool = False


def _comparison(scores, claim: str, first: str, second: str, paper: str) -> TrainingComparison:
    (values_a, mean_a, se_a), (values_b, mean_b, se_b) = scores[first], scores[second]
    common = dict(name=claim, unit="accuracy", paper=paper, first=first, second=second)
    if len(values_a) == len(values_b) > 1:
        differences = [a - b for a, b in zip(values_a, values_b, strict=True)]
        mean, stderr = mean_and_stderr(differences)
        return TrainingComparison(difference=mean, stderr=stderr, per_seed=differences, paired=True, **common)
    return TrainingComparison(difference=mean_a - mean_b, stderr=math.hypot(se_a, se_b), **common)


TRAINING_CLAIMS = (  # (claim, first, second, the paper's difference: Qwen2.5-Math-7B, AIME24 Avg@32)
    ("RLVR training improved on the base model", "none", "base", "+20.9 (35.73 vs 14.79, Table 2)"),
    ("low-probability reweighting beat the DAPO baseline", "low_prob", "none", "+3.3 (39.06 vs 35.73, Table 2)"),
    ("low-probability reweighting beat the 'dominate' reweighting", "low_prob", "dominate",
     "+2.7 (39.06 vs 36.35, Table 3)"),
)  # fmt: skip


def training_comparisons(evaluation: dict[str, EvaluationResult], config: DemoConfig) -> list[TrainingComparison]:
    """The training claims a run (its models' `evaluation`, its `config`) can judge, each with its difference and
    standard error.

    Examples:

    >>> from hf_dlp.demo import DemoConfig
    >>> scores = {"base": 0.2, "none": 0.5, "none-seed1": 0.6, "low_prob": 0.6, "low_prob-seed1": 0.7}
    >>> evaluation = {name: EvaluationResult(avg, {}, num_problems=100, num_samples=4, correct_counts=[])
    ...               for name, avg in scores.items()}
    >>> comparisons = training_comparisons(evaluation, DemoConfig(methods=("none", "low_prob"), seeds=2))
    >>> [(c.first, c.second, round(c.difference, 3), round(c.stderr, 3), c.paired) for c in comparisons]
    [('none', 'base', 0.35, 0.054, False), ('low_prob', 'none', 0.1, 0.0, True)]
    """
    scores = method_scores(evaluation, config)
    return [_comparison(scores, *claim) for claim in TRAINING_CLAIMS if claim[1] in scores and claim[2] in scores]


def sweep_samples(config: DemoConfig) -> int:
    """Samples behind each sweep accuracy: the sweep's problems (at most the evaluation's) times its samples."""
    return min(config.sweep_problems, config.eval_problems) * config.sweep_samples


def _separation_claim(results: DemoResults) -> Claim:
    """Δlog p's AUROC distance from 0.5 against the best magnitude metric's (response means, each source's
    responses as the two classes; Hanley-McNeil standard errors, combined as if independent)."""
    config, separation = results.config, results.analysis.separation
    per_source = min(config.analysis_prompts, config.eval_problems) * config.analysis_samples
    distance = {metric: stats.distance for metric, stats in separation.items()}
    rival = max((m for m in MAGNITUDE_METRICS if m in distance), key=distance.get)
    errors = [auroc_stderr(separation[m].auroc_response, per_source, per_source) for m in ("delta_logp", rival)]
    return Claim(
        "Δlog p separates the sources better than entropy and KL",
        distance["delta_logp"] - distance[rival],
        math.hypot(*errors),
        "AUROC distance",
        "qualitative (Fig. 1b): only Δlog p's histograms shift",
    )


def replacement_gains(sweep: SweepResult) -> dict[str, tuple[SweepRow, float]]:
    """Per selection rule of a replacement `sweep`: its row with the most accuracy gained per percent of tokens
    replaced, and that gain."""
    best = {}
    base = sweep.references["base"]
    for row in sweep.rows:
        if row.replacement_ratio > 0:
            gain = (row.avg_at_k - base) / (100 * row.replacement_ratio)
            if row.selection not in best or gain > best[row.selection][1]:
                best[row.selection] = (row, gain)
    return best


def _replacement_claim(results: DemoResults) -> Claim | None:
    """Δlog p's accuracy gained per percent replaced against the best other rule's. Both gains share the base
    reference b: g = (a − b) / r, so Var(g₁ − g₂) = Var(a₁)/r₁² + Var(a₂)/r₂² + Var(b)(1/r₁ − 1/r₂)²."""
    gains, n = replacement_gains(results.replacement), sweep_samples(results.config)
    others = [rule for rule in gains if rule != "delta_logp"]
    if "delta_logp" not in gains or not others:
        return None
    rival = max(others, key=lambda rule: gains[rule][1])
    (row_1, gain_1), (row_2, gain_2) = gains["delta_logp"], gains[rival]
    r_1, r_2 = 100 * row_1.replacement_ratio, 100 * row_2.replacement_ratio
    base = results.replacement.references["base"]
    variance = (binomial_stderr(row_1.avg_at_k, n) / r_1) ** 2 + (binomial_stderr(row_2.avg_at_k, n) / r_2) ** 2
    variance += binomial_stderr(base, n) ** 2 * (1 / r_1 - 1 / r_2) ** 2
    return Claim(
        "Δlog p selection recovers RL accuracy with the fewest replacements",
        gain_1 - gain_2,
        math.sqrt(variance),
        "gain per percent",
        "Δlog p 53.5 at ~5.3% replaced; KL 49.4, entropy ~42.5 at 6.5%, random ~15 at 5% (Fig. 1c, base 11.46)",
    )


PAPER_EXTRAPOLATION = {
    "rl": "+2.8 (DAPO-32B generates: 52.50 → 55.31, the paper's Table 1)",
    "base": "+2.9 (DAPO-32B: 55.42 vs RLVR 52.50, Fig. 4)",
}
PAPER_OVER_REPLACEMENT = "+3.8 (DAPO-32B: 55.42 vs selective replace 51.67, Fig. 4)"


def _extrapolation_claims(results: DemoResults) -> list[Claim]:
    """Per generator: the best γ > 0 against the RL model alone; with the base generating, also against γ = 0 at the
    same τ (the paper's Selective Replace). Binomial standard errors, as if independent; the best of several
    cells is an optimistic pick, so a "yes" from a large grid deserves a second look."""
    claims, n = [], sweep_samples(results.config)
    for generator, sweep in results.extrapolation.items():
        extrapolated = [row for row in sweep.rows if row.gamma > 0]
        if not extrapolated:
            continue
        best = max(extrapolated, key=lambda row: row.avg_at_k)
        rl = sweep.references["rl"]
        claims.append(
            Claim(
                f"the best γ > 0 beat the RL model ({generator} generates)",
                best.avg_at_k - rl,
                math.hypot(binomial_stderr(best.avg_at_k, n), binomial_stderr(rl, n)),
                "accuracy",
                PAPER_EXTRAPOLATION.get(generator, ""),
            )
        )
        replace = [row for row in sweep.rows if row.gamma == 0 and row.tau == best.tau]
        if generator == "base" and replace:
            claims.append(
                Claim(
                    "the best γ > 0 beat selective replacement (γ = 0, same τ)",
                    best.avg_at_k - replace[0].avg_at_k,
                    math.hypot(binomial_stderr(best.avg_at_k, n), binomial_stderr(replace[0].avg_at_k, n)),
                    "accuracy",
                    PAPER_OVER_REPLACEMENT,
                )
            )
    return claims


def demo_claims(results: DemoResults) -> list[Claim]:
    """Every claim a demo run (its `results.json`) can judge, in the report's order."""
    claims: list[Claim] = list(training_comparisons(results.evaluation, results.config))
    claims.append(_separation_claim(results))
    replacement = _replacement_claim(results)
    if replacement is not None:
        claims.append(replacement)
    return claims + _extrapolation_claims(results)


def combined_claims(training: list[dict[str, Any]], others: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One column from two runs' claims (`Claim.to_dict()` lists): the training claims (`TRAINING_CLAIMS`) from
    `training` (a run with more seeds), every other claim from `others` (a run with larger sweeps), in the usual order.

    Examples:

    >>> seeds = [Claim("RLVR training improved on the base model", 0.19, 0.02, "accuracy", "").to_dict(),
    ...          Claim("Δlog p separates the sources better than entropy and KL", 0.1, 0.1, "AUROC distance", "").to_dict()]
    >>> large = [Claim("RLVR training improved on the base model", 0.18, 0.02, "accuracy", "").to_dict(),
    ...          Claim("Δlog p separates the sources better than entropy and KL", 0.2, 0.05, "AUROC distance", "").to_dict()]
    >>> [(claim["difference"], claim["stderr"]) for claim in combined_claims(seeds, large)]
    [(0.19, 0.02), (0.2, 0.05)]
    """
    names = {claim for claim, *_ in TRAINING_CLAIMS}
    return [claim for claim in training if claim["name"] in names] + [
        claim for claim in others if claim["name"] not in names
    ]


def claims_side_by_side(runs: dict[str, list[dict[str, Any]]]) -> str:
    """A Markdown table of several runs' claims (`Claim.to_dict()` lists, as `headline_numbers.json` stores them
    under `"claims"`): one row per claim, the paper's number, then each run's verdict, difference ± s.e. and the
    smallest detectable difference. The README's claims table is this table for the shipped toy and SmolLM2 runs.

    Examples:

    >>> toy = [Claim("RLVR training improved on the base model", 0.055, 0.02, "accuracy", "+20.9").to_dict()]
    >>> print(claims_side_by_side({"toy": toy, "SmolLM2": []}))
    | claim | the paper | toy | SmolLM2 |
    |---|---|---|---|
    | RLVR training improved on the base model (points) | +20.9 | **yes**: +5.5 ± 2.0 (detectable 4.0) | — |
    """
    names = list(dict.fromkeys(claim["name"] for claims in runs.values() for claim in claims))
    by_run = {run: {claim["name"]: claim for claim in claims} for run, claims in runs.items()}
    lines = ["| claim | the paper | " + " | ".join(runs) + " |", "|" + "---|" * (len(runs) + 2)]
    for name in names:
        first = next(by_run[run][name] for run in runs if name in by_run[run])
        cells = []
        for run in runs:
            data = by_run[run].get(name)
            if data is None:
                cells.append("—")
                continue
            claim = Claim.from_dict(data)
            shown = "**yes**" if claim.verdict == "yes" else claim.verdict
            cells.append(f"{shown}: {claim.shown('difference')} (detectable {claim.shown('detectable')})")
        lines.append(f"| {name} ({UNIT_LABELS[first['unit']]}) | {first['paper']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


__all__ = [
    "Claim",
    "TrainingComparison",
    "claims_side_by_side",
    "combined_claims",
    "demo_claims",
    "mean_and_stderr",
    "method_scores",
    "seed_count",
    "training_comparisons",
    "verdict",
]
