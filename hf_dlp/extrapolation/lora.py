"""One set of weights when the RL model is a LoRA adapter: the base side is the same model with the adapter disabled.

The paper's stated cost of extrapolation is two full models at test time. When the RL policy is a peft LoRA adapter on
the base model, the base distribution is the same network with the adapter switched off, so no second copy of the
weights is needed: `adapter_disabled_view(peft_model)` is a drop-in "base model" for `ExtrapolationLogitsProcessor`
whose forward runs under `peft_model.disable_adapter()`, with its own KV cache (the adapter changes the keys/values, so
the two sides cannot share one). `generate_with_extrapolation(lora_model, one_forward=True)` goes further: one batched
forward a step for both halves (`OneForwardLoraSampler`, which hands the base half to a `SharedForwardScorer`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from transformers import DynamicCache

from .decoding import draw_next_tokens
from .scorers import SharedForwardScorer

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import PreTrainedModel


def is_lora_model(model: PreTrainedModel | PeftModel) -> bool:
    """Whether `model` is a peft model with a LoRA adapter.

    Examples:

    >>> from hf_dlp.toy import build_tiny_causal_lm
    >>> is_lora_model(build_tiny_causal_lm(size="nano"))
    False
    """
    try:
        from peft import PeftModel
    except ImportError:  # peft is a dependency, but keep the check usable without it
        return False
    if not isinstance(model, PeftModel):
        return False
    return any(
        getattr(config, "peft_type", None) == "LORA" or str(getattr(config, "peft_type", "")) == "PeftType.LORA"
        for config in model.peft_config.values()
    )


class AdapterDisabledView:
    """The base model hidden inside a peft LoRA model: calls run the peft model with its adapter disabled.

    It has the attributes `ExtrapolationLogitsProcessor` needs from a model (`config`, `device`, a forward call), and
    holds no weights of its own.

    Examples:

    >>> import torch
    >>> from peft import LoraConfig, get_peft_model
    >>> from hf_dlp.toy import build_tiny_causal_lm
    >>> base = build_tiny_causal_lm(size="nano")
    >>> reference = base(torch.tensor([[5, 6, 7]])).logits
    >>> lora = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    >>> view = AdapterDisabledView(lora)
    >>> torch.allclose(view(input_ids=torch.tensor([[5, 6, 7]])).logits, reference)
    True
    """

    def __init__(self, peft_model: PeftModel):
        if not is_lora_model(peft_model):
            raise ValueError(
                f"`peft_model` must be a peft model with a LoRA adapter, got {type(peft_model).__name__}. "
                "Wrap the RL model with `peft.PeftModel.from_pretrained(base, adapter_path)`."
            )
        self.peft_model = peft_model
        self.config = peft_model.get_base_model().config

    def get_base_model(self) -> PreTrainedModel:
        """The transformers model inside the peft model (its LoRA layers are active unless called through the view)."""
        return self.peft_model.get_base_model()

    @property
    def device(self) -> torch.device:
        return next(self.peft_model.parameters()).device

    def __call__(self, **kwargs):
        with self.peft_model.disable_adapter():
            return self.peft_model(**kwargs)


def adapter_disabled_view(peft_model: PeftModel) -> AdapterDisabledView:
    """`AdapterDisabledView(peft_model)`: pass it as `base_model=` to extrapolate with one set of weights.

    Examples:

    >>> from peft import LoraConfig, get_peft_model
    >>> from hf_dlp.toy import build_tiny_causal_lm
    >>> lora = get_peft_model(build_tiny_causal_lm(size="nano"), LoraConfig(r=2, target_modules=["q_proj"]))
    >>> adapter_disabled_view(lora).config.model_type
    'qwen2'
    """
    return AdapterDisabledView(peft_model)


class OneForwardLoraSampler:
    """A `custom_generate` callable: greedy/sampling decoding where each step runs the RL rows (adapter on) and the
    base rows (`"__base__"`, adapter off) of one peft LoRA model in a single batched forward with one KV cache.

    `generate` prepares everything (expanded inputs, processors, warpers, stopping criteria) and calls it; the base
    half of each forward goes to the extrapolation processor's `SharedForwardScorer`. The loop draws tokens as
    `GenerationMixin._sample` does (`draw_next_tokens`, same random numbers), so outputs equal the two-model path's.
    `return_dict_in_generate` is not supported (token ids are returned).
    `generate_with_extrapolation(lora_model, one_forward=True, ...)` sets it up.

    Examples:

    >>> from peft import LoraConfig, get_peft_model
    >>> from hf_dlp.extrapolation import generate_with_extrapolation
    >>> from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm
    >>> tok = build_char_tokenizer()
    >>> config = LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    >>> lora = get_peft_model(build_tiny_causal_lm(size="nano"), config).eval()
    >>> batch = tok(["Q: 1+2?", "Q: 10+7?"], return_tensors="pt", padding=True)
    >>> kwargs = dict(gamma=0.5, selection="all", **batch, max_new_tokens=4, do_sample=False)
    >>> two_calls = generate_with_extrapolation(lora, **kwargs)
    >>> one_forward = generate_with_extrapolation(lora, one_forward=True, **kwargs)
    >>> one_forward.shape, bool((one_forward == two_calls).all())
    (torch.Size([2, 12]), True)
    """

    def __init__(self, peft_model: PeftModel):
        if not is_lora_model(peft_model):
            raise ValueError(
                f"`peft_model` must be a peft model with a LoRA adapter, got {type(peft_model).__name__}."
            )
        self.peft_model = peft_model

    def _check(self, logits_processor, generation_config) -> SharedForwardScorer:
        if self.peft_model.training:
            raise ValueError(
                "peft mixed-adapter batches need the model in eval mode; call `model.eval()` before "
                "`generate_with_extrapolation(..., one_forward=True)`."
            )
        if generation_config.return_dict_in_generate:
            raise ValueError(
                "`one_forward=True` returns token ids only; set `return_dict_in_generate=False` or use "
                "`one_forward=False`."
            )
        scorers = [p.scorer for p in logits_processor if isinstance(getattr(p, "scorer", None), SharedForwardScorer)]
        if not scorers:
            raise ValueError(
                "OneForwardLoraSampler needs an ExtrapolationLogitsProcessor with a SharedForwardScorer in "
                "`logits_processor`; use `generate_with_extrapolation(lora_model, one_forward=True, ...)`."
            )
        return scorers[0]

    def __call__(self, model, input_ids, logits_processor, stopping_criteria, generation_config, **model_kwargs):
        scorer = self._check(logits_processor, generation_config)
        batch = input_ids.shape[0]
        prompt_mask = model_kwargs.get("attention_mask")
        prompt_mask = torch.ones_like(input_ids) if prompt_mask is None else prompt_mask
        names = [self.peft_model.active_adapter] * batch + ["__base__"] * batch
        mask = torch.cat([prompt_mask, prompt_mask]).long()
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
        cache = DynamicCache(config=self.peft_model.get_base_model().config)
        step_ids = torch.cat([input_ids, input_ids])
        pad = generation_config._pad_token_tensor
        has_eos = generation_config._eos_token_tensor is not None
        unfinished = torch.ones(batch, dtype=torch.long, device=input_ids.device)
        while True:
            outputs = self.peft_model(
                input_ids=step_ids,
                attention_mask=mask,
                position_ids=positions,
                cache=cache,
                use_cache=True,
                logits_to_keep=1,
                adapter_names=names,
            )
            cache = outputs.cache
            logits = outputs.logits[:, -1].to(dtype=torch.float32, device=input_ids.device)
            scorer.supply(logits[batch:])
            scores = logits_processor(input_ids, logits[:batch])
            next_tokens = draw_next_tokens(scores, do_sample=bool(generation_config.do_sample))
            if has_eos:
                next_tokens = next_tokens * unfinished + pad * (1 - unfinished)
            input_ids = torch.cat([input_ids, next_tokens[:, None]], dim=-1)
            unfinished = unfinished & ~stopping_criteria(input_ids, None)
            if unfinished.max() == 0:
                return input_ids
            step_ids = torch.cat([next_tokens, next_tokens])[:, None]
            mask = torch.cat([mask, mask.new_ones(2 * batch, 1)], dim=-1)
            positions = positions[:, -1:] + 1


__all__ = ["AdapterDisabledView", "OneForwardLoraSampler", "adapter_disabled_view", "is_lora_model"]
