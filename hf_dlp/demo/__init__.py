"""`hf-dlp demo`: the whole paper in miniature on the offline toy task (or on real models and data)."""

from .config import DemoConfig
from .pipeline import run_demo
from .report import write_report
from .results import DemoResults

__all__ = ["DemoConfig", "DemoResults", "run_demo", "write_report"]
