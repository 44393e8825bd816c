"""A character-level tokenizer built locally with `tokenizers`, so nothing is downloaded."""

from __future__ import annotations

import string

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (PAD_TOKEN, UNK_TOKEN, BOS_TOKEN, EOS_TOKEN, IM_START, IM_END)

# Printable ASCII (space included) plus newline and tab: every character of the toy task and of LaTeX answers.
CHARACTERS = tuple(dict.fromkeys(string.printable))

# ChatML-like template. The assistant turn ends with `<|im_end|>`, which is also the eos token, so a chat
# completion stops where the template closes the turn.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_char_tokenizer(padding_side: str = "left") -> PreTrainedTokenizerFast:
    """Build the toy world's character-level tokenizer.

    Every printable ASCII character, newline and tab is one token; anything else maps to `<unk>`. The tokenizer has
    pad/bos/eos tokens, pads on the left (what batched generation needs) and carries a ChatML-style chat template
    whose turns end with the eos token `<|im_end|>`.

    Args:
        padding_side (`str`, *optional*, defaults to `"left"`):
            `"left"` for generation, `"right"` for training code that wants it.

    Examples:

    >>> from hf_dlp.toy import build_char_tokenizer
    >>> tok = build_char_tokenizer()
    >>> ids = tok("12 + 3 = 15").input_ids
    >>> len(ids), tok.decode(ids)
    (11, '12 + 3 = 15')
    >>> tok.padding_side, tok.pad_token, tok.eos_token
    ('left', '<pad>', '<|im_end|>')
    """
    if padding_side not in ("left", "right"):
        raise ValueError(f"`padding_side` must be 'left' or 'right', got {padding_side!r}.")
    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS + CHARACTERS)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK_TOKEN))
    # Split into single characters; regex "." with DOTALL semantics is spelled [\s\S] so newlines survive.
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens(list(SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        bos_token=BOS_TOKEN,
        eos_token=IM_END,
        padding_side=padding_side,
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
        model_max_length=4096,
    )


def load_char_tokenizer(path: str) -> PreTrainedTokenizerFast:
    """Load a saved toy tokenizer without the `AutoTokenizer` trap.

    `AutoTokenizer` on a folder whose `config.json` says `model_type: qwen2` returns `Qwen2Tokenizer`, whose
    pre-tokenizer silently drops spaces from character-level text. `PreTrainedTokenizerFast` keeps the saved one.
    """
    return PreTrainedTokenizerFast.from_pretrained(path)
