"""What ``LLMClassifier.fit`` does with multi-label targets (see :mod:`llm_classifier.formulations.multilabel`).

The steps of :func:`llm_classifier.pipeline.fit.fit_classifier`, with an indicator matrix
instead of class codes: no calibration, no demonstrations, "yes" decisions weighted by
``positive_weight``, and per-label thresholds at the end (fitted on early stopping's
held-out slice for ``multilabel_threshold="auto"`` when there is one, else 0.5).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit

from .fit import (EARLY_STOPPING_MIN_TEXTS, FittedClassifier, draw_seed, engine_options, train_schedule)
from .._params import check_params, invalid
from ..engines import resolve_backend
from .holdout import stratified_holdout
from ..plugins.labels import check_answers, resolve_parser, resolve_verbalizer, warn_if_integer_codes
from ..formulations.multilabel import MULTILABEL, check_multilabel_targets, fit_thresholds, positive_weights
from ..inputs import check_sample_weight, check_texts

__all__ = ["fit_multilabel", "multilabel_holdout"]


def fit_multilabel(estimator: Any, X: Any, y: Any, sample_weight: Any = None) -> FittedClassifier:
    """Fit ``estimator``'s configuration on ``X`` and the multi-label targets ``y``; the estimator is not changed."""
    check_params(estimator)
    texts = check_texts(X, "X")
    for name, allowed in MULTILABEL.check_params(estimator):
        raise invalid(estimator, name, allowed, getattr(estimator, name))
    classes, indicator = check_multilabel_targets(y, len(texts))
    weights = check_sample_weight(sample_weight, len(texts))
    answers = check_answers(resolve_verbalizer(estimator.verbalizer).answers(list(classes)), list(classes))
    if estimator.verbalizer is None:
        warn_if_integer_codes(classes)
    engine = resolve_backend(estimator.backend)
    if weights is not None and not engine.capabilities.sample_weight:
        raise TypeError(f"fit(sample_weight=...) needs an engine that trains with weights; {type(engine).__name__} "
                        "declares capabilities.sample_weight=False.")
    seed = draw_seed(estimator.random_state)
    if weights is not None:  # a text of weight 0 is left out, as if it were not there
        kept = np.flatnonzero(weights > 0)
        texts, indicator, weights = [texts[i] for i in kept], indicator[kept], weights[kept]
    order = sorted(range(len(texts)), key=lambda i: (indicator[i].tolist(), texts[i]))  # row order does not matter
    texts, indicator = [texts[i] for i in order], indicator[order]
    weights = None if weights is None else weights[order]
    held = multilabel_holdout(estimator, indicator, seed)
    engine.load(estimator.model, **engine_options(estimator, engine))
    layout = MULTILABEL.layout(estimator.prompt, engine.tokenizer, answers, ([], np.zeros(0, int)),
                               estimator.max_length)
    choice_ids = MULTILABEL.choice_ids(engine.tokenizer, answers, layout)
    encoder = MULTILABEL.encoder(engine.tokenizer, layout, choice_ids, estimator.max_length, estimator.truncation)
    schedule = train_schedule(estimator, engine, held is not None, seed)
    train = np.ones(len(texts), dtype=bool) if held is None else ~held
    positive = positive_weights(indicator[train], estimator.positive_weight)
    if held is not None:
        held_ids = encoder.encode([t for t, h in zip(texts, held) if h], warn=False).ids
        schedule["validation"] = MULTILABEL.validation(held_ids, indicator[held], _scaled(weights, held), choice_ids,
                                                       estimator.eval_batch_size, positive_weights=positive)
    inputs = encoder.encode([t for t, keep in zip(texts, train) if keep]).ids
    request = MULTILABEL.train_request(inputs, indicator[train], choice_ids, weights=_scaled(weights, train),
                                       positive_weights=positive, **schedule)
    history: dict[str, Any] = {"num_train_epochs": None if request.max_steps is not None else request.num_train_epochs,
                               "n_texts": len(inputs), "n_labels": len(classes),
                               "positive_weights": positive.tolist()}
    if request.n_steps() == 0:
        history.update(n_steps=0, n_examples=len(request.examples), steps=[])
    elif not engine.capabilities.fit:
        raise TypeError(f"{type(engine).__name__} cannot fine-tune (capabilities.fit=False); use max_steps=0.")
    else:
        history.update(engine.fit(request))
    validation_scores = history.pop("validation_scores", None)
    history["early_stopping"] = validation_scores is not None
    history["class_weights"] = None
    thresholds = _thresholds(estimator, validation_scores, None if held is None else indicator[held], len(classes))
    return FittedClassifier(classes, answers, layout, resolve_parser(estimator.label_parser), engine, history, seed,
                            None, thresholds)


def multilabel_holdout(estimator: Any, indicator: np.ndarray, seed: int) -> np.ndarray | None:
    """The held-out validation rows when early stopping runs (stratified by label set), else None."""
    if estimator.max_steps == 0 or estimator.early_stopping is False:
        return None
    if estimator.early_stopping == "auto" and len(indicator) < EARLY_STOPPING_MIN_TEXTS:
        return None
    _, label_sets = np.unique(indicator, axis=0, return_inverse=True)
    held = stratified_holdout(label_sets.reshape(-1), estimator.validation_fraction, seed)
    if held.any():
        return held
    if estimator.early_stopping == "auto":
        return None
    raise ValueError(
        f"early_stopping=True needs a validation slice, but validation_fraction={estimator.validation_fraction} of "
        f"{len(indicator)} training texts holds out none (the slice is stratified by label set, and a label set "
        "gives validation texts only when it is frequent enough); add examples, raise validation_fraction or set "
        "early_stopping=False."
    )


def _scaled(weights: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
    """The sample weights of ``rows``, scaled to average 1 over them (None when all are equal)."""
    return None if weights is None else weights[rows] / weights[rows].mean()


def _thresholds(estimator: Any, validation_scores: np.ndarray | None, held_indicator: np.ndarray | None,
                n_labels: int) -> np.ndarray:
    """Per-label thresholds: ``multilabel_threshold``, or for "auto" F1-optimal on the held-out slice (0.5 without one).

    ``validation_scores`` are the held-out texts' ``(n, k)`` per-label logits (see ``MultiLabel.validation``).
    """
    if estimator.multilabel_threshold != "auto" or validation_scores is None:
        return np.full(n_labels, 0.5 if estimator.multilabel_threshold == "auto" else
                       float(estimator.multilabel_threshold))
    return fit_thresholds(expit(np.asarray(validation_scores)), held_indicator)
