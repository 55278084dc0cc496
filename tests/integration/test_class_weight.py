"""``class_weight``: per-class weights in the training loss and in early stopping's log-loss."""

import numpy as np
import pytest
from scipy.special import log_softmax

from llm_classifier import LLMClassifier
from llm_classifier.formulations.base import class_log_loss
from llm_classifier.pipeline.weights import example_weights
from llm_classifier.pipeline.weights import resolve_class_weights


def _weights(class_weight, classes, codes):
    return resolve_class_weights(LLMClassifier(class_weight=class_weight), np.asarray(classes), np.asarray(codes))


def test_balanced_weights_follow_the_sklearn_rule():
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.array(["a"] * 6 + ["b"] * 3 + ["c"])
    codes = np.searchsorted(["a", "b", "c"], labels)
    expected = compute_class_weight("balanced", classes=np.array(["a", "b", "c"]), y=labels)
    np.testing.assert_allclose(_weights("balanced", ["a", "b", "c"], codes), expected)
    assert _weights(None, ["a", "b"], [0, 1]) is None
    assert _weights({"b": 2.5}, ["a", "b", "c"], codes) == [1.0, 2.5, 1.0]  # omitted classes weigh 1


def test_balanced_weights_ignore_a_class_with_no_training_text():
    """A class seen only in the held-out slice gets weight 1; the others share the rest as if it were absent."""
    np.testing.assert_allclose(_weights("balanced", ["a", "b", "c"], [0, 0, 0, 1]), [4 / 6, 2.0, 1.0])


@pytest.mark.parametrize(
    "class_weight, message",
    [({"z": 2.0}, r"keys are classes .*\['z'\] are not"), ({"a": -1.0}, "finite weights >= 0"),
     ({"a": float("nan")}, "finite weights >= 0"), ({"a": True}, "finite weights >= 0"),
     ({"a": 0.0, "b": 0}, "some class a positive weight"), ("uniform", "'class_weight' parameter")],
)
def test_bad_class_weight_is_rejected_before_the_model_loads(class_weight, message):
    clf = LLMClassifier(model="/nonexistent/model", class_weight=class_weight)  # loading would fail differently
    with pytest.raises(ValueError, match=message):
        clf.fit(["x", "y", "z", "w"], ["a", "b", "a", "b"])
    assert not hasattr(clf, "classes_")


def test_weighted_validation_log_loss_is_the_weighted_mean():
    rng = np.random.default_rng(0)
    scores, codes = rng.normal(size=(12, 3)), rng.integers(0, 3, size=12)
    nll = -log_softmax(scores, axis=1)[np.arange(12), codes]
    weights = example_weights(codes, [1.0, 2.0, 0.5])
    assert class_log_loss(scores, codes, weights) == pytest.approx(np.average(nll, weights=np.array([1.0, 2.0, 0.5])[codes]))
    assert class_log_loss(scores, codes, example_weights(codes, [1.0, 1.0, 1.0])) == pytest.approx(nll.mean())


@pytest.mark.parametrize("objective", ["answer", "class", "answer+class"])
def test_class_weights_scale_each_examples_loss(tiny_params, sentiment, objective):
    """Balanced weights on balanced data change nothing; doubling every weight doubles the loss."""
    X, y = sentiment
    params = {**tiny_params, "max_steps": 2, "objective": objective}
    plain = LLMClassifier(**params).fit(X, y)
    balanced = LLMClassifier(class_weight="balanced", **params).fit(X, y)
    doubled = LLMClassifier(class_weight={"positive": 2.0, "negative": 2.0}, **params).fit(X, y)
    assert balanced.history_["class_weights"] == [1.0, 1.0] and plain.history_["class_weights"] is None
    reference, adapter = plain.backend_.state().adapter, balanced.backend_.state().adapter
    for name in reference:
        np.testing.assert_array_equal(adapter[name], reference[name])
    first = plain.history_["steps"][0]["loss"]
    assert doubled.history_["steps"][0]["loss"] == pytest.approx(2 * first, rel=1e-5)


@pytest.mark.parametrize("objective", ["answer", "class"])
def test_each_class_adds_its_weighted_share_of_the_loss(tiny_params, sentiment, objective):
    """In one full batch, the loss with only positives weighted plus the loss with only negatives
    weighted is the unweighted loss: a zero weight removes exactly that class's texts from it."""
    X, y = sentiment
    params = {**tiny_params, "max_steps": 1, "batch_size": len(X), "objective": objective}

    def first_loss(class_weight):
        return LLMClassifier(class_weight=class_weight, **params).fit(X, y).history_["steps"][0]["loss"]

    only_positive, only_negative = first_loss({"negative": 0.0}), first_loss({"positive": 0.0})
    assert min(only_positive, only_negative) > 0
    assert only_positive + only_negative == pytest.approx(first_loss(None), rel=1e-5)
