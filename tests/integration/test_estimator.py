"""End-to-end behaviour of LLMClassifier on the tiny model (real code paths, no mocks)."""

import warnings

import numpy as np
import pandas as pd
import pytest

from llm_classifier import LLMClassifier, MappingVerbalizer
from llm_classifier.exceptions import UnparseableAnswerError


def test_fit_predict_proba_contract(tiny_params, sentiment):
    X, y = sentiment
    clf = LLMClassifier(**tiny_params).fit(X, y)
    assert clf.classes_.tolist() == ["negative", "positive"]
    proba = clf.predict_proba(X)
    assert proba.shape == (8, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert np.all((proba >= 0) & (proba <= 1))
    predictions = clf.predict(X)
    np.testing.assert_array_equal(predictions, clf.classes_[proba.argmax(axis=1)])
    assert 0.0 <= clf.score(X, y) <= 1.0


def test_history_records_training(tiny_params, sentiment):
    clf = LLMClassifier(**tiny_params).fit(*sentiment)
    history = clf.history_
    assert history["n_steps"] == 3
    assert len(history["steps"]) == 3
    assert all(np.isfinite(step["loss"]) for step in history["steps"])
    for key in ("train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos", "train_loss"):
        assert key in history


def test_training_changes_the_model_and_lowers_loss(tiny_params, sentiment):
    X, y = sentiment
    zero = LLMClassifier(**{**tiny_params, "max_steps": 0, "calibration": None}).fit(X, y)
    tuned = LLMClassifier(**{**tiny_params, "max_steps": 30, "learning_rate": 5e-3}).fit(X, y)
    assert zero.history_["n_steps"] == 0 and zero.backend_.state().adapter is None
    losses = [step["loss"] for step in tuned.history_["steps"]]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    assert tuned.score(X, y) >= zero.score(X, y)
    assert not np.allclose(zero.predict_proba(X), tuned.predict_proba(X))


def test_integer_and_bool_labels_round_trip(tiny_params, sentiment):
    X, y = sentiment
    ints = [1 if label == "positive" else 0 for label in y]
    clf = LLMClassifier(**tiny_params).fit(X, ints)
    assert clf.classes_.dtype.kind == "i" and set(clf.predict(X)) <= {0, 1}
    clf = LLMClassifier(**{**tiny_params, "max_steps": 0}).fit(X, [v == 1 for v in ints])
    assert clf.classes_.dtype == bool


def test_pandas_inputs(tiny_params, sentiment):
    X, y = sentiment
    clf = LLMClassifier(**{**tiny_params, "max_steps": 0}).fit(pd.DataFrame({"text": X}), pd.Series(y))
    assert clf.predict(pd.Series(X)).shape == (8,)


def test_verbalizer_mapping_and_multi_token_answers(tiny_params, sentiment):
    X, y = sentiment
    verbalizer = MappingVerbalizer({"negative": "thumbs down", "positive": "thumbs up"})
    clf = LLMClassifier(**{**tiny_params, "verbalizer": verbalizer}).fit(X, y)
    assert clf.answers_ == ["thumbs down", "thumbs up"]
    assert min(len(ids) for ids in clf.choice_ids_) >= 3  # shared first token, then end of answer
    np.testing.assert_allclose(clf.predict_proba(X).sum(axis=1), 1.0)


@pytest.mark.parametrize("prompt", ["alpaca", "chat", "Text: {text}\nLabels: {labels}\nAnswer:", lambda text, labels: f"{text} =>"])
def test_prompt_variants(tiny_params, sentiment, prompt):
    clf = LLMClassifier(**{**tiny_params, "max_steps": 1, "prompt": prompt}).fit(*sentiment)
    assert clf.predict(sentiment[0]).shape == (8,)


def test_generate_mode_policies(tiny_params, sentiment):
    X, y = sentiment
    clf = LLMClassifier(**{**tiny_params, "inference": "generate", "max_new_tokens": 3}).fit(X, y)
    generated = clf.generate(X)
    assert len(generated) == 8 and all(isinstance(text, str) for text in generated)
    n_unparseable = sum(clf.label_parser_.parse(t, clf.answers_) is None for t in generated)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        predictions = clf.predict(X)  # a random tiny model answers nonsense: falls back to scoring
    parsed = [clf.label_parser_.parse(t, clf.answers_) for t in generated]
    scored = clf.predict_proba(X).argmax(axis=1)
    expected = clf.classes_[[s if p is None else p for p, s in zip(parsed, scored)]]
    np.testing.assert_array_equal(predictions, expected)  # parsed answers as parsed, the rest scored
    assert [str(w.message).split(" of ")[0] for w in record if "matched no class" in str(w.message)] == ([str(n_unparseable)] if n_unparseable else [])
    clf.set_params(on_unparseable="positive")
    if n_unparseable:
        assert "positive" in set(clf.predict(X))
        clf.set_params(on_unparseable="raise")
        with pytest.raises(UnparseableAnswerError, match="match no class"):
            clf.predict(X)


def test_generate_mode_when_every_answer_parses():
    """The default policy ("score") must not be consulted when no answer needs it (a regression)."""
    X = ["good fun great", "bad awful dull", "great plot", "awful cast dull"] * 5
    y = ["pos", "neg", "pos", "neg"] * 5
    clf = LLMClassifier(backend="reference", model="reference", max_steps=4, random_state=0,
                        inference="generate", max_new_tokens=4).fit(X, y)
    generated = clf.generate(X[:4])
    assert all(clf.label_parser_.parse(text, clf.answers_) is not None for text in generated)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predictions = clf.predict(X[:4])
    assert predictions.tolist() == [text.strip() for text in generated]


def test_refit_starts_from_base_and_is_reproducible(tiny_params, sentiment):
    X, y = sentiment
    clf = LLMClassifier(**tiny_params).fit(X, y)
    first = clf.predict_proba(X)
    clf.fit(X, y)
    np.testing.assert_allclose(clf.predict_proba(X), first, atol=1e-6)


def test_long_texts_are_truncated_with_one_warning(tiny_params, sentiment):
    X, y = sentiment
    clf = LLMClassifier(**{**tiny_params, "max_steps": 0, "max_length": 96}).fit(X, y)
    with pytest.warns(UserWarning, match="truncated") as record:
        proba = clf.predict_proba(["word " * 500, "short"])
    assert len([w for w in record if "truncated" in str(w.message)]) == 1
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_failed_refit_leaves_fitted_estimator_unchanged(tiny_params, sentiment):
    X, y = sentiment
    clf = LLMClassifier(**tiny_params).fit(X, y)
    before = clf.predict_proba(X)
    attributes = dict(vars(clf))
    clf.set_params(model="/nonexistent/model/dir")
    with pytest.raises(ValueError):
        clf.fit(X, y)
    clf.set_params(model=tiny_params["model"])
    assert {k: id(v) for k, v in vars(clf).items() if k.endswith("_")} == {k: id(v) for k, v in attributes.items() if k.endswith("_")}
    np.testing.assert_allclose(clf.predict_proba(X), before, atol=1e-9)


@pytest.mark.parametrize("objective", ["class", "answer+class"])
def test_class_level_objectives_train(tiny_params, sentiment, objective):
    X, y = sentiment
    verbalizer = {"negative": "thumbs down", "positive": "thumbs up"}  # shared first token
    clf = LLMClassifier(**{**tiny_params, "objective": objective, "max_steps": 25, "learning_rate": 5e-3, "verbalizer": verbalizer}).fit(X, y)
    losses = [step["loss"] for step in clf.history_["steps"]]
    assert np.isfinite(losses).all() and np.mean(losses[-5:]) < np.mean(losses[:5])
    if objective == "class":
        assert losses[0] < 2.0  # a cross-entropy over 2 classes starts near log 2, not near log |V|
    np.testing.assert_allclose(clf.predict_proba(X).sum(axis=1), 1.0)


def test_answer_scores_are_the_raw_scores_behind_predict_log_proba(tiny_params, sentiment):
    from scipy.special import log_softmax

    X, y = sentiment
    clf = LLMClassifier(**{**tiny_params, "max_steps": 0}).fit(X, y)  # "auto": prior-calibrated
    raw = clf.answer_scores(X)
    assert raw.shape == (len(X), 2) and (raw < 0).all()
    assert not np.allclose(np.exp(raw).sum(axis=1), 1.0)  # not normalised over the classes
    calibrated = clf.calibration_.apply(raw)
    np.testing.assert_allclose(clf.predict_log_proba(X), log_softmax(calibrated, axis=1), atol=1e-5)
    np.testing.assert_allclose(clf.decision_function(X), calibrated[:, 1] - calibrated[:, 0], atol=1e-5)
    assert ((clf.decision_function(X) > 0) == (clf.predict(X) == clf.classes_[1])).all()


def test_decision_function_has_a_column_per_class_beyond_two(tiny_params):
    X = ["one", "two", "three", "four", "five", "six"]
    y = ["a", "b", "c"] * 2
    clf = LLMClassifier(**{**tiny_params, "max_steps": 0, "calibration": None}).fit(X, y)
    scores = clf.decision_function(X)
    np.testing.assert_allclose(scores, clf.answer_scores(X))
    assert (clf.classes_[scores.argmax(axis=1)] == clf.predict(X)).all()


def test_prior_calibration_matches_training_frequencies(tiny_params, sentiment):
    X, y = sentiment
    raw = LLMClassifier(**{**tiny_params, "max_steps": 0, "calibration": None}).fit(X, y)
    calibrated = LLMClassifier(**{**tiny_params, "max_steps": 0}).fit(X, y)  # "auto": zero-shot is calibrated
    assert raw.calibration_ is None and calibrated.calibration_.bias.shape == (2,)
    np.testing.assert_allclose(calibrated.predict_proba(X).mean(axis=0), [0.5, 0.5], atol=0.05)
    tuned = LLMClassifier(**tiny_params).fit(X, y)
    assert tuned.calibration_ is None  # "auto" leaves fine-tuned models alone
