"""Verbalizers (class -> answer text) and label parsers (generated text -> class).

A verbalizer gives each class the answer the model is taught to produce and that
is scored at prediction time. A label parser maps free generated text back to one
of those answers in ``inference="generate"`` mode.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from sklearn.base import BaseEstimator


@runtime_checkable
class Verbalizer(Protocol):
    """Anything that names each class with an answer string."""

    def answers(self, classes: Sequence[Any]) -> list[str]:
        """Return one non-empty answer string per class, in the order of ``classes``."""
        ...


@runtime_checkable
class LabelParser(Protocol):
    """Anything that maps generated text to the index of an answer, or ``None``."""

    def parse(self, text: str, answers: Sequence[str]) -> int | None:
        """Return the index in ``answers`` that ``text`` expresses, or ``None`` if none."""
        ...


class DefaultVerbalizer(BaseEstimator):
    """Use each class's string form (``str(label)``), whitespace-normalised.

    Examples
    --------
    >>> DefaultVerbalizer().answers(["neg", "pos", 3])
    ['neg', 'pos', '3']
    """

    def answers(self, classes: Sequence[Any]) -> list[str]:
        return [" ".join(str(label).split()) for label in classes]



class MappingVerbalizer(BaseEstimator):
    """Name classes through a mapping, e.g. ``{0: "negative", 1: "positive"}``.

    Parameters
    ----------
    mapping : mapping
        Class -> answer text. Every class seen in ``fit`` must be a key.
    """

    def __init__(self, mapping: Mapping[Any, str]):
        self.mapping = mapping

    def answers(self, classes: Sequence[Any]) -> list[str]:
        missing = [label.item() if type(label).__module__ == "numpy" else label for label in classes if label not in self.mapping]
        if missing:
            raise ValueError(
                f"The 'verbalizer' mapping of LLMClassifier has no answer for the classes {missing!r}; "
                f"its keys are {list(self.mapping)!r}."
            )
        return [str(self.mapping[label]) for label in classes]



class FunctionVerbalizer(BaseEstimator):
    """Name classes with a function ``f(label) -> str``."""

    def __init__(self, func: Callable[[Any], str]):
        self.func = func

    def answers(self, classes: Sequence[Any]) -> list[str]:
        return [str(self.func(label)) for label in classes]



def resolve_verbalizer(verbalizer: Any) -> Verbalizer:
    """Turn a ``verbalizer=`` value (None, "default", dict, callable, object) into an object."""
    if verbalizer is None or (isinstance(verbalizer, str) and verbalizer == "default"):
        return DefaultVerbalizer()
    if isinstance(verbalizer, Mapping):
        return MappingVerbalizer(verbalizer)
    if hasattr(verbalizer, "answers") and callable(verbalizer.answers):
        return verbalizer
    if callable(verbalizer) and not isinstance(verbalizer, str):
        return FunctionVerbalizer(verbalizer)
    raise ValueError(
        "The 'verbalizer' parameter of LLMClassifier must be None, 'default', a dict, a callable or "
        f"an object with an answers(classes) method. Got {verbalizer!r} instead."
    )


def check_answers(answers: Sequence[str], classes: Sequence[Any]) -> list[str]:
    """Validate verbalized answers: strings, non-empty, one per class, pairwise distinct."""
    answers = list(answers)
    classes = [label.item() if type(label).__module__ == "numpy" else label for label in classes]  # show 'a', not np.str_('a')
    if len(answers) != len(classes):
        raise ValueError(f"The verbalizer returned {len(answers)} answers for {len(classes)} classes.")
    seen: dict[str, Any] = {}
    for label, answer in zip(classes, answers):
        if not isinstance(answer, str) or not answer.strip():
            raise ValueError(f"The verbalizer gave the class {label!r} an empty answer {answer!r}.")
        if answer in seen:
            raise ValueError(
                f"The classes {seen[answer]!r} and {label!r} have the same answer text {answer!r}; "
                "the model could not tell them apart. Give them distinct answers with a "
                "verbalizer mapping, or make the labels distinct."
            )
        seen[answer] = label
    return answers


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"[^\w\s-]", " ", text)
    return " ".join(text.split())


class ExactParser(BaseEstimator):
    """Accept the generated text only if it equals an answer (after stripping whitespace).

    Parameters
    ----------
    case_sensitive : bool, default=True
        If False, compare case-insensitively.
    """

    def __init__(self, case_sensitive: bool = True):
        self.case_sensitive = case_sensitive

    def parse(self, text: str, answers: Sequence[str]) -> int | None:
        def key(value: str) -> str:
            value = value.strip()
            return value if self.case_sensitive else value.casefold()

        wanted = key(text)
        for index, answer in enumerate(answers):
            if key(answer) == wanted:
                return index
        return None



class DefaultParser(BaseEstimator):
    """A forgiving parser: exact, then case/punctuation-insensitive, then containment, then fuzzy.

    Steps, first match wins: the first line equals an answer; equal after
    normalising case, punctuation and spaces; the text starts with an answer
    (longest first); the text contains exactly one answer as a whole word;
    a close fuzzy match (``difflib`` ratio >= ``cutoff``).

    Parameters
    ----------
    cutoff : float, default=0.8
        Minimum similarity for the fuzzy step; 1.0 disables it.

    Examples
    --------
    >>> DefaultParser().parse("Positive.", ["negative", "positive"])
    1
    >>> DefaultParser().parse("I cannot tell", ["negative", "positive"]) is None
    True
    """

    def __init__(self, cutoff: float = 0.8):
        self.cutoff = cutoff

    def parse(self, text: str, answers: Sequence[str]) -> int | None:
        lines = [line for line in str(text).strip().splitlines() if line.strip()]
        first = lines[0].strip() if lines else ""
        for index, answer in enumerate(answers):
            if first == answer.strip():
                return index
        normalised = [_normalise(answer) for answer in answers]
        first_norm, full_norm = _normalise(first), _normalise(str(text))
        for candidate in (first_norm, full_norm):
            if candidate in normalised:
                return normalised.index(candidate)
        by_length = sorted(range(len(answers)), key=lambda i: -len(normalised[i]))

        def mentioned(text: str) -> list[int]:
            return [i for i in by_length if normalised[i] and re.search(rf"\b{re.escape(normalised[i])}\b", text)]

        in_first = mentioned(first_norm)
        for index in by_length:
            if normalised[index] and re.match(rf"{re.escape(normalised[index])}\b", first_norm):
                # "positive or negative" names two answers: ambiguous, unless one contains the other.
                if all(normalised[other] in normalised[index] for other in in_first):
                    return index
        contained = mentioned(full_norm)
        if len(contained) == 1:
            return contained[0]
        if self.cutoff < 1.0 and first_norm:
            close = difflib.get_close_matches(first_norm, normalised, n=1, cutoff=self.cutoff)
            if close:
                return normalised.index(close[0])
        return None



PARSERS: dict[str, Callable[[], LabelParser]] = {
    "default": DefaultParser,
    "exact": ExactParser,
    "exact-ci": lambda: ExactParser(case_sensitive=False),
}


def resolve_parser(label_parser: Any) -> LabelParser:
    """Turn a ``label_parser=`` value (None, a registry name, a callable, an object) into an object."""
    if label_parser is None:
        return DefaultParser()
    if isinstance(label_parser, str):
        if label_parser in PARSERS:
            return PARSERS[label_parser]()
        raise ValueError(
            f"The 'label_parser' parameter of LLMClassifier must be one of {sorted(PARSERS)}, a callable "
            f"or an object with a parse(text, answers) method. Got {label_parser!r} instead."
        )
    if hasattr(label_parser, "parse") and callable(label_parser.parse):
        return label_parser
    if callable(label_parser):
        return _CallableParser(label_parser)
    raise ValueError(
        "The 'label_parser' parameter of LLMClassifier must be a str, a callable or an object with a "
        f"parse(text, answers) method. Got {label_parser!r} instead."
    )


class _CallableParser:
    def __init__(self, func: Callable[[str, Sequence[str]], int | None]):
        self.func = func

    def parse(self, text: str, answers: Sequence[str]) -> int | None:
        return self.func(text, answers)
