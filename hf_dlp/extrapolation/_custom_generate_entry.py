"""Entry point of an exported `custom_generate/generate.py` (see `export_custom_generate`).

The exporter writes `processor.py` followed by this file, without the import block marked below, so the exported
script needs only `torch` and `transformers`. `model.generate(custom_generate=<folder or repo>, trust_remote_code=True)`
then calls `generate(model=model, **generate_arguments)`.
"""

from __future__ import annotations

import json
import os

import torch
from transformers import AutoModelForCausalLM, GenerationMixin, LogitsProcessorList

# hf_dlp-export: strip-begin
from hf_dlp.extrapolation.processor import ExtrapolationLogitsProcessor

# hf_dlp-export: strip-end

# Filled in by the exporter with the checkpoint's extrapolation config (a dict), or left None.
EXPORTED_EXTRAPOLATION_CONFIG: dict | None = None
_OTHER_MODELS: dict = {}
_PROCESSOR_KEYS = ("gamma", "selection", "tau", "top_k")


def _checkpoint_config(model) -> dict:
    config = dict(EXPORTED_EXTRAPOLATION_CONFIG or {})
    folder = getattr(model, "name_or_path", None) or ""
    file = os.path.join(folder, "extrapolation_config.json")
    if folder and os.path.isfile(file):
        with open(file) as handle:
            config.update(json.load(handle))
    return config


def _other_model(model, name_or_path: str):
    key = (name_or_path, str(model.device), str(model.dtype))
    if key not in _OTHER_MODELS:
        other = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=model.dtype)
        _OTHER_MODELS[key] = other.to(model.device).eval()
    return _OTHER_MODELS[key]


def generate(
    model,
    inputs=None,
    *,
    base_model=None,
    rl_model=None,
    extrapolation_config: dict | None = None,
    generation_config=None,
    logits_processor=None,
    **kwargs,
):
    """Extrapolated `generate`: the checkpoint's `extrapolation_config.json` (or `extrapolation_config=`) sets γ,
    the selection rule, τ and top-k, and the sampling temperature and top-p unless the call passes its own (or a
    `generation_config`, or `do_sample=False`); `gamma=`, `selection=`, `tau=`, `top_k=` override it. The other model is
    `base_model=` / `rl_model=`, or loaded once from `base_model_name_or_path`. The selection statistics of the call
    are left in `model.extrapolation_stats`."""
    config = {**_checkpoint_config(model), **(extrapolation_config or {})}
    for key in _PROCESSOR_KEYS:
        if key in kwargs:
            config[key] = kwargs.pop(key)
    # `generate` forwards every one of its arguments; drop the unset ones and the modes extrapolation rejects.
    kwargs = {key: value for key, value in kwargs.items() if value is not None}
    for key in ("assistant_model", "prompt_lookup_num_tokens", "num_beams"):
        if key in kwargs and kwargs[key] not in (1, False):
            raise ValueError(f"Extrapolation does not support `{key}`={kwargs[key]!r}; remove it.")
    if generation_config is None and kwargs.get("do_sample", True):
        # The checkpoint's sampling settings (paper: temperature 1.0, top-p 0.7) apply unless the call sets them.
        for key in ("temperature", "top_p"):
            if key not in kwargs and config.get(key) is not None:
                kwargs[key] = config[key]
                kwargs.setdefault("do_sample", True)
    input_ids = inputs if inputs is not None else kwargs.pop("input_ids")
    if base_model is None and rl_model is None:
        name = config.get("base_model_name_or_path")
        if not name:
            raise ValueError(
                "No base model: pass `base_model=` or set `base_model_name_or_path` in the checkpoint's "
                "extrapolation_config.json."
            )
        if config.get("generator", "rl") == "rl":
            base_model = _other_model(model, name)
        else:
            rl_model = _other_model(model, name)
    resolved, _ = model._prepare_generation_config(generation_config, **kwargs)
    processor = ExtrapolationLogitsProcessor(
        base_model=base_model,
        rl_model=rl_model,
        gamma=config.get("gamma", 0.0),
        selection=config.get("selection", "all"),
        tau=config.get("tau"),
        top_k=config.get("top_k"),
        prompt_attention_mask=kwargs.get("attention_mask"),
        generation_config=resolved,
    )
    processors = LogitsProcessorList([*(logits_processor or []), processor])
    with torch.inference_mode():
        output = GenerationMixin.generate(
            model, input_ids, generation_config=generation_config, logits_processor=processors, **kwargs
        )
    model.extrapolation_stats = processor.stats()
    return output
