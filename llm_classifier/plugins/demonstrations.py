"""Few-shot demonstrations drawn from the training texts (``LLMClassifier(few_shot=k)``).

``k`` texts of every class are drawn (seeded, from the texts that train: never the
held-out validation slice), shortened to a token budget and placed in every prompt as
earlier question/answer turns of the template (its ``examples``). The demonstrations
and their turns together take at most half of ``max_length``; the other half is left to
the instruction, the text being classified and the answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import clone

from ..encoding import encode_rendered, escape, truncate

#: Demonstrations (with their template turns) may fill at most this share of ``max_length``.
DEMONSTRATION_SHARE = 0.5
#: A demonstration shorter than this many text tokens would say too little to be worth its turn.
MIN_DEMONSTRATION_TOKENS = 8


def draw_demonstrations(codes: np.ndarray, per_class: int, seed: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """Rows of up to ``per_class`` texts of every class, in a seeded random order.

    Parameters
    ----------
    codes : ndarray of shape (n_texts,)
        Class index of each training text.
    per_class : int
        Demonstrations per class; a class with fewer (eligible) texts gives all it has.
    seed : int
    exclude : ndarray of bool, optional
        Rows that must not be drawn (the held-out validation slice).

    Returns
    -------
    ndarray of int
        The drawn rows, classes interleaved at random (so the last turn before the
        text is not always the same class).
    """
    if per_class <= 0:
        return np.zeros(0, dtype=int)
    rng = np.random.default_rng(seed)
    eligible = np.ones(len(codes), dtype=bool) if exclude is None else ~np.asarray(exclude, dtype=bool)
    rows = []
    for code in np.unique(codes):
        candidates = np.flatnonzero((codes == code) & eligible)
        take = min(per_class, len(candidates))
        rows.extend(rng.choice(candidates, size=take, replace=False).tolist())
    return rng.permutation(np.asarray(rows, dtype=int))


def shorten(text: str, tokenizer: Any, max_tokens: int, ids: Sequence[int] | None = None) -> str:
    """``text`` cut to its first ``max_tokens`` tokens (unchanged when it fits); ``ids`` are its tokens if known."""
    if ids is None:
        ids = tokenizer.encode_text(text)
    if len(ids) <= max_tokens:
        return text
    return tokenizer.decode(truncate(ids, max_tokens, "head")).rstrip()


def with_examples(template: Any, examples: list[list[str]]) -> Any:
    """A copy of ``template`` with its ``examples`` set to ``examples``.

    Raises
    ------
    ValueError
        When the template takes no ``examples`` (a format string, a callable, a custom
        object) or already has some.
    """
    params = template.get_params(deep=False) if hasattr(template, "get_params") else {}
    if "examples" not in params:
        raise ValueError(
            f"The 'few_shot' parameter of LLMClassifier needs a prompt template that takes examples "
            f"(ChatTemplate, AlpacaTemplate); the prompt {template!r} does not. Set few_shot=0 or use one of them."
        )
    if params["examples"]:
        raise ValueError(
            "The 'few_shot' parameter of LLMClassifier draws demonstrations from the training texts, but the "
            f"prompt {template!r} already has examples. Pass one or the other."
        )
    return clone(template).set_params(examples=examples)


def _prompt_tokens(template: Any, answers: Sequence[str], tokenizer: Any) -> int:
    """Token length of the prompt ``template`` renders around an empty text."""
    return len(encode_rendered(tokenizer, template.render("", list(answers), tokenizer)))


def demonstration_budget(template: Any, answers: Sequence[str], codes: Sequence[int], tokenizer: Any,
                         max_length: int, base_tokens: int | None = None) -> int:
    """Text tokens each demonstration may keep.

    The template is rendered with the drawn demonstrations' answers and empty texts to
    measure what their turns cost; the rest of ``DEMONSTRATION_SHARE * max_length`` is
    shared equally among their texts. ``base_tokens`` is the template's own prompt length,
    when the caller has it.

    Raises
    ------
    ValueError
        When the budget is under :data:`MIN_DEMONSTRATION_TOKENS` tokens, naming
        ``few_shot`` and ``max_length``.
    """
    empty = with_examples(template, [["", answers[code]] for code in codes])
    if base_tokens is None:
        base_tokens = _prompt_tokens(template, answers, tokenizer)
    turns = _prompt_tokens(empty, answers, tokenizer) - base_tokens
    budget = (int(DEMONSTRATION_SHARE * max_length) - turns) // max(len(codes), 1)
    if budget < MIN_DEMONSTRATION_TOKENS:
        raise ValueError(
            f"The 'few_shot' parameter of LLMClassifier draws {len(codes)} demonstrations, whose template turns alone "
            f"take {turns} tokens: within half of max_length={max_length} each would keep {max(budget, 0)} text tokens "
            f"(at least {MIN_DEMONSTRATION_TOKENS} are needed). Lower few_shot or raise max_length."
        )
    return budget


def add_demonstrations(template: Any, texts: Sequence[str], codes: Sequence[int], answers: Sequence[str],
                       tokenizer: Any, max_length: int) -> tuple[Any, list[str]]:
    """``template`` with ``texts`` (answered by their class's answer) as its examples.

    Parameters
    ----------
    template : PromptTemplate
        A template with an ``examples`` parameter, none given yet.
    texts, codes : sequences of the same length
        The demonstrations' texts and class indices, in prompt order.
    answers : sequence of str
        Every class's answer, as the template renders it (escaped, see
        :func:`llm_classifier.encoding.escape`).
    tokenizer : transformers tokenizer
    max_length : int
        The classifier's ``max_length``; the demonstrations take at most half of it.

    Returns
    -------
    template : PromptTemplate
        A copy with the examples set.
    shortened : list of str
        The demonstrations' texts as they appear in the prompt (plain, not escaped: the
        template holds them escaped, so they are tokenised as plain text).
    """
    base_tokens = _prompt_tokens(template, answers, tokenizer)
    budget = demonstration_budget(template, answers, codes, tokenizer, max_length, base_tokens)
    room = int(DEMONSTRATION_SHARE * max_length) + base_tokens
    ids = tokenizer.encode_texts(list(texts))  # once, not per try
    while True:  # texts tokenise a little differently in context: shrink until the prompt fits its share
        shortened = [shorten(text, tokenizer, budget, text_ids) for text, text_ids in zip(texts, ids)]
        examples = with_examples(template, [[escape(tokenizer, text), answers[code]] for text, code in zip(shortened, codes)])
        if budget <= MIN_DEMONSTRATION_TOKENS or _prompt_tokens(examples, answers, tokenizer) <= room:
            return examples, shortened
        budget -= 1
