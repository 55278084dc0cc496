"""Every formulation survives every way of moving a fitted classifier, on two engines.

A fitted classifier is one record (:class:`llm_classifier.state.FittedState`); pickling,
``save``/``load`` and ``with_backend`` are all built on it. For each formulation (single-label
direct and channel, multi-label, long texts in windows, a low-confidence policy) and each engine
(the numpy reference engine and the transformers engine on the tiny model), the moved classifier
must predict exactly what the original predicts, through the same decision rule, and keep every
fitted attribute (thresholds, calibration, layout, history).
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest

from llm_classifier import LLMClassifier
from llm_classifier.engines import engine_class

TEXTS = ["good fun film", "bad dull plot", "great cast and fun", "awful and dull", "fun plot", "dull cast",
         "good good good", "bad bad awful"] * 2
SINGLE = ["pos", "neg", "pos", "neg", "pos", "neg", "pos", "neg"] * 2
MULTI = [["fun", "good"], ["dull"], ["fun", "good"], ["dull"], ["fun"], ["dull"], ["good"], []] * 2
LONG = [" ".join([t] * 12) for t in TEXTS]

FORMULATIONS: dict[str, tuple[dict[str, Any], list[str], list[Any]]] = {
    "direct": ({}, TEXTS, SINGLE),
    "channel": ({"direction": "channel"}, TEXTS, SINGLE),
    "multilabel": ({"multilabel_threshold": 0.3}, TEXTS, MULTI),
    "windows": ({"long_text": "mean", "max_length": 48, "prompt": "Review: {text}\nAnswer:"}, LONG, SINGLE),
    "low-confidence": ({"confidence_threshold": 0.99, "on_low_confidence": "unsure"}, TEXTS, SINGLE),
}
MOVES = ["pickle", "save-load", "with_backend"]


def _engine_params(engine: str, tiny_model: str) -> dict[str, Any]:
    if engine == "reference":
        return dict(backend="reference", model="reference")
    return dict(backend="transformers", model=tiny_model, quantization=None, dtype="float32")


@pytest.fixture(scope="module", params=[(f, e) for f in FORMULATIONS for e in ("reference", "transformers")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def fitted(request: pytest.FixtureRequest, tiny_model: str) -> tuple[str, LLMClassifier, list[str]]:
    formulation, engine = request.param
    params, texts, targets = FORMULATIONS[formulation]
    clf = LLMClassifier(**_engine_params(engine, tiny_model), **params, max_steps=2, batch_size=4, random_state=0)
    return engine, clf.fit(texts, targets), texts


def _move(clf: LLMClassifier, engine: str, how: str, tmp_path: Any) -> LLMClassifier:
    if how == "pickle":
        return pickle.loads(pickle.dumps(clf))
    if how == "save-load":
        clf.save(tmp_path / "artifact")
        return LLMClassifier.load(tmp_path / "artifact")
    return clf.with_backend(engine_class(engine)())  # a fresh engine of the same kind, from the saved state


@pytest.mark.parametrize("how", MOVES)
def test_a_moved_classifier_predicts_the_same(fitted: tuple[str, LLMClassifier, list[str]], how: str,
                                              tmp_path: Any) -> None:
    engine, clf, texts = fitted
    moved = _move(clf, engine, how, tmp_path)
    assert moved.backend_ is not clf.backend_
    np.testing.assert_allclose(moved.predict_proba(texts), clf.predict_proba(texts), rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(moved.predict(texts), clf.predict(texts))
    np.testing.assert_array_equal(moved.classes_, clf.classes_)
    assert moved.answers_ == clf.answers_
    for field in ("formulation", "demonstrations", "class_prompts", "prefix", "suffix"):
        assert getattr(moved.layout_, field) == getattr(clf.layout_, field), field
    template, moved_template = clf.layout_.template, moved.layout_.template
    assert type(moved_template) is type(template) and moved_template.get_params() == template.get_params()
    if clf.thresholds_ is None:
        assert moved.thresholds_ is None
    else:
        np.testing.assert_array_equal(moved.thresholds_, clf.thresholds_)
    if clf.calibration_ is None:
        assert moved.calibration_ is None
    else:
        np.testing.assert_allclose(moved.calibration_.bias, clf.calibration_.bias)
        assert moved.calibration_.temperature == clf.calibration_.temperature
    assert moved.history_["n_steps"] == clf.history_["n_steps"]


def test_the_decision_rule_is_the_public_one(fitted: tuple[str, LLMClassifier, list[str]]) -> None:
    """``predict`` (score mode) is ``predict_from_proba(predict_proba)`` for every formulation."""
    _, clf, texts = fitted
    np.testing.assert_array_equal(clf.predict(texts), clf.predict_from_proba(clf.predict_proba(texts)))
