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
import shutil
from pathlib import Path
from typing import Any

from ..distributed import barrier, is_main_process

RUN_FILE = "run.json"
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
        self.run_inputs = run_inputs = json.loads(json.dumps(run_inputs, default=str))  # tuples as lists, as stored
        self.run_fingerprint = fingerprint(run_inputs)
        run_file = self.output_dir / RUN_FILE
        if run_file.exists():
            previous = json.loads(run_file.read_text())
            if previous.get("fingerprint") != self.run_fingerprint and not overwrite:
                raise ValueError(
                    f"`output_dir` ({str(self.output_dir)!r}) holds a demo run with other settings "
                    f"({_differences(previous.get('inputs', {}), run_inputs)}). Choose another `--output_dir`, or "
                    "pass `--overwrite` to redo the stages whose settings changed."
                )
        if is_main_process():  # under a launcher every process reads the records, the main one writes them
            self.folder.mkdir(parents=True, exist_ok=True)
            run_file.write_text(
                json.dumps({"fingerprint": self.run_fingerprint, "inputs": run_inputs, "status": "running"}, indent=2)
            )
        barrier()

    def _path(self, name: str) -> Path:
        return self.folder / f"{name.replace('/', '__')}.json"

    def result(self, name: str, inputs: dict[str, Any]) -> Any | None:
        """The recorded result of stage `name` if it finished with these `inputs`, else `None`."""
        path = self._path(name)
        if not path.exists():
            return None
        record = json.loads(path.read_text())
        if record.get("fingerprint") != fingerprint(inputs) or not record.get("finished"):
            return None
        return record["result"]

    def start(self, name: str, inputs: dict[str, Any], files: list[Path] = ()) -> None:
        """Mark stage `name` as started with `inputs`; remove the files a previous, different attempt left."""
        if is_main_process():
            for path in files:
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()
            record = {"stage": name, "fingerprint": fingerprint(inputs), "inputs": inputs, "finished": False}
            self._path(name).write_text(json.dumps(record, indent=2, default=str))
        barrier()

    def finish(self, name: str, inputs: dict[str, Any], result: Any) -> None:
        """Record that stage `name` finished with `inputs` and produced `result` (JSON-serialisable)."""
        record = {"stage": name, "fingerprint": fingerprint(inputs), "inputs": inputs, "finished": True}
        if is_main_process():
            self._path(name).write_text(json.dumps({**record, "result": result}, indent=2, default=str))
        barrier()

    def finish_run(self) -> None:
        """Mark the whole run as finished (after the report is written)."""
        data = {"fingerprint": self.run_fingerprint, "inputs": self.run_inputs, "status": "finished"}
        if is_main_process():
            (self.output_dir / RUN_FILE).write_text(json.dumps(data, indent=2))


def _differences(previous: dict[str, Any], current: dict[str, Any]) -> str:
    keys = sorted(key for key in set(previous) | set(current) if previous.get(key) != current.get(key))
    shown = [f"{key}: {previous.get(key)!r} there, {current.get(key)!r} now" for key in keys[:3]]
    return "; ".join(shown) + ("; ..." if len(keys) > 3 else "") if shown else "another hf_dlp version"


__all__ = ["RUN_FILE", "STAGES_FOLDER", "StageRecords", "fingerprint"]
