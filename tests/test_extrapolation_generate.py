"""`generate_with_extrapolation`, `enable_extrapolation`, the LoRA single-weights path, `ExtrapolationConfig` and the
exported `custom_generate`: argument checks, unsupported modes and equality with the two-model path."""

from __future__ import annotations

import copy
import json
import warnings

import pytest
import torch
from peft import LoraConfig, get_peft_model
from tokenizers import Tokenizer, models
from transformers import (
    AutoModelForCausalLM,
    GenerationConfig,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

from hf_dlp.extrapolation import (
    CONFIG_NAME,
    ExtrapolationConfig,
    ExtrapolationLogitsProcessor,
    adapter_disabled_view,
    check_transformers_compatibility,
    disable_extrapolation,
    enable_extrapolation,
    export_custom_generate,
    generate_with_extrapolation,
)
from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm

PROMPTS = ["Q: 12 + 7?\nA: ", "Q: 3-1?", "Compute 100 + 250 please.\n"]


def peaked_model(seed: int):
    """A tiny random Qwen2 with peaked next-token distributions (scaled final norm, untied output layer)."""
    model = build_tiny_causal_lm("qwen2", "micro", seed=seed)
    generator = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        model.model.norm.weight.mul_(6.0)
        model.lm_head.weight = torch.nn.Parameter(torch.randn(model.lm_head.weight.shape, generator=generator) * 0.02)
    return model


@pytest.fixture(scope="module")
def tok():
    return build_char_tokenizer()


@pytest.fixture(scope="module")
def pair():
    return peaked_model(1), peaked_model(2)


@pytest.fixture(scope="module")
def batch(tok):
    return tok(PROMPTS, return_tensors="pt", padding=True)


# --- argument validation: once, in ExtrapolationConfig ---------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"gamma": -0.1}, r"`gamma` must be a number >= 0.0, got -0.1"),
        ({"gamma": float("nan")}, r"`gamma` must be a finite number"),
        ({"gamma": 1e39}, r"`gamma` must be a number <= 10000.0"),
        ({"gamma": "0.1"}, r"`gamma` must be a number, got '0.1' \(str\)"),
        ({"selection": "magnitude"}, r"`selection` must be one of .*'magnitude'"),
        ({"selection": "all", "tau": -0.3}, r"`selection='all'` .* takes no threshold; got `tau=-0.3`"),
        ({"selection": "delta_logp", "tau": None}, r"needs a threshold `tau` .*-0.35"),
        ({"selection": "entropy", "tau": -1.0}, r"score is never negative; got `tau=-1.0`. Use `tau >= 0`"),
        ({"selection": "random", "tau": 1.5}, r"selection probability; got `tau=1.5`"),
        ({"candidate_top_k": 0}, r"`candidate_top_k` must be an integer >= 1, got 0"),
        ({"generator": "critic"}, r"`generator` must be one of \('rl', 'base'\)"),
    ],
)
def test_invalid_settings_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ExtrapolationConfig(**kwargs)


@pytest.mark.parametrize("entry", ["processor", "wrapper", "enable"])
def test_every_entry_point_validates_through_the_config(pair, batch, entry):
    rl, base = pair
    with pytest.raises(ValueError, match=r"`gamma` must be a number <= 10000.0"):
        if entry == "processor":
            ExtrapolationLogitsProcessor(base_model=base, gamma=1e39)
        elif entry == "wrapper":
            generate_with_extrapolation(rl, base_model=base, config=ExtrapolationConfig(), gamma=1e39, **batch)
        else:
            enable_extrapolation(copy.deepcopy(rl), base_model=base, gamma=1e39)


def test_numpy_and_tensor_scalars_are_accepted():
    import numpy as np

    config = ExtrapolationConfig(gamma=np.float32(0.5), tau=torch.tensor(-0.25), candidate_top_k=np.int64(5))
    assert (config.gamma, config.tau, config.candidate_top_k) == (0.5, -0.25, 5)
    assert type(config.gamma) is float and type(config.candidate_top_k) is int


def test_unknown_override_is_refused(pair):
    _, base = pair
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['gama'\]"):
        ExtrapolationLogitsProcessor(base_model=base, gama=0.1)
    with pytest.raises(TypeError, match=r"has no field\(s\) \['gama'\]"):
        ExtrapolationConfig().with_overrides(gama=0.1)


def test_generator_role_must_match_the_model_given(pair):
    rl, base = pair
    with pytest.raises(ValueError, match=r"`generator='base'` in the config, but `base_model=` was given"):
        ExtrapolationLogitsProcessor(base_model=base, config=ExtrapolationConfig(generator="base"))
    ExtrapolationLogitsProcessor(rl_model=rl, config=ExtrapolationConfig(generator="base"))


# --- the candidate set is `candidate_top_k`; `top_k` is generate's own (hf_dlp 0.3.0) --------------------------------
def test_top_k_keyword_is_generates_own_top_k(pair, batch):
    rl, base = pair
    never = ExtrapolationConfig(gamma=0.5, tau=-1e9, candidate_top_k=50)
    sampling = dict(**batch, do_sample=True, max_new_tokens=8)
    torch.manual_seed(4)
    plain = rl.generate(**sampling, top_k=3)
    torch.manual_seed(4)
    ours = generate_with_extrapolation(rl, base_model=base, config=never, **sampling, top_k=3)
    assert torch.equal(plain, ours)
    torch.manual_seed(4)
    assert not torch.equal(plain, generate_with_extrapolation(rl, base_model=base, config=never, **sampling))


def test_top_k_is_not_a_field_of_the_extrapolation_config():
    with pytest.raises(TypeError, match="unexpected keyword argument 'top_k'"):
        ExtrapolationConfig(top_k=7)
    with pytest.raises(TypeError, match=r"ExtrapolationConfig has no field\(s\) \['top_k'\]"):
        ExtrapolationConfig().with_overrides(top_k=7)


def test_generates_own_top_k_goes_in_the_generation_config(pair, batch):
    rl, base = pair
    config = GenerationConfig(do_sample=True, top_k=3, max_new_tokens=8)
    never = ExtrapolationConfig(gamma=0.5, tau=-1e9, candidate_top_k=50)
    torch.manual_seed(4)
    plain = rl.generate(**batch, generation_config=config)
    torch.manual_seed(4)
    ours = generate_with_extrapolation(rl, base_model=base, config=never, **batch, generation_config=config)
    assert torch.equal(plain, ours)


def test_config_files_of_hf_dlp_0_1_load():
    old = {
        "base_model_name_or_path": "b",
        "gamma": 0.2,
        "selection": "delta_logp",
        "tau": -0.3,
        "top_k": 20,
        "top_p": 0.7,
        "temperature": 1.0,
        "generator": "rl",
        "hf_dlp_version": "0.1.0",
    }
    with pytest.warns(FutureWarning, match="sampling defaults live in its generation_config.json"):
        assert ExtrapolationConfig.from_dict(old).candidate_top_k == 20


# --- the cache argument and the private transformers pieces ---------------------------------------------------------
def test_no_past_key_values_deprecation_warning(pair, batch, monkeypatch):
    from transformers.utils import generic

    rl, base = pair
    logged = []
    monkeypatch.setattr(generic.logger, "warning_once", lambda message, *args, **kwargs: logged.append(message))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        generate_with_extrapolation(rl, base_model=base, gamma=0.5, tau=2.0, **batch, max_new_tokens=4)
    messages = [str(w.message) for w in caught] + [str(m) for m in logged]
    assert not [m for m in messages if "past_key_values" in m], messages


def test_transformers_compatibility_check(monkeypatch):
    check_transformers_compatibility()
    uncached = check_transformers_compatibility.__wrapped__  # the check itself, without the once-per-process cache
    # The module objects the check reads (another test may have re-imported transformers in `sys.modules`).
    transformers, GenerationMixin = (uncached.__globals__[name] for name in ("transformers", "GenerationMixin"))
    monkeypatch.setattr(transformers, "__version__", "9.0.0")
    with pytest.raises(RuntimeError, match=r"transformers 9.0.0 is outside the tested range >=5.24,<5.25"):
        uncached()
    monkeypatch.undo()
    monkeypatch.delattr(GenerationMixin, "_get_logits_processor")
    with pytest.raises(RuntimeError, match=r"`GenerationMixin._get_logits_processor` is gone"):
        uncached()


def test_processor_needs_exactly_one_other_model(pair):
    rl, base = pair
    with pytest.raises(ValueError, match="exactly one of `base_model`"):
        ExtrapolationLogitsProcessor(gamma=0.1)
    with pytest.raises(ValueError, match="exactly one of `base_model`"):
        ExtrapolationLogitsProcessor(base_model=base, rl_model=rl, gamma=0.1)


def test_processor_checks_masks(pair, batch):
    _, base = pair
    with pytest.raises(ValueError, match="right padded"):
        ExtrapolationLogitsProcessor(base_model=base, prompt_attention_mask=batch.attention_mask.flip(-1))
    with pytest.raises(ValueError, match=r"must be \(batch, prompt_len\)"):
        ExtrapolationLogitsProcessor(base_model=base, prompt_attention_mask=batch.attention_mask[0])
    processor = ExtrapolationLogitsProcessor(base_model=base, prompt_attention_mask=batch.attention_mask[:, 1:])
    with pytest.raises(ValueError, match="pass the mask of the same prompts"):
        processor(batch.input_ids, torch.zeros(3, base.config.vocab_size))


# --- unsupported modes ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_beams": 2}, r"does not support beam search \(`num_beams=2`\)"),
        ({"prompt_lookup_num_tokens": 3}, "does not support prompt-lookup decoding"),
        ({"cache_implementation": "paged"}, "does not support continuous batching"),
        ({"use_cache": False}, "needs `use_cache=True`"),
        ({"custom_generate": "some/repo"}, "does not support a custom decoding method"),
    ],
)
def test_unsupported_generation_modes_raise(pair, batch, kwargs, match):
    rl, base = pair
    with pytest.raises(ValueError, match=match):
        generate_with_extrapolation(rl, base_model=base, gamma=0.1, **batch, max_new_tokens=2, **kwargs)


def test_assisted_decoding_raises(pair, batch):
    rl, base = pair
    with pytest.raises(ValueError, match="does not support assisted decoding"):
        generate_with_extrapolation(rl, base_model=base, gamma=0.1, **batch, max_new_tokens=2, assistant_model=base)


def test_right_padding_raises(pair, tok):
    rl, base = pair
    right = build_char_tokenizer(padding_side="right")(PROMPTS, return_tensors="pt", padding=True)
    with pytest.raises(ValueError, match="right padded.*padding_side = 'left'"):
        generate_with_extrapolation(rl, base_model=base, gamma=0.1, **right, max_new_tokens=2)


def test_encoder_decoder_models_raise(pair, batch):
    rl, _ = pair
    t5 = T5ForConditionalGeneration(T5Config(vocab_size=106, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=2))
    with pytest.raises(ValueError, match="decoder-only causal LMs"):
        generate_with_extrapolation(t5, base_model=rl, gamma=0.1, **batch, max_new_tokens=2)
    with pytest.raises(ValueError, match="decoder-only causal LMs"):
        ExtrapolationLogitsProcessor(base_model=t5, gamma=0.1)


def test_different_tokenizers_raise(pair, tok, batch):
    rl, base = pair
    vocab = tok.get_vocab()
    swapped = {**vocab, "a": vocab["b"], "b": vocab["a"]}  # same size, two ids exchanged
    other = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel(vocab=swapped, unk_token="<unk>")), pad_token="<pad>"
    )
    with pytest.raises(ValueError, match="tokenizers differ on 2 of their .* shared ids"):
        generate_with_extrapolation(rl, base_model=base, gamma=0.1, tokenizer=tok, other_tokenizer=other, **batch)


def test_missing_prompts_or_other_model_raise(pair, batch):
    rl, _ = pair
    with pytest.raises(ValueError, match="Pass the prompts as `input_ids`"):
        generate_with_extrapolation(rl, base_model=rl, gamma=0.1)
    with pytest.raises(ValueError, match="Give the other model"):
        generate_with_extrapolation(rl, gamma=0.1, **batch)


# --- enable_extrapolation -------------------------------------------------------------------------------------------
def test_enable_extrapolation_makes_plain_generate_extrapolate(pair, batch):
    rl, base = pair
    rl = copy.deepcopy(rl)
    settings = dict(gamma=0.5, selection="delta_logp", tau=2.0, candidate_top_k=5)
    expected, stats = generate_with_extrapolation(
        rl, base_model=base, **settings, **batch, max_new_tokens=8, do_sample=False, return_stats=True
    )
    plain = rl.generate(**batch, max_new_tokens=8, do_sample=False)
    enable_extrapolation(rl, base_model=base, **settings)
    got = rl.generate(**batch, max_new_tokens=8, do_sample=False)
    assert torch.equal(got, expected) and not torch.equal(got, plain)
    assert rl.extrapolation_stats == stats
    disable_extrapolation(rl)
    assert torch.equal(rl.generate(**batch, max_new_tokens=8, do_sample=False), plain)
    with pytest.raises(ValueError, match="`return_stats` is not an option"):
        enable_extrapolation(rl, base_model=base, return_stats=True)
    with pytest.raises(ValueError, match="replaces the rule 'delta_logp'.*pass a `tau` for 'kl'"):
        enable_extrapolation(rl, base_model=base, selection="kl")


# --- LoRA: one set of weights ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lora_pair():
    """(LoRA RL model in eval mode, a separate copy of its base weights)."""
    base = peaked_model(3)
    base_copy = copy.deepcopy(base)
    lora = get_peft_model(
        base, LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)
    ).eval()
    with torch.no_grad():  # make the adapter change the model visibly
        for name, parameter in lora.named_parameters():
            if "lora_B" in name:
                parameter.mul_(20.0)
    return lora, base_copy


def test_lora_adapter_disabled_path_equals_two_model_path(lora_pair, batch):
    lora, base_copy = lora_pair
    merged = copy.deepcopy(lora).merge_and_unload()
    settings = dict(
        gamma=0.5,
        selection="delta_logp",
        tau=1.0,
        candidate_top_k=10,
        **batch,
        max_new_tokens=8,
        do_sample=False,
        return_stats=True,
    )
    two_models, two_stats = generate_with_extrapolation(merged, base_model=base_copy, **settings)
    one_weights, one_stats = generate_with_extrapolation(lora, **settings)  # base = adapter disabled
    explicit, _ = generate_with_extrapolation(lora, base_model=adapter_disabled_view(lora), **settings)
    assert torch.equal(two_models, one_weights) and torch.equal(one_weights, explicit)
    assert two_stats.num_selected == one_stats.num_selected and one_stats.replacement_ratio > 0
    assert not torch.equal(one_weights, merged.generate(**batch, max_new_tokens=8, do_sample=False))


@pytest.mark.parametrize("selection, tau", [("delta_logp", 1.0), ("all", None)])
@pytest.mark.parametrize(
    "sampling", [{"do_sample": False}, {"do_sample": True, "top_p": 0.9, "num_return_sequences": 2}]
)
def test_lora_one_forward_equals_two_calls(lora_pair, batch, selection, tau, sampling):
    lora, _ = lora_pair
    settings = dict(
        gamma=0.5,
        selection=selection,
        tau=tau,
        candidate_top_k=10,
        **batch,
        max_new_tokens=8,
        return_stats=True,
        **sampling,
    )
    torch.manual_seed(11)
    two_calls, two_stats = generate_with_extrapolation(lora, **settings)
    torch.manual_seed(11)
    one_forward, one_stats = generate_with_extrapolation(lora, one_forward=True, **settings)
    assert torch.equal(two_calls, one_forward)
    assert two_stats == one_stats


def test_lora_one_forward_errors(lora_pair, pair, batch):
    lora, base_copy = lora_pair
    with pytest.raises(ValueError, match="`one_forward=True` needs `model` to be a peft LoRA model and no"):
        generate_with_extrapolation(lora, base_model=base_copy, one_forward=True, **batch, max_new_tokens=2)
    with pytest.raises(ValueError, match="`one_forward=True` needs"):
        generate_with_extrapolation(pair[0], rl_model=pair[1], one_forward=True, **batch, max_new_tokens=2)
    with pytest.raises(ValueError, match="returns token ids only"):
        generate_with_extrapolation(lora, one_forward=True, **batch, max_new_tokens=2, return_dict_in_generate=True)
    lora.train()
    try:
        with pytest.raises(ValueError, match=r"need the model in eval mode; call `model.eval\(\)`"):
            generate_with_extrapolation(lora, one_forward=True, **batch, max_new_tokens=2)
    finally:
        lora.eval()


def test_adapter_disabled_view_rejects_plain_models(pair):
    with pytest.raises(ValueError, match="must be a peft model with a LoRA adapter"):
        adapter_disabled_view(pair[0])


# --- ExtrapolationConfig --------------------------------------------------------------------------------------------
def test_config_round_trip_and_version(tmp_path):
    config = ExtrapolationConfig(
        base_model_name_or_path="Qwen/Qwen3-14B-Base", gamma=0.1, tau=-0.35, candidate_top_k=40
    )
    file = config.save_pretrained(tmp_path / "checkpoint")
    data = json.loads(file.read_text())
    assert file.name == CONFIG_NAME and "hf_dlp_version" in data
    assert ExtrapolationConfig.from_pretrained(tmp_path / "checkpoint") == config
    assert ExtrapolationConfig.from_pretrained(file) == config
    with pytest.warns(UserWarning, match=r"unknown extrapolation config keys \['future_option'\]"):
        assert ExtrapolationConfig.from_dict({**data, "future_option": 1}) == config
    assert ExtrapolationConfig(selection="all").tau is None
    assert ExtrapolationConfig(tau="none", selection="all").tau is None


def test_config_from_missing_folder_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="No extrapolation_config.json"):
        ExtrapolationConfig.from_pretrained(tmp_path)


# --- exported custom_generate ---------------------------------------------------------------------------------------
def test_exported_custom_generate_loads_from_a_local_folder(tmp_path, pair, tok, batch):
    rl, base = pair
    base.save_pretrained(tmp_path / "base")
    rl_folder = tmp_path / "rl"
    rl.save_pretrained(rl_folder)
    tok.save_pretrained(rl_folder)
    config = ExtrapolationConfig(base_model_name_or_path=str(tmp_path / "base"), gamma=0.5, tau=2.0, candidate_top_k=5)
    script = export_custom_generate(rl_folder, config)
    assert script.relative_to(rl_folder).as_posix() == "custom_generate/generate.py"
    loaded = AutoModelForCausalLM.from_pretrained(rl_folder)
    expected, stats = generate_with_extrapolation(
        loaded,
        base_model=base,
        **config.processor_kwargs(),
        **batch,
        max_new_tokens=8,
        do_sample=False,
        return_stats=True,
    )
    got = loaded.generate(
        **batch, custom_generate=str(rl_folder), trust_remote_code=True, max_new_tokens=8, do_sample=False
    )
    assert torch.equal(got, expected) and loaded.extrapolation_stats.num_selected == stats.num_selected
    with pytest.raises(ValueError, match="trust_remote_code"):
        loaded.generate(**batch, custom_generate=str(rl_folder), max_new_tokens=2)
    # Overrides at call time: gamma=0 and a never-firing threshold give the RL model's own greedy output.
    plain = loaded.generate(**batch, max_new_tokens=8, do_sample=False)
    overridden = loaded.generate(
        **batch, custom_generate=str(rl_folder), trust_remote_code=True, max_new_tokens=8, do_sample=False, tau=-1e9
    )
    assert torch.equal(overridden, plain)
    # A call without sampling settings samples with the checkpoint's generation_config.json (temperature 1.0,
    # top-p 0.7, written by the export), as plain `generate` would.
    assert (loaded.generation_config.do_sample, loaded.generation_config.top_p) == (True, 0.7)
    torch.manual_seed(3)
    sampled = loaded.generate(**batch, custom_generate=str(rl_folder), trust_remote_code=True, max_new_tokens=8)
    torch.manual_seed(3)
    reference = generate_with_extrapolation(
        loaded, base_model=base, **config.processor_kwargs(), **batch, max_new_tokens=8, do_sample=True,
        temperature=1.0, top_p=0.7,
    )  # fmt: skip
    assert torch.equal(sampled, reference)
    torch.manual_seed(3)
    own = loaded.generate(**batch, custom_generate=str(rl_folder), trust_remote_code=True, max_new_tokens=8, top_p=0.9)
    torch.manual_seed(3)
    assert torch.equal(own, generate_with_extrapolation(
        loaded, base_model=base, **config.processor_kwargs(), **batch, max_new_tokens=8, do_sample=True, top_p=0.9
    ))  # fmt: skip


def test_config_files_of_0_2_load_without_their_sampling_keys(tmp_path):
    (tmp_path / CONFIG_NAME).write_text('{"gamma": 0.2, "tau": -0.4, "temperature": 0.6, "top_p": 0.9}')
    with pytest.warns(FutureWarning, match=r"Ignoring \['temperature', 'top_p'\].*generation_config.json.*0.4"):
        config = ExtrapolationConfig.from_pretrained(tmp_path)
    assert (config.gamma, config.tau) == (0.2, -0.4) and not hasattr(config, "temperature")
    with pytest.raises(ValueError, match="`top_p` must be a number <= 1"):
        export_custom_generate(tmp_path, config, top_p=1.5)
    with pytest.raises(ValueError, match="`top_p` must be a number > 0.0"):
        export_custom_generate(tmp_path, config, top_p=0.0)
    with pytest.raises(ValueError, match="`temperature` must be a number > 0.0.*temperature=None, top_p=None"):
        export_custom_generate(tmp_path, config, temperature=0.0)
    assert not (tmp_path / "generation_config.json").exists()  # refused before anything was written


def test_export_without_config_raises(tmp_path):
    with pytest.raises(ValueError, match="No `config` given and no extrapolation_config.json"):
        export_custom_generate(tmp_path)


def test_generation_config_settings_reach_the_candidate_draw(pair, batch):
    rl, base = pair
    config = GenerationConfig(do_sample=True, temperature=0.7, top_p=0.8, max_new_tokens=6)
    torch.manual_seed(5)
    plain = rl.generate(**batch, generation_config=config)
    torch.manual_seed(5)
    ours = generate_with_extrapolation(
        rl, base_model=base, gamma=1.0, selection="delta_logp", tau=-1e9, **batch, generation_config=config
    )
    assert torch.equal(plain, ours)


def test_selective_processor_without_generation_config_warns(pair):
    _, base = pair
    with pytest.warns(UserWarning, match="No `generation_config` given: candidates are drawn greedily"):
        ExtrapolationLogitsProcessor(base_model=base, gamma=0.1, selection="delta_logp", tau=-0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ExtrapolationLogitsProcessor(base_model=base, gamma=0.1, selection="all")


def test_exported_custom_generate_takes_the_config_and_overrides(tmp_path, pair, tok, batch):
    rl, base = pair
    folder = tmp_path / "rl"
    rl.save_pretrained(folder)
    export_custom_generate(folder, ExtrapolationConfig(gamma=0.5, tau=2.0, candidate_top_k=5))
    loaded = AutoModelForCausalLM.from_pretrained(folder)
    common = dict(**batch, max_new_tokens=6, do_sample=False)
    remote = dict(custom_generate=str(folder), trust_remote_code=True, base_model=base, **common)
    expected = generate_with_extrapolation(loaded, base_model=base, gamma=0.5, tau=2.0, candidate_top_k=3, **common)
    assert torch.equal(loaded.generate(**remote, candidate_top_k=3), expected)
    given = ExtrapolationConfig(gamma=0.5, tau=2.0, candidate_top_k=3)
    assert torch.equal(loaded.generate(**remote, extrapolation_config=given), expected)
    with pytest.raises(ValueError, match=r"`gamma` must be a number <= 10000.0"):
        loaded.generate(**remote, gamma=1e39)
    requirements = (folder / "custom_generate" / "requirements.txt").read_text()
    assert "transformers>=5.24,<5.25" in requirements


def test_exported_custom_generate_overrides_the_rule_with_its_own_threshold(tmp_path, pair, batch):
    rl, base = pair
    folder = tmp_path / "rl"
    rl.save_pretrained(folder)
    export_custom_generate(folder, ExtrapolationConfig(gamma=0.5, selection="delta_logp", tau=-0.5))
    loaded = AutoModelForCausalLM.from_pretrained(folder)
    common = dict(**batch, max_new_tokens=6, do_sample=False)
    remote = dict(custom_generate=str(folder), trust_remote_code=True, base_model=base, **common)
    dense = generate_with_extrapolation(loaded, base_model=base, gamma=0.5, selection="all", **common)
    assert torch.equal(loaded.generate(**remote, selection="all"), dense)  # the saved τ is dropped, not refused
    assert torch.equal(loaded.generate(**remote, selection="all", tau=None), dense)
    with pytest.raises(ValueError, match="`tau=None`"):  # None is an override: the saved τ does not come back
        loaded.generate(**remote, tau=None)
    with pytest.raises(ValueError, match="replaces the rule 'delta_logp'.*pass a `tau` for 'kl'"):
        loaded.generate(**remote, selection="kl")
    by_kl = generate_with_extrapolation(loaded, base_model=base, gamma=0.5, selection="kl", tau=0.1, **common)
    assert torch.equal(loaded.generate(**remote, selection="kl", tau=0.1), by_kl)
