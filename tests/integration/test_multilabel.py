"""Multi-label classification: targets, the yes/no formulation, thresholds, scikit-learn, persistence."""

from __future__ import annotations

import warnings

import numpy as np
from scipy.special import expit, logit
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import FunctionTransformer, Pipeline
from sklearn.preprocessing import MultiLabelBinarizer
from sklearn.utils._param_validation import InvalidParameterError

from llm_classifier import LLMClassifier
from llm_classifier.engines.reference import ReferenceEngine
from llm_classifier.formulations.multilabel import (MAX_POSITIVE_WEIGHT, MULTILABEL, check_multilabel_targets,
                                                   fit_thresholds, is_multilabel_target, positive_weights, split_choices)

TEXTS = ["goal scored in the match", "the team won the cup", "stocks fell sharply", "market rallies on earnings",
         "election results announced", "parliament votes on budget", "football club buys striker",
         "bank shares drop after vote"]
SETS = [{"sport"}, {"sport"}, {"finance"}, {"finance"}, {"politics"}, {"politics", "finance"}, {"sport", "finance"},
        set()]
REF = dict(backend="reference", model="reference", max_steps=6, batch_size=4, random_state=0)


def reference(**params) -> LLMClassifier:
    return LLMClassifier(**{**REF, **params})


@pytest.fixture(scope="module")
def fitted_reference() -> LLMClassifier:
    return reference().fit(TEXTS, [sorted(s) for s in SETS])


# -- targets ---------------------------------------------------------------------------------
def test_targets_from_sets_matrix_and_frame():
    import pandas as pd

    classes, Y = check_multilabel_targets(SETS, len(SETS))
    assert classes.tolist() == ["finance", "politics", "sport"]
    assert Y.shape == (8, 3) and Y.dtype.kind == "i" and Y[7].sum() == 0  # a row without labels is allowed
    binarizer = MultiLabelBinarizer()
    matrix = binarizer.fit_transform(SETS)
    assert check_multilabel_targets(matrix, 8)[0].tolist() == [0, 1, 2]
    np.testing.assert_array_equal(check_multilabel_targets(matrix, 8)[1], Y)
    frame = pd.DataFrame(matrix[:, ::-1], columns=binarizer.classes_[::-1])  # columns out of order
    names, from_frame = check_multilabel_targets(frame, 8)
    assert names.tolist() == ["finance", "politics", "sport"]
    np.testing.assert_array_equal(from_frame, Y)


def test_a_series_or_object_array_of_label_sets_is_multilabel():
    """df["tags"] (a Series of lists or sets) was refused with "y[0] is a list; ... give every row a list"."""
    import pandas as pd

    column = np.empty(len(SETS), dtype=object)
    column[:] = [sorted(s) for s in SETS]
    for Y in (pd.Series(SETS), pd.Series([sorted(s) for s in SETS], index=range(10, 18)), column):
        assert is_multilabel_target(Y)
        classes, indicator = check_multilabel_targets(Y, 8)
        np.testing.assert_array_equal(indicator, check_multilabel_targets(SETS, 8)[1])
    assert not is_multilabel_target(pd.Series(["a", "b"])) and not is_multilabel_target(np.array(["a", "b"], dtype=object))
    clf = reference(max_steps=0).fit(TEXTS, pd.Series(SETS))
    assert clf.classes_.tolist() == ["finance", "politics", "sport"] and clf.predict(TEXTS[:2]).shape == (2, 3)


def test_lists_of_bits_are_an_indicator_matrix_not_label_sets():
    """Y.tolist() of an indicator matrix (which scikit-learn reads as one) was read as label sets of the labels
    0 and 1: every row named both, and [[1, 0, 1], [0, 1, 0], ...] became a constant [[1, 1], [1, 1], ...]."""
    rows = [[1, 0, 1], [0, 1, 0], [0, 0, 1]]
    for Y in (rows, [tuple(row) for row in rows], [[bool(v) for v in row] for row in rows]):
        classes, indicator = check_multilabel_targets(Y, 3)
        assert classes.tolist() == [0, 1, 2]
        np.testing.assert_array_equal(indicator, rows)
    assert check_multilabel_targets([[0], [1, 0]], 2)[1].tolist() == [[1, 0], [1, 1]]  # label sets stay label sets
    clf = reference(max_steps=0).fit(TEXTS, [[1, 0, 1], [0, 1, 0]] * 4)
    assert clf.classes_.tolist() == [0, 1, 2]


@pytest.mark.parametrize("odd", [float("nan"), None, "sport"])
def test_label_sets_with_one_row_that_is_not_a_set_name_that_row(odd):
    """df["tags"] with NaN for an untagged text was refused as "y[0] is a list; labels must be scalars", naming
    a good row and not the one to fix."""
    import pandas as pd

    Y = [sorted(s) for s in SETS]
    Y[5] = odd
    for y in (Y, pd.Series(Y, dtype=object)):
        with pytest.raises(TypeError, match=r"y\[0\] is a list of labels, but y\[5\] is .*give every row a list"):
            reference(max_steps=0).fit(TEXTS, y)


def test_what_counts_as_multilabel():
    assert is_multilabel_target(np.zeros((3, 2))) and is_multilabel_target([["a"], [], ["a", "b"]])
    assert not is_multilabel_target(np.zeros((3, 1))) and not is_multilabel_target(["a", "b"])
    assert not is_multilabel_target(np.array(["a", "b"]))


@pytest.mark.parametrize("Y, n, error, match", [
    (np.array([[0, 2], [1, 0]]), 2, ValueError, r"binary indicator matrix of 0/1.*Y\[0, 1\] is 2"),
    (np.array([["a", "b"], ["b", "a"]]), 2, ValueError, "binary indicator matrix"),
    ([["a"], "b"], 2, TypeError, r"Y\[1\] is 'b'"),
    ([["a", 1], ["b"]], 2, TypeError, "mixes labels of different types"),
    ([["a"], [None]], 2, ValueError, r"Y\[1\] holds a missing label"),
    ([["a"], ["a"]], 2, ValueError, "needs at least 2"),
    ([["a"], ["b"]], 3, ValueError, "3 texts but 2 label rows"),
    ([[1], [True], [0]], 3, TypeError, r"mixes labels of different types \(bool, number\)"),  # not True merged with 1
    ([[np.True_], [2]], 2, TypeError, r"mixes labels of different types \(bool, number\)"),
])
def test_bad_targets(Y, n, error, match):
    with pytest.raises(error, match=match):
        check_multilabel_targets(Y, n)


def test_pandas_nullable_and_object_indicator_frames_are_read():
    import pandas as pd

    expected = np.array([[1, 0], [0, 1], [1, 1]])
    for dtype in ("Int64", "boolean", object):
        frame = pd.DataFrame(expected, columns=["a", "b"]).astype(dtype)
        classes, indicator = check_multilabel_targets(frame, 3)
        assert classes.tolist() == ["a", "b"]
        np.testing.assert_array_equal(indicator, expected, err_msg=str(dtype))
    np.testing.assert_array_equal(check_multilabel_targets(expected.astype(object), 3)[1], expected)
    missing = pd.DataFrame({"a": pd.array([1, None, 0], dtype="Int64"), "b": [0, 1, 1]})
    with pytest.raises(ValueError, match=r"Y\[1, 0\] is <NA>"):  # the missing entry is named, not a valid 1
        check_multilabel_targets(missing, 3)
    with pytest.raises(ValueError, match=r"Y\[0, 1\] is '1'"):
        check_multilabel_targets(pd.DataFrame({"a": [1, 0], "b": ["1", 0]}, dtype=object), 2)


def test_constant_label_warns_and_still_fits():
    Y = np.array([[1, 0, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]])
    with pytest.warns(UserWarning, match=r"Labels 0 \(every text\) are constant"):
        clf = reference(verbalizer={0: "zero", 1: "one", 2: "two"}).fit(TEXTS[:4], Y)
    assert clf.predict(TEXTS[:2]).shape == (2, 3)


def test_unnamed_indicator_columns_warn_like_integer_classes():
    Y = MultiLabelBinarizer().fit_transform(SETS)
    with pytest.warns(UserWarning, match="the integers 0..2 and no verbalizer"):
        reference().fit(TEXTS, Y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf = reference(verbalizer={0: "finance", 1: "politics", 2: "sport"}).fit(TEXTS, Y)
    assert clf.classes_.tolist() == [0, 1, 2] and clf.answers_ == ["finance", "politics", "sport"]


# -- the formulation ---------------------------------------------------------------------------
def test_choices_pair_each_question_with_the_same_decisions():
    engine = ReferenceEngine()
    engine.load("reference")
    tok = engine.tokenizer
    ids = MULTILABEL.choice_ids(tok, ["sport", "finance"], None)
    assert ids[0] == tok.encode_text("sport: yes") + [tok.end_id]
    assert ids[3] == tok.encode_text("finance: no") + [tok.end_id]
    questions, (yes, no) = split_choices(ids)
    assert [q + yes for q in questions] == [ids[0], ids[2]] and [q + no for q in questions] == [ids[1], ids[3]]


def test_train_request_has_one_example_per_text_with_a_decision_per_label():
    engine = ReferenceEngine()
    engine.load("reference")
    ids = MULTILABEL.choice_ids(engine.tokenizer, ["a", "b", "c"], None)
    Y = np.array([[1, 0, 1], [0, 0, 0], [0, 0, 1], [0, 0, 1]])
    request = MULTILABEL.train_request([[1, 2], [3], [4], [5]], Y, ids, weights=np.array([1.0, 3.0, 1.0, 1.0]),
                                       positive_weights=np.array([3.0, 1.0, 0.5]))
    questions, (yes, no) = split_choices(ids)
    assert [e.context for e in request.examples] == [[1, 2], [3], [4], [5]]
    first = request.examples[0].decisions
    assert [d.prefix for d in first] == questions and all(d.candidates == [yes, no] for d in first)
    assert [[d.target for d in e.decisions] for e in request.examples] == (1 - Y).tolist()  # 0: yes, 1: no
    # the sequences trained on are exactly the scored ones: prompt + "<label>: yes|no" + end
    assert [1, 2] + first[2].prefix + first[2].candidates[first[2].target] == [1, 2] + ids[4]
    # a yes weighs positive_weights[j] times a no, each label's weights average 1, times the text's weight
    weights = np.array([[d.weight for d in e.decisions] for e in request.examples])
    label_a = np.array([3.0, 1, 1, 1]) / 1.5
    label_c = np.array([0.5, 1, 0.5, 0.5]) / 0.625
    np.testing.assert_allclose(weights[:, 0], label_a * [1, 3, 1, 1])
    np.testing.assert_allclose(weights[:, 1], [1, 3, 1, 1])
    np.testing.assert_allclose(weights[:, 2], label_c * [1, 3, 1, 1])


def test_balanced_positive_weights_are_the_no_to_yes_ratio_capped():
    Y = np.zeros((40, 4), dtype=int)
    Y[:10, 0] = 1  # 30 no / 10 yes
    Y[:1, 1] = 1  # 39 / 1: capped
    Y[:, 3] = 1  # never no
    np.testing.assert_allclose(positive_weights(Y, "balanced"), [3.0, MAX_POSITIVE_WEIGHT, 1.0, 1.0])
    np.testing.assert_allclose(positive_weights(Y, 2.5), [2.5] * 4)
    np.testing.assert_allclose(positive_weights(Y, None), [1.0] * 4)


@pytest.mark.parametrize("value", [0, -1.0, "auto", True])
def test_positive_weight_parameter_is_validated(value):
    with pytest.raises(InvalidParameterError, match="'positive_weight' parameter"):
        reference(positive_weight=value).fit(TEXTS, [sorted(s) for s in SETS])


def test_positive_weight_changes_the_fit():
    Y = [sorted(s) for s in SETS]
    plain = reference(positive_weight=None).fit(TEXTS, Y)
    weighted = reference(positive_weight=5.0).fit(TEXTS, Y)
    assert plain.history_["positive_weights"] == [1.0] * 3 and weighted.history_["positive_weights"] == [5.0] * 3
    Yb = MultiLabelBinarizer(classes=list(plain.classes_)).fit_transform(SETS)
    gap = lambda clf: clf.answer_scores(TEXTS)[Yb == 1].mean()  # noqa: E731 (uncorrected logits)
    assert gap(weighted) > gap(plain)  # the "yes" answers were learnt harder


def test_probabilities_are_the_sigmoid_of_yes_minus_no(fitted_reference):
    clf = fitted_reference
    prompts = MULTILABEL.encoder(clf.backend_.tokenizer, clf.layout_, clf.choice_ids_, clf.max_length,
                                 clf.truncation).encode(TEXTS[:3]).ids
    raw = clf.backend_.score(prompts, clf.choice_ids_, batch_size=4)
    offsets = np.log(clf.history_["positive_weights"])  # the weighting's correction (see the next test)
    assert np.any(offsets > 0)
    np.testing.assert_allclose(clf.answer_scores(TEXTS[:3]), raw[:, 0::2] - raw[:, 1::2], rtol=1e-10)
    expected = 1 / (1 + np.exp(-(raw[:, 0::2] - raw[:, 1::2] - offsets)))
    np.testing.assert_allclose(clf.predict_proba(TEXTS[:3]), expected, rtol=1e-10)
    np.testing.assert_allclose(clf.decision_function(TEXTS[:3]), raw[:, 0::2] - raw[:, 1::2] - offsets, rtol=1e-10)


def test_the_weighting_is_corrected_in_the_probabilities_and_never_changes_a_prediction():
    from scipy.special import expit, logit

    Y = [sorted(s) for s in SETS]
    corrected = reference(validation_fraction=0.25, early_stopping=True).fit(TEXTS * 4, Y * 4)
    uncorrected = reference(validation_fraction=0.25, early_stopping=True, calibration=None).fit(TEXTS * 4, Y * 4)
    weights = np.asarray(corrected.history_["positive_weights"])
    assert np.any(weights > 1) and corrected.history_["early_stopping"]  # rare labels, thresholds fitted
    np.testing.assert_array_equal(corrected.answer_scores(TEXTS), uncorrected.answer_scores(TEXTS))  # same training
    p, q = corrected.predict_proba(TEXTS), uncorrected.predict_proba(TEXTS)
    np.testing.assert_allclose(logit(p), logit(q) - np.log(weights), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(corrected.thresholds_, expit(logit(uncorrected.thresholds_) - np.log(weights)))
    np.testing.assert_array_equal(corrected.predict(TEXTS), uncorrected.predict(TEXTS))
    # a threshold given by the user is on predict_proba's scale, corrected or not
    given = reference(multilabel_threshold=0.3).fit(TEXTS, Y)
    np.testing.assert_array_equal(given.thresholds_, 0.3)
    np.testing.assert_array_equal(given.predict(TEXTS), (given.predict_proba(TEXTS) >= 0.3).astype(int))


def test_shapes_and_prompt(fitted_reference):
    clf = fitted_reference
    proba, predicted = clf.predict_proba(TEXTS), clf.predict(TEXTS)
    assert clf.classes_.tolist() == ["finance", "politics", "sport"]
    assert proba.shape == predicted.shape == (8, 3) and predicted.dtype.kind == "i"
    assert not np.allclose(proba.sum(axis=1), 1)
    weights = np.asarray(clf.history_["positive_weights"])  # no held-out slice: even odds under the weighting
    np.testing.assert_allclose(clf.thresholds_, 1 / (1 + weights))
    np.testing.assert_allclose(clf.calibration_.bias, -np.log(weights)) and clf.calibration_.temperature == 1
    assert "Which of these topics apply to the text: finance, politics, sport?" in clf.prompt_prefix_
    assert clf.layout_.formulation == "multilabel" and clf.history_["n_examples"] == 8  # one example per text


def test_training_moves_the_probabilities_toward_the_labels():
    Y = MultiLabelBinarizer().fit_transform(SETS)
    before = reference(max_steps=0, verbalizer=["finance", "politics", "sport"].__getitem__).fit(TEXTS, Y)
    after = reference(max_steps=40, verbalizer=["finance", "politics", "sport"].__getitem__).fit(TEXTS, Y)
    gap = lambda clf: (clf.predict_proba(TEXTS)[Y == 1].mean() - clf.predict_proba(TEXTS)[Y == 0].mean())  # noqa: E731
    assert gap(after) > gap(before)


# -- hypothesis properties -----------------------------------------------------------------------
label_rows = st.lists(st.sets(st.sampled_from(["a", "b", "c", "d"])), min_size=4, max_size=8).filter(
    lambda rows: len(set().union(*rows)) >= 2)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=label_rows, threshold=st.floats(0.05, 0.95))
def test_probabilities_in_unit_interval_and_predictions_follow_thresholds(rows, threshold):
    texts = TEXTS[:len(rows)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant labels
        clf = reference(max_steps=2, multilabel_threshold=threshold).fit(texts, [sorted(r) for r in rows])
    proba = clf.predict_proba(TEXTS)
    assert ((proba >= 0) & (proba <= 1)).all()
    np.testing.assert_array_equal(clf.predict(TEXTS), (proba >= clf.thresholds_).astype(int))
    np.testing.assert_allclose(clf.thresholds_, threshold)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=label_rows, data=st.data())
def test_permuting_label_columns_permutes_nothing_else(rows, data):
    names = sorted(set().union(*rows))
    Y = np.array([[int(name in row) for name in names] for row in rows])
    permutation = data.draw(st.permutations(range(len(names))))
    texts = TEXTS[:len(rows)]
    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        straight = reference().fit(texts, pd.DataFrame(Y, columns=names))
        permuted = reference().fit(texts, pd.DataFrame(Y[:, permutation], columns=[names[i] for i in permutation]))
    assert permuted.classes_.tolist() == straight.classes_.tolist() == names
    np.testing.assert_allclose(permuted.predict_proba(TEXTS), straight.predict_proba(TEXTS), rtol=1e-12)


# -- thresholds --------------------------------------------------------------------------------
def test_fit_thresholds_maximise_f1_per_label():
    proba = np.array([[0.9, 0.2], [0.35, 0.1], [0.3, 0.6], [0.1, 0.3]])
    truth = np.array([[1, 0], [1, 0], [0, 0], [0, 0]])
    thresholds = fit_thresholds(proba, truth, min_positives=1)
    assert thresholds[0] == pytest.approx(0.35)  # catches both positives and nothing else
    assert thresholds[1] == pytest.approx(0.35)  # no positive of its own: the pooled threshold


def test_labels_with_few_held_out_positives_get_the_pooled_threshold():
    rng = np.random.default_rng(0)
    truth = np.zeros((40, 3), dtype=int)
    truth[:10, 0] = 1  # ten positives: its own threshold
    truth[10:12, 1] = 1  # two positives: pooled
    proba = rng.uniform(0.0, 0.25, truth.shape)
    proba[:10, 0] = np.linspace(0.3, 0.4, 10)  # label 0's positives score low: its own best threshold is 0.3
    proba[10:12, 1] = 0.95  # label 1's two positives over two negatives at 0.9: alone they set 0.95
    proba[12:14, 1] = 0.9
    own = fit_thresholds(proba, truth, min_positives=1)
    shrunk = fit_thresholds(proba, truth, min_positives=5)
    pooled = fit_thresholds(proba, truth, min_positives=10**6)
    assert own.tolist() == pytest.approx([0.3, 0.95, 0.3])  # label 2 has no positive: pooled
    assert pooled.tolist() == pytest.approx([0.3] * 3)  # all twelve positives, two negatives: micro-F1 24/26
    assert shrunk[0] == own[0] and shrunk[1] == shrunk[2] == pooled[0]
    assert np.all(fit_thresholds(proba, np.zeros_like(truth)) == 0.5)  # no positive anywhere: the default


def test_the_held_out_slice_is_stratified_by_each_texts_rarest_label():
    from llm_classifier.formulations.multilabel import MULTILABEL, rarest_labels
    from llm_classifier.pipeline.holdout import stratified_holdout

    Y = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 1], [0, 0, 0], [1, 0, 1]])  # label counts 3, 2, 2
    assert rarest_labels(Y).tolist() == [1, 0, 1, 3, 2]
    # 200 texts whose label sets are nearly all distinct: by label set almost none could be held out
    rng = np.random.default_rng(0)
    many = (rng.uniform(size=(200, 12)) < 0.15).astype(int)
    held = stratified_holdout(MULTILABEL.strata(many), 0.1, seed=0)
    assert 18 <= held.sum() <= 22
    assert (many[held].sum(axis=0) >= 1).all()  # every label has positives in the slice


def test_auto_thresholds_come_from_the_held_out_slice():
    from llm_classifier.formulations.multilabel import MULTILABEL
    from llm_classifier.pipeline.fit import held_out_rows
    from llm_classifier.pipeline.plan import plan_of

    texts = [f"{t} {i}" for i in range(25) for t in TEXTS]
    rows = [sorted(s) for _ in range(25) for s in SETS]
    clf = reference(max_steps=10, early_stopping=True, n_iter_no_change=None)  # multilabel_threshold="auto"
    clf.fit(texts, rows)
    assert clf.history_["early_stopping"] and clf.thresholds_.shape == (3,)
    # the held-out texts as fit chose them: their probabilities under the kept adapter give the thresholds
    _, Y = check_multilabel_targets(rows, len(texts))
    order = MULTILABEL.order(texts, Y)
    plan = plan_of(clf).for_formulation("multilabel")
    held = held_out_rows(plan, MULTILABEL.strata(Y[order]), clf.random_seed_)
    held_texts = [texts[i] for i, h in zip(order, held) if h]
    uncorrected = expit(clf.answer_scores(held_texts))  # the logits before the weighting's correction
    offsets = np.log(clf.history_["positive_weights"])
    np.testing.assert_allclose(clf.thresholds_, expit(logit(fit_thresholds(uncorrected, Y[order][held])) - offsets))
    assert not np.allclose(clf.thresholds_, 1 / (1 + np.exp(offsets)))
    assert 0 <= clf.history_["validation"][0]["log_loss"]


def test_auto_thresholds_without_a_held_out_slice_are_even_odds_under_the_weighting():
    clf = reference(multilabel_threshold="auto").fit(TEXTS, [sorted(s) for s in SETS])
    assert not clf.history_["early_stopping"]
    np.testing.assert_allclose(clf.thresholds_, 1 / (1 + np.asarray(clf.history_["positive_weights"])))
    plain = reference(multilabel_threshold="auto", positive_weight=None).fit(TEXTS, [sorted(s) for s in SETS])
    assert plain.thresholds_.tolist() == [0.5, 0.5, 0.5] and plain.calibration_ is None


def test_predict_from_proba_refuses_a_frame_naming_the_labels_in_another_order(fitted_reference):
    """Read by position, a frame of columns sport, finance, politics decided 'sport' with 'finance''s threshold."""
    import pandas as pd

    proba = fitted_reference.predict_proba(TEXTS[:2])
    frame = pd.DataFrame(proba, columns=fitted_reference.classes_)
    np.testing.assert_array_equal(fitted_reference.predict_from_proba(frame), fitted_reference.predict_from_proba(proba))
    np.testing.assert_array_equal(fitted_reference.predict_from_proba(pd.DataFrame(proba)),  # unnamed: by position
                                  fitted_reference.predict_from_proba(proba))
    with pytest.raises(ValueError, match=r"proba's columns name the classes in another order than classes_ "
                                         r"\['finance', 'politics', 'sport'\]: got \['sport', 'finance', 'politics'\]"):
        fitted_reference.predict_from_proba(frame[["sport", "finance", "politics"]])


def test_predict_from_proba_is_proba_at_or_above_the_thresholds_for_every_grid_threshold():
    # np.exp(np.log(0.35)) < 0.35: a probability equal to its label's threshold is on, as proba >= thresholds_ says
    for threshold in np.round(np.arange(0.05, 0.951, 0.05), 2):
        clf = reference(max_steps=0, multilabel_threshold=float(threshold)).fit(TEXTS, [sorted(s) for s in SETS])
        proba = np.array([[threshold, threshold - 0.01, threshold + 0.01]])
        np.testing.assert_array_equal(clf.predict_from_proba(proba), (proba >= clf.thresholds_).astype(int),
                                      err_msg=str(threshold))


@pytest.mark.parametrize("value", [0, 1, 1.5, "best"])
def test_threshold_parameter_is_validated(value):
    with pytest.raises(InvalidParameterError, match="'multilabel_threshold' parameter"):
        reference(multilabel_threshold=value).fit(TEXTS, [sorted(s) for s in SETS])


@pytest.mark.parametrize("params, match", [
    (dict(direction="channel"), "'direction' parameter .* must be 'direct' for multi-label targets"),
    (dict(few_shot=1), "'few_shot' parameter .* must be 0 for multi-label"),
    (dict(inference="generate"), "'inference' parameter .* must be 'score' for multi-label"),
    (dict(class_weight="balanced"), "'class_weight' parameter .* must be None for multi-label"),
    (dict(calibration="prior"), "'calibration' parameter .* must be 'auto' or None"),
])
def test_settings_multilabel_cannot_serve(params, match):
    with pytest.raises(InvalidParameterError, match=match):
        reference(**params).fit(TEXTS, [sorted(s) for s in SETS])


@pytest.mark.parametrize("params, match", [
    (dict(inference="generate"), "'inference' parameter .* must be 'score' for multi-label"),  # gave 1-D labels
    (dict(long_text="max"), "'long_text' parameter .* must be 'truncate'"),  # pooled a softmax across the labels
    (dict(confidence_threshold=0.9, on_low_confidence="raise"), "'confidence_threshold' parameter .* must be None"),
])
def test_prediction_settings_multilabel_cannot_serve_are_refused_when_set_after_fit(params, match):
    clf = reference(max_steps=0).fit(TEXTS, [sorted(s) for s in SETS]).set_params(**params)
    for method in (clf.predict, clf.predict_proba, clf.decision_function):
        with pytest.raises(InvalidParameterError, match=match):
            method(TEXTS[:2])
    with pytest.raises(InvalidParameterError, match=match):
        clf.predict_from_proba(np.full((1, 3), 0.5))
    clf.set_params(inference="score", long_text="truncate", confidence_threshold=None)
    assert clf.predict(TEXTS[:2]).shape == (2, 3)


def test_sample_weight_zero_leaves_a_text_out():
    rows = [sorted(s) for s in SETS]
    weights = np.ones(8)
    weights[0] = 0
    dropped = reference().fit(TEXTS, rows, sample_weight=weights)
    assert dropped.history_["n_texts"] == 7
    np.testing.assert_allclose(dropped.predict_proba(TEXTS), reference().fit(TEXTS[1:], rows[1:]).predict_proba(TEXTS))


# -- scikit-learn ---------------------------------------------------------------------------------
def test_pipeline_grid_search_and_cross_val_score_with_multilabel_scorers():
    texts = TEXTS * 2
    Y = MultiLabelBinarizer().fit_transform(SETS * 2)
    names = ["finance", "politics", "sport"].__getitem__
    pipe = Pipeline([("lower", FunctionTransformer(lambda X: [x.lower() for x in X])),
                     ("clf", reference(verbalizer=names))])
    scores = cross_val_score(pipe, texts, Y, scoring="f1_samples", cv=KFold(2))
    assert scores.shape == (2,) and ((scores >= 0) & (scores <= 1)).all()
    search = GridSearchCV(pipe, {"clf__multilabel_threshold": [0.3, 0.7]}, scoring="f1_micro", cv=KFold(2))
    search.fit(texts, Y)
    assert search.best_params_["clf__multilabel_threshold"] in (0.3, 0.7)
    assert search.predict(TEXTS).shape == (8, 3)


# -- persistence ------------------------------------------------------------------------------------
def test_score_takes_targets_in_every_form_fit_takes_matched_by_name():
    """score(X, Y) with label sets (the form fit takes) raised scikit-learn's "legacy multi-label data
    representation" error, and a DataFrame whose columns are not in classes_ order was compared by position
    (fit sorts the columns): its score was silently 0 where every prediction was right."""
    import pandas as pd

    clf = reference(multilabel_threshold=0.3).fit(TEXTS, [sorted(s) for s in SETS])
    predicted = clf.predict(TEXTS)
    assert 0 < predicted.sum() < predicted.size  # some labels predicted, some not: the order matters
    sets = [[label for label, on in zip(clf.classes_, row) if on] for row in predicted]
    frame = pd.DataFrame(predicted, columns=clf.classes_)[clf.classes_[::-1].tolist()]  # columns reversed
    assert clf.score(TEXTS, sets) == 1.0
    assert clf.score(TEXTS, frame) == 1.0
    assert clf.score(TEXTS, predicted) == 1.0
    assert clf.score(TEXTS, [s + ["weather"] for s in sets]) == 0.0  # a label the classifier never predicts
    with pytest.raises(ValueError, match=r"lack the classes \['finance'\]"):
        clf.score(TEXTS, frame.drop(columns="finance"))
    with pytest.raises(ValueError, match="one column per class of classes_"):
        clf.score(TEXTS, predicted[:, :2])


def test_save_load_round_trip(fitted_reference, tmp_path):
    fitted_reference.save(tmp_path / "ml")
    loaded = LLMClassifier.load(tmp_path / "ml")
    assert loaded.layout_.formulation == "multilabel" and loaded.classes_.tolist() == fitted_reference.classes_.tolist()
    np.testing.assert_array_equal(loaded.thresholds_, fitted_reference.thresholds_)
    np.testing.assert_allclose(loaded.predict_proba(TEXTS), fitted_reference.predict_proba(TEXTS))


def test_single_label_artifacts_have_no_thresholds(tmp_path, sentiment):
    clf = reference().fit(*sentiment)
    assert clf.thresholds_ is None
    clf.save(tmp_path / "single")
    assert LLMClassifier.load(tmp_path / "single").thresholds_ is None


# -- the tiny transformers model ------------------------------------------------------------------
def test_tiny_model_fits_predicts_and_round_trips(tiny_params, tmp_path):
    with pytest.warns(UserWarning, match="the integers 0..2"):
        clf = LLMClassifier(**tiny_params).fit(TEXTS, MultiLabelBinarizer().fit_transform(SETS))
    proba = clf.predict_proba(TEXTS)
    assert proba.shape == (8, 3) and ((proba > 0) & (proba < 1)).all()
    np.testing.assert_array_equal(clf.predict(TEXTS), (proba >= clf.thresholds_).astype(int))
    assert clf.history_["n_examples"] == 8 and clf.history_["n_steps"] == 3
    clf.save(tmp_path / "tiny")
    np.testing.assert_allclose(LLMClassifier.load(tmp_path / "tiny").predict_proba(TEXTS), proba, rtol=1e-5)


def test_tiny_model_scores_in_one_pass_what_it_trains_on(tiny_params):
    """The trie pass over the 2k continuations equals scoring each (prompt + question, decision) pair alone."""
    clf = LLMClassifier(**{**tiny_params, "max_steps": 0}).fit(TEXTS, [sorted(s) for s in SETS])
    prompts = MULTILABEL.encoder(clf.backend_.tokenizer, clf.layout_, clf.choice_ids_, clf.max_length,
                                 clf.truncation).encode(TEXTS[:2]).ids
    questions, (yes, no) = split_choices(clf.choice_ids_)
    for i, prompt in enumerate(prompts):
        pair = clf.backend_.score([prompt + questions[1]], [yes, no], batch_size=2)[0]
        assert clf.decision_function(TEXTS[:2])[i, 1] == pytest.approx(pair[0] - pair[1], abs=1e-4)


def test_real_tokenizer_splits_label_and_decision_at_a_token_boundary(tiny_params):
    from llm_classifier.engines import resolve_backend

    engine = resolve_backend("transformers")
    engine.load(tiny_params["model"], quantization=None, dtype="float32")
    tok = engine.tokenizer
    for label in ("sport", "use::editing", "Finance & Markets"):
        assert tok.encode_text(label + ":") + tok.encode_text(" yes") == tok.encode_text(label + ": yes")


@pytest.mark.parametrize("thresholds, match", [
    (None, "'thresholds' .* exactly when direction is 'multilabel'"),
    ([0.5, 0.5], "'thresholds' .* must be 3 finite numbers"),
    ([0.5, 1.0, 0.5], "'thresholds' .* must lie in \\(0, 1\\)"),
])
def test_load_refuses_bad_thresholds(fitted_reference, tmp_path, thresholds, match):
    import json

    from llm_classifier.exceptions import IncompatibleArtifactError

    fitted_reference.save(tmp_path / "ml")
    config_path = tmp_path / "ml" / "classifier.json"
    config = json.loads(config_path.read_text())
    config["thresholds"] = thresholds
    config_path.write_text(json.dumps(config))
    with pytest.raises(IncompatibleArtifactError, match=match):
        LLMClassifier.load(tmp_path / "ml")


# -- the benchmark task ------------------------------------------------------------------------------
def test_benchmark_indicator_metrics_and_report(tmp_path):
    from benchmarks.multilabel import indicator, multilabel_metrics
    from benchmarks.report import write_report

    labels = ["a", "b", "c"]
    Y = indicator(["a|b", "", "c", "a"], labels, "|")
    np.testing.assert_array_equal(Y, [[1, 1, 0], [0, 0, 0], [0, 0, 1], [1, 0, 0]])
    predicted = np.array([[1, 0, 0], [0, 0, 0], [0, 0, 1], [1, 0, 1]])
    metrics = multilabel_metrics(Y, predicted, labels)
    assert metrics["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))
    assert metrics["accuracy"] == 0.5 and metrics["hamming_loss"] == pytest.approx(2 / 12)
    record = {"task": "t", "method": "tfidf", "status": "ok", "metrics": metrics, "fit_time_s": 1.0,
              "predict_time_s": 0.5}
    written = write_report({"run": {}, "results": [record], "tasks": {}}, tmp_path)
    summary = written["markdown"].read_text()
    assert "| t | tfidf | 0.750 |" in summary and "samples-F1" in summary
    assert not any(key.startswith("confusion:") for key in written)  # no confusion matrix for label sets


def test_debtags_corpus_holds_label_sets():
    from benchmarks.sources import MissingDataError, read_debtags

    try:
        corpus = read_debtags()
    except MissingDataError as exc:
        pytest.skip(str(exc))
    assert corpus.info["multilabel"] and len(corpus.info["labels"]) == 12
    sets = [labels.split("|") for labels in corpus.labels]
    assert all(set(s) <= set(corpus.info["labels"]) and s for s in sets)
    assert sum(len(s) > 1 for s in sets) > 0.1 * len(sets)  # genuinely multi-label


def test_a_frame_with_unsorted_columns_warns_that_scorers_compare_by_position():
    import warnings

    import pandas as pd

    texts = [f"{t} {i}" for i in range(2) for t in TEXTS]
    rows = [sorted(s) for _ in range(2) for s in SETS]
    _, Y = check_multilabel_targets(rows, len(texts))
    names = sorted({label for s in SETS for label in s})
    frame = pd.DataFrame(Y, columns=names)
    with pytest.warns(UserWarning, match=r"not in sorted order.*Y\[sorted\(Y.columns\)\]"):
        check_multilabel_targets(frame[names[::-1]], len(texts))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_multilabel_targets(frame, len(texts))  # sorted: no warning


def test_targets_as_lists_of_bits_are_read_by_position_like_the_matrix():
    from llm_classifier.formulations.multilabel import targets_in_order

    classes = np.array(["finance", "sport"])
    matrix = np.array([[1, 0], [0, 1], [1, 1]])
    np.testing.assert_array_equal(targets_in_order(matrix.tolist(), classes)[0], matrix)
    assert targets_in_order(matrix.tolist(), classes)[1] == 0
    with pytest.raises(ValueError, match="one column per class"):
        targets_in_order([[1, 0, 0], [0, 1, 0]], classes)
