"""Run TRL's own GRPO tests on `trl.GRPOTrainer` and on `hf_dlp.training.ReweightedGRPOTrainer`, offline, and compare.

Usage:

    python scripts/trl_grpo_parity.py --trl_repo /path/to/trl/checkout [-k EXPR] [--output report.json]

The script runs `tests/test_grpo_trainer.py` of the TRL checkout twice through pytest, each in its own subprocess
started in the checkout's root: once as it is (`GRPOTrainer`), once with `trl.GRPOTrainer`/`trl.GRPOConfig` and the
names the test module imported replaced by `ReweightedGRPOTrainer` and `ReweightedGRPOConfig` (with
`reweighting="none"` by default, where it must behave exactly like `GRPOTrainer`; `--reweighting low_prob` runs the
same tests with the paper's weighting). Both runs use the offline stand-ins of `scripts/trl_parity_plugin.py`
(random-weight tiny models of the same architectures, TRL's zen dataset rebuilt locally) with `HF_HUB_OFFLINE=1`:
nothing is downloaded. Tests that need a model without a stand-in (vision-language models, ...), vLLM, Liger or an
accelerator are skipped on both runs.

It writes a JSON report (per test id: the outcome and first error line on each trainer, plus the summary) and prints
a Markdown summary: how many tests had each pair (outcome on `GRPOTrainer`, outcome on `ReweightedGRPOTrainer`), and
the tests that pass on `GRPOTrainer` but not on `ReweightedGRPOTrainer`. The exit status is 1 when there is such a
test, else 0. The pytest logs are kept next to the report (`<output>.grpo.log`, `<output>.reweighted.log`).

Nothing of TRL is copied: the tests run from the checkout, which can be any TRL version (e.g.
`git clone https://github.com/huggingface/trl`; the installed `trl` package is what they test). The full file took
6-7 minutes per trainer on 2 CPU cores (175 tests; docs/development.md has the result); pick tests with `-k` to try
it, e.g. `-k "test_train_loss_types and not liger"`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

SCRIPTS_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS_DIR))

import trl_parity_plugin  # noqa: E402

TEST_FILE = "tests/test_grpo_trainer.py"
TRAINER_NAMES = {"grpo": "GRPOTrainer", "reweighted": "ReweightedGRPOTrainer"}
NOT_RUN = "not run"
"""Outcome of a test collected in one run but with no result there (the pytest process crashed or was stopped)."""
OUTCOME_ORDER = ("passed", "failed", "error", "timeout", "skipped", "xfailed", "xpassed", NOT_RUN)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trl_repo", required=True, type=Path, help="A TRL checkout (the tests run from there).")
    parser.add_argument("-k", dest="keyword", default=None, help="pytest -k expression selecting the tests.")
    parser.add_argument("--output", type=Path, default=Path("trl_grpo_parity.json"), help="The JSON report.")
    parser.add_argument("--cache_dir", type=Path, default=trl_parity_plugin.DEFAULT_CACHE_DIR, help="Stand-ins.")
    parser.add_argument("--timeout", type=float, default=900, help="Per-test time limit in seconds (0: none).")
    parser.add_argument("--reweighting", default="none", help="`reweighting` of the swapped ReweightedGRPOConfig.")
    parser.add_argument("--trainers", nargs="+", choices=tuple(TRAINER_NAMES), default=list(TRAINER_NAMES))
    parser.add_argument("--num_threads", type=int, default=1, help="OMP/MKL threads of each pytest process.")
    parser.add_argument("--pytest_args", nargs=argparse.REMAINDER, default=[], help="Passed on to pytest (last).")
    return parser.parse_args(argv)


def pytest_command(args: argparse.Namespace, trainer: str, outcomes: Path) -> list[str]:
    """The pytest command line of one run (started in the TRL checkout)."""
    command = [sys.executable, "-m", "pytest", TEST_FILE, "-p", "trl_parity_plugin", "-p", "no:cacheprovider"]
    command += ["-q", "-rN", "--color=no", f"--trl-parity-trainer={trainer}"]
    command += [f"--trl-parity-reweighting={args.reweighting}", f"--trl-parity-cache={args.cache_dir}"]
    command += [f"--trl-parity-outcomes={outcomes}", f"--trl-parity-timeout={args.timeout:g}"]
    command += [f"--trl-parity-trl-repo={args.trl_repo}"]
    if args.keyword:
        command += ["-k", args.keyword]
    return command + list(args.pytest_args)


def pytest_environment(args: argparse.Namespace) -> dict[str, str]:
    """The environment of the pytest subprocesses: offline, the stand-ins' Hub cache, this folder importable."""
    env = dict(os.environ)
    env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_CACHE": str(trl_parity_plugin.hub_cache_dir(args.cache_dir)),
            "HF_MODULES_CACHE": str(Path(args.cache_dir).expanduser() / "modules"),
            "TOKENIZERS_PARALLELISM": "false",
            "WANDB_MODE": "disabled",
            "DS_ACCELERATOR": os.environ.get("DS_ACCELERATOR", "cpu"),
            "OMP_NUM_THREADS": str(args.num_threads),
            "MKL_NUM_THREADS": str(args.num_threads),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(SCRIPTS_DIR), os.environ.get("PYTHONPATH")])),
        }
    )
    return env


def read_outcomes(path: Path) -> tuple[dict[str, dict], dict[str, list[str]]]:
    """Read a run's JSON-lines file: `({nodeid: {"outcome", "message", "duration"}}, substituted names per test
    module)`. Collected tests that have no result get the outcome `"not run"`."""
    collected, outcomes, substituted = [], {}, {}
    if path.is_file():
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record["event"] == "collected":
                collected, substituted = record["nodeids"], record.get("substituted", {})
            elif record["event"] == "outcome":
                outcomes[record["nodeid"]] = {k: record[k] for k in ("outcome", "message", "duration")}
    for nodeid in collected:
        outcomes.setdefault(nodeid, {"outcome": NOT_RUN, "message": "", "duration": 0.0})
    return outcomes, substituted


def run_trainer(args: argparse.Namespace, trainer: str) -> dict:
    """Run the tests on one trainer; return `{"outcomes", "substituted", "exit_status", "seconds", "log"}`."""
    stem = args.output.with_suffix("")
    outcomes_path, log_path = Path(f"{stem}.{trainer}.jsonl"), Path(f"{stem}.{trainer}.log")
    outcomes_path.unlink(missing_ok=True)
    start = time.monotonic()
    with open(log_path, "w") as log:
        result = subprocess.run(
            pytest_command(args, trainer, outcomes_path.resolve()),
            cwd=args.trl_repo,
            env=pytest_environment(args),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    outcomes, substituted = read_outcomes(outcomes_path)
    if trainer == "reweighted" and outcomes and not any(substituted.values()):
        raise RuntimeError(
            f"In the {TRAINER_NAMES[trainer]} run no name of the test modules was bound to the substitutes "
            f"({substituted}), so it would have tested GRPOTrainer. See {log_path}."
        )
    seconds = round(time.monotonic() - start, 1)
    return {"outcomes": outcomes, "substituted": substituted, "exit_status": result.returncode, "seconds": seconds}


def summarize(table: dict[str, dict[str, dict]]) -> dict:
    """Summarise per-test outcomes of both trainers.

    Args:
        table (`dict`): `{nodeid: {"grpo": outcome, "reweighted": outcome}}`, each outcome a dict with `"outcome"`
            and `"message"` (a trainer missing for a test counts as `"not run"`).

    Returns:
        `dict` with `"counts"` (a list of `{"grpo", "reweighted", "count"}`, most frequent first), `"regressions"`
        (tests that pass on `GRPOTrainer` but not on `ReweightedGRPOTrainer`: `{"nodeid", "outcome", "message"}`),
        `"improvements"` (the reverse) and `"total"`.

    Examples:

    >>> table = {
    ...     "t::a": {"grpo": {"outcome": "passed"}, "reweighted": {"outcome": "passed"}},
    ...     "t::b": {"grpo": {"outcome": "passed"}, "reweighted": {"outcome": "failed", "message": "boom"}},
    ... }
    >>> summary = summarize(table)
    >>> summary["counts"], summary["regressions"]
    ([{'grpo': 'passed', 'reweighted': 'passed', 'count': 1}, {'grpo': 'passed', 'reweighted': 'failed', 'count': 1}], [{'nodeid': 't::b', 'outcome': 'failed', 'message': 'boom'}])
    """
    missing = {"outcome": NOT_RUN, "message": ""}
    pairs, regressions, improvements = Counter(), [], []
    for nodeid in sorted(table):
        grpo, ours = (table[nodeid].get(trainer, missing) for trainer in TRAINER_NAMES)
        pairs[grpo["outcome"], ours["outcome"]] += 1
        if grpo["outcome"] == "passed" and ours["outcome"] != "passed":
            regressions.append({"nodeid": nodeid, "outcome": ours["outcome"], "message": ours.get("message", "")})
        elif ours["outcome"] == "passed" and grpo["outcome"] != "passed":
            improvements.append({"nodeid": nodeid, "outcome": grpo["outcome"], "message": grpo.get("message", "")})
    rank = {outcome: i for i, outcome in enumerate(OUTCOME_ORDER)}
    ordered = sorted(pairs.items(), key=lambda item: (-item[1], rank.get(item[0][0], 99), rank.get(item[0][1], 99)))
    return {
        "total": len(table),
        "counts": [{"grpo": a, "reweighted": b, "count": n} for (a, b), n in ordered],
        "regressions": regressions,
        "improvements": improvements,
    }


def render_markdown(summary: dict) -> str:
    """The Markdown summary printed by the script.

    Examples:

    >>> table = {"t::a": {"grpo": {"outcome": "passed"}, "reweighted": {"outcome": "failed", "message": "boom"}}}
    >>> print(render_markdown(summarize(table)))  # doctest: +NORMALIZE_WHITESPACE
    ## TRL GRPO tests: GRPOTrainer vs ReweightedGRPOTrainer
    <BLANKLINE>
    1 tests.
    <BLANKLINE>
    | GRPOTrainer | ReweightedGRPOTrainer | tests |
    |---|---|---:|
    | passed | failed | 1 |
    <BLANKLINE>
    ### Pass on GRPOTrainer, not on ReweightedGRPOTrainer (1)
    <BLANKLINE>
    - `t::a`: failed: boom
    """
    lines = [f"## TRL GRPO tests: {TRAINER_NAMES['grpo']} vs {TRAINER_NAMES['reweighted']}", ""]
    lines += [f"{summary['total']} tests.", ""]
    lines += [f"| {TRAINER_NAMES['grpo']} | {TRAINER_NAMES['reweighted']} | tests |", "|---|---|---:|"]
    lines += [f"| {row['grpo']} | {row['reweighted']} | {row['count']} |" for row in summary["counts"]]
    for key, title in (
        ("regressions", f"Pass on {TRAINER_NAMES['grpo']}, not on {TRAINER_NAMES['reweighted']}"),
        ("improvements", f"Pass on {TRAINER_NAMES['reweighted']}, not on {TRAINER_NAMES['grpo']}"),
    ):
        if summary[key] or key == "regressions":
            lines += ["", f"### {title} ({len(summary[key])})", ""]
            lines += [f"- `{t['nodeid']}`: {t['outcome']}: {t['message']}".rstrip(": ") for t in summary[key]]
            lines += [] if summary[key] else ["None."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.trl_repo = args.trl_repo.expanduser().resolve()
    if not (args.trl_repo / TEST_FILE).is_file():
        raise SystemExit(f"{args.trl_repo} is not a TRL checkout: {TEST_FILE} is missing there.")
    args.output = args.output.expanduser().resolve()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    trl_parity_plugin.prepare_stand_ins(args.cache_dir, args.trl_repo)  # once, before the two runs
    table: dict[str, dict[str, dict]] = {}
    runs = {}
    for trainer in args.trainers:
        run = run_trainer(args, trainer)
        outcomes = run.pop("outcomes")
        runs[trainer] = {**run, "tests": len(outcomes)}
        for nodeid, outcome in outcomes.items():
            table.setdefault(nodeid, {})[trainer] = outcome
        print(
            f"{TRAINER_NAMES[trainer]}: {len(outcomes)} tests in {run['seconds']:.0f} s (pytest exit {run['exit_status']})"
        )
    summary = summarize(table)
    report = {
        "trl_repo": str(args.trl_repo),
        "keyword": args.keyword,
        "reweighting": args.reweighting,
        "runs": runs,
        "summary": summary,
        "tests": table,
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(render_markdown(summary))
    print(f"\nReport: {args.output}")
    return 1 if summary["regressions"] else 0


if __name__ == "__main__":
    sys.exit(main())
