"""``fit(X, y, sample_weight=...)``: per-text weights in the loss, early stopping and calibration."""

import numpy as np
import pytest
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline

from llm_classifier import LLMClassifier
from llm_classifier.pipeline.fit import held_out_rows
from llm_classifier.pipeline.plan import plan_of
from llm_classifier.pipeline.weights import example_weights
from llm_classifier.inputs import canonical_order, check_sample_weight


def _adapter(clf):
    return clf.backend_.state().adapter


def _assert_same_adapter(a, b):
    reference = _adapter(a)
    assert reference is not None and set(reference) == set(_adapter(b))
    for name, weight in _adapter(b).items():
        np.testing.assert_array_equal(weight, reference[name])


@pytest.mark.parametrize(
    "sample_weight, message",
    [
        ([1.0, 2.0], r"X and sample_weight have different lengths: 8 texts but 2 weights"),
        ([1.0] * 7 + [-1.0], r"sample_weight\[7\] is -1.0; weights must be finite numbers >= 0"),
        ([1.0, float("nan")] + [1.0] * 6, r"sample_weight\[1\] is nan"),
        ([1.0] * 7 + [True], r"sample_weight\[7\] is True"),
        (["1"] * 8, r"sample_weight\[0\] is '1'"),
        ([0.0] * 8, r"sample_weight is zero for every text"),
        (np.ones((8, 2)), r"sample_weight must be 1-D or a single column"),
    ],
    ids=["length", "negative", "nan", "bool", "string", "all-zero", "2-d"],
)
def test_bad_weights_are_refused_before_anything_is_fitted(tiny_params, sentiment, sample_weight, message):
    X, y = sentiment
    clf = LLMClassifier(**tiny_params)
    with pytest.raises(ValueError, match=message):
        clf.fit(X, y, sample_weight=sample_weight)
    assert not hasattr(clf, "classes_")


def test_weights_are_checked_and_a_single_number_weighs_every_text():
    np.testing.assert_array_equal(check_sample_weight(2.5, 3), [2.5, 2.5, 2.5])
    np.testing.assert_array_equal(check_sample_weight(np.array([0, 1, 3]), 3), [0.0, 1.0, 3.0])
    assert check_sample_weight(None, 3) is None


def test_example_weights_scale_samples_to_mean_one_then_apply_class_weights():
    codes = np.array([0, 1, 1, 0])
    assert example_weights(codes) is None
    np.testing.assert_allclose(example_weights(codes, sample_weight=np.array([1.0, 3.0, 2.0, 2.0])), [0.5, 1.5, 1.0, 1.0])
    np.testing.assert_allclose(example_weights(codes, [2.0, 1.0]), [2.0, 1.0, 1.0, 2.0])
    np.testing.assert_allclose(example_weights(codes, [2.0, 1.0], np.array([1.0, 3.0, 2.0, 2.0])), [1.0, 1.5, 1.0, 2.0])


def test_equal_weights_train_exactly_the_unweighted_model(tiny_params, sentiment):
    X, y = sentiment
    plain = LLMClassifier(**tiny_params).fit(X, y)
    _assert_same_adapter(plain, LLMClassifier(**tiny_params).fit(X, y, sample_weight=np.ones(len(X))))
    _assert_same_adapter(plain, LLMClassifier(**tiny_params).fit(X, y, sample_weight=3.0))


def test_a_zero_weight_leaves_the_text_out(tiny_params, sentiment):
    """Weight 0 on two texts trains the very model fitted without them (the classes are unchanged)."""
    X, y = sentiment
    weights = np.ones(len(X))
    weights[[0, 3]] = 0.0
    weighted = LLMClassifier(**tiny_params).fit(X, y, sample_weight=weights)
    kept = [i for i in range(len(X)) if weights[i] > 0]
    without = LLMClassifier(**tiny_params).fit([X[i] for i in kept], [y[i] for i in kept])
    _assert_same_adapter(without, weighted)
    assert weighted.history_["n_examples"] == len(kept)
    np.testing.assert_array_equal(weighted.predict_proba(X), without.predict_proba(X))


@pytest.mark.parametrize("objective", ["answer", "class"])
def test_weights_scale_each_texts_share_of_the_loss(tiny_params, sentiment, objective):
    """In one full batch, weighting the positives 3:1 gives the class_weight={positive: 3} loss,
    divided by the weights' mean (sample weights are scaled to average 1)."""
    X, y = sentiment
    params = {**tiny_params, "max_steps": 1, "batch_size": len(X), "objective": objective}
    weights = np.array([3.0 if label == "positive" else 1.0 for label in y])
    by_sample = LLMClassifier(**params).fit(X, y, sample_weight=weights).history_["steps"][0]["loss"]
    by_class = LLMClassifier(class_weight={"positive": 3.0}, **params).fit(X, y).history_["steps"][0]["loss"]
    assert by_sample == pytest.approx(by_class / weights.mean(), rel=1e-5)


def test_early_stopping_weighs_the_validation_log_loss(tiny_params, sentiment):
    """The kept adapter reproduces the best evaluation's log-loss as a weighted mean over the slice."""
    X, y = sentiment
    weights = np.array([1.0, 4.0, 2.0, 1.0, 3.0, 1.0, 1.0, 5.0])
    params = {**tiny_params, "max_steps": 6, "learning_rate": 5e-3, "early_stopping": True, "validation_fraction": 0.25,
              "n_iter_no_change": None, "calibration": None}
    clf = LLMClassifier(**params).fit(X, y, sample_weight=weights)
    best = next(r for r in clf.history_["validation"] if r["step"] == clf.history_["best_step"])
    codes = np.searchsorted(clf.classes_, y)
    order = canonical_order(list(X), codes)
    held = order[held_out_rows(plan_of(clf), codes[order], clf.random_seed_)]
    proba = clf.predict_proba([X[i] for i in held])
    nll = -np.log(proba[np.arange(len(held)), codes[held]])
    assert len(set(weights[held])) > 1  # the slice's weights differ, so weighting matters
    assert best["log_loss"] == pytest.approx(np.average(nll, weights=weights[held]), abs=1e-4)
    assert best["log_loss"] != pytest.approx(nll.mean(), abs=1e-4)


def test_zero_shot_prior_targets_the_weighted_label_frequencies(tiny_params, sentiment):
    X, y = sentiment
    params = {**tiny_params, "max_steps": 0}
    weights = np.array([3.0 if label == "positive" else 1.0 for label in y])
    plain = LLMClassifier(**params).fit(X, y)
    weighted = LLMClassifier(**params).fit(X, y, sample_weight=weights)
    classes = list(plain.classes_)  # ["negative", "positive"]: plain frequencies 1/2, 1/2; weighted 1/4, 3/4
    shift = weighted.calibration_.bias - plain.calibration_.bias
    expected = np.log([0.25, 0.75]) - np.log([0.5, 0.5])
    assert classes == ["negative", "positive"]
    np.testing.assert_allclose(shift - shift.mean(), expected - expected.mean(), atol=1e-9)


def test_a_backend_without_weights_is_refused_before_loading(tiny_params, sentiment):
    from dataclasses import replace

    from llm_classifier.engines.hf.engine import TransformersBackend

    class NoWeights(TransformersBackend):
        capabilities = replace(TransformersBackend.capabilities, sample_weight=False)

        def load(self, *args, **kwargs):
            raise AssertionError("the model must not be loaded")

    X, y = sentiment
    clf = LLMClassifier(**tiny_params, backend=NoWeights())
    with pytest.raises(TypeError, match=r"fit\(sample_weight=\.\.\.\) needs an engine that trains with weights; "
                                        r"NoWeights declares capabilities.sample_weight=False"):
        clf.fit(X, y, sample_weight=np.ones(len(X)))
    assert not hasattr(clf, "classes_")


def test_weights_pass_through_pipelines_and_cross_validation(tiny_params, sentiment):
    X, y = sentiment
    weights = np.linspace(0.5, 2.0, len(X))
    pipeline = make_pipeline(LLMClassifier(**{**tiny_params, "max_steps": 1}))
    pipeline.fit(X, y, llmclassifier__sample_weight=weights)
    assert set(pipeline.predict(X)) <= set(y)
    scores = cross_val_score(LLMClassifier(**{**tiny_params, "max_steps": 1}), np.array(X), np.array(y), cv=2,
                             params={"sample_weight": weights})
    assert scores.shape == (2,) and np.all((0 <= scores) & (scores <= 1))
