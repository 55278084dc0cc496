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
from numbers import Real
from typing import Any, Protocol, runtime_checkable

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval, InvalidParameterError

from ..exceptions import invalid
from .base import Plugin


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


class DefaultVerbalizer(Plugin):
    """Use each class's string form (``str(label)``), whitespace-normalised.

    Examples
    --------
    >>> DefaultVerbalizer().answers(["neg", "pos", 3])
    ['neg', 'pos', '3']
    """

    def answers(self, classes: Sequence[Any]) -> list[str]:
        return [" ".join(str(label).split()) for label in classes]



class MappingVerbalizer(Plugin):
    """Name classes through a mapping, e.g. ``{0: "negative", 1: "positive"}``.

    Parameters
    ----------
    mapping : mapping
        Class -> answer text. Every class seen in ``fit`` must be a key.
    """

    _parameter_constraints = {"mapping": [Mapping]}

    def __init__(self, mapping: Mapping[Any, str]):
        self.mapping = mapping

    def answers(self, classes: Sequence[Any]) -> list[str]:
        missing = [label.item() if type(label).__module__ == "numpy" else label for label in classes if label not in self.mapping]
        if missing:
            raise ValueError(
                f"The 'verbalizer' mapping of LLMClassifier has no answer for the classes {missing!r}; "
                f"its keys are {list(self.mapping)!r}."
            )
        return [self.mapping[label] for label in classes]  # check_answers refuses one that is not a str



class FunctionVerbalizer(BaseEstimator):
    """Name classes with a function ``f(label) -> str``."""

    def __init__(self, func: Callable[[Any], str]):
        self.func = func

    def answers(self, classes: Sequence[Any]) -> list[str]:
        return [self.func(label) for label in classes]  # check_answers refuses one that is not a str



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
    raise InvalidParameterError(
        "The 'verbalizer' parameter of LLMClassifier must be None, 'default', a dict, a callable or "
        f"an object with an answers(classes) method. Got {verbalizer!r} instead."
    )


#: Characters a reader cannot see: answers that differ only by them look the same.
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
_DROP_ZERO_WIDTH = dict.fromkeys(map(ord, ZERO_WIDTH))


def _as_read(answer: str) -> str:
    """What a reader sees of ``answer``: NFC-normalised, without zero-width characters."""
    return unicodedata.normalize("NFC", answer).translate(_DROP_ZERO_WIDTH)


def check_answers(answers: Sequence[str], classes: Sequence[Any]) -> list[str]:
    """Validate verbalized answers: non-empty valid Unicode strings, one per class, pairwise distinct.

    Distinct means distinct to a reader too: answers equal after NFC normalisation and
    removing zero-width characters (:data:`ZERO_WIDTH`) are refused, naming both classes.
    """
    answers = list(answers)
    classes = [label.item() if type(label).__module__ == "numpy" else label for label in classes]  # show 'a', not np.str_('a')
    if len(answers) != len(classes):
        raise ValueError(f"The verbalizer returned {len(answers)} answers for {len(classes)} classes.")
    seen: dict[str, Any] = {}
    read: dict[str, tuple[Any, str]] = {}
    for label, answer in zip(classes, answers):
        if not isinstance(answer, str):  # not str(answer): a mapping to None would teach the model to answer "None"
            raise ValueError(f"The verbalizer gave the class {label!r} the answer {answer!r} "
                             f"({type(answer).__name__}); an answer is a non-empty str.")
        if not answer.strip():
            raise ValueError(f"The verbalizer gave the class {label!r} an empty answer {answer!r}.")
        _check_encodable(label, answer)
        if answer in seen:
            raise ValueError(
                f"The classes {seen[answer]!r} and {label!r} have the same answer text {answer!r}; "
                "the model could not tell them apart. Give them distinct answers with a "
                "verbalizer mapping, or make the labels distinct."
            )
        seen[answer] = label
        other = read.setdefault(_as_read(answer), (label, answer))
        if other[0] != label:
            raise ValueError(
                f"The classes {ascii(other[0])} and {ascii(label)} have answers {ascii(other[1])} and {ascii(answer)} "
                "(shown with escapes) that differ only by Unicode normalisation (NFC) or zero-width characters, so "
                "they read the same. Normalise the "
                "labels (unicodedata.normalize('NFC', ...), remove zero-width characters) or give the classes "
                "distinct answers with a verbalizer mapping."
            )
    return answers


def _check_encodable(label: Any, answer: str) -> None:
    """Raise when ``answer`` holds a lone surrogate (not valid Unicode: no tokenizer can encode it)."""
    try:
        answer.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"The answer {answer!r} of the class {label!r} contains the lone surrogate U+{ord(answer[exc.start]):04X}, "
            "which is not valid Unicode; fix the label or the verbalizer."
        ) from None


def warn_if_integer_codes(classes: Any) -> None:
    """Warn when the classes are the integers ``0..k-1``: without a verbalizer the answers are digits.

    That is what scikit-learn's meta-estimators (VotingClassifier, StackingClassifier,
    OneVsRestClassifier) pass: the classes encoded as integers, whatever their names.
    """
    classes = np.asarray(classes)
    if classes.dtype.kind not in "iu" or not np.array_equal(classes, np.arange(len(classes))):
        return
    from .._logging import warn_caller

    digits = ", ".join(repr(str(c)) for c in classes[:3]) + (", ..." if len(classes) > 3 else "")
    example = ", ".join(f"{c}: '...'" for c in classes[:2])
    warn_caller(
        f"The classes are the integers 0..{len(classes) - 1} and no verbalizer names them, so the model is trained "
        f"to answer the digits {digits}, which say nothing about the classes (a meta-estimator such as "
        "VotingClassifier, StackingClassifier or OneVsRestClassifier passes classes encoded this way). Pass a "
        f"verbalizer mapping that gives the classes names, e.g. verbalizer={{{example}}}."
    )


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"[^\w\s-]", " ", text)
    return " ".join(text.split())


class ExactParser(Plugin):
    """Accept the generated text only if it equals an answer (after stripping whitespace).

    Parameters
    ----------
    case_sensitive : bool, default=True
        If False, compare case-insensitively.
    """

    _parameter_constraints = {"case_sensitive": ["boolean"]}

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



class DefaultParser(Plugin):
    """A forgiving parser: exact, then case/punctuation-insensitive, then containment, then fuzzy.

    Steps, first match wins: the first line equals an answer; equal after
    normalising case, punctuation and spaces; the text starts with an answer
    (longest first); the text contains exactly one answer as a whole word;
    a close fuzzy match (``difflib`` ratio >= ``cutoff``).

    Parameters
    ----------
    cutoff : float in [0, 1], default=0.8
        Minimum similarity for the fuzzy step; 1.0 disables it.

    Examples
    --------
    >>> DefaultParser().parse("Positive.", ["negative", "positive"])
    1
    >>> DefaultParser().parse("I cannot tell", ["negative", "positive"]) is None
    True
    """

    _parameter_constraints = {"cutoff": [Interval(Real, 0, 1, closed="both")]}

    def __init__(self, cutoff: float = 0.8):
        self.cutoff = cutoff

    def _check_rules(self) -> None:
        if isinstance(self.cutoff, (bool, np.bool_)):
            raise invalid(self, "cutoff", "a number, not a bool", self.cutoff)

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
        raise InvalidParameterError(
            f"The 'label_parser' parameter of LLMClassifier must be one of {sorted(PARSERS)}, a callable "
            f"or an object with a parse(text, answers) method. Got {label_parser!r} instead."
        )
    if hasattr(label_parser, "parse") and callable(label_parser.parse):
        return label_parser
    if callable(label_parser):
        return _CallableParser(label_parser)
    raise InvalidParameterError(
        "The 'label_parser' parameter of LLMClassifier must be a str, a callable or an object with a "
        f"parse(text, answers) method. Got {label_parser!r} instead."
    )


class _CallableParser:
    def __init__(self, func: Callable[[str, Sequence[str]], int | None]):
        self.func = func

    def parse(self, text: str, answers: Sequence[str]) -> int | None:
        return self.func(text, answers)
