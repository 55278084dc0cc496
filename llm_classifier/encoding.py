"""Token ids of prompts and answers, built the same way at fit and at predict time.

A prompt is ``prefix + text + suffix`` (see :func:`llm_classifier.plugins.prompts.split_template`).
The three parts are encoded separately and concatenated, and an answer is encoded on its
own and followed by the end-of-answer token. So the boundary between prompt and answer
never depends on how a tokenizer would merge them, and a long text is cut inside the text,
never in the instruction or the answer: ``truncation`` says which part of it is kept.

User data (texts, answers) is encoded with the engine tokenizer's ``encode_text``: plain
text, so no string in it can become a special or control token. The template's own
markup (prefix and suffix) is encoded with ``encode_prompt``, where special tokens are
real. Everything here goes through the :class:`~llm_classifier.engines.base.Tokenizer`
protocol, so it serves every engine.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ._logging import warn_caller
from .engines.base import Tokenizer

#: How an over-long text can be cut, and what of it is kept (as the warning words it).
KEPT_PART = {"head": "their beginning", "tail": "their end", "head+tail": "their beginning and end"}
TRUNCATIONS = tuple(KEPT_PART)

#: ``truncation="head+tail"`` keeps this share of the budget from the beginning and the rest
#: from the end: 128 + 382 of 510 tokens, the best split for BERT on long reviews and news
#: in Sun et al. (2019), "How to Fine-Tune BERT for Text Classification?".
HEAD_SHARE = 0.25


def truncate(ids: Sequence[int], budget: int, truncation: str = "head") -> list[int]:
    """The ``budget`` tokens of ``ids`` that ``truncation`` keeps (all of them when they fit).

    ``"head"`` keeps the first ``budget`` tokens, ``"tail"`` the last, ``"head+tail"`` the
    first ``HEAD_SHARE`` of the budget (at least one token) and the end for the rest.
    """
    ids = list(ids)
    if len(ids) <= budget:
        return ids
    if truncation == "head":
        return ids[:budget]
    if truncation == "tail":
        return ids[len(ids) - budget:]
    n_head = max(1, int(budget * HEAD_SHARE))
    return ids[:n_head] + ids[len(ids) - (budget - n_head):]


#: Private-use characters that bracket an escaped piece of user data in a rendered prompt:
#: ``ESCAPE_OPEN + utf-8 hex + ESCAPE_CLOSE``. The bracket is self-contained (the piece is
#: recoverable from the prompt string alone), so a saved prompt prefix needs no table.
ESCAPE_OPEN, ESCAPE_CLOSE = "\ue002", "\ue003"
_ESCAPED = re.compile(f"{ESCAPE_OPEN}([0-9a-f]*){ESCAPE_CLOSE}")


def escape(tokenizer: Tokenizer, text: str) -> str:
    """``text`` with every special-token string (and ``ESCAPE_OPEN``) bracketed as plain text.

    Use it on user data before a template renders it (answers listed in the instruction,
    demonstrations); :func:`encode_rendered` encodes the brackets as the tokens of the plain
    characters. Text without such strings is returned unchanged, so ordinary prompts encode
    exactly as a plain ``encode_prompt`` of the rendered string.
    """
    needles = [*tokenizer.special_strings, ESCAPE_OPEN]
    if not any(needle in text for needle in needles):
        return text
    pattern = "|".join(re.escape(needle) for needle in needles)
    return re.sub(pattern, lambda m: f"{ESCAPE_OPEN}{m.group(0).encode('utf-8').hex()}{ESCAPE_CLOSE}", text)


def unescape(text: str) -> str:
    """The user data :func:`escape` bracketed, as plain characters again."""
    return _ESCAPED.sub(lambda m: bytes.fromhex(m.group(1)).decode("utf-8"), text)


def encode_rendered(tokenizer: Tokenizer, rendered: str, *, start: bool = False) -> list[int]:
    """Token ids of a rendered template: its own markup parsed, escaped user data as plain text.

    Without escaped pieces this is ``tokenizer.encode_prompt(rendered, start=start)``.
    Otherwise the markup between the pieces is encoded as prompt text and each piece with
    ``encode_text``; with ``start`` the model's begin token (if it uses one) leads.
    """
    pieces = _ESCAPED.split(rendered)
    if len(pieces) == 1:
        return tokenizer.encode_prompt(rendered, start=start)
    ids: list[int] = tokenizer.encode_prompt("", start=True) if start else []
    for index, piece in enumerate(pieces):
        if index % 2:
            ids += tokenizer.encode_text(bytes.fromhex(piece).decode("utf-8"))
        elif piece:
            ids += tokenizer.encode_prompt(piece, start=False)
    return ids


@dataclass
class EncodedPrompts:
    """Prompt token ids and how many texts had to be shortened."""

    ids: list[list[int]]
    n_truncated: int


def encode_answers(tokenizer: Tokenizer, answers: Sequence[str]) -> list[list[int]]:
    """Token ids of each answer (plain text) followed by the end-of-answer token.

    Raises
    ------
    ValueError
        When two answers encode to the same ids, naming both.
    """
    encoded = [tokenizer.encode_text(answer) + [int(tokenizer.end_id)] for answer in answers]
    _check_distinct(encoded, answers, "answers", "tokenise to the same ids; give the classes distinct answers with a verbalizer.")
    return encoded


def encode_class_prompts(tokenizer: Tokenizer, class_prompts: Sequence[str]) -> list[list[int]]:
    """Token ids of each class's channel prompt (rendered markup, with the begin token)."""
    encoded = [encode_rendered(tokenizer, prompt, start=True) for prompt in class_prompts]
    _check_distinct(encoded, class_prompts, "channel prompts", "are the same; give the classes distinct answers with a verbalizer.")
    return encoded


def _check_distinct(encoded: list[list[int]], sources: Sequence[str], what: str, advice: str) -> None:
    seen: dict[tuple[int, ...], str] = {}
    for source, ids in zip(sources, encoded):
        key = tuple(ids)
        if key in seen:
            raise ValueError(f"The {what} {seen[key]!r} and {source!r} {advice}")
        seen[key] = source


class PromptEncoder:
    """Encode texts into prompt ids for one template rendering.

    Parameters
    ----------
    tokenizer : Tokenizer
        The engine's tokenizer (:class:`~llm_classifier.engines.base.Tokenizer`).
    prefix, suffix : str
        The rendered template before and after the input text.
    max_length : int
        Maximum total length of prompt plus the longest answer.
    max_answer_length : int
        Length of the longest answer in tokens (end-of-answer token included).
    truncation : {"head", "tail", "head+tail"}, default="head"
        The part of an over-long text that is kept (see :func:`truncate`).
    start_token : bool, default=True
        Whether the encoding starts with the model's begin token (when it uses one).
        False for texts that continue another prompt (``direction="channel"``).
    suffix_ids : list of int, optional
        Token ids to close every text with instead of ``suffix`` (the channel direction's
        end token, which is scored).
    """

    def __init__(self, tokenizer: Tokenizer, prefix: str, suffix: str, max_length: int, max_answer_length: int,
                 truncation: str = "head", start_token: bool = True, suffix_ids: list[int] | None = None):
        self.tokenizer = tokenizer
        self.truncation = truncation
        self.prefix_ids = encode_rendered(tokenizer, prefix, start=start_token) if (prefix or start_token) else []
        if suffix_ids is not None:
            self.suffix_ids = list(suffix_ids)
        else:
            self.suffix_ids = encode_rendered(tokenizer, suffix) if suffix else []
        self.budget = max_length - len(self.prefix_ids) - len(self.suffix_ids) - max_answer_length
        if self.budget < 1:
            raise ValueError(
                f"The 'max_length' parameter of LLMClassifier ({max_length}) leaves no room for the text: "
                f"the prompt template takes {len(self.prefix_ids) + len(self.suffix_ids)} tokens and the "
                f"longest answer {max_answer_length}. Increase max_length or shorten the template."
            )

    def encode(self, texts: Sequence[str], warn: bool = True) -> EncodedPrompts:
        """Encode ``texts``; over-long texts are cut as ``truncation`` says, with one warning."""
        ids, n_truncated = [], 0
        for text_ids in self.tokenizer.encode_texts(list(texts)) if len(texts) else []:
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
