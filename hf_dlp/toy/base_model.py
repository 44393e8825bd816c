"""The toy "base" model: a tiny LM fine-tuned on the arithmetic task with a share of wrong worked answers.

It is right sometimes but not mostly, so that RL with a verifiable reward has something to improve, as a
pretrained base model has on real math. The result is cached on disk, keyed by its settings.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerFast

from ..cpu_kernels import cpu_kernels
from ..model_specs import default_cache_dir
from .models import build_tiny_causal_lm
from .settings import BaseModelSettings
from .task import format_solution, make_arithmetic_dataset
from .tokenizer import build_char_tokenizer, load_char_tokenizer

SETTINGS_FILE = "hf_dlp_base_model.json"


def _training_texts(settings: BaseModelSettings, tokenizer) -> list[tuple[str, str]]:
    """(prompt text, completion text) pairs; a share of completions carry a wrong result."""
    rng = random.Random(settings.seed)
    dataset = make_arithmetic_dataset(
        level=settings.level, num_examples=settings.num_train_examples, seed=settings.seed
    )
    pairs = []
    for row in dataset:
        answer = int(row["answer"])
        solution = row["solution"]
        if rng.random() < settings.wrong_answer_share:
            wrong = answer + rng.choice((-3, -2, -1, 1, 2, 3))
            steps = solution.split(". The answer is")[0].split(", ")
            steps[-1] = steps[-1].rsplit("= ", 1)[0] + f"= {wrong}"
            solution = format_solution(steps, wrong)
        if rng.random() < settings.chat_share:
            messages = [{"role": "user", "content": row["question"]}]
            prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            prompt = row["prompt"]
        pairs.append((prompt, solution + tokenizer.eos_token))
    return pairs


def _encode(pairs: list[tuple[str, str]], tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded input ids and labels (-100 on prompt and padding)."""
    encoded = [
        (tokenizer(p, add_special_tokens=False).input_ids, tokenizer(c, add_special_tokens=False).input_ids)
        for p, c in pairs
    ]
    length = max(len(p) + len(c) for p, c in encoded)
    input_ids = torch.full((len(encoded), length), tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full((len(encoded), length), -100, dtype=torch.long)
    for row, (prompt, completion) in enumerate(encoded):
        ids = prompt + completion
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, len(prompt) : len(ids)] = torch.tensor(completion)
    return input_ids, labels


def train_toy_base_model(
    settings: BaseModelSettings, progress: bool = True
) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """Fine-tune a fresh tiny model on the toy task (plain PyTorch loop on CPU); deterministic under the seed."""
    tokenizer = build_char_tokenizer()
    model = build_tiny_causal_lm(settings.arch, settings.size, seed=settings.seed, tokenizer=tokenizer)
    input_ids, labels = _encode(_training_texts(settings, tokenizer), tokenizer)
    attention_mask = (input_ids != tokenizer.pad_token_id).long()
    generator = torch.Generator().manual_seed(settings.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=0.01)
    warmup = max(1, settings.max_steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min(
            (step + 1) / warmup, max(0.0, (settings.max_steps - step) / max(1, settings.max_steps - warmup))
        ),
    )
    model.train()
    bar = tqdm(range(settings.max_steps), desc="toy base model (SFT)", disable=not progress)
    for _ in bar:
        index = torch.randint(0, input_ids.shape[0], (settings.batch_size,), generator=generator)
        mask = attention_mask[index]
        width = int(mask.sum(1).max())
        loss = model(
            input_ids=input_ids[index, :width], attention_mask=mask[:, :width], labels=labels[index, :width]
        ).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return model.eval(), tokenizer


def _kernel_tag() -> str:
    """`avx2-mklavx2` for the pinned kernels, `avx512` for ATen's AVX-512 ones and MKL's own choice, and so on."""
    kernels = cpu_kernels()
    return kernels["aten"].lower() + (f"-mkl{kernels['mkl_cbwr'].lower()}" if kernels["mkl_cbwr"] else "")


def make_toy_base_model(
    settings: BaseModelSettings | None = None,
    *,
    cache_dir: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Make (or reuse from cache) the toy base model and return the folder it is saved in.

    The cache folder is named by the settings and by the CPU kernels in effect (`hf_dlp.cpu_kernels`): a model trained
    with other kernels differs in its last bits, and so do the numbers of everything trained from it.

    The folder holds the model, its tokenizer and `hf_dlp_base_model.json` (the settings); load it with
    `AutoModelForCausalLM.from_pretrained(path)` and `load_char_tokenizer(path)`, or `load_toy_base_model(path)`.

    Args:
        settings (`BaseModelSettings`, *optional*): what to train; defaults to `BaseModelSettings()`.
        cache_dir (`str` or `Path`, *optional*): cache root; defaults to `default_cache_dir()`.
        force (`bool`, *optional*, defaults to `False`): retrain even when a cached copy exists.
        progress (`bool`, *optional*, defaults to `True`): show a progress bar.

    Examples:

    >>> import contextlib, io, tempfile
    >>> from hf_dlp.toy import BaseModelSettings, make_toy_base_model
    >>> settings = BaseModelSettings(size="nano", num_train_examples=64, max_steps=2, batch_size=4)
    >>> with contextlib.redirect_stdout(io.StringIO()):  # DeepSpeed may print a notice on the first save
    ...     path = make_toy_base_model(settings, cache_dir=tempfile.mkdtemp(), progress=False)
    >>> sorted(p.name for p in path.iterdir())[:2]
    ['chat_template.jinja', 'config.json']
    """
    settings = settings if settings is not None else BaseModelSettings()
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = root / "toy_base" / f"{settings.cache_key()}-{_kernel_tag()}"
    if (path / SETTINGS_FILE).exists() and not force:
        return path
    model, tokenizer = train_toy_base_model(settings, progress=progress)
    temporary = path.with_name(path.name + f".tmp{os.getpid()}")
    model.save_pretrained(temporary)
    tokenizer.save_pretrained(temporary)
    (temporary / SETTINGS_FILE).write_text(json.dumps(asdict(settings), indent=2))
    if force and path.exists():
        shutil.rmtree(path)
    try:
        temporary.rename(path)  # atomic, so a half-written folder is never taken for a cached model
    except OSError:
        # Another process cached the same settings meanwhile; theirs is identical (training is deterministic).
        if not (path / SETTINGS_FILE).exists():
            raise
        shutil.rmtree(temporary)
    return path


def load_toy_base_model(path: str | Path) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """Load a model folder written by `make_toy_base_model` (or any toy model folder) with its tokenizer."""
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return model, load_char_tokenizer(str(path))
