"""Checking what users pass as texts and labels, with errors that name the row."""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, (float, np.floating)) and math.isnan(value):  # np.float32 is not a float
        return True
    try:
        import pandas as pd

        return value is pd.NA or value is pd.NaT
    except ImportError:  # pragma: no cover - pandas is optional
        return False


def _as_rows(X: Any, name: str) -> list[Any]:
    """Flatten lists, arrays, Series, one-column frames and iterables to a list of rows."""
    if isinstance(X, (str, bytes)):
        raise TypeError(
            f"{name} must be a sequence of texts (a list, array or Series), got a single {type(X).__name__}. "
            f"Wrap it in a list: [{name.lower()}]."
        )
    if isinstance(X, Mapping):
        raise TypeError(
            f"{name} must be a sequence of texts (a list, array or Series), got a {type(X).__name__}; "
            f"iterating over it would use its keys. Pass list({name.lower()}.values()) or a Series."
        )
    if isinstance(X, (set, frozenset)):
        raise TypeError(
            f"{name} must be an ordered sequence (a list, array or Series), got a {type(X).__name__}, "
            "whose order is arbitrary, so its rows could not be matched with labels or predictions."
        )
    columns = getattr(X, "columns", None)
    if columns is not None and hasattr(X, "iloc"):  # pandas DataFrame
        if len(columns) != 1:
            raise ValueError(f"{name} must hold one column of texts; got a DataFrame with {len(columns)} columns {list(columns)!r}.")
        return list(X.iloc[:, 0])
    if isinstance(X, np.ndarray):
        if X.ndim == 2:
            if X.shape[1] != 1:
                raise ValueError(f"{name} must be 1-D or a single column; got an array of shape {X.shape}.")
            X = X[:, 0]
        elif X.ndim != 1:
            raise ValueError(f"{name} must be 1-D or a single column; got an array of shape {X.shape}.")
        return list(X)
    if hasattr(X, "tolist") and not isinstance(X, list):
        return list(X.tolist())
    if isinstance(X, Iterable):
        return list(X)
    raise TypeError(f"{name} must be a sequence of texts (a list, array or Series); got {type(X).__name__}.")


def _iter_rows(X: Any, name: str) -> Iterator[Any]:
    """Like :func:`_as_rows`, but lazily: rows are read as they are consumed."""
    if isinstance(X, np.ndarray) and X.ndim in (1, 2):
        return _iter_array(X, name)
    if isinstance(X, (str, bytes, np.ndarray, Mapping, set, frozenset)) or getattr(X, "columns", None) is not None or not isinstance(X, Iterable):
        return iter(_as_rows(X, name))  # DataFrames (a list of references), or the usual errors
    return iter(X)


def _iter_array(X: np.ndarray, name: str) -> Iterator[Any]:
    if X.ndim == 2:
        if X.shape[1] != 1:
            raise ValueError(f"{name} must be 1-D or a single column; got an array of shape {X.shape}.")
        X = X[:, 0]
    return iter(X)


def iter_text_chunks(X: Any, name: str = "X", chunk_size: int = 2048) -> Iterator[list[str]]:
    """Validate and yield the texts of ``X`` in lists of at most ``chunk_size``.

    Accepts everything :func:`check_texts` does plus any iterable (generators,
    ``datasets`` columns such as ``ds["text"]``), and reads it lazily: memory holds one
    chunk at a time. Errors name the row by its position in the whole input.
    """
    rows = _iter_rows(X, name)
    start = 0
    while True:
        chunk = list(itertools.islice(rows, chunk_size))
        if not chunk:
            if start == 0:
                raise ValueError(f"{name} is empty: at least one text is needed.")
            return
        yield _check_rows(chunk, name, start)
        start += len(chunk)


def check_texts(X: Any, name: str = "X") -> list[str]:
    """Return ``X`` as a list of ``str``, or raise naming the first bad row.

    Accepted: lists/tuples, 1-D arrays, one-column 2-D arrays and DataFrames,
    pandas Series, ``datasets`` columns and other iterables. Each row must be a
    ``str`` (``bytes`` must be valid UTF-8). Empty and whitespace-only texts are
    allowed: they are classified from the prompt alone.
    """
    rows = _as_rows(X, name)
    if not rows:
        raise ValueError(f"{name} is empty: at least one text is needed.")
    return _check_rows(rows, name, 0)


def _check_rows(rows: list[Any], name: str, start: int) -> list[str]:
    """The rows as ``str``; ``start`` is the position of ``rows[0]`` in the input (for errors)."""
    texts: list[str] = []
    for index, value in enumerate(rows, start=start):
        if isinstance(value, str):
            texts.append(str(value))
        elif isinstance(value, (bytes, bytearray)):
            try:
                texts.append(bytes(value).decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise ValueError(f"{name}[{index}] is bytes that are not valid UTF-8 ({exc.reason} at byte {exc.start}); decode it to str first.") from None
        elif _is_missing(value):
            raise ValueError(f"{name}[{index}] is missing ({value!r}); every row must be a text. Drop or fill missing rows first.")
        elif isinstance(value, (list, tuple, np.ndarray, dict, set)):
            raise TypeError(f"{name}[{index}] is a {type(value).__name__}, not a text. {name} must be a flat sequence of strings.")
        else:
            raise TypeError(f"{name}[{index}] is {value!r} of type {type(value).__name__}; every row must be a str. Convert with str() if that is intended.")
    try:
        "".join(texts).encode("utf-8")
    except UnicodeEncodeError:
        _raise_surrogate(texts, name, start)
    return texts


def _raise_surrogate(texts: list[str], name: str, start: int = 0) -> None:
    for index, text in enumerate(texts, start=start):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"{name}[{index}] contains the lone surrogate U+{ord(text[exc.start]):04X} at position {exc.start}, "
                "which is not valid Unicode (it usually comes from bytes decoded with errors='surrogateescape'). "
                "Re-encode it, e.g. text.encode('utf-8', 'replace').decode('utf-8')."
            ) from None


def check_labels(y: Any, n_samples: int) -> np.ndarray:
    """Return ``y`` as a 1-D array of hashable labels of one kind, or raise naming the problem."""
    if y is None:
        raise ValueError("y is required: LLMClassifier is a supervised classifier (pass max_steps=0 for zero-shot, still with y naming the classes).")
    _warn_column_vector(y)
    rows = _as_rows(y, "y")
    if len(rows) != n_samples:
        raise ValueError(f"X and y have different lengths: {n_samples} texts but {len(rows)} labels.")
    kinds = set()
    for index, value in enumerate(rows):
        if _is_missing(value):
            raise ValueError(f"y[{index}] is missing ({value!r}); every text needs a label.")
        if isinstance(value, (list, tuple, np.ndarray, dict, set)):
            odd = next((i for i, row in enumerate(rows) if not isinstance(row, (list, tuple, set, frozenset))), None)
            if index == 0 and isinstance(value, (list, tuple, set)) and odd is not None:  # label sets but a row: name it
                raise TypeError(f"y[{index}] is a {type(value).__name__} of labels, but y[{odd}] is "
                                f"{show_value(rows[odd])}; for multi-label targets give every row a list, tuple or "
                                "set of labels (an empty one for no label).")
            raise TypeError(f"y[{index}] is a {type(value).__name__}; labels must be scalars (for multi-label targets, give every row a list, tuple or set of labels, or pass an indicator matrix).")
        if isinstance(value, (bool, np.bool_)):
            kinds.add("bool")
        elif isinstance(value, numbers.Number):
            kinds.add("number")
        elif isinstance(value, str):
            kinds.add("str")
        else:
            kinds.add(type(value).__name__)
    if len(kinds) > 1:
        raise TypeError(
            f"y mixes labels of different types ({', '.join(sorted(kinds))}); e.g. 1 and '1' would become the same "
            "answer text. Convert all labels to one type."
        )
    if kinds == {"str"}:
        _raise_surrogate(rows, "y")  # before the tokenizer meets it
        return np.asarray([str(v) for v in rows])
    labels = np.asarray(rows)
    if kinds == {"number"}:
        from sklearn.utils.multiclass import check_classification_targets

        check_classification_targets(labels)  # "Unknown label type: continuous" for real-valued targets
    return labels


def _warn_column_vector(y: Any) -> None:
    """scikit-learn's warning for a ``y`` of shape ``(n, 1)`` (``column_or_1d(warn=True)``)."""
    shape = getattr(y, "shape", None)
    if shape is not None and len(shape) == 2 and shape[1] == 1:
        from sklearn.exceptions import DataConversionWarning

        from ._logging import warn_caller

        warn_caller("A column-vector y was passed when a 1d array was expected. Please change the shape of y to "
                    "(n_samples, ), for example using ravel().", DataConversionWarning)


def check_sample_weight(sample_weight: Any, n_samples: int) -> np.ndarray | None:
    """Return ``sample_weight`` as a float array of length ``n_samples`` (or None), or raise naming the row.

    A single number weighs every text the same. Weights must be finite and ``>= 0`` with
    a positive sum; bools are refused (a mask passed by mistake).
    """
    if sample_weight is None:
        return None
    if isinstance(sample_weight, numbers.Real) and not isinstance(sample_weight, (bool, np.bool_)):
        sample_weight = [sample_weight] * n_samples  # one weight for every text, as in scikit-learn
    rows = _as_rows(sample_weight, "sample_weight")
    if len(rows) != n_samples:
        raise ValueError(f"X and sample_weight have different lengths: {n_samples} texts but {len(rows)} weights.")
    weights = np.empty(n_samples)
    for index, value in enumerate(rows):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
            raise ValueError(f"sample_weight[{index}] is {value!r}; weights must be finite numbers >= 0.")
        weights[index] = float(value)
    if not weights.sum() > 0:
        raise ValueError("sample_weight is zero for every text; at least one text needs a positive weight.")
    return weights


def show_value(value: Any) -> str:
    """``repr`` of a label as the user wrote it (``'a'``, not ``np.str_('a')``)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def check_classes(labels: np.ndarray) -> np.ndarray:
    """The sorted distinct labels; at least two are needed."""
    try:
        classes = np.unique(labels)
    except TypeError:
        raise TypeError(
            f"y's labels of type {type(labels[0]).__name__} cannot be sorted, and classes_ must be sortable. "
            "Use str, int or bool labels."
        ) from None
    if len(classes) < 2:
        raise ValueError(
            f"y has a single class {show_value(classes[0])} (all {len(labels)} rows); a classifier needs at least 2 classes."
        )
    return classes


def canonical_order(texts: list[str], codes: np.ndarray) -> np.ndarray:
    """Row indices sorted by (class code, text).

    Training on the rows in this order makes the fitted model a function of the
    training set as a multiset: permuting the rows (or the order in which classes
    first appear) gives the same data order under the trainer's seeded shuffle.
    """
    return np.asarray(sorted(range(len(texts)), key=lambda i: (int(codes[i]), texts[i])), dtype=np.intp)
