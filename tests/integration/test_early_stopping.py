"""Validation slice, best-adapter restore and early stopping (tiny model)."""

import numpy as np
import pytest
from scipy.special import log_softmax, softmax

from llm_classifier import LLMClassifier
from llm_classifier.plugins.calibration import fit_affine
from llm_classifier.formulations.registry import get_direction
from llm_classifier.engines.hf.early_stopping import NEAR_TIE
from llm_classifier.formulations.base import class_log_loss
from llm_classifier.pipeline.holdout import stratified_holdout
from llm_classifier.inputs import canonical_order


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5])
def test_holdout_is_stratified_and_keeps_every_class(fraction):
    sizes = [1, 2, 4, 10, 40]
    codes = np.repeat(np.arange(len(sizes)), sizes)
    held = stratified_holdout(codes, fraction, seed=0)
    for code, n in enumerate(sizes):
        expected = min(n - 1, int(fraction * n + 0.5))  # rounded half up, one example always kept
        assert held[codes == code].sum() == expected
    assert not held[codes == 0].any()  # a singleton class is never held out
    assert np.array_equal(held, stratified_holdout(codes, fraction, seed=0))


def test_holdout_spares_rare_classes_at_the_default_fraction():
    codes = np.repeat(np.arange(4), [2, 4, 5, 30])
    held = stratified_holdout(codes, 0.1, seed=0)
    assert [int(held[codes == c].sum()) for c in range(4)] == [0, 0, 1, 3]


def test_validation_log_loss_matches_definition():
    scores = np.log(np.array([[0.2, 0.6], [0.9, 0.3]]))
    codes = np.array([1, 1])
    expected = -np.mean(log_softmax(scores, axis=1)[[0, 1], [1, 1]])
    assert class_log_loss(scores, codes) == pytest.approx(expected)


def test_early_stopping_restores_the_best_adapter(tiny_params, sentiment):
    X, y = sentiment
    clf = LLMClassifier(**{**tiny_params, "max_steps": 12, "learning_rate": 5e-3, "early_stopping": True,
                           "validation_fraction": 0.25, "n_iter_no_change": None, "calibration": None}).fit(X, y)
    history = clf.history_
    records = history["validation"]
    assert [r["step"] for r in records] == list(range(2, 13, 2))  # 10 evaluations asked, every ceil(12/10) steps
    lowest, best = np.inf, None
    for record in records:  # the lowest log-loss, the later one on a near tie
        if record["log_loss"] <= lowest + NEAR_TIE:
            lowest, best = min(lowest, record["log_loss"]), record
    assert history["best_step"] == best["step"]
    assert history["stopped_early"] is False

    # The held-out rows, as fit chose them: scoring them now gives the best evaluation's log-loss.
    codes = np.searchsorted(clf.classes_, y)
    order = canonical_order(list(X), codes)
    texts, codes = [X[i] for i in order], codes[order]
    held = stratified_holdout(codes, 0.25, clf.random_seed_)
    assert history["n_examples"] == len(X) - held.sum()
    proba = clf.predict_proba([t for t, h in zip(texts, held) if h])
    log_loss = -np.mean(np.log(proba[np.arange(held.sum()), codes[held]]))
    assert log_loss == pytest.approx(best["log_loss"], abs=1e-4)


def test_early_stopping_stops_after_patience(tiny_params, sentiment):
    X, y = sentiment
    clf = LLMClassifier(**{**tiny_params, "max_steps": 30, "learning_rate": 5e-2, "early_stopping": True,
                           "validation_fraction": 0.25, "n_iter_no_change": 1}).fit(X, y)
    history = clf.history_
    losses = [r["log_loss"] for r in history["validation"]]
    if history["stopped_early"]:
        assert history["n_steps"] < 30
        assert losses[-1] > min(losses[:-1]) + NEAR_TIE  # the last evaluation did not improve
    else:
        assert all(b <= min(losses[: i + 1]) + NEAR_TIE for i, b in enumerate(losses[1:]))  # it never stalled
    assert clf.predict(X[:3]).shape == (3,)


def test_early_stopping_without_a_validation_slice_is_an_error(tiny_params):
    clf = LLMClassifier(**{**tiny_params, "early_stopping": True})
    with pytest.raises(ValueError, match="validation_fraction"):
        clf.fit(["a", "b", "c"], ["x", "y", "z"])
    assert not hasattr(clf, "classes_")
    with pytest.raises(ValueError, match="from 5 examples on"):  # 4 per class: 10 % rounds to none
        clf.fit(["a", "b", "c", "d"] * 2, ["x"] * 4 + ["y"] * 4)


@pytest.mark.parametrize("params, name", [({"validation_fraction": 0.0}, "validation_fraction"),
                                          ({"validation_fraction": 0.7}, "validation_fraction"),
                                          ({"n_iter_no_change": 0}, "n_iter_no_change"),
                                          ({"early_stopping": "yes"}, "early_stopping")])
def test_bad_early_stopping_parameters(tiny_params, sentiment, params, name):
    with pytest.raises(ValueError, match=name):
        LLMClassifier(**{**tiny_params, **params}).fit(*sentiment)


def test_prior_calibration_on_the_held_out_slice_keeps_every_class(tiny_params, sentiment):
    X, y = sentiment
    X, y = X + ["a lone example"], y + ["rare"]  # a singleton class is never held out
    clf = LLMClassifier(**{**tiny_params, "max_steps": 4, "early_stopping": True, "validation_fraction": 0.25,
                           "calibration": "prior"}).fit(X, y)
    assert np.all(np.isfinite(clf.calibration_.bias))
    assert clf.predict_proba(X[:4]).shape == (4, 3)


def test_affine_calibration_is_fitted_on_the_held_out_scores(tiny_params, sentiment):
    X, y = sentiment
    clf = LLMClassifier(**{**tiny_params, "max_steps": 6, "learning_rate": 5e-3, "early_stopping": True,
                           "validation_fraction": 0.25, "calibration": "affine"}).fit(X, y)
    assert "validation_scores" not in clf.history_
    codes = np.searchsorted(clf.classes_, y)
    order = canonical_order(list(X), codes)
    held = stratified_holdout(codes[order], 0.25, clf.random_seed_)
    rows = order[held]
    encoder = get_direction(clf.layout_.formulation).encoder(clf.backend_.tokenizer, clf.layout_, clf.choice_ids_,
                                                           clf.max_length, clf.truncation)
    raw = clf.backend_.score(encoder.encode([X[i] for i in rows]).ids, clf.choice_ids_, batch_size=8)
    expected = fit_affine(raw, codes[rows])
    assert clf.calibration_.temperature == pytest.approx(expected.temperature, rel=1e-2)
    np.testing.assert_allclose(clf.calibration_.bias, expected.bias, atol=1e-2)
    proba = clf.predict_proba([X[i] for i in rows])
    np.testing.assert_allclose(proba, softmax(clf.calibration_.apply(raw), axis=1), atol=1e-6)


def test_auto_early_stopping_needs_enough_texts(tiny_params, sentiment):
    X, y = sentiment
    small = LLMClassifier(**{**tiny_params, "max_steps": None, "batch_size": 8}).fit(X, y)
    assert small.history_["early_stopping"] is False and small.history_["num_train_epochs"] == 2.0
    assert small.calibration_ is None

    many_X = [f"{text} ({i})" for i in range(200 // len(X) + 1) for text in X][:200]
    many_y = (y * (200 // len(y) + 1))[:200]
    clf = LLMClassifier(**{**tiny_params, "max_steps": 4}).fit(many_X, many_y)
    assert clf.history_["early_stopping"] is True and len(clf.history_["validation"]) >= 1
    assert clf.history_["n_examples"] == 180  # 10 % of each class held out
    assert clf.calibration_ is None  # "auto" calibrates zero-shot classifiers only


def test_auto_early_stopping_stays_off_when_nothing_can_be_held_out(tiny_params):
    X = [f"text number {i}" for i in range(200)]
    y = [f"class {i}" for i in range(200)]  # every class a singleton
    params = {**tiny_params, "max_steps": 1, "calibration": None, "prompt": "Text: {text}\nClass:"}
    clf = LLMClassifier(**params).fit(X, y)
    assert clf.history_["early_stopping"] is False
    with pytest.raises(ValueError, match="validation slice"):
        LLMClassifier(**{**params, "early_stopping": True}).fit(X, y)


@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.125, 0.2, 1 / 3, 0.5])
def test_smallest_held_out_class_matches_the_rounding_rule(fraction):
    from llm_classifier.pipeline.holdout import n_held_out, smallest_held_out_class

    smallest = smallest_held_out_class(fraction)
    assert n_held_out(smallest, fraction) >= 1
    assert all(n_held_out(size, fraction) == 0 for size in range(1, smallest))


def test_monitor_evaluates_every_eval_steps_and_after_the_last_step():
    from llm_classifier.engines.hf.early_stopping import BestAdapterMonitor

    monitor = BestAdapterMonitor(None, lambda score: (0.0, np.zeros(0)), pad_id=0, eval_steps=3, patience=None)
    assert [step for step in range(1, 11) if monitor.due(step, 10)] == [3, 6, 9, 10]
    assert not monitor.should_stop  # patience=None never stops
