"""Prediction helpers of LLMClassifier: chunked encoding and the unparseable-answer policy."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .._logging import warn_caller
from .._process import is_main_process
from ..exceptions import LowConfidenceError, LowConfidenceWarning, UnparseableAnswerError
from ..formulations.registry import get_formulation
from ..inputs import iter_text_chunks
from ..formulations.windows import EncodedWindows, Windows


def text_windows(clf: Any, truncate: bool = False) -> Windows:
    """How the fitted ``clf`` reads a text: its direction's encoder, in windows as ``long_text`` says.

    ``truncate`` reads one prompt per text whatever ``long_text`` says (generation answers once per text).
    """
    direction = get_formulation(clf.layout_.direction)
    encoder = direction.encoder(clf.backend_.tokenizer, clf.layout_, clf.answer_ids_, clf.max_length, clf.truncation)
    windows = Windows.of(clf, direction, encoder)
    if truncate:
        windows.long_text = "truncate"
    return windows


def encoded_chunks(clf: Any, X: Any, desc: str,
                   windows: Windows | None = None) -> Iterator[tuple[int, list[str], EncodedWindows, Any]]:
    """``(start, texts, encoded, progress_bar)`` per chunk of ``X``; warns once about cut texts at the end.

    ``encoded.ids`` holds one prompt per text, or per window when ``long_text`` pools windows.
    """
    windows = windows or text_windows(clf)
    bar = _progress_bar(X, desc) if clf.verbose and is_main_process() else None
    start = n_cut = 0
    try:
        for texts in iter_text_chunks(X, "X", clf.predict_chunk_size):
            encoded = windows.encode(texts)
            n_cut += encoded.n_cut
            yield start, texts, encoded, bar
            start += len(texts)
    finally:
        if bar is not None:
            bar.close()
    if n_cut:
        warn_caller(windows.message(n_cut, start))


def chunk_scores(clf: Any, X: Any, desc: str = "Scoring") -> np.ndarray:
    """``[n_texts, n_classes]`` class log-scores of ``X``, scored chunk by chunk (windows pooled per text)."""
    windows = text_windows(clf)
    parts = [windows.score(clf.backend_, encoded, clf.answer_ids_, batch_size=clf.eval_batch_size, progress=bar)
             for _, _, encoded, bar in encoded_chunks(clf, X, desc, windows)]
    return np.concatenate(parts)


def parse_generated(clf: Any, start: int, texts: list[str], generated: list[str]) -> tuple[list[int], int]:
    """Class index of each generated answer per ``on_unparseable``, and how many were unparseable."""
    indices = [clf.label_parser_.parse(text, clf.answers_) for text in generated]
    missing = [i for i, index in enumerate(indices) if index is None]
    if missing and clf.on_unparseable == "raise":
        raise UnparseableAnswerError(
            f"{len(missing)} of {len(texts)} generated answers match no class, e.g. row {start + missing[0]}: "
            f"{generated[missing[0]]!r}. Set on_unparseable='score' to fall back to label scoring."
        )
    if not missing:
        fallback = []
    elif clf.on_unparseable == "score":
        fallback = np.argmax(clf.predict_log_proba([texts[i] for i in missing]), axis=1).tolist()
    else:
        fallback = [int(np.flatnonzero(clf.classes_ == clf.on_unparseable)[0])] * len(missing)
    for i, index in zip(missing, fallback):
        indices[i] = index
    return [int(index) for index in indices], len(missing)


def confident_predictions(clf: Any, log_proba: np.ndarray) -> np.ndarray:
    """``classes_[argmax]``, with the texts under ``confidence_threshold`` handled as ``on_low_confidence`` says.

    ``"warn"`` keeps the predictions and warns once with the count; ``"raise"`` raises
    :class:`~llm_classifier.exceptions.LowConfidenceError` naming the first such row; any
    other value (``None`` by default) is returned in place of the class for those rows.
    """
    predictions = get_formulation(clf.layout_.direction).decide(log_proba, clf.classes_, clf.thresholds_)
    threshold = clf.confidence_threshold
    if threshold is None or not len(predictions) or predictions.ndim != 1:  # multi-label: thresholds_ decide
        return predictions
    top = np.exp(log_proba.max(axis=1))
    low = np.flatnonzero(top < threshold)
    if not len(low):
        return predictions
    action = clf.on_low_confidence
    summary = (f"{len(low)} of {len(predictions)} texts have a top probability under confidence_threshold="
               f"{threshold:g}, e.g. row {low[0]} ({top[low[0]]:.3f})")
    if isinstance(action, str) and action == "raise":
        raise LowConfidenceError(f"{summary}. Set on_low_confidence to a reject value or 'warn' to predict anyway.")
    if isinstance(action, str) and action == "warn":
        warn_caller(f"{summary}; they are predicted anyway (on_low_confidence='warn').", LowConfidenceWarning)
        return predictions
    rows = predictions.astype(object)
    rows[low] = action
    try:  # keep the classes' dtype when the reject value fits it (e.g. "unknown" among strings, -1 among ints)
        kept = np.asarray(rows.tolist())
        if kept.dtype.kind == predictions.dtype.kind and kept.ndim == 1:
            return kept
    except (TypeError, ValueError):
        pass
    return rows


def _progress_bar(X: Any, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=len(X) if hasattr(X, "__len__") else None, desc=desc, unit="text")
