"""A Hugging Face tokenizer behind the engine contract's :class:`~llm_classifier.engines.base.Tokenizer`.

Shared by every engine that runs a Hugging Face checkpoint (the transformers engine, the vLLM
engine): both tokenise with this adapter, so they feed a model the same ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


__all__ = ["HFTokenizer", "special_ids", "special_strings"]


def special_ids(tokenizer: Any) -> tuple[int, int]:
    """Return ``(end_of_answer_id, pad_id)``; the pad id never equals the end of answer.

    SmolLM2 uses ``<|im_end|>`` as both EOS and PAD; padding with it would blur where an
    answer ends, so another id is chosen for padding (it is always masked out anyway).
    """
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("The tokenizer has no end-of-sequence token; answers could not be terminated.")
    pad = tokenizer.pad_token_id
    if pad is None or pad == eos:
        candidates = [tokenizer.unk_token_id, 0, 1]
        pad = next(c for c in candidates if c is not None and c != eos)
    return int(eos), int(pad)


def special_strings(tokenizer: Any) -> tuple[str, ...]:
    """The strings the tokenizer parses into special tokens, longest first.

    Its special tokens (BOS, EOS, PAD, ...) and every added token marked special
    (``<|im_start|>``, ``<repo_name>``, ...).
    """
    strings = set(getattr(tokenizer, "all_special_tokens", None) or ())
    for added in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        if getattr(added, "special", False):
            strings.add(str(added))
    return tuple(sorted((s for s in strings if s), key=lambda s: (-len(s), s)))


class HFTokenizer:
    """Adapt a ``transformers`` tokenizer to the :class:`~llm_classifier.engines.base.Tokenizer` protocol.

    Parameters
    ----------
    tokenizer : transformers tokenizer
        Kept as :attr:`hf`.

    Attributes
    ----------
    hf : transformers tokenizer
        The wrapped tokenizer.
    end_id : int
        The tokenizer's end-of-sequence id, which ends every answer.
    pad_id : int
        An id to pad with, never :attr:`end_id` (see :func:`special_ids`).
    has_chat_template : bool
        Whether the tokenizer has a chat template.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.hf = tokenizer
        self.end_id, self._pad_id = special_ids(tokenizer)
        self.has_chat_template = bool(getattr(tokenizer, "chat_template", None))
        self.special_strings = special_strings(tokenizer)

    @property
    def pad_id(self) -> int:
        """The padding id (always masked out; never the end-of-sequence id)."""
        return self._pad_id

    def encode_text(self, text: str) -> list[int]:
        """``text`` as plain text: no special tokens added, special-token strings split into ordinary tokens."""
        return list(self.hf(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])

    def encode_texts(self, texts: Sequence[str]) -> list[list[int]]:
        """:meth:`encode_text` of each text, in one batched tokenizer call."""
        if not len(texts):
            return []
        encoded = self.hf(list(texts), add_special_tokens=False, split_special_tokens=True)["input_ids"]
        return [list(ids) for ids in encoded]

    def encode_prompt(self, text: str, *, start: bool) -> list[int]:
        """Library-rendered ``text``, special tokens parsed; with ``start`` the model's begin token first.

        With ``start``, the tokenizer's own special tokens are added; an end-of-sequence token it
        appends is dropped (unless ``text`` ends with it), and so is a begin token doubled by a
        chat template that already wrote it.
        """
        if not start:
            return list(self.hf(text, add_special_tokens=False)["input_ids"]) if text else []
        ids = list(self.hf(text, add_special_tokens=True)["input_ids"])
        eos = self.hf.eos_token_id
        while ids and eos is not None and ids[-1] == eos and not text.endswith(str(self.hf.eos_token)):
            ids.pop()  # some tokenizers append EOS to every encoding
        bos = self.hf.bos_token_id
        if bos is not None and len(ids) >= 2 and ids[0] == bos and ids[1] == bos:
            ids.pop(0)  # the chat template already wrote BOS
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids``, special tokens left out."""
        return self.hf.decode(list(ids), skip_special_tokens=True)

    def render_chat(self, messages: Sequence[dict[str, str]]) -> str:
        """The model's chat template applied to ``messages``, ending with the assistant's turn header."""
        return self.hf.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
