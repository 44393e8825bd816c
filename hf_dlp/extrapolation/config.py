"""`ExtrapolationConfig`: an RL checkpoint's extrapolation setup, saved as JSON next to its weights."""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

from .processor import SELECTION_RULES, check_extrapolation_arguments

CONFIG_NAME = "extrapolation_config.json"
GENERATOR_ROLES: tuple[str, ...] = ("rl", "base")


@dataclass
class ExtrapolationConfig:
    """How to extrapolate an RL checkpoint at test time; saved as `extrapolation_config.json` beside the weights.

    Args:
        base_model_name_or_path (`str`, *optional*): Hub id or folder of the base model the RL model was trained from.
        gamma (`float`, *optional*, defaults to `0.1`): extrapolation strength γ (0 = selective replace).
        selection (`str`, *optional*, defaults to `"delta_logp"`): one of `SELECTION_RULES`.
        tau (`float`, *optional*, defaults to `-0.35`): threshold of the selection rule (`None` for `"all"`).
        top_k (`int`, *optional*, defaults to `50`): π_extra candidates: the generator's top-k tokens.
        top_p (`float`, *optional*, defaults to `0.7`): nucleus sampling of `generate` (paper: 0.7).
        temperature (`float`, *optional*, defaults to `1.0`): sampling temperature of `generate`.
        generator (`str`, *optional*, defaults to `"rl"`): which model generates, `"rl"` (guided by the base) or
            `"base"` (guided by the RL model, the paper's Fig. 4 setting).

    Examples:

    >>> import tempfile
    >>> config = ExtrapolationConfig(base_model_name_or_path="Qwen/Qwen2.5-32B", gamma=0.05, tau=-0.3)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     _ = config.save_pretrained(folder)
    ...     loaded = ExtrapolationConfig.from_pretrained(folder)
    >>> loaded == config, loaded.processor_kwargs()
    (True, {'gamma': 0.05, 'selection': 'delta_logp', 'tau': -0.3, 'top_k': 50})
    """

    base_model_name_or_path: str | None = None
    gamma: float = 0.1
    selection: Literal["all", "delta_logp", "entropy", "kl", "kl_reverse", "kl_mean", "random"] = "delta_logp"
    tau: float | None = -0.35
    top_k: int | None = 50
    top_p: float | None = 0.7
    temperature: float = 1.0
    generator: Literal["rl", "base"] = "rl"

    def __post_init__(self):
        if isinstance(self.tau, str) and self.tau.lower() == "none":  # CLI strings
            self.tau = None
        if self.selection == "all" and self.tau == ExtrapolationConfig.tau:
            self.tau = None  # the default threshold belongs to "delta_logp"; "all" takes none
        check_extrapolation_arguments(self.gamma, self.selection, self.tau, self.top_k)
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"`top_p` must be in (0, 1] (paper: 0.7) or None, got {self.top_p!r}.")
        if not self.temperature > 0:
            raise ValueError(
                f"`temperature` must be > 0, got {self.temperature!r}; for greedy decoding pass "
                "`do_sample=False` to generate instead."
            )
        if self.generator not in GENERATOR_ROLES:
            raise ValueError(f"`generator` must be one of {GENERATOR_ROLES}, got {self.generator!r}.")

    def processor_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `ExtrapolationLogitsProcessor` / `generate_with_extrapolation`."""
        return {"gamma": self.gamma, "selection": self.selection, "tau": self.tau, "top_k": self.top_k}

    def generation_kwargs(self) -> dict[str, Any]:
        """Sampling settings for `generate` (`do_sample`, `temperature`, `top_p`)."""
        kwargs: dict[str, Any] = {"do_sample": True, "temperature": self.temperature}
        if self.top_p is not None:
            kwargs["top_p"] = self.top_p
        return kwargs

    def to_dict(self) -> dict[str, Any]:
        from hf_dlp import __version__

        return {**asdict(self), "hf_dlp_version": __version__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExtrapolationConfig:
        """Build from a dict; unknown keys (from a newer version) are dropped with a warning."""
        known = {spec.name for spec in fields(cls)}
        unknown = sorted(set(data) - known - {"hf_dlp_version"})
        if unknown:
            warnings.warn(
                f"Ignoring unknown extrapolation config keys {unknown} (written by a newer hf_dlp?).", stacklevel=2
            )
        return cls(**{key: value for key, value in data.items() if key in known})

    def save_pretrained(self, save_directory: str | Path) -> Path:
        """Write `extrapolation_config.json` into `save_directory` (created if needed); return the file path."""
        path = Path(save_directory)
        if path.exists() and not path.is_dir():
            raise ValueError(f"`save_directory` ({str(path)!r}) is a file; give the checkpoint folder.")
        path.mkdir(parents=True, exist_ok=True)
        file = path / CONFIG_NAME
        file.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return file

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **hub_kwargs) -> ExtrapolationConfig:
        """Load from a folder (or its JSON file), or from a Hub repository with `hf_hub_download`."""
        path = Path(name_or_path)
        if path.is_file():
            file = path
        elif path.is_dir():
            file = path / CONFIG_NAME
            if not file.is_file():
                raise FileNotFoundError(
                    f"No {CONFIG_NAME} in {str(path)!r}; save one with "
                    "`ExtrapolationConfig(...).save_pretrained(folder)`."
                )
        else:
            from huggingface_hub import hf_hub_download

            file = Path(hf_hub_download(str(name_or_path), CONFIG_NAME, **hub_kwargs))
        return cls.from_dict(json.loads(file.read_text()))

    def push_to_hub(self, repo_id: str, *, commit_message: str = "Add extrapolation config", **hub_kwargs) -> str:
        """Upload `extrapolation_config.json` to a Hub model repository; return the commit URL."""
        from huggingface_hub import HfApi

        data = (json.dumps(self.to_dict(), indent=2) + "\n").encode()
        info = HfApi().upload_file(
            path_or_fileobj=data,
            path_in_repo=CONFIG_NAME,
            repo_id=repo_id,
            commit_message=commit_message,
            **hub_kwargs,
        )
        return str(info)


__all__ = ["CONFIG_NAME", "SELECTION_RULES", "ExtrapolationConfig"]
