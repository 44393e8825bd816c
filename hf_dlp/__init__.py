"""hf_dlp: the direction of RLVR updates (signed token-level log-probability differences) as Hugging Face tools."""

__version__ = "0.1.0"

__all__ = ["__version__"]
