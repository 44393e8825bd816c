"""Entry point of an exported `custom_generate/generate.py` (see `export_custom_generate`).

The exporter writes the processor's modules followed by this file, each without its hf_dlp imports (the blocks
marked below), so the exported script needs only `torch` and `transformers`.
`model.generate(custom_generate=<folder or repo>, trust_remote_code=True)` then calls
`generate(model=model, **generate_arguments)`.
"""

from __future__ import annotations

import functools
import json
import os

import torch
from transformers import AutoModelForCausalLM, GenerationMixin

# hf_dlp-export: strip-begin
from hf_dlp.extrapolation.config import CONFIG_NAME, ExtrapolationConfig, pop_overrides
from hf_dlp.extrapolation.dispatch import run_extrapolation

# hf_dlp-export: strip-end

# Filled in by the exporter with the checkpoint's extrapolation config (a dict), or left None.
EXPORTED_EXTRAPOLATION_CONFIG: dict | None = None
_OTHER_MODELS: dict = {}


def _checkpoint_config(model, given) -> ExtrapolationConfig:
    """The embedded config, updated by the checkpoint folder's JSON, then by the call's `extrapolation_config`."""
    if given is not None and not isinstance(given, dict):  # an ExtrapolationConfig, of hf_dlp or of this file
        return ExtrapolationConfig.from_dict(given.to_dict())
    data = dict(EXPORTED_EXTRAPOLATION_CONFIG or {})
    folder = getattr(model, "name_or_path", None) or ""
    file = os.path.join(folder, CONFIG_NAME)
    if folder and os.path.isfile(file):
        with open(file) as handle:
            data.update(json.load(handle))
    data.update(given or {})
    return ExtrapolationConfig.from_dict(data)


def _other_model(model, name_or_path: str):
    key = (name_or_path, str(model.device), str(model.dtype))
    if key not in _OTHER_MODELS:
        other = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=model.dtype)
        _OTHER_MODELS[key] = other.to(model.device).eval()
    return _OTHER_MODELS[key]


def _other_side(model, config: ExtrapolationConfig, base_model, rl_model) -> dict:
    if base_model is not None or rl_model is not None:
        return {"base_model": base_model} if base_model is not None else {"rl_model": rl_model}
    name = config.base_model_name_or_path
    if not name:
        raise ValueError(
            f"No base model: pass `base_model=` or set `base_model_name_or_path` in the checkpoint's {CONFIG_NAME}."
        )
    role = "base_model" if (config.generator or "rl") == "rl" else "rl_model"
    return {role: _other_model(model, name)}


def generate(
    model,
    inputs=None,
    *,
    base_model=None,
    rl_model=None,
    extrapolation_config=None,
    generation_config=None,
    logits_processor=None,
    **kwargs,
):
    """Extrapolated `generate`: the checkpoint's `extrapolation_config.json` (or `extrapolation_config=`, a dict or an
    `ExtrapolationConfig`) sets γ, the selection rule, τ, the candidate set and `block_size` (block-verified decoding
    when set); `gamma=`, `selection=`, `tau=`, `candidate_top_k=`, `block_size=` override it (`None` is an override
    too: `block_size=None` for the per-token processor, `tau=None` with `selection="all"`; a new `selection` needs its
    own `tau` unless it takes none). `top_k=` is `generate`'s own top-k sampling; sampling settings default to the
    checkpoint's `generation_config.json`, as for plain `generate`. The other model is `base_model=` / `rl_model=`,
    or loaded once from `base_model_name_or_path`. The selection statistics of the call are left in `model.extrapolation_stats`."""
    config = _checkpoint_config(model, extrapolation_config)
    # An override the caller wrote is kept even when it is None (`tau=None` clears the threshold); then drop the
    # unset ones among the rest, since `generate` forwards every one of its own arguments.
    overrides = pop_overrides(kwargs)
    kwargs = {key: value for key, value in kwargs.items() if value is not None}
    config = config.with_overrides(**overrides)
    input_ids = inputs if inputs is not None else kwargs.pop("input_ids")
    tokenizer = kwargs.get("tokenizer")
    with torch.inference_mode():
        output, processor = run_extrapolation(
            functools.partial(GenerationMixin.generate, model),
            model,
            _other_side(model, config, base_model, rl_model),
            config,
            input_ids=input_ids,
            attention_mask=kwargs.pop("attention_mask", None),
            generation_config=generation_config,
            logits_processor=logits_processor,
            valid_vocab_size=len(tokenizer) if tokenizer is not None else None,
            **kwargs,
        )
    model.extrapolation_stats = processor.stats()
    return output
