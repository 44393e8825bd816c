"""Resumable sweeps: each finished cell of a grid is written to its own JSON file with the settings it was computed
with, and a rerun with the same `output_dir` reuses a cell only when its stored settings equal the current ones.

A cell file `output_dir/cells/<key>.json` holds `{"key", "settings", "result", "hf_dlp_version"}`. The settings are
everything the cell's numbers depend on: the grid point, the sampling settings, `num_samples`, `batch_size` and
`seed`, the reward function's name, a fingerprint of the data set (row count and a hash of its rows) and the models'
identities (`name_or_path`, parameter count, dtype). The number of processes is not part of them: results do not
depend on it, so a sweep started on 8 GPUs may finish on 1. A cell with other settings is recomputed (the differing
settings are logged) and overwritten; two runs are never mixed. Only the main process reads and writes cell files (it
broadcasts what it found), and writes are atomic (`hf_dlp.records.RecordStore`, the demo stages' store too).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..distributed import broadcast_from_main, distributed_state, is_main_process
from ..records import RecordStore

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedModel

CELLS_DIR = "cells"


def _plain(value: Any) -> Any:
    """`value` as it reads back from JSON (tuples become lists, keys strings), so stored and fresh values compare."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def cell_key(point: dict[str, Any]) -> str:
    """A file-name key for a grid point: its values, readable, and a short hash of the whole point.

    Examples:

    >>> cell_key({"selection": "delta_logp", "tau": -0.5, "gamma": 0.1})
    'delta_logp_tau-0.5_gamma0.1-148ecc2e7e'
    """
    readable = "_".join(
        str(value) if name in ("selection", "reference") else f"{name}{value}"
        for name, value in point.items()
        if name in ("reference", "selection", "tau", "gamma")
    )
    digest = hashlib.sha256(json.dumps(_plain(point), sort_keys=True).encode()).hexdigest()[:10]
    return f"{re.sub(r'[^A-Za-z0-9_.=-]', '', readable)}-{digest}"


def model_identity(model: PreTrainedModel) -> dict[str, Any]:
    """What identifies a model cheaply: `name_or_path`, parameter count and dtype.

    Examples:

    >>> from hf_dlp.toy import build_tiny_causal_lm
    >>> sorted(model_identity(build_tiny_causal_lm(size="nano")))
    ['dtype', 'name_or_path', 'num_parameters']
    """
    return {
        "name_or_path": str(getattr(model.config, "_name_or_path", "") or ""),
        "num_parameters": int(sum(parameter.numel() for parameter in model.parameters())),
        "dtype": str(getattr(model, "dtype", "")),
    }


def dataset_identity(dataset: Dataset) -> dict[str, Any]:
    """A fingerprint of a data set's content: its row count and a SHA-256 of its rows (independent of how it was
    loaded, unlike `datasets`' cache fingerprint).

    Examples:

    >>> from datasets import Dataset
    >>> dataset_identity(Dataset.from_dict({"prompt": ["a", "b"]}))["num_rows"]
    2
    """
    text = json.dumps(dataset.to_dict(), sort_keys=True, default=str)
    return {"num_rows": len(dataset), "sha256": hashlib.sha256(text.encode()).hexdigest()}


class CellStore:
    """The finished cells of a sweep in `output_dir/cells/`: `run(point, compute)` reuses or computes one cell.

    Without an `output_dir` nothing is stored and every cell is computed. `computed` and `reused` list the keys.

    Examples:

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> store = CellStore(folder, {"seed": 0})
    >>> store.run({"selection": "random", "tau": 0.1}, lambda: {"avg_at_k": 0.5})
    {'avg_at_k': 0.5}
    >>> again = CellStore(folder, {"seed": 0})
    >>> again.run({"selection": "random", "tau": 0.1}, lambda: 1 / 0), len(again.reused)   # not recomputed
    ({'avg_at_k': 0.5}, 1)
    >>> other = CellStore(folder, {"seed": 1})   # other settings: recomputed, never mixed
    >>> other.run({"selection": "random", "tau": 0.1}, lambda: {"avg_at_k": 0.25}), len(other.computed)
    ({'avg_at_k': 0.25}, 1)
    """

    def __init__(self, output_dir: str | Path | None, settings: dict[str, Any]):
        self.directory = None if output_dir is None else Path(output_dir) / CELLS_DIR
        self.records = None if self.directory is None else RecordStore(self.directory)
        self.settings = _plain(settings)
        self.computed: list[str] = []
        self.reused: list[str] = []

    def _stored(self, key: str, settings: dict[str, Any]) -> Any:
        """The stored result of `key` when its settings equal `settings` (main process only), else `None`."""
        from accelerate.logging import get_logger

        data = self.records.read(key)
        if data is None:
            return None
        distributed_state()  # accelerate's logger needs the state
        logger = get_logger(__name__)
        path = self.records.path(key)
        stored = data.get("settings", {})
        if stored != settings:
            changed = sorted(name for name in {*stored, *settings} if stored.get(name) != settings.get(name))
            logger.warning(f"Recomputing sweep cell {key}: {path} was computed with other settings ({changed}).")
            return None
        logger.info(f"Reusing sweep cell {key} from {path}.")
        return {"result": data["result"]}

    def run(self, point: dict[str, Any], compute: Callable[[], Any]) -> Any:
        """The result of the cell at `point`: reused from its file when the settings match, else `compute()` (on
        every process, as the cell's work is shared) and written by the main process."""
        key = cell_key(point)
        settings = {**self.settings, "cell": _plain(point)}
        if self.directory is None:
            self.computed.append(key)
            return _plain(compute())
        found = broadcast_from_main(self._stored(key, settings) if is_main_process() else None)
        if found is not None:
            self.reused.append(key)
            return found["result"]
        result = _plain(compute())
        from hf_dlp import __version__

        self.records.write(key, {"key": key, "settings": settings, "result": result, "hf_dlp_version": __version__})
        self.computed.append(key)
        return result


__all__ = ["CELLS_DIR", "CellStore", "cell_key", "dataset_identity", "model_identity"]
