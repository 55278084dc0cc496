"""Token ids of prompts and answers, built the same way at fit and at predict time.

A prompt is ``prefix + text + suffix`` (see :func:`llm_classifier.prompts.split_template`).
The three parts are tokenised separately and concatenated, and an answer is
tokenised on its own and followed by the end-of-turn token. So the boundary between
prompt and answer never depends on how a tokenizer would merge them, and a long text
is cut inside the text, never in the instruction or the answer: ``truncation`` says
which part of it is kept (its beginning, its end, or both ends).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._logging import warn_caller


#: How an over-long text can be cut, and what of it is kept (as the warning words it).
KEPT_PART = {"head": "their beginning", "tail": "their end", "head+tail": "their beginning and end"}
TRUNCATIONS = tuple(KEPT_PART)

#: ``truncation="head+tail"`` keeps this share of the budget from the beginning and the rest
#: from the end: 128 + 382 of 510 tokens, the best split for BERT on long reviews and news
#: in Sun et al. (2019), "How to Fine-Tune BERT for Text Classification?".
HEAD_SHARE = 0.25


def check_truncation(truncation: str) -> None:
    """Raise ``ValueError`` unless ``truncation`` is one of :data:`TRUNCATIONS`."""
    if truncation not in KEPT_PART:
        raise ValueError(f"truncation must be one of {TRUNCATIONS}, got {truncation!r}")


def truncate(ids: Sequence[int], budget: int, truncation: str = "head") -> list[int]:
    """The ``budget`` tokens of ``ids`` that ``truncation`` keeps (all of them when they fit).

    ``"head"`` keeps the first ``budget`` tokens, ``"tail"`` the last, ``"head+tail"`` the
    first ``HEAD_SHARE`` of the budget (at least one token) and the end for the rest.
    """
    check_truncation(truncation)
    ids = list(ids)
    if len(ids) <= budget:
        return ids
    if truncation == "head":
        return ids[:budget]
    if truncation == "tail":
        return ids[len(ids) - budget:]
    n_head = max(1, int(budget * HEAD_SHARE))
    return ids[:n_head] + ids[len(ids) - (budget - n_head):]


@dataclass
class EncodedPrompts:
    """Prompt token ids and how many texts had to be shortened."""

    ids: list[list[int]]
    n_truncated: int


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


def encode_answers(tokenizer: Any, answers: Sequence[str]) -> list[list[int]]:
    """Token ids of each answer followed by the end-of-answer token."""
    eos, _ = special_ids(tokenizer)
    encoded = []
    for answer in answers:
        ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
        encoded.append(list(ids) + [eos])
    seen: dict[tuple[int, ...], str] = {}
    for answer, ids in zip(answers, encoded):
        key = tuple(ids)
        if key in seen:
            raise ValueError(
                f"The answers {seen[key]!r} and {answer!r} tokenise to the same ids; give the classes "
                "distinct answers with a verbalizer."
            )
        seen[key] = answer
    return encoded


def _prefix_ids(tokenizer: Any, prefix: str) -> list[int]:
    ids = list(tokenizer(prefix, add_special_tokens=True)["input_ids"])
    eos = tokenizer.eos_token_id
    while ids and eos is not None and ids[-1] == eos and not prefix.endswith(str(tokenizer.eos_token)):
        ids.pop()  # some tokenizers append EOS to every encoding
    bos = tokenizer.bos_token_id
    if bos is not None and len(ids) >= 2 and ids[0] == bos and ids[1] == bos:
        ids.pop(0)  # the chat template already wrote BOS
    return ids


class PromptEncoder:
    """Encode texts into prompt ids for one template rendering.

    Parameters
    ----------
    tokenizer : transformers tokenizer
    prefix, suffix : str
        The rendered template before and after the input text.
    max_length : int
        Maximum total length of prompt plus the longest answer.
    max_answer_length : int
        Length of the longest answer in tokens (end-of-answer token included).
    truncation : {"head", "tail", "head+tail"}, default="head"
        The part of an over-long text that is kept (see :func:`truncate`).
    start_token : bool, default=True
        Whether the encoding starts with the tokenizer's start token (when it adds one).
        False for texts that continue another prompt (``direction="channel"``).
    """

    def __init__(self, tokenizer: Any, prefix: str, suffix: str, max_length: int, max_answer_length: int,
                 truncation: str = "head", start_token: bool = True):
        check_truncation(truncation)
        self.tokenizer = tokenizer
        self.truncation = truncation
        if start_token:
            self.prefix_ids = _prefix_ids(tokenizer, prefix)
        else:
            self.prefix_ids = list(tokenizer(prefix, add_special_tokens=False)["input_ids"]) if prefix else []
        self.suffix_ids = list(tokenizer(suffix, add_special_tokens=False)["input_ids"]) if suffix else []
        self.budget = max_length - len(self.prefix_ids) - len(self.suffix_ids) - max_answer_length
        if self.budget < 1:
            raise ValueError(
                f"The 'max_length' parameter of LLMClassifier ({max_length}) leaves no room for the text: "
                f"the prompt template takes {len(self.prefix_ids) + len(self.suffix_ids)} tokens and the "
                f"longest answer {max_answer_length}. Increase max_length or shorten the template."
            )

    def encode(self, texts: Sequence[str], warn: bool = True) -> EncodedPrompts:
        """Encode ``texts``; over-long texts are cut as ``truncation`` says, with one warning."""
        body = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"] if len(texts) else []
        ids, n_truncated = [], 0
        for text_ids in body:
            if len(text_ids) > self.budget:
                text_ids = truncate(text_ids, self.budget, self.truncation)
                n_truncated += 1
            ids.append(self.prefix_ids + list(text_ids) + self.suffix_ids)
        if n_truncated and warn:
            warn_caller(self.truncation_message(n_truncated, len(texts)))
        return EncodedPrompts(ids, n_truncated)

    def truncation_message(self, n_truncated: int, n_texts: int) -> str:
        """The warning about ``n_truncated`` of ``n_texts`` texts cut to fit."""
        return (
            f"{n_truncated} of {n_texts} texts are longer than max_length allows "
            f"({self.budget} text tokens) and were truncated to {KEPT_PART[self.truncation]} "
            f"(truncation={self.truncation!r})."
        )
