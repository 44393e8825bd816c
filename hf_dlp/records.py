"""`RecordStore`: the resumable record files of long runs, one JSON file per finished piece of work.

The sweeps' cells (`hf_dlp.sweeps.cells.CellStore`) and the demo's stages (`hf_dlp.demo.stages.StageRecords`) both
keep what they finished this way, so an interrupted run resumes, and a rerun with other settings redoes the pieces
whose settings changed instead of mixing two runs. A record is a JSON object that names the settings it was
computed with; each store decides when a record matches. The store only reads and writes the files: under a
launcher only the main process writes, and a write is atomic (a temporary file, then a rename), so a record is either
whole or absent, never half-written.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from .distributed import is_main_process

logger = logging.getLogger(__name__)


class RecordStore:
    """JSON records in one folder, `<folder>/<name>.json`, written atomically by the main process.

    Args:
        folder (`str` or `Path`): where the records live (created on the first write).

    Examples:

    >>> import tempfile
    >>> store = RecordStore(tempfile.mkdtemp())
    >>> store.read("cell-1") is None
    True
    >>> store.write("cell-1", {"settings": {"seed": 0}, "result": 0.5})
    >>> store.read("cell-1")["result"]
    0.5
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def path(self, name: str) -> Path:
        """The file of record `name` (`/` in a name becomes `__`)."""
        return self.folder / f"{name.replace('/', '__')}.json"

    def read(self, name: str) -> dict[str, Any] | None:
        """Record `name`, or `None` when it does not exist or cannot be read (logged: it is then redone)."""
        path = self.path(name)
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            logger.warning("Redoing %s: its record %s is unreadable (%s).", name, path, error)
            return None

    def write(self, name: str, record: dict[str, Any]) -> None:
        """Write record `name` (main process only; other processes return at once), atomically."""
        if not is_main_process():
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path(name)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
        os.replace(temporary, path)


__all__ = ["RecordStore"]
