"""What each demo stage was built from, so a rerun reuses a finished stage or redoes it, and never mixes two runs.

Every stage records, in `<output_dir>/stages/<name>.json`, a fingerprint of its inputs (the settings it reads and the
fingerprints of the stages it builds on) and, once it has finished, its result. A rerun with the same settings reuses
the finished stages (an interrupted run resumes); a stage whose inputs changed is redone, its files removed first.
A folder that holds a run with other settings is refused unless `overwrite=True`, so an old report never sits beside
new weights; the report and `results.json` are written last, stamped with the run's fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..distributed import barrier, is_main_process
from ..records import RecordStore

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
_RUN_RECORD = Path(RUN_FILE).stem  # the run's own record, beside the stages folder
STAGES_FOLDER = "stages"


def fingerprint(inputs: dict[str, Any]) -> str:
    """A short, stable hash of JSON-serialisable inputs (key order does not matter).

    Examples:

    >>> fingerprint({"seed": 0, "steps": 5}) == fingerprint({"steps": 5, "seed": 0}), len(fingerprint({}))
    (True, 16)
    """
    text = json.dumps(inputs, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class StageRecords:
    """The stage records of one demo output folder.

    Args:
        output_dir (`str` or `Path`): the demo's output folder.
        run_inputs (`dict`): the settings of the whole run (what makes two runs the same run).
        overwrite (`bool`, *optional*, defaults to `False`): allow a folder that holds a run with other settings;
            its stages are then reused where their own inputs still match, and redone otherwise.

    Examples:

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> records = StageRecords(folder, {"seed": 0})
    >>> records.result("evaluation", {"seed": 0}) is None
    True
    >>> records.finish("evaluation", {"seed": 0}, {"accuracy": 0.25})
    >>> StageRecords(folder, {"seed": 0}).result("evaluation", {"seed": 0})
    {'accuracy': 0.25}
    >>> StageRecords(folder, {"seed": 1})
    Traceback (most recent call last):
    ...
    ValueError: `output_dir` (...) holds a demo run with other settings (seed: 0 there, 1 now). Choose another `--output_dir`, or pass `--overwrite` to redo the stages whose settings changed.
    """

    def __init__(self, output_dir: str | Path, run_inputs: dict[str, Any], *, overwrite: bool = False):
        self.output_dir = Path(output_dir)
        self.folder = self.output_dir / STAGES_FOLDER
        self.records = RecordStore(self.folder)  # the stage files, read and written as the sweeps' cells are
        self.run_inputs = run_inputs = json.loads(json.dumps(run_inputs, default=str))  # tuples as lists, as stored
        self.run_fingerprint = fingerprint(run_inputs)
        self._run_record = RecordStore(self.output_dir)
        previous = self._run_record.read(_RUN_RECORD)
        if previous is not None:
            if previous.get("fingerprint") != self.run_fingerprint and not overwrite:
                raise ValueError(
                    f"`output_dir` ({str(self.output_dir)!r}) holds a demo run with other settings "
                    f"({_differences(previous.get('inputs', {}), run_inputs)}). Choose another `--output_dir`, or "
                    "pass `--overwrite` to redo the stages whose settings changed."
                )
        # under a launcher every process reads the records, the main one writes them
        self._run_record.write(
            _RUN_RECORD, {"fingerprint": self.run_fingerprint, "inputs": run_inputs, "status": "running"}
        )
        if is_main_process():
            self.folder.mkdir(parents=True, exist_ok=True)
        barrier()

    def result(self, name: str, inputs: dict[str, Any]) -> Any | None:
        """The recorded result of stage `name` if it finished with these `inputs`, else `None`."""
        record = self.records.read(name)
        if record is None or record.get("fingerprint") != fingerprint(inputs) or not record.get("finished"):
            return None
        return record["result"]

    def start(self, name: str, inputs: dict[str, Any], files: list[Path] = (), *, resumable: bool = False) -> None:
        """Mark stage `name` as started with `inputs`; remove the files a previous attempt left, unless the stage is
        `resumable` (it checks its own partial files, as the sweeps' cell stores do) and that attempt had the same
        inputs."""
        key = fingerprint(inputs)
        previous = self.records.read(name)
        same = previous is not None and previous.get("fingerprint") == key
        if is_main_process():
            for stale in [] if resumable and same else files:
                if stale.is_dir():
                    shutil.rmtree(stale)
                elif stale.exists():
                    stale.unlink()
        self.records.write(name, {"stage": name, "fingerprint": key, "inputs": inputs, "finished": False})
        barrier()

    def finish(self, name: str, inputs: dict[str, Any], result: Any) -> None:
        """Record that stage `name` finished with `inputs` and produced `result` (JSON-serialisable)."""
        record = {"stage": name, "fingerprint": fingerprint(inputs), "inputs": inputs, "finished": True}
        self.records.write(name, {**record, "result": result})
        barrier()

    def finish_run(self) -> None:
        """Mark the whole run as finished (after the report is written)."""
        data = {"fingerprint": self.run_fingerprint, "inputs": self.run_inputs, "status": "finished"}
        self._run_record.write(_RUN_RECORD, data)


@dataclass
class StageJob:
    """One stage that `StageRunner.run_jobs` may hand to a worker process: `function(*args, **kwargs)` computes its
    result, so `function` must be a module-level function and its arguments picklable."""

    name: str
    inputs: dict[str, Any]
    function: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    files: tuple[Path, ...] = ()

    def __call__(self) -> Any:
        return self.function(*self.args, **self.kwargs)


class StageRunner:
    """Runs the stages of one demo: reuses a finished stage whose inputs match, times the others.

    Args:
        records (`StageRecords`): the output folder's stage records.
        config: the run's settings; `inputs` reads stage settings from its attributes.

    Examples:

    >>> import tempfile
    >>> from types import SimpleNamespace
    >>> folder = tempfile.mkdtemp()
    >>> runner = StageRunner(StageRecords(folder, {"seed": 0}), SimpleNamespace(seed=0))
    >>> runner.run("evaluation", runner.inputs(("seed",)), lambda: 0.25)
    0.25
    >>> again = StageRunner(StageRecords(folder, {"seed": 0}), SimpleNamespace(seed=0))
    >>> again.run("evaluation", again.inputs(("seed",)), lambda: 1 / 0), again.reused
    (0.25, ['evaluation'])
    """

    def __init__(self, records: StageRecords, config: Any):
        self.records, self.config = records, config
        self.seconds: dict[str, float] = {}
        self.reused: list[str] = []
        self.fingerprints: dict[str, str] = {}

    def inputs(self, fields: tuple[str, ...], *upstream: str, **extra: Any) -> dict[str, Any]:
        """A stage's inputs: the settings `fields`, the fingerprints of the `upstream` stages, and `extra`."""
        settings = {name: getattr(self.config, name) for name in fields}
        return {
            **settings,
            **extra,
            "upstream": {name: self.fingerprints[name] for name in upstream},
            "hf_dlp_version": __version__,
        }

    def _reused(self, name: str, inputs: dict[str, Any]) -> tuple[bool, Any]:
        self.fingerprints[name] = fingerprint(inputs)
        record = self.records.result(name, inputs)
        if record is None:
            return False, None
        logger.info("%s: reused (finished earlier with the same settings)", name)
        self.seconds[name] = record["seconds"]
        self.reused.append(name)
        return True, record["value"]

    def _finish(self, name: str, inputs: dict[str, Any], value: Any, seconds: float) -> None:
        self.seconds[name] = seconds
        self.records.finish(name, inputs, {"value": value, "seconds": seconds})
        logger.info("%s: %.1f s", name, seconds)

    def _compute(
        self, name: str, inputs: dict[str, Any], compute: Callable[[], Any], files: tuple[Path, ...], resumable=False
    ):
        logger.info("%s ...", name)
        self.records.start(name, inputs, list(files), resumable=resumable)
        start = time.perf_counter()
        value = compute()
        self._finish(name, inputs, value, time.perf_counter() - start)
        return value

    def run(
        self,
        name: str,
        inputs: dict[str, Any],
        compute: Callable[[], Any],
        files: tuple[Path, ...] = (),
        *,
        resumable: bool = False,
    ):
        """The result of stage `name`: the recorded one if it finished with these `inputs`, else `compute()`.

        `files` are the stage's outputs, removed before it is computed; a `resumable` stage (one that reuses its own
        finished parts, like a sweep's cells) keeps them when an interrupted attempt had the same inputs."""
        reused, value = self._reused(name, inputs)
        return value if reused else self._compute(name, inputs, compute, files, resumable)

    def run_jobs(
        self, jobs: list[StageJob], *, workers: int = 1, description: str, unit: str, show_bar: bool = True
    ) -> dict[str, Any]:
        """Run independent stages, each reused or computed as in `run`, with one progress bar (`show_bar=False`
        leaves the bars to the jobs). With `workers > 1` the stages to compute run that many at a time in worker
        processes, each on its share of torch's threads, its log in `<output_dir>/demo.worker-<pid>.log`. Returns
        the results by stage name, in the jobs' order. A stage that fails stops the run; the finished ones stay
        recorded."""
        from tqdm.auto import tqdm

        values, pending = {}, []
        for job in jobs:
            reused, values[job.name] = self._reused(job.name, job.inputs)
            if not reused:
                pending.append(job)
        bar = tqdm(
            total=len(jobs), initial=len(jobs) - len(pending), desc=description, unit=unit, disable=not show_bar
        )
        try:
            if workers == 1 or len(pending) < 2:
                for job in pending:
                    values[job.name] = self._compute(job.name, job.inputs, job, job.files)
                    bar.update()
            else:
                self._run_in_workers(pending, workers, values, bar)
        finally:
            bar.close()
        return values

    def _run_in_workers(self, jobs: list[StageJob], workers: int, values: dict[str, Any], bar) -> None:
        import multiprocessing
        from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

        import torch

        threads = max(1, torch.get_num_threads() // workers)
        context = multiprocessing.get_context("spawn")  # forking a process that holds torch's thread pools hangs
        log_dir = str(self.records.output_dir)
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                 initargs=(threads, log_dir)) as pool:  # fmt: skip
            futures = {}
            for job in jobs:
                logger.info("%s ... (in a worker process)", job.name)
                self.records.start(job.name, job.inputs, list(job.files))
                futures[pool.submit(_timed, job)] = job
            remaining = set(futures)
            while remaining:
                done, remaining = wait(remaining, return_when=FIRST_EXCEPTION)
                for future in done:
                    job = futures[future]
                    if future.exception() is not None:
                        for other in remaining:
                            other.cancel()
                        raise RuntimeError(
                            f"Stage {job.name!r} failed in a worker process; its log is in {log_dir}."
                        ) from future.exception()
                    value, seconds = future.result()
                    values[job.name] = value
                    self._finish(job.name, job.inputs, value, seconds)
                    bar.update()


def _start_worker(threads: int, log_dir: str) -> None:
    """A worker's set-up: its share of the cores, and its output (warnings, TRL's logs) into its own log file."""
    import torch

    torch.set_num_threads(threads)
    log = open(Path(log_dir) / f"demo.worker-{os.getpid()}.log", "a")  # noqa: SIM115 (open for the worker's life)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    logging.basicConfig(level=logging.INFO, stream=log, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)


def _timed(job: StageJob) -> tuple[Any, float]:
    start = time.perf_counter()
    value = job()
    return value, time.perf_counter() - start


def _differences(previous: dict[str, Any], current: dict[str, Any]) -> str:
    keys = sorted(key for key in set(previous) | set(current) if previous.get(key) != current.get(key))
    shown = [f"{key}: {previous.get(key)!r} there, {current.get(key)!r} now" for key in keys[:3]]
    return "; ".join(shown) + ("; ..." if len(keys) > 3 else "") if shown else "another hf_dlp version"


__all__ = ["RUN_FILE", "STAGES_FOLDER", "StageJob", "StageRecords", "StageRunner", "fingerprint"]
