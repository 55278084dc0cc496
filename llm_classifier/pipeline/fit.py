"""What ``LLMClassifier.fit`` does, step by step, on local variables only.

:func:`fit_classifier` checks the inputs, loads the engine, lets the direction lay out the
prompt, trains through the engine and fits the calibration, and returns a
:class:`FittedClassifier`. The estimator assigns it in one step, so a fit that fails half-way
leaves a previously fitted estimator exactly as it was.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from numbers import Integral
from typing import Any

import numpy as np
from sklearn.utils.validation import check_random_state

from .._params import check_on_unparseable, check_params
from ..engines import resolve_backend
from ..engines.base import Engine
from .._logging import warn_caller
from ..plugins.calibration import Calibration, fit_calibration
from ..plugins.demonstrations import draw_demonstrations
from ..formulations.base import PromptLayout, get_direction
from .holdout import smallest_held_out_class, stratified_holdout
from ..plugins.labels import check_answers, resolve_parser, resolve_verbalizer, warn_if_integer_codes
from ..inputs import canonical_order, check_classes, check_labels, check_sample_weight, check_texts
from .weights import example_weights, resolve_class_weights
from ..formulations.windows import Windows

#: ``early_stopping="auto"`` holds out a validation slice from this many training texts on.
EARLY_STOPPING_MIN_TEXTS = 200
#: Training texts scored to fit the calibration when there is no validation slice.
CALIBRATION_SIZE = 256


@dataclass
class FittedClassifier:
    """Everything a fit produces; the estimator's fitted attributes, written in one place."""

    classes: np.ndarray
    answers: list[str]
    layout: PromptLayout
    label_parser: Any
    engine: Engine
    history: dict[str, Any]
    random_seed: int
    calibration: Calibration | None
    #: Multi-label only: each label's probability threshold (``thresholds_``).
    thresholds: np.ndarray | None = None


@contextlib.contextmanager
def kept_global_random() -> Iterator[None]:
    """Restore Python's and NumPy's global random state when the block ends (the engine keeps its own)."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def draw_seed(random_state: Any) -> int:
    """The run's seed: ``random_state`` itself when it is an int, else drawn from it; seeds Python and NumPy."""
    if isinstance(random_state, Integral) and not isinstance(random_state, bool):
        seed = int(random_state)
    else:
        seed = int(check_random_state(random_state).randint(0, 2**31 - 1))
    random.seed(seed)  # inside fit only: kept_global_random restores the caller's state
    np.random.seed(seed % 2**32)
    return seed


def engine_options(estimator: Any, engine: Engine) -> dict[str, Any]:
    """The estimator's parameters the engine declares it takes (``capabilities.options``)."""
    params = estimator.get_params(deep=False)
    return {name: params[name] for name in engine.capabilities.options if name in params}


def early_stopping_rows(estimator: Any, codes: np.ndarray, seed: int) -> np.ndarray | None:
    """The held-out validation rows when early stopping runs, else None."""
    if estimator.max_steps == 0 or estimator.early_stopping is False:
        return None
    if estimator.early_stopping == "auto" and len(codes) < EARLY_STOPPING_MIN_TEXTS:
        return None
    held = stratified_holdout(codes, estimator.validation_fraction, seed)
    if held.any():
        return held
    if estimator.early_stopping == "auto":
        return None
    raise ValueError(
        f"early_stopping=True needs a validation slice, but validation_fraction={estimator.validation_fraction} "
        f"of {len(codes)} training texts holds out none (a class gives validation texts from "
        f"{smallest_held_out_class(estimator.validation_fraction)} examples on); add examples, raise "
        "validation_fraction or set early_stopping=False."
    )


def fit_classifier(estimator: Any, X: Any, y: Any, sample_weight: Any = None) -> FittedClassifier:
    """Fit ``estimator``'s configuration on ``X``, ``y``; the estimator itself is not changed."""
    check_params(estimator)
    texts = check_texts(X, "X")
    labels = check_labels(y, len(texts))
    weights = check_sample_weight(sample_weight, len(texts))
    classes = check_classes(labels)
    parser = resolve_parser(estimator.label_parser)
    answers = check_answers(resolve_verbalizer(estimator.verbalizer).answers(list(classes)), list(classes))
    if estimator.verbalizer is None:
        warn_if_integer_codes(classes)
    check_on_unparseable(estimator, classes)
    engine = resolve_backend(estimator.backend)
    if weights is not None and not engine.capabilities.sample_weight:
        raise TypeError(f"fit(sample_weight=...) needs an engine that trains with weights; {type(engine).__name__} "
                        "declares capabilities.sample_weight=False.")
    seed = draw_seed(estimator.random_state)
    codes = np.searchsorted(classes, labels)
    if weights is not None:  # a text of weight 0 is left out, as if it were not there
        kept = np.flatnonzero(weights > 0)
        texts, codes, weights = [texts[i] for i in kept], codes[kept], weights[kept]
    order = canonical_order(texts, codes)  # row order does not change the model
    texts, codes = [texts[i] for i in order], codes[order]
    weights = None if weights is None else weights[order]
    held = early_stopping_rows(estimator, codes, seed)
    class_weights = resolve_class_weights(estimator, classes, codes if held is None else codes[~held])
    engine.load(estimator.model, **engine_options(estimator, engine))
    direction = get_direction(estimator.direction)
    demo_rows = draw_demonstrations(codes, estimator.few_shot, seed, exclude=held)
    layout = direction.layout(estimator.prompt, engine.tokenizer, answers,
                              ([texts[i] for i in demo_rows], codes[demo_rows]), estimator.max_length)
    choice_ids = direction.choice_ids(engine.tokenizer, answers, layout)
    encoder = direction.encoder(engine.tokenizer, layout, choice_ids, estimator.max_length, estimator.truncation)
    windows = Windows.of(estimator, direction, encoder)  # long texts: truncated, or read as windows
    history = _train(estimator, engine, windows, texts, codes, weights, class_weights, held, choice_ids,
                     seed)
    validation_scores = history.pop("validation_scores", None)
    history["early_stopping"] = validation_scores is not None
    history["class_weights"] = class_weights  # per class, in the order of classes_ (None: equal)
    calibration = None
    method = _calibration_method(estimator.calibration, history)
    if method is not None:
        if validation_scores is not None:
            scores, scored = validation_scores, np.flatnonzero(held)
        else:
            scores, scored = _score_sample(estimator, engine, windows, texts, choice_ids, seed, demo_rows)
        calibration = fit_calibration(method, scores, codes[scored], codes, len(classes), weights=weights,
                                      scored_weights=None if weights is None else weights[scored])
    return FittedClassifier(classes, answers, layout, parser, engine, history, seed, calibration)


def train_schedule(estimator: Any, engine: Engine, validated: bool, seed: int) -> dict[str, Any]:
    """The :class:`~llm_classifier.engines.base.TrainRequest` schedule from the estimator's parameters."""
    epochs = estimator.num_train_epochs
    return dict(
        max_steps=estimator.max_steps,
        num_train_epochs=(4.0 if validated else 2.0) if epochs == "auto" else float(epochs),
        batch_size=estimator.batch_size, gradient_accumulation_steps=estimator.gradient_accumulation_steps,
        warmup_steps=estimator.warmup_steps, learning_rate=estimator.learning_rate,
        weight_decay=estimator.weight_decay, objective=estimator.objective, patience=estimator.n_iter_no_change,
        eval_batch_size=estimator.eval_batch_size, seed=seed, verbose=bool(estimator.verbose),
        options=engine_options(estimator, engine),
    )


def _train(estimator: Any, engine: Engine, windows: Windows, texts: list[str],
           codes: np.ndarray, weights: np.ndarray | None, class_weights: list[float] | None, held: np.ndarray | None,
           choice_ids: list[list[int]], seed: int) -> dict[str, Any]:
    """Fine-tune through the engine (on the rows not ``held`` out for validation); its history.

    Each example's loss weight is its class weight times its sample weight, the sample weights
    scaled to average 1 over the training rows (and, for the validation log-loss, over the slice).
    Long texts read as windows train as one example per window (see :mod:`llm_classifier.formulations.windows`);
    the validation slice is scored per document (its windows pooled), as prediction scores it.
    """
    schedule = train_schedule(estimator, engine, held is not None, seed)
    train = np.ones(len(texts), dtype=bool) if held is None else ~held
    weighted = engine.capabilities.sample_weight
    if held is not None:
        held_windows = windows.encode([t for t, h in zip(texts, held) if h])
        held_weights = example_weights(codes[held], class_weights, None if weights is None else weights[held])
        schedule["validation"] = windows.validation(held_windows, codes[held], held_weights, choice_ids,
                                                    estimator.eval_batch_size)
    inputs = windows.encode([t for t, keep in zip(texts, train) if keep])
    if inputs.n_cut:
        warn_caller(windows.message(inputs.n_cut, inputs.n_texts))
    train_weights = example_weights(codes[train], class_weights, None if weights is None else weights[train])
    request = windows.train_request(inputs, codes[train], choice_ids, train_weights, weighted, **schedule)
    history: dict[str, Any] = {"num_train_epochs": None if request.max_steps is not None else request.num_train_epochs}
    if request.n_steps() == 0:
        return {**history, "n_steps": 0, "n_examples": len(inputs.ids), "steps": []}
    if not engine.capabilities.fit:
        raise TypeError(f"{type(engine).__name__} cannot fine-tune (capabilities.fit=False); use max_steps=0.")
    return {**history, **engine.fit(request)}


def _calibration_method(calibration: str | None, history: dict[str, Any]) -> str | None:
    """The calibration to fit: ``calibration``, with "auto" resolved for this run ("prior" when untrained)."""
    if calibration != "auto":
        return calibration
    return "prior" if history["n_steps"] == 0 else None


def _score_sample(estimator: Any, engine: Engine, windows: Windows, texts: list[str],
                  choice_ids: list[list[int]], seed: int, exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class log-scores of up to :data:`CALIBRATION_SIZE` training texts, and their rows.

    The rows in ``exclude`` (the demonstrations, which would see their own answer in the
    prompt) are not drawn unless nothing else is left.
    """
    rng = np.random.default_rng(seed)
    rows = np.setdiff1d(np.arange(len(texts)), exclude)
    if len(rows) == 0:
        rows = np.arange(len(texts))
    sample = np.sort(rng.choice(rows, size=min(CALIBRATION_SIZE, len(rows)), replace=False))
    inputs = windows.encode([texts[i] for i in sample])
    return windows.score(engine, inputs, choice_ids, batch_size=estimator.eval_batch_size), sample
