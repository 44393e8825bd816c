"""Subcommands of the `hf-dlp` CLI, one module each (see `hf_dlp.cli`)."""
