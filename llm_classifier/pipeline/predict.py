"""What ``predict`` and its siblings do, on a fitted state and a plan: chunked encoding, scoring,
generation, and **the one decision rule** (:func:`decide`) from probabilities to predictions.

Every entry point that turns probabilities into labels (``LLMClassifier.predict``,
``predict_from_proba``, the command line, a server) goes through :func:`decide`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .._logging import warn_caller
from .._process import is_main_process
from .._params import PREDICTION_SETTINGS, check_prediction_params
from ..exceptions import LowConfidenceError, LowConfidenceWarning, UnparseableAnswerError, invalid
from ..formulations.windows import EncodedWindows, Windows
from ..inputs import iter_text_chunks
from ..state import FittedState
from .plan import Plan

__all__ = ["PREDICTION_SETTINGS", "answer_scores", "check_prediction_settings", "decide", "encoded_chunks", "generate",
           "parse_generated", "text_windows"]

def check_prediction_settings(state: FittedState, plan: Plan) -> None:
    """Refuse prediction settings (:data:`~llm_classifier._params.PREDICTION_SETTINGS`) that ``fit`` would refuse
    (:func:`~llm_classifier._params.check_prediction_params`: their constraints, the rules between them and on the
    classes) or that the fitted formulation cannot serve (its ``check_params``), so that one changed with
    ``set_params`` after ``fit`` raises instead of predicting silently wrong: generate mode would ignore a
    ``confidence_threshold``; a multi-label classifier in generate mode would return one label per text, and with
    ``long_text="mean"`` would pool a softmax across its labels; a channel one would generate from class prompts.
    Other parameters only act at the next ``fit``.

    Raises
    ------
    InvalidParameterError
        Naming the parameter, with the message ``fit`` gives.
    """
    check_prediction_params(plan, state.classes)
    for name, allowed in state.formulation.check_params(plan):
        if name in PREDICTION_SETTINGS:
            raise invalid(plan, name, allowed, getattr(plan, name))


def text_windows(state: FittedState, plan: Plan, truncate: bool = False) -> Windows:
    """How the fitted classifier reads a text: its formulation's encoder, in windows as ``long_text`` says.

    ``truncate`` reads one prompt per text whatever ``long_text`` says (generation answers once per text).
    """
    formulation = state.formulation
    encoder = formulation.encoder(state.engine.tokenizer, state.layout, state.choice_ids, plan.max_length,
                                  plan.truncation)
    return Windows(formulation, encoder, "truncate" if truncate else plan.long_text, plan.window_overlap,
                   plan.max_windows)


def encoded_chunks(plan: Plan, X: Any, desc: str, windows: Windows,
                   chunk_size: int) -> Iterator[tuple[int, list[str], EncodedWindows, Any]]:
    """``(start, texts, encoded, progress_bar)`` per chunk of ``X``; warns once about cut texts at the end.

    ``encoded.ids`` holds one prompt per text, or per window when ``long_text`` pools windows.
    """
    bar = _progress_bar(X, desc) if plan.verbose and is_main_process() else None
    start = n_cut = 0
    try:
        for texts in iter_text_chunks(X, "X", chunk_size):
            encoded = windows.encode(texts)
            n_cut += encoded.n_cut
            yield start, texts, encoded, bar
            start += len(texts)
    finally:
        if bar is not None:
            bar.close()
    if n_cut:
        warn_caller(windows.message(n_cut, start))


def answer_scores(state: FittedState, plan: Plan, X: Any, chunk_size: int, desc: str = "Scoring") -> np.ndarray:
    """``[n_texts, n_classes]`` class log-scores of ``X``, scored chunk by chunk (windows pooled per text)."""
    windows = text_windows(state, plan)
    parts = [windows.score(state.engine, encoded, state.choice_ids, batch_size=plan.eval_batch_size, progress=bar)
             for _, _, encoded, bar in encoded_chunks(plan, X, desc, windows, chunk_size)]
    return np.concatenate(parts) if parts else np.zeros((0, len(state.classes)))


def generate(state: FittedState, plan: Plan, X: Any,
             chunk_size: int) -> Iterator[tuple[int, list[str], list[str]]]:
    """``(start, texts, generated answers)`` per chunk of ``X`` (one prompt per text)."""
    max_new = plan.max_new_tokens or max(map(len, state.choice_ids)) + 8
    windows = text_windows(state, plan, truncate=True)
    for start, texts, encoded, bar in encoded_chunks(plan, X, "Generating", windows, chunk_size):
        yield start, texts, state.engine.generate(encoded.ids, max_new_tokens=max_new,
                                                  batch_size=plan.eval_batch_size, progress=bar)


def parse_generated(state: FittedState, plan: Plan, start: int, generated: list[str]) -> tuple[list[int | None], int]:
    """Class index of each generated answer (None where unparseable), and how many were unparseable.

    Raises :class:`~llm_classifier.exceptions.UnparseableAnswerError` when ``on_unparseable="raise"``.
    """
    indices = [state.label_parser.parse(text, state.answers) for text in generated]
    missing = [i for i, index in enumerate(indices) if index is None]
    if missing and isinstance(plan.on_unparseable, str) and plan.on_unparseable == "raise":
        raise UnparseableAnswerError(
            f"{len(missing)} of {len(generated)} generated answers match no class, e.g. row {start + missing[0]}: "
            f"{generated[missing[0]]!r}. Set on_unparseable='score' to fall back to label scoring."
        )
    return indices, len(missing)


def decide(state: FittedState, plan: Plan, proba: np.ndarray) -> np.ndarray:
    """The one decision rule: predictions from (calibrated, normalised) probabilities, as ``predict_proba``
    returns them.

    It compares the probabilities themselves, never a log/exp round trip of them (``np.exp(np.log(0.35))``
    is below 0.35), so ``predict(X)`` is ``predict_from_proba(predict_proba(X))`` bit for bit and a
    probability equal to a threshold is not under it.

    The formulation decides (single-label: the most probable class; multi-label: each label
    whose probability reaches its threshold), then, single-label only, the texts under
    ``confidence_threshold`` are handled as ``on_low_confidence`` says: ``"warn"`` keeps the
    predictions and warns once with the count; ``"raise"`` raises
    :class:`~llm_classifier.exceptions.LowConfidenceError` naming the first such row; any
    other value is returned in place of the class for those rows.
    """
    predictions = state.formulation.decide(proba, state.classes, state.thresholds)
    threshold = plan.confidence_threshold
    if threshold is None or not len(predictions) or predictions.ndim != 1:  # multi-label: thresholds decide
        return predictions
    top = proba.max(axis=1)
    low = np.flatnonzero(top < threshold)
    if not len(low):
        return predictions
    action = plan.on_low_confidence
    summary = (f"{len(low)} of {len(predictions)} texts have a top probability under confidence_threshold="
               f"{threshold:g}, e.g. row {low[0]} ({top[low[0]]:.3f})")
    if isinstance(action, str) and action == "raise":
        raise LowConfidenceError(f"{summary}. Set on_low_confidence to a reject value or 'warn' to predict anyway.")
    if isinstance(action, str) and action == "warn":
        warn_caller(f"{summary}; they are predicted anyway (on_low_confidence='warn').", LowConfidenceWarning)
        return predictions
    rows = predictions.astype(object)
    rows[low] = action
    try:  # keep the classes' dtype when the reject value is of its kind ("unknown" among strings, -1 among ints),
        # not when numpy would convert it (5 among strings would become "5", True among ints 1)
        if np.asarray([action]).dtype.kind == predictions.dtype.kind:
            kept = np.asarray(rows.tolist())
            if kept.dtype.kind == predictions.dtype.kind and kept.ndim == 1:
                return kept
    except (TypeError, ValueError):
        pass
    return rows


def _progress_bar(X: Any, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=len(X) if hasattr(X, "__len__") else None, desc=desc, unit="text")
