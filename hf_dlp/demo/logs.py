"""Quiet demo runs: a short line per stage on the terminal, every detail in `<output_dir>/demo.log`."""

from __future__ import annotations

import logging
from pathlib import Path

LOG_FILE = "demo.log"


def configure_demo_logging(output_dir: str | Path, *, console: bool = True) -> Path:
    """Send every log record (transformers, TRL, datasets, Python warnings) to `output_dir/demo.log`, and only the
    demo's own stage lines to the terminal (other processes of a launch log to `demo.rank<N>.log`, silently). Returns
    the log file's path.

    Examples:

    >>> import tempfile
    >>> path = configure_demo_logging(tempfile.mkdtemp(), console=False)
    >>> logging.getLogger("transformers.trainer").warning("detail"); path.read_text().strip().endswith("detail")
    True
    """
    import datasets
    import transformers

    from ..distributed import process_index

    rank = process_index()
    path = Path(output_dir) / (LOG_FILE if rank == 0 else LOG_FILE.replace(".log", f".rank{rank}.log"))
    console = console and rank == 0  # under a launcher only the main process talks to the terminal
    path.parent.mkdir(parents=True, exist_ok=True)
    close_demo_logging()
    root = logging.getLogger()
    to_file = logging.FileHandler(path)
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    to_file._hf_dlp_demo = True
    root.addHandler(to_file)
    root.setLevel(logging.INFO)
    if console:
        to_terminal = logging.StreamHandler()
        to_terminal.setFormatter(logging.Formatter("%(message)s"))
        to_terminal.addFilter(logging.Filter("hf_dlp.demo"))
        to_terminal._hf_dlp_demo = True
        root.addHandler(to_terminal)
    transformers.utils.logging.disable_default_handler()
    transformers.utils.logging.enable_propagation()
    datasets.utils.logging.enable_propagation()  # datasets has no handler of its own to remove
    transformers.utils.logging.set_verbosity_info()
    transformers.utils.logging.disable_progress_bar()  # weight-loading bars
    datasets.disable_progress_bars()  # row-mapping bars between the stage bars say nothing a user acts on
    logging.captureWarnings(True)
    return path


def close_demo_logging() -> None:
    """Detach and close the handlers `configure_demo_logging` added (the CLI calls it when the demo ends).

    Examples:

    >>> close_demo_logging()
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_hf_dlp_demo", False)]:
        root.removeHandler(handler)
        handler.close()


__all__ = ["LOG_FILE", "close_demo_logging", "configure_demo_logging"]
