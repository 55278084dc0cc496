"""The low-confidence policy of predict: confidence_threshold and on_low_confidence."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.utils._param_validation import InvalidParameterError

from llm_classifier import LLMClassifier, LowConfidenceError, LowConfidenceWarning

X = ["aaaa aaaa", "bbbb bbbb", "aaaa aa", "bbbb bb", "cccc cc", "aabb aabb"]
Y = ["a", "b", "a", "b", "c", "a"]


@pytest.fixture(scope="module")
def fitted():
    """A reference-engine classifier (pure numpy: fast) with three classes."""
    return LLMClassifier(backend="reference", model="reference", max_steps=4, batch_size=2, random_state=0).fit(X, Y)


def test_off_by_default_predicts_every_text(fitted):
    assert fitted.confidence_threshold is None
    np.testing.assert_array_equal(fitted.predict(X), fitted.classes_[fitted.predict_proba(X).argmax(axis=1)])


@given(threshold=st.floats(0.01, 1.0), reject=st.sampled_from(["unknown", None, -1]))
@settings(max_examples=30, deadline=None)
def test_rows_under_the_threshold_get_the_reject_value_and_the_others_the_argmax(fitted, threshold, reject):
    proba = fitted.predict_proba(X)
    clf = fitted.set_params(confidence_threshold=threshold, on_low_confidence=reject)
    predictions = clf.predict(X)
    low = proba.max(axis=1) < threshold
    argmax = fitted.classes_[proba.argmax(axis=1)]
    assert [p == reject for p, is_low in zip(predictions, low) if is_low] == [True] * int(low.sum())
    assert list(predictions[~low]) == list(argmax[~low])
    fitted.set_params(confidence_threshold=None, on_low_confidence=None)


def test_reject_value_keeps_the_classes_dtype_when_it_fits(fitted):
    fitted.set_params(confidence_threshold=1.0, on_low_confidence="unknown")
    try:
        predictions = fitted.predict(X)
    finally:
        fitted.set_params(confidence_threshold=None, on_low_confidence=None)
    assert predictions.dtype.kind == "U" and set(predictions) == {"unknown"}


@pytest.mark.parametrize("reject", [5, -1.5, True])
def test_a_reject_value_of_another_type_keeps_its_type(fitted, reject):
    """Among string classes a reject value of 5 came back as the string '5' (so `predictions == 5` missed every
    rejected row); it is returned as it is, in an object array."""
    top = np.sort(fitted.predict_proba(X).max(axis=1))
    fitted.set_params(confidence_threshold=float(top[2] + top[3]) / 2, on_low_confidence=reject)  # 3 rows under it
    try:
        predictions = fitted.predict(X)
    finally:
        fitted.set_params(confidence_threshold=None, on_low_confidence=None)
    rejected = [p for p in predictions if not isinstance(p, str)]
    assert predictions.dtype == object and len(rejected) == 3
    assert all(type(p) is type(reject) and p == reject for p in rejected)


def test_raise_names_the_first_row_and_warn_predicts_anyway(fitted):
    proba = fitted.predict_proba(X)
    threshold = float(np.sort(proba.max(axis=1))[1]) + 1e-9  # two rows under it
    fitted.set_params(confidence_threshold=threshold, on_low_confidence="raise")
    try:
        with pytest.raises(LowConfidenceError, match=r"2 of 6 texts have a top probability under .* e\.g\. row \d"):
            fitted.predict(X)
        fitted.set_params(on_low_confidence="warn")
        with pytest.warns(LowConfidenceWarning, match="2 of 6 texts") as record:
            predictions = fitted.predict(X)
        assert record[0].filename == __file__
        assert list(predictions) == list(fitted.classes_[proba.argmax(axis=1)])
    finally:
        fitted.set_params(confidence_threshold=None, on_low_confidence=None)


@pytest.mark.parametrize("proba", [[[0.5, 0.5], [0.2]], [[1j, 0.5, 0.5]], [[None, 0.5, 0.5]], [[np.nan, 0.5, 0.5]],
                                   [[np.inf, 0.0, 0.0]], [0.2, 0.3, 0.5], [[0.2, 0.8]]])
def test_predict_from_proba_names_what_is_wrong_with_proba(fitted, proba):
    with pytest.raises(ValueError, match=r"^proba must (be|have|hold)"):  # not numpy's "setting an array element ..."
        fitted.predict_from_proba(proba)


@pytest.mark.parametrize("proba, row, total", [
    ([[0.0, 0.0, 0.0]], 0, "0"),  # was 'a' (the argmax of nothing)
    ([[0.3, 0.4, 0.3], [0.2, 0.2, 0.2]], 1, "0.6"),  # the probabilities of a subset of the classes
    ([[0.9, 0.8, 0.1]], 0, "1.8"),  # multi-label style: one probability per label
])
def test_predict_from_proba_refuses_rows_that_do_not_sum_to_one(fitted, proba, row, total):
    """A single-label classifier's probabilities sum to 1 over the classes; other rows were decided silently
    (argmax, and confidence_threshold compared with a number that is no probability of the class)."""
    with pytest.raises(ValueError, match=rf"^proba's rows must sum to 1 .*row {row} sums to {total}\b"):
        fitted.predict_from_proba(proba)


def test_predict_from_proba_takes_probabilities_as_stored(fitted):
    """float32, float16 and probabilities rounded to 3 decimals still sum to 1 closely enough; predictions agree."""
    proba = fitted.predict_proba(X)
    for stored in (proba.astype(np.float32), proba.astype(np.float16), np.round(proba, 3)):
        np.testing.assert_array_equal(fitted.predict_from_proba(stored), fitted.classes_[stored.argmax(axis=1)])


def test_predict_from_proba_refuses_a_frame_of_probability_columns_in_another_order(fitted):
    """The command line writes one p_<class> column per class; a frame of them in another order (sorted as text:
    p_10 before p_2) was read by position, each text decided with another class's probability."""
    pd = pytest.importorskip("pandas")
    proba = fitted.predict_proba(X)
    frame = pd.DataFrame(proba, columns=[f"p_{c}" for c in fitted.classes_])
    np.testing.assert_array_equal(fitted.predict_from_proba(frame), fitted.predict(X))
    with pytest.raises(ValueError, match=r"proba's columns name the classes in another order than classes_"):
        fitted.predict_from_proba(frame[["p_b", "p_a", "p_c"]])


@pytest.mark.parametrize("columns, repeated", [(["p_a", "p_a", "p_c"], "'p_a'"), (["a", "a", "c"], "'a'"),
                                              (["p_a", "p_b", "p_a"], "'p_a'"), (["x", "x", "x"], "'x'")])
def test_predict_from_proba_refuses_a_frame_naming_a_column_twice(fitted, columns, repeated):
    """A frame is read by position: with a column named twice ('p_a', 'p_a', 'p_c') it was decided as if the columns
    were 'p_a', 'p_b', 'p_c', the second column's probabilities taken for class 'b'."""
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(fitted.predict_proba(X), columns=columns)
    with pytest.raises(ValueError, match=rf"^proba's columns name {repeated} more than once: got "):
        fitted.predict_from_proba(frame)


def test_predict_from_proba_refuses_generate_mode(fitted):
    """In generate mode the generated answer decides, so the decision rule over probabilities would disagree with
    predict; it is refused rather than answering differently."""
    proba = fitted.predict_proba(X)
    fitted.set_params(inference="generate")
    try:
        with pytest.raises(ValueError, match=r"^predict_from_proba is the decision rule of inference='score'"):
            fitted.predict_from_proba(proba)
    finally:
        fitted.set_params(inference="score")
    np.testing.assert_array_equal(fitted.predict_from_proba(proba), fitted.predict(X))


def test_a_top_probability_equal_to_the_threshold_is_not_under_it(fitted):
    # np.exp(np.log(0.35)) < 0.35: the rule compares the probabilities as given, not a log round trip of them
    for threshold in np.round(np.arange(0.34, 1.0, 0.01), 2):
        fitted.set_params(confidence_threshold=float(threshold), on_low_confidence="unknown")
        try:
            rest = (1 - threshold) / 2
            assert fitted.predict_from_proba([[threshold, rest, rest]]).tolist() == ["a"], threshold
        finally:
            fitted.set_params(confidence_threshold=None, on_low_confidence=None)


@pytest.mark.parametrize("params, match", [
    ({"confidence_threshold": 0.0}, "confidence_threshold"),
    ({"confidence_threshold": 1.5}, "confidence_threshold"),
    ({"confidence_threshold": 0.5, "inference": "generate"}, "confidence_threshold.*inference='generate'"),
])
def test_bad_thresholds_are_refused_at_fit(params, match):
    with pytest.raises(InvalidParameterError, match=match):
        LLMClassifier(backend="reference", model="reference", max_steps=1, **params).fit(X, Y)


def test_generate_mode_set_after_fit_does_not_drop_the_policy_silently(fitted):
    """Generate mode ignored confidence_threshold: every text was predicted, none rejected, and nothing said so."""
    fitted.set_params(confidence_threshold=1.0, on_low_confidence="unknown", inference="generate")
    try:
        with pytest.raises(InvalidParameterError, match="'confidence_threshold' parameter .* must be None when "
                                                         "inference='generate'"):
            fitted.predict(X)
        fitted.set_params(confidence_threshold=None, long_text="mean")
        with pytest.raises(InvalidParameterError, match="'long_text' parameter .* must be 'truncate' when inference"):
            fitted.predict(X)
    finally:
        fitted.set_params(confidence_threshold=None, on_low_confidence=None, inference="score", long_text="truncate")
    assert set(fitted.predict(X)) <= set(fitted.classes_)


@pytest.mark.parametrize("params, match", [
    ({"confidence_threshold": 5}, r"'confidence_threshold' parameter .* in the range \(0.0, 1.0\]"),  # every row was None
    ({"confidence_threshold": float("nan")}, "'confidence_threshold' parameter"),  # no row was ever rejected
    ({"confidence_threshold": "0.9"}, "'confidence_threshold' parameter"),  # numpy's UFuncTypeError
    ({"confidence_threshold": 1.0, "on_low_confidence": "a"}, "'on_low_confidence' parameter .* not one of the classes"),
    ({"confidence_threshold": 1.0, "on_low_confidence": ["x"]}, "'on_low_confidence' parameter"),
    ({"inference": "bogus"}, "'inference' parameter"),  # predicted by generation
    ({"long_text": "bogus"}, "'long_text' parameter"),
    ({"truncation": "bogus"}, "'truncation' parameter"),
    ({"window_overlap": 2.0}, "'window_overlap' parameter"),
    ({"max_windows": 0}, "'max_windows' parameter"),
    ({"max_length": "64"}, "'max_length' parameter"),  # TypeError: unsupported operand
    ({"eval_batch_size": 2.5}, "'eval_batch_size' parameter"),  # TypeError from range()
    ({"eval_batch_size": True}, "'eval_batch_size' parameter"),
    ({"inference": "generate", "on_unparseable": "zzz"}, "'on_unparseable' parameter"),  # IndexError when unparseable
    ({"inference": "generate", "max_new_tokens": 0}, "'max_new_tokens' parameter"),  # 0 meant the default
])
def test_parameters_prediction_reads_pass_the_constraints_of_fit_when_set_after_fit(fitted, params, match):
    """Prediction reads these parameters as they are when it runs; one set after fit to a value fit refuses
    predicted silently wrong (a confidence_threshold of 5 made every prediction None, a reject value equal to a
    class read as that class) or crashed inside numpy. Each is refused with fit's message, naming it."""
    expected = fitted.predict(X)
    defaults = {name: fitted.get_params()[name] for name in params}
    fitted.set_params(**params)
    try:
        for method in (fitted.predict, fitted.predict_proba):
            with pytest.raises(InvalidParameterError, match=match):
                method(X)
        with pytest.raises(InvalidParameterError, match=match):
            fitted.predict_from_proba(np.full((1, 3), 1 / 3))
    finally:
        fitted.set_params(**defaults)
    np.testing.assert_array_equal(fitted.predict(X), expected)


def test_the_policy_on_the_tiny_transformers_model(tiny_params, sentiment):
    X, y = sentiment
    clf = LLMClassifier(**tiny_params).fit(X, y)
    proba = clf.predict_proba(X)
    threshold = float(np.median(proba.max(axis=1)))
    predictions = clf.set_params(confidence_threshold=threshold, on_low_confidence="unknown").predict(X)
    low = proba.max(axis=1) < threshold
    assert list(predictions[low]) == ["unknown"] * int(low.sum())
    assert list(predictions[~low]) == list(clf.classes_[proba.argmax(axis=1)][~low])
