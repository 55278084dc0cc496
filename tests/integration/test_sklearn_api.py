"""The scikit-learn contract: checks from sklearn.utils.estimator_checks and meta-estimators."""

import pickle

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils import estimator_checks as checks

from llm_classifier import LLMClassifier


@pytest.mark.parametrize(
    "check",
    [
        checks.check_no_attributes_set_in_init,
        checks.check_estimator_cloneable,
        checks.check_get_params_invariance,
        checks.check_set_params,
        checks.check_estimator_repr,
        checks.check_parameters_default_constructible,
        checks.check_estimator_tags_renamed,
        checks.check_valid_tag_types,
        checks.check_estimators_overwrite_params,
    ],
    ids=lambda check: check.__name__,
)
def test_sklearn_api_checks(check, tiny_params):
    estimator = LLMClassifier(**tiny_params)
    if check is checks.check_estimators_overwrite_params:
        pytest.skip("needs numeric X; covered by test_fit_does_not_change_params")
    check(type(estimator).__name__, estimator)


def test_unfitted_errors(tiny_params, sentiment):
    from sklearn.exceptions import NotFittedError

    for method in ("predict", "predict_proba", "predict_log_proba", "decision_function", "answer_scores", "generate"):
        with pytest.raises(NotFittedError):
            getattr(LLMClassifier(**tiny_params), method)(sentiment[0])


def test_tags_declare_string_input():
    tags = LLMClassifier().__sklearn_tags__()
    assert tags.input_tags.string and not tags.input_tags.two_d_array
    assert tags.estimator_type == "classifier"


def test_fit_does_not_change_params(tiny_params, sentiment):
    clf = LLMClassifier(**tiny_params)
    before = clf.get_params()
    clf.fit(*sentiment)
    assert clf.get_params() == before


def test_clone_is_unfitted_with_same_params(tiny_params, sentiment):
    clf = LLMClassifier(**tiny_params).fit(*sentiment)
    cloned = clone(clf)
    assert cloned.get_params() == clf.get_params()
    assert not hasattr(cloned, "classes_")


@pytest.mark.parametrize("dump, load", [(pickle.dumps, pickle.loads), (None, None)], ids=["pickle", "joblib"])
def test_pickle_round_trip(tiny_params, sentiment, tmp_path, dump, load):
    X, y = sentiment
    clf = LLMClassifier(**tiny_params).fit(X, y)
    expected = clf.predict_proba(X)
    if dump is None:
        joblib.dump(clf, tmp_path / "clf.joblib")
        restored = joblib.load(tmp_path / "clf.joblib")
    else:
        payload = dump(clf)
        assert len(payload) < 5_000_000  # the base weights are not pickled
        restored = load(payload)
    np.testing.assert_allclose(restored.predict_proba(X), expected, atol=1e-6)


def test_pipeline_and_grid_search(tiny_params, sentiment):
    X, y = sentiment
    pipe = Pipeline([("lower", FunctionTransformer(lambda texts: [t.lower() for t in texts])), ("clf", LLMClassifier(**tiny_params))])
    grid = GridSearchCV(pipe, {"clf__max_steps": [0, 2], "clf__prompt": ["alpaca", "chat"]}, cv=2)
    grid.fit(X, y)
    assert set(grid.cv_results_["params"][0]) == {"clf__max_steps", "clf__prompt"}
    assert len(grid.cv_results_["mean_test_score"]) == 4
    assert set(grid.predict(X)) <= {"negative", "positive"}


def test_grid_search_over_plugin_parameters(tiny_params, sentiment):
    from llm_classifier import AlpacaTemplate

    clf = LLMClassifier(**{**tiny_params, "max_steps": 0, "prompt": AlpacaTemplate()})
    assert "prompt__instruction" in clf.get_params(deep=True)
    grid = GridSearchCV(clf, {"prompt__instruction": ["Sentiment? {labels}", "Classify: {labels}"]}, cv=2).fit(*sentiment)
    assert len(grid.cv_results_["mean_test_score"]) == 2


def test_cross_val_score(tiny_params, sentiment):
    scores = cross_val_score(LLMClassifier(**tiny_params), *sentiment, cv=2)
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))


def test_soft_voting_with_tfidf_keeps_the_label_names(tiny_params, sentiment):
    """VotingClassifier fits its members on integer codes; a verbalizer gives the LLM the names back."""
    from sklearn.ensemble import VotingClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    X, y = sentiment
    names = dict(enumerate(sorted(set(y))))  # the codes VotingClassifier's LabelEncoder gives
    vote = VotingClassifier(
        [("llm", LLMClassifier(**tiny_params, verbalizer=names)),
         ("tfidf", make_pipeline(TfidfVectorizer(), LogisticRegression()))],
        voting="soft",
    ).fit(X, y)
    llm = vote.named_estimators_["llm"]
    assert list(llm.classes_) == [0, 1] and llm.answers_ == ["negative", "positive"]
    proba = vote.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert set(vote.predict(X)) <= {"negative", "positive"}


def test_voting_without_verbalizer_warns_about_digit_answers(tiny_params, sentiment):
    """Inside VotingClassifier the LLM sees the codes 0..k-1; without a verbalizer it would learn to answer digits."""
    import warnings

    from sklearn.ensemble import VotingClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    members = [("llm", LLMClassifier(**{**tiny_params, "max_steps": 0})),
               ("tfidf", make_pipeline(TfidfVectorizer(), LogisticRegression()))]
    with pytest.warns(UserWarning, match=r"integers 0\.\.1 and no verbalizer .* answer the digits '0', '1'.* verbalizer=\{0: "):
        VotingClassifier(members, voting="soft").fit(*sentiment)
    named = [("llm", LLMClassifier(**{**tiny_params, "max_steps": 0}, verbalizer={0: "negative", 1: "positive"}))]
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*no verbalizer.*")
        VotingClassifier(named, voting="soft").fit(*sentiment)
        LLMClassifier(**{**tiny_params, "max_steps": 0}).fit(sentiment[0], [1, 2] * 4)  # not the codes 0..k-1


def test_continuous_y_is_an_unknown_label_type(tiny_params, sentiment):
    X = sentiment[0] * 2
    with pytest.raises(ValueError, match=r"Unknown label type: continuous"):
        LLMClassifier(**tiny_params).fit(X, np.linspace(0, 1, 16))


def test_column_vector_y_warns_like_sklearn(tiny_params, sentiment):
    from sklearn.exceptions import DataConversionWarning

    X, y = sentiment
    with pytest.warns(DataConversionWarning, match=r"A column-vector y was passed when a 1d array was expected"):
        clf = LLMClassifier(**{**tiny_params, "max_steps": 0}).fit(X, np.asarray(y).reshape(-1, 1))
    assert list(clf.classes_) == ["negative", "positive"]


def test_predict_in_generate_mode_does_not_change_the_estimator(tiny_params, sentiment):
    from llm_classifier.exceptions import UnparseableAnswerWarning

    X, y = sentiment
    clf = LLMClassifier(**{**tiny_params, "inference": "generate", "max_new_tokens": 2}).fit(X, y)
    n_unparseable = sum(clf.label_parser_.parse(t, clf.answers_) is None for t in clf.generate(X))
    before = dict(vars(clf))
    assert n_unparseable  # a random tiny model answers nonsense
    with pytest.warns(UnparseableAnswerWarning, match=rf"^{n_unparseable} of 8 generated answers matched no class and were scored"):
        clf.predict(X)
    assert vars(clf).keys() == before.keys() and not hasattr(clf, "n_unparseable_")
