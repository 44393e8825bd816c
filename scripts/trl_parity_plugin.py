"""pytest plugin that runs TRL's own GRPO tests offline, on `GRPOTrainer` or on `ReweightedGRPOTrainer`.

Loaded by `scripts/trl_grpo_parity.py` with `-p trl_parity_plugin` (this folder on `PYTHONPATH`), from the root of a
TRL checkout. It does four things:

- **Offline stand-ins.** TRL's tests load Hub ids such as `trl-internal-testing/tiny-Qwen2ForCausalLM-2.5` and the
  dataset `trl-internal-testing/zen`. [`prepare_stand_ins`] builds, once, a random-weight model of the same
  architecture for every text-only id in [`MODELS`] (with a byte-level tokenizer carrying the family's real chat
  template, taken from the installed `trl` package) and writes it into a private Hub cache laid out like
  `~/.cache/huggingface/hub`, so that every loader (`AutoModel*`, `AutoTokenizer`, `AutoConfig`,
  `GenerationConfig`, PEFT, remote code) finds it with `HF_HUB_OFFLINE=1`. The zen dataset is rebuilt with the
  checkout's own `scripts/generate_zen_dataset.py` when there is one (exactly TRL's rows), else from the Zen of
  Python, and `datasets.load_dataset` is redirected to it. Nothing is downloaded.
- **Unavailable ids.** A test that loads an id without a stand-in is reported as skipped with the reason
  `trl-parity: no offline stand-in for <id>`, on both trainers alike. These are the vision-language models
  (`tiny-Gemma3ForConditionalGeneration`, `tiny-Gemma4ForConditionalGeneration`, `tiny-LlavaForConditionalGeneration`,
  `tiny-LlavaNextForConditionalGeneration`, `tiny-Qwen2VLForConditionalGeneration`,
  `tiny-Qwen2_5_VLForConditionalGeneration`, `tiny-Qwen3_5ForConditionalGeneration-NoThink`,
  `tiny-Qwen3_5MoeForConditionalGeneration-3.6`, `tiny-SmolVLMForConditionalGeneration`) and the image datasets
  (`zen-image`, `zen-multi-image`): their processors and image towers have no offline stand-in here. The stand-in
  tokenizers do not have the real vocabularies either, so a test that hard-codes token ids of a real tokenizer (the
  tool-calling tests' fake `generate`) fails on both trainers.
- **Substitution.** With `--trl-parity-trainer reweighted`, `trl.GRPOTrainer`/`trl.GRPOConfig` and the names the
  test modules imported are replaced by `ReweightedGRPOTrainer` and a `ReweightedGRPOConfig` whose `reweighting`
  defaults to `--trl-parity-reweighting` (`"none"`: the trainer must then behave exactly like `GRPOTrainer`).
- **Outcomes.** `--trl-parity-outcomes PATH` appends one JSON line per finished test (`nodeid`, `outcome`,
  `message`, `duration`); `--trl-parity-timeout SECONDS` fails a test that runs longer (SIGALRM, main thread).

Example (from the root of a TRL checkout, with `/work/main/scripts` on `PYTHONPATH`):

    HF_HUB_OFFLINE=1 python -m pytest tests/test_grpo_trainer.py -p trl_parity_plugin \\
        --trl-parity-trainer reweighted -k "test_train_loss_types and dapo"
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.resources
import io
import json
import os
import re
import runpy
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from datasets import DatasetDict
    from transformers import PreTrainedTokenizerFast

ORGANIZATION = "trl-internal-testing"
STAND_IN_VERSION = "1"
"""Bump to rebuild every cached stand-in (the cache key also holds the transformers and trl versions)."""
DEFAULT_CACHE_DIR = Path(os.environ.get("HF_DLP_TRL_PARITY_CACHE", "~/.cache/hf_dlp/trl_parity")).expanduser()
TRAINERS = ("grpo", "reweighted")
SKIP_PREFIX = "trl-parity: no offline stand-in for"
TIMEOUT_PREFIX = "trl-parity: timeout after"

# ----------------------------------------------------------------------------------------------------------------
# What the stand-ins look like
# ----------------------------------------------------------------------------------------------------------------

_MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}"
)


@dataclass(frozen=True)
class TokenizerSpec:
    """A stand-in tokenizer: byte-level (any text round-trips), with a family's chat template and special tokens.

    Args:
        chat_template (`str`): name of a template file in the installed `trl/chat_templates/` (without `.jinja`),
            or the template itself when it contains `{{`.
        eos_token, bos_token, pad_token (`str`, *optional*): as in the original tokenizer (`None`: it has none).
        generation_eos (`tuple[str, ...]`): extra tokens that end a generation (`generation_config.eos_token_id`).
    """

    chat_template: str
    eos_token: str
    bos_token: str | None = None
    pad_token: str | None = None
    generation_eos: tuple[str, ...] = ()

    def template_text(self) -> str:
        if "{{" in self.chat_template:
            return self.chat_template
        path = importlib.resources.files("trl") / "chat_templates" / f"{self.chat_template}.jinja"
        return path.read_text()


TOKENIZERS: dict[str, TokenizerSpec] = {
    "qwen2_5": TokenizerSpec("qwen2_5", "<|im_end|>", pad_token="<|endoftext|>", generation_eos=("<|endoftext|>",)),
    "qwen3": TokenizerSpec("qwen3", "<|im_end|>", pad_token="<|endoftext|>", generation_eos=("<|endoftext|>",)),
    "llama3_2": TokenizerSpec(
        "llama3_2", "<|eot_id|>", bos_token="<|begin_of_text|>", generation_eos=("<|end_of_text|>", "<|eom_id|>")
    ),
    "mistral": TokenizerSpec(_MISTRAL_TEMPLATE, "</s>", bos_token="<s>"),
    "gemma": TokenizerSpec("gemma", "<eos>", bos_token="<bos>", pad_token="<pad>", generation_eos=("<end_of_turn>",)),
    "cohere2": TokenizerSpec("cohere2", "<|END_OF_TURN_TOKEN|>", bos_token="<BOS_TOKEN>", pad_token="<PAD>"),
    "gptoss": TokenizerSpec("gptoss", "<|return|>", bos_token="<|startoftext|>", pad_token="<|endoftext|>"),
    "glm4moe": TokenizerSpec(
        "glm4moe", "<|endoftext|>", pad_token="<|endoftext|>", generation_eos=("<|user|>", "<|observation|>")
    ),
    "nemotron_3_nano": TokenizerSpec("nemotron_3_nano", "<|im_end|>", bos_token="<s>", pad_token="<unk>"),
}

_SMALL = {
    "hidden_size": 8,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_hidden_layers": 2,
    "intermediate_size": 32,
}
_SMALL_CLASSIFIER = {**_SMALL, "hidden_size": 16, "num_labels": 1}


@dataclass(frozen=True)
class ModelSpec:
    """A stand-in model: `architecture` (a transformers class name) built from `config` with random weights.

    `remote_code=True` saves it with a tiny custom-code wrapper (`RemoteConfig`/`RemoteForCausalLM`, subclasses of
    the Llama classes), so that loading it needs `trust_remote_code=True` like TRL's `tiny-RemoteForCausalLM`.
    """

    architecture: str
    tokenizer: str
    config: dict[str, Any] = field(default_factory=lambda: dict(_SMALL))
    remote_code: bool = False


MODELS: dict[str, ModelSpec] = {
    "tiny-Qwen2ForCausalLM-2.5": ModelSpec("Qwen2ForCausalLM", "qwen2_5"),
    "tiny-Qwen2ForSequenceClassification-2.5": ModelSpec(
        "Qwen2ForSequenceClassification", "qwen2_5", _SMALL_CLASSIFIER
    ),
    "tiny-Qwen3ForCausalLM": ModelSpec("Qwen3ForCausalLM", "qwen3"),
    "tiny-Qwen3ForSequenceClassification": ModelSpec("Qwen3ForSequenceClassification", "qwen3", _SMALL_CLASSIFIER),
    "tiny-Qwen3MoeForCausalLM": ModelSpec(
        "Qwen3MoeForCausalLM", "qwen3", {**_SMALL, "num_experts": 4, "num_experts_per_tok": 2, "norm_topk_prob": True}
    ),
    "tiny-LlamaForCausalLM-3.2": ModelSpec("LlamaForCausalLM", "llama3_2"),
    "tiny-LlamaForSequenceClassification-3.2": ModelSpec(
        "LlamaForSequenceClassification", "llama3_2", _SMALL_CLASSIFIER
    ),
    "tiny-MistralForCausalLM-0.2": ModelSpec("MistralForCausalLM", "mistral"),
    "tiny-Gemma2ForCausalLM": ModelSpec("Gemma2ForCausalLM", "gemma"),
    "tiny-Cohere2ForCausalLM": ModelSpec("Cohere2ForCausalLM", "cohere2"),
    "tiny-GptOssForCausalLM": ModelSpec(
        "GptOssForCausalLM", "gptoss", {**_SMALL, "num_local_experts": 4, "num_experts_per_tok": 2}
    ),
    "tiny-Glm4MoeForCausalLM": ModelSpec(
        "Glm4MoeForCausalLM",
        "glm4moe",
        {
            **_SMALL,
            "moe_intermediate_size": 32,
            "head_dim": 2,
            "n_routed_experts": 4,
            "num_experts_per_tok": 2,
            "use_qk_norm": True,
            "attention_bias": True,
        },
    ),  # fmt: skip
    "tiny-NemotronHForCausalLM-nano": ModelSpec(
        "NemotronHForCausalLM",
        "nemotron_3_nano",
        {
            "hidden_size": 16,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "intermediate_size": 32,
            "layers_block_type": ["mamba", "attention", "moe"],
            "mamba_num_heads": 8,
            "mamba_head_dim": 4,
            "mamba_n_groups": 1,
            "ssm_state_size": 16,
            "mamba_d_conv": 4,
            "mamba_expand": 2,
            "n_routed_experts": 4,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": 32,
            "moe_shared_expert_intermediate_size": 32,
        },
    ),  # fmt: skip
    "tiny-RemoteForCausalLM": ModelSpec("LlamaForCausalLM", "llama3_2", remote_code=True),
}
"""The `trl-internal-testing/<name>` models that get a stand-in. Vision-language models get none."""

_REMOTE_CONFIGURATION = '''"""Custom-code stand-in for trl-internal-testing/tiny-RemoteForCausalLM (written by trl_parity_plugin)."""
from transformers import LlamaConfig


class RemoteConfig(LlamaConfig):
    model_type = "remote"
'''
_REMOTE_MODELING = '''"""Custom-code stand-in for trl-internal-testing/tiny-RemoteForCausalLM (written by trl_parity_plugin)."""
from transformers import LlamaForCausalLM, LlamaModel

from .configuration_remote import RemoteConfig


class RemoteModel(LlamaModel):
    config_class = RemoteConfig


class RemoteForCausalLM(LlamaForCausalLM):
    config_class = RemoteConfig
'''

# ----------------------------------------------------------------------------------------------------------------
# Building the stand-ins
# ----------------------------------------------------------------------------------------------------------------

_TEMPLATE_TOKEN = re.compile(r"<\|[^|<>\s'\"]+\|>|</?[A-Za-z_]+>|\[[A-Za-z_]+\]")


def build_tokenizer(spec: TokenizerSpec) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer without merges (each UTF-8 byte is a token, so any text round-trips), plus one
    token per marker of the chat template (`<|im_start|>`, `<tool_call>`, `[INST]`, ...).

    Markers of the form `<|...|>`/`[...]` and the bos/eos/pad tokens are special (dropped by
    `skip_special_tokens=True`, as in the original tokenizers); lower-case tags such as `<tool_call>` or `<think>`
    are plain added tokens, so tool calls and reasoning survive decoding.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    backend = Tokenizer(models.BPE(vocab={symbol: i for i, symbol in enumerate(alphabet)}, merges=[]))
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"\s+|\S+"), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    template = spec.template_text()
    named = [t for t in (spec.bos_token, spec.eos_token, spec.pad_token, *spec.generation_eos) if t is not None]
    markers = list(dict.fromkeys(_TEMPLATE_TOKEN.findall(template)))
    special = [t for t in dict.fromkeys(named + markers) if t in named or not re.fullmatch(r"</?[a-z_]+>", t)]
    plain = [t for t in markers if t not in special]
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=spec.bos_token,
        eos_token=spec.eos_token,
        pad_token=spec.pad_token,
        chat_template=template,
        clean_up_tokenization_spaces=False,
        model_max_length=131072,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": special}, replace_extra_special_tokens=False)
    tokenizer.add_tokens(plain)
    return tokenizer


def _init_tiny_weights(model) -> None:
    """Xavier-uniform linear layers, N(0, 0.02) embeddings and bf16 weights, as TRL makes its tiny test models (its
    `scripts/generate_tiny_models`), so that the stand-ins train like them."""
    import torch
    from torch import nn

    for module in model.modules():
        if isinstance(module, nn.Linear | nn.Conv1d):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    model.to(dtype=torch.bfloat16)


def build_model_stand_in(name: str, folder: Path) -> None:
    """Save the stand-in of `trl-internal-testing/<name>` (model, tokenizer, generation config) into `folder`."""
    import torch
    import transformers
    from transformers import AutoConfig, GenerationConfig

    spec = MODELS[name]
    tokenizer = build_tokenizer(TOKENIZERS[spec.tokenizer])
    ids = tokenizer.convert_tokens_to_ids
    token_ids = {
        "vocab_size": len(tokenizer),
        "bos_token_id": None if tokenizer.bos_token is None else tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": None if tokenizer.pad_token is None else tokenizer.pad_token_id,
    }
    model_class = getattr(transformers, spec.architecture)
    config = AutoConfig.for_model(model_class.config_class.model_type, **spec.config, **token_ids)
    torch.manual_seed(0)
    model = model_class(config)
    _init_tiny_weights(model)
    eos = [tokenizer.eos_token_id, *(ids(t) for t in TOKENIZERS[spec.tokenizer].generation_eos)]
    model.generation_config = GenerationConfig(
        bos_token_id=token_ids["bos_token_id"], eos_token_id=eos, pad_token_id=token_ids["pad_token_id"]
    )
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    # Most families then load `tokenizer.json` as saved; where `AutoTokenizer` forces the family's class (e.g.
    # `Qwen2Tokenizer` for qwen2), it rebuilds a byte-level BPE from the same vocabulary, which tokenizes the same.
    _update_json(folder / "tokenizer_config.json", {"tokenizer_class": "TokenizersBackend"})
    if spec.remote_code:
        (folder / "configuration_remote.py").write_text(_REMOTE_CONFIGURATION)
        (folder / "modeling_remote.py").write_text(_REMOTE_MODELING)
        _update_json(
            folder / "config.json",
            {
                "model_type": "remote",
                "architectures": ["RemoteForCausalLM"],
                "auto_map": {
                    "AutoConfig": "configuration_remote.RemoteConfig",
                    "AutoModel": "modeling_remote.RemoteModel",
                    "AutoModelForCausalLM": "modeling_remote.RemoteForCausalLM",
                },
            },
        )


def _update_json(path: Path, values: dict[str, Any]) -> None:
    content = json.loads(path.read_text())
    content.update(values)
    path.write_text(json.dumps(content, indent=2) + "\n")


def build_zen_dataset(trl_repo: str | os.PathLike | None = None) -> dict[str, DatasetDict]:
    """The configurations of `trl-internal-testing/zen`, as `{config_name: DatasetDict(train=..., test=...)}`.

    With a TRL checkout that has `scripts/generate_zen_dataset.py`, that script builds them (its `push_to_hub` calls
    are captured, nothing is uploaded): exactly the Hub's rows. Otherwise the prompt-only configurations are
    synthesised from the Zen of Python with the same columns and split sizes (17 train / 2 test rows).
    """
    from datasets import Dataset, DatasetDict

    script = Path(trl_repo, "scripts", "generate_zen_dataset.py") if trl_repo is not None else None
    if script is not None and script.is_file():
        captured: dict[str, DatasetDict] = {}

        def capture(self, repo_id, config_name="default", **kwargs):
            captured[config_name] = self

        original = DatasetDict.push_to_hub
        DatasetDict.push_to_hub = capture
        try:
            runpy.run_path(str(script), run_name="trl_zen_generator")["main"](0.1, True, f"{ORGANIZATION}/zen")
        finally:
            DatasetDict.push_to_hub = original
        if captured:
            return captured
    with contextlib.redirect_stdout(io.StringIO()):
        import this  # the Zen of Python, ROT13-encoded in `this.s`
    lines = [line for line in "".join(this.d.get(c, c) for c in this.s).splitlines()[2:] if line]
    prompts = [" ".join(line.split()[: max(2, len(line.split()) // 2)]) for line in lines]
    standard = Dataset.from_dict({"prompt": prompts})
    conversational = Dataset.from_dict(
        {"prompt": [[{"role": "user", "content": f"What follows: {prompt}?"}] for prompt in prompts]}
    )
    return {
        "standard_prompt_only": standard.train_test_split(test_size=0.1, shuffle=False),
        "conversational_prompt_only": conversational.train_test_split(test_size=0.1, shuffle=False),
    }


def _cache_key() -> str:
    import transformers
    import trl

    return f"{STAND_IN_VERSION}-transformers{transformers.__version__}-trl{trl.__version__}"


def hub_cache_dir(cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR) -> Path:
    """The private Hub cache (`HF_HUB_CACHE` layout) that holds the model stand-ins."""
    return Path(cache_dir).expanduser() / "hub"


def prepare_stand_ins(
    cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR,
    trl_repo: str | os.PathLike | None = None,
    models: list[str] | None = None,
) -> Path:
    """Build the stand-ins that are not in `cache_dir` yet (idempotent: a few seconds the first time) and return
    `cache_dir`.

    Each model goes into `hub/models--trl-internal-testing--<name>/snapshots/<revision>/` with `refs/main` pointing
    at it, as `huggingface_hub` would have downloaded it; the datasets go into `datasets/<name>/<config>/`.

    Args:
        cache_dir (`str` or `os.PathLike`, *optional*): where to keep them (`~/.cache/hf_dlp/trl_parity`).
        trl_repo (`str` or `os.PathLike`, *optional*): a TRL checkout whose zen generator to use.
        models (`list[str]`, *optional*): names from [`MODELS`] to build (all when `None`).
    """
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    cache_dir = Path(cache_dir).expanduser()
    revision = hashlib.sha1(_cache_key().encode()).hexdigest()
    for name in models if models is not None else list(MODELS):
        if name not in MODELS:
            raise ValueError(f"No stand-in is defined for {ORGANIZATION}/{name}; known: {sorted(MODELS)}.")
        repo = hub_cache_dir(cache_dir) / f"models--{ORGANIZATION}--{name}"
        snapshot = repo / "snapshots" / revision
        if not (snapshot / "config.json").is_file():
            build_model_stand_in(name, snapshot)
            (repo / "refs").mkdir(exist_ok=True)
            (repo / "refs" / "main").write_text(revision)
    zen = cache_dir / "datasets" / "zen"
    stamp = zen / "stand_in.json"
    source = "trl" if trl_repo is not None and Path(trl_repo, "scripts", "generate_zen_dataset.py").is_file() else None
    if not stamp.is_file() or json.loads(stamp.read_text()) != {"key": _cache_key(), "source": source}:
        for config_name, dataset in build_zen_dataset(trl_repo).items():
            dataset.save_to_disk(str(zen / config_name))
        stamp.write_text(json.dumps({"key": _cache_key(), "source": source}))
    return cache_dir


# ----------------------------------------------------------------------------------------------------------------
# Redirection and substitution
# ----------------------------------------------------------------------------------------------------------------


class StandInUnavailable(OSError):
    """Raised for a `trl-internal-testing` id without an offline stand-in; the test is then reported as skipped."""


def make_load_dataset(original, cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR):
    """Wrap `datasets.load_dataset` so that `trl-internal-testing/<name>` loads the local stand-in (any other path
    goes to `original`). Supports `split=` (a split name) and `streaming=True`."""
    from datasets import IterableDatasetDict, load_from_disk

    root = Path(cache_dir).expanduser() / "datasets"

    def load_dataset(path, name=None, *args, split=None, streaming=False, **kwargs):
        if not (isinstance(path, str) and path.startswith(f"{ORGANIZATION}/")):
            return original(path, name, *args, split=split, streaming=streaming, **kwargs)
        folder = root / path.split("/", 1)[1] / (name or "default")
        if not folder.is_dir():
            raise StandInUnavailable(f"{SKIP_PREFIX} dataset {path!r} (config {name!r}).")
        dataset = load_from_disk(str(folder), keep_in_memory=True)
        if split is not None:
            if split not in dataset:
                raise ValueError(f"Unknown split {split!r} for the stand-in of {path}; it has {list(dataset)}.")
            dataset = dataset[split]
            return dataset.to_iterable_dataset() if streaming else dataset
        if streaming:
            return IterableDatasetDict({key: value.to_iterable_dataset() for key, value in dataset.items()})
        return dataset

    load_dataset.__wrapped__ = original
    return load_dataset


def install_redirection(cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR, setattr_fn=setattr) -> None:
    """Point `huggingface_hub` at the stand-ins' Hub cache, offline, and redirect `datasets.load_dataset`.

    `setattr_fn` is `setattr` (permanent, what the plugin uses) or `pytest.MonkeyPatch.setattr` (undone after a
    test).
    """
    import datasets
    import huggingface_hub.constants

    setattr_fn(huggingface_hub.constants, "HF_HUB_CACHE", str(hub_cache_dir(cache_dir)))
    setattr_fn(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    original = getattr(datasets.load_dataset, "__wrapped__", datasets.load_dataset)
    setattr_fn(datasets, "load_dataset", make_load_dataset(original, cache_dir))


def add_missing_availability_checks(paths) -> list[str]:
    """Give `trl.import_utils` the `is_<package>_available` helpers that the files in `paths` import from it but the
    installed `trl` lacks (a TRL checkout of another version than the installed one may import, e.g.,
    `is_joblib_available`); each checks that `<package>` can be imported. Returns the names added."""
    import ast
    import importlib
    import importlib.util

    import_utils = importlib.import_module("trl.import_utils")
    added = []
    for path in paths:
        for node in ast.walk(ast.parse(Path(path).read_text())):
            if not (isinstance(node, ast.ImportFrom) and node.module == "trl.import_utils"):
                continue
            for alias in node.names:
                match = re.fullmatch(r"is_(\w+)_available", alias.name)
                if match and not hasattr(import_utils, alias.name):
                    setattr(import_utils, alias.name, _availability_check(match.group(1), importlib.util.find_spec))
                    added.append(alias.name)
    return added


def _availability_check(package: str, find_spec):
    def is_available() -> bool:
        return find_spec(package) is not None

    is_available.__name__ = f"is_{package}_available"
    return is_available


def reweighted_classes(reweighting: str = "none") -> tuple[type, type]:
    """`(ReweightedGRPOTrainer, config class)`: the config class is `ReweightedGRPOConfig` with `reweighting`
    defaulting to `reweighting`: the class itself when that is already its default, else a subclass kept in this
    module (`ReweightedGRPOConfig__<reweighting>`) so that the `training_args.bin` of checkpoints can be pickled."""
    from hf_dlp.training import ReweightedGRPOConfig, ReweightedGRPOTrainer

    default = ReweightedGRPOConfig.__dataclass_fields__["reweighting"]
    if reweighting == default.default:
        return ReweightedGRPOTrainer, ReweightedGRPOConfig
    name = "ReweightedGRPOConfig__" + re.sub(r"\W", "_", reweighting)
    if name not in globals():
        namespace = {
            "__annotations__": {"reweighting": str},
            "reweighting": dataclasses.field(default=reweighting, metadata=default.metadata),
            "__module__": __name__,
            "__qualname__": name,
            "__doc__": f"`ReweightedGRPOConfig` with `reweighting={reweighting!r}` by default (trl_parity_plugin).",
        }
        globals()[name] = dataclass(type(name, (ReweightedGRPOConfig,), namespace))
    return ReweightedGRPOTrainer, globals()[name]


def substitute_trainer(module, trainer_class: type, config_class: type) -> list[str]:
    """Rebind, in `module`, every name bound to TRL's `GRPOTrainer`/`GRPOConfig` to `trainer_class`/`config_class`.

    Returns the names of `module` bound to the substitutes afterwards (including those that a
    `from trl import GRPOTrainer` run after `trl` was patched bound to them already).
    """
    from trl.trainer.grpo_config import GRPOConfig
    from trl.trainer.grpo_trainer import GRPOTrainer

    replacements = {GRPOTrainer: trainer_class, GRPOConfig: config_class}
    bound = []
    for name, value in list(vars(module).items()):
        if isinstance(value, type) and value in replacements:
            setattr(module, name, replacements[value])
            value = replacements[value]
        if value is trainer_class or value is config_class:
            bound.append(name)
    return bound


# ----------------------------------------------------------------------------------------------------------------
# pytest hooks
# ----------------------------------------------------------------------------------------------------------------


def pytest_addoption(parser):
    group = parser.getgroup("trl-parity", "run TRL's GRPO tests offline on GRPOTrainer or ReweightedGRPOTrainer")
    group.addoption("--trl-parity-trainer", choices=TRAINERS, default="grpo", help="Which trainer the tests get.")
    group.addoption("--trl-parity-reweighting", default="none", help="Default `reweighting` of the swapped config.")
    group.addoption("--trl-parity-cache", default=str(DEFAULT_CACHE_DIR), help="Folder of the offline stand-ins.")
    group.addoption("--trl-parity-trl-repo", default=None, help="TRL checkout for the zen generator (rootdir).")
    group.addoption("--trl-parity-outcomes", default=None, help="JSON-lines file to append outcomes to.")
    group.addoption("--trl-parity-timeout", type=float, default=0, help="Per-test time limit in seconds (0: none).")


def pytest_configure(config):
    cache_dir = config.getoption("--trl-parity-cache")
    trl_repo = config.getoption("--trl-parity-trl-repo") or str(config.rootpath)
    prepare_stand_ins(cache_dir, trl_repo)
    add_missing_availability_checks(Path(trl_repo, "tests").glob("*.py"))
    os.environ.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    install_redirection(cache_dir)
    global _run
    _run = state = ParityRun(outcomes=config.getoption("--trl-parity-outcomes"))
    if config.getoption("--trl-parity-trainer") == "reweighted":
        import trl

        # `hf_dlp.training` binds TRL's real classes first (its trainer subclasses them), then `trl` is patched, so
        # `from trl import GRPOTrainer` in a test module imported afterwards gets ours.
        state.classes = reweighted_classes(config.getoption("--trl-parity-reweighting"))
        trl.GRPOTrainer, trl.GRPOConfig = state.classes


def pytest_collection_modifyitems(session, config, items):
    if _run is not None and _run.classes is not None:
        for module in {item.module for item in items if getattr(item, "module", None) is not None}:
            _run.substituted[module.__name__] = substitute_trainer(module, *_run.classes)


def pytest_collection_finish(session):
    if _run is not None:  # the selected tests, after `-k`/`--deselect`
        nodeids = [item.nodeid for item in session.items]
        _run.write({"event": "collected", "nodeids": nodeids, "substituted": _run.substituted})


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    limit = item.config.getoption("--trl-parity-timeout")
    if not limit:
        yield
        return

    def on_timeout(signum, frame):
        pytest.fail(f"{TIMEOUT_PREFIX} {limit:g} s", pytrace=False)

    previous = signal.signal(signal.SIGALRM, on_timeout)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.excinfo is not None:
        reason = _unavailable_stand_in(call.excinfo.value)
        if reason is not None:
            report.outcome, report.longrepr = "skipped", (str(item.path), item.location[1] or 0, reason)


def pytest_runtest_logreport(report):
    if _run is not None:
        _run.record(report)


# ----------------------------------------------------------------------------------------------------------------
# Outcomes
# ----------------------------------------------------------------------------------------------------------------

_ID_PATTERN = re.compile(rf"{ORGANIZATION}/[A-Za-z0-9_.-]+")


def _unavailable_stand_in(error: BaseException) -> str | None:
    """The skip reason when `error` (or an exception it chains) is a failed load of an id without a stand-in."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, StandInUnavailable):
            return str(error)
        if isinstance(error, OSError):
            missing = [i for i in _ID_PATTERN.findall(str(error)) if i.split("/", 1)[1] not in MODELS]
            if missing:
                return f"{SKIP_PREFIX} {missing[0]}."
        error = error.__cause__ or error.__context__
    return None


def _first_line(report) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(getattr(report.longrepr, "reprcrash", None), "message", None)
    text = crash if crash is not None else str(report.longrepr or "")
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


@dataclass
class ParityRun:
    """What the plugin keeps in one pytest process: where outcomes go, the substitutes, and the tests in flight.

    Args:
        outcomes (`str`, *optional*): JSON-lines file to append to (`None`: nothing is written).
        classes (`tuple[type, type]`, *optional*): `(trainer, config)` substitutes (`None`: TRL's own classes).
    """

    outcomes: str | None
    classes: tuple[type, type] | None = None
    substituted: dict[str, list[str]] = field(default_factory=dict)
    current: dict[str, dict[str, Any]] = field(default_factory=dict)

    def write(self, record: dict[str, Any]) -> None:
        """Append `record` as one JSON line (opened per record, so that a crash loses nothing written before)."""
        if self.outcomes is not None:
            with open(self.outcomes, "a") as handle:
                handle.write(json.dumps(record) + "\n")

    def record(self, report) -> None:
        """Fold the setup/call/teardown reports of a test into one outcome, written after its teardown."""
        entry = self.current.setdefault(report.nodeid, {"outcome": "passed", "message": "", "duration": 0.0})
        entry["duration"] += report.duration
        if report.when == "call" and hasattr(report, "wasxfail"):
            entry.update(outcome="xfailed" if report.skipped else "xpassed", message=str(report.wasxfail))
        elif report.failed and entry["outcome"] in ("passed", "xpassed"):
            kind = "failed" if report.when == "call" else "error"
            message = _first_line(report)
            entry.update(outcome="timeout" if TIMEOUT_PREFIX in message else kind, message=message)
        elif report.skipped and entry["outcome"] == "passed":
            entry.update(outcome="skipped", message=_first_line(report))
        if report.when == "teardown":
            self.write(
                {"event": "outcome", "nodeid": report.nodeid, "time": time.time(), **self.current.pop(report.nodeid)}
            )


_run: ParityRun | None = None
"""The plugin's state in this pytest process (set by `pytest_configure`)."""
