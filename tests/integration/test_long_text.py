"""Long documents read as overlapping windows (``long_text="mean"`` / ``"max"``), on the reference engine and the tiny model."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import log_softmax
from sklearn.utils._param_validation import InvalidParameterError

from llm_classifier import LLMClassifier
from llm_classifier.pipeline.plan import plan_of
from llm_classifier.pipeline.predict import text_windows
from llm_classifier.formulations.registry import get_direction
from llm_classifier.formulations.windows import EncodedWindows, Windows, split_windows, window_overlap_tokens, windows_needed

PROMPT = "Review: {text}\nLabel:"
#: Byte-level reference tokenizer: ``max_length=64`` leaves 64 - 9 - 7 - 4 = 44 text bytes ("Review: " and
#: the begin token, "\nLabel:", the longest answer "neg" or "pos" plus the end token).
BUDGET = 44
REFERENCE = dict(backend="reference", model="reference", prompt=PROMPT, max_length=64, max_steps=4, random_state=0)
WORDS = ["good", "great", "fun", "bad", "awful", "dull", "the", "plot", "and", "cast"]


def _texts(n: int, seed: int, short: bool = False) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 6, size=n) if short else rng.integers(2, 40, size=n)
    texts = [" ".join(rng.choice(WORDS, size=length)) for length in lengths]
    labels = ["pos" if sum(t.count(w) for w in WORDS[:3]) >= sum(t.count(w) for w in WORDS[3:6]) else "neg" for t in texts]
    return texts, labels


# -- windows of token ids -------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 400), budget=st.integers(1, 60), share=st.floats(0, 0.99))
def test_windows_cover_every_token_with_the_overlap_set(n, budget, share):
    ids = list(range(n))
    overlap = window_overlap_tokens(budget, share)
    windows = split_windows(ids, budget, overlap)
    assert len(windows) == windows_needed(n, budget, overlap)
    if n <= budget:
        assert windows == [ids]
        return
    assert all(len(window) == budget for window in windows)
    assert windows[0][0] == 0 and windows[-1][-1] == n - 1
    starts = [window[0] for window in windows]
    assert all(b - a == budget - overlap for a, b in zip(starts[:-1], starts[1:-1]))  # overlap exactly as set...
    assert 0 < starts[-1] - starts[-2] <= budget - overlap  # ...the last window, aligned with the end, overlaps more
    assert sorted({token for window in windows for token in window}) == ids  # every token is in a window


def test_max_windows_spreads_that_many_windows_from_beginning_to_end():
    ids = list(range(100))
    windows = split_windows(ids, 10, 2, max_windows=3)
    assert [window[0] for window in windows] == [0, 45, 90]
    assert split_windows(ids, 10, 2, max_windows=1) == [ids[:10]]  # one window: the head, as truncation keeps
    assert len(split_windows(ids, 10, 2, max_windows=50)) == windows_needed(100, 10, 2) == 13


def test_overlap_share_is_rounded_and_leaves_a_step():
    assert window_overlap_tokens(44, 0.25) == 11
    assert window_overlap_tokens(3, 0.99) == 2


def test_each_window_counts_one_share_of_its_document_in_training():
    encoded = EncodedWindows(ids=[[1]] * 4, owners=np.array([0, 1, 1, 1]), n_texts=2, n_cut=0)
    windows = Windows(get_direction("direct"), _encoder(), "mean")
    weights = windows.weights(None, encoded)
    np.testing.assert_allclose(weights, [2, 2 / 3, 2 / 3, 2 / 3])  # each document sums to 2, the mean is 1
    np.testing.assert_allclose(windows.weights(np.array([1.0, 3.0]), encoded), [2, 2, 2, 2])
    assert windows.weights(None, encoded, weighted=False) is None
    np.testing.assert_array_equal(windows.codes(np.array([5, 7]), encoded), [5, 7, 7, 7])


def _encoder():
    from llm_classifier.engines.reference import ReferenceTokenizer
    from llm_classifier.encoding import PromptEncoder

    return PromptEncoder(ReferenceTokenizer(), "Review: ", "\nLabel:", 64, 4)


# -- the estimator on the reference engine ---------------------------------------------------------------------
def test_the_encoder_budget_is_the_one_the_tests_assume():
    assert _encoder().budget == BUDGET


def test_windows_wrap_every_slice_in_the_prompt():
    windows = Windows(get_direction("direct"), _encoder(), "mean", window_overlap=0.25)
    text = "x" * 100
    encoded = windows.encode(["short", text])
    np.testing.assert_array_equal(encoded.owners, [0, 1, 1, 1])
    assert encoded.n_cut == 0
    prefix, suffix = _encoder().prefix_ids, _encoder().suffix_ids
    assert encoded.ids[0] == prefix + list(b"short") + suffix
    assert all(ids[:len(prefix)] == prefix and ids[len(ids) - len(suffix):] == suffix for ids in encoded.ids)
    assert sum(len(ids) - len(prefix) - len(suffix) for ids in encoded.ids[1:]) == 3 * BUDGET


def test_short_texts_score_exactly_as_truncation():
    X, y = _texts(30, 0, short=True)
    assert max(map(len, X)) <= BUDGET
    truncating = LLMClassifier(**REFERENCE).fit(X, y)
    for pooling in ("mean", "max"):
        windowed = LLMClassifier(**REFERENCE, long_text=pooling).fit(X, y)
        assert windowed.history_["n_examples"] == truncating.history_["n_examples"] == len(X)
        np.testing.assert_array_equal(windowed.answer_scores(X), truncating.answer_scores(X))
        np.testing.assert_array_equal(windowed.predict_proba(X), truncating.predict_proba(X))


@pytest.mark.parametrize("pooling", ["mean", "max"])
def test_pooled_scores_equal_manual_pooling_of_every_window(pooling):
    X, y = _texts(30, 1)
    clf = LLMClassifier(**REFERENCE, long_text=pooling).fit(X, y)
    tokenizer, direction = clf.backend_.tokenizer, get_direction("direct")
    prefix = tokenizer.encode_prompt("Review: ", start=True)
    suffix = tokenizer.encode_prompt("\nLabel:", start=False)
    overlap = window_overlap_tokens(BUDGET, clf.window_overlap)
    expected = []
    for text in X:
        windows = [prefix + w + suffix for w in split_windows(tokenizer.encode_text(text), BUDGET, overlap, 8)]
        scores = direction.score(clf.backend_, windows, clf.choice_ids_, batch_size=4)
        pool = np.mean if pooling == "mean" else np.max
        expected.append(scores[0] if len(windows) == 1 else pool(log_softmax(scores, axis=1), axis=0))
    assert any(len(text) > BUDGET for text in X)
    np.testing.assert_allclose(clf.answer_scores(X), np.array(expected), rtol=1e-12, atol=1e-12)


def test_predictions_are_classes_and_probabilities_sum_to_one():
    X, y = _texts(40, 2)
    clf = LLMClassifier(**REFERENCE, long_text="max").fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])


def test_every_window_is_a_training_example():
    X, y = _texts(40, 3)
    clf = LLMClassifier(**REFERENCE, long_text="mean", window_overlap=0.5).fit(X, y)
    overlap = window_overlap_tokens(BUDGET, 0.5)
    n_windows = sum(windows_needed(len(text.encode()), BUDGET, overlap) for text in X)
    assert n_windows > len(X)
    assert clf.history_["n_examples"] == n_windows
    truncating = LLMClassifier(**REFERENCE).fit(X, y)
    assert truncating.history_["n_examples"] == len(X)


def test_early_stopping_and_calibration_see_one_pooled_row_per_text():
    X, y = _texts(60, 4)
    clf = LLMClassifier(**{**REFERENCE, "max_steps": 6}, long_text="mean", early_stopping=True,
                        validation_fraction=0.25, calibration="affine").fit(X, y)
    assert clf.history_["early_stopping"] and clf.calibration_ is not None
    np.testing.assert_allclose(clf.predict_proba(X).sum(axis=1), 1.0)


def test_chunked_prediction_pools_within_each_text(monkeypatch):
    X, y = _texts(25, 5)
    clf = LLMClassifier(**REFERENCE, long_text="mean").fit(X, y)
    whole = clf.answer_scores(X)
    monkeypatch.setattr(LLMClassifier, "predict_chunk_size", 3)
    np.testing.assert_allclose(clf.answer_scores(iter(X)), whole, rtol=1e-12)


def test_warnings_say_what_was_not_read():
    X, y = _texts(20, 6)
    long = ["good fun " * 30]  # 270 bytes: 8 windows of 44 with overlap 11
    clf = LLMClassifier(**REFERENCE, long_text="mean", max_windows=2).fit(X, y)
    with pytest.warns(UserWarning, match=r"1 of 1 texts need more than max_windows=2 windows of 44 text tokens"):
        clf.predict(long)
    clf.set_params(max_windows=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf.predict(long)  # every token in a window: nothing to say
    clf.set_params(long_text="truncate")
    with pytest.warns(UserWarning, match=r"1 of 1 texts are longer than max_length allows \(44 text tokens\) and were "
                                         r"truncated to their beginning"):
        clf.predict(long)


def test_save_load_keeps_the_option(tmp_path):
    X, y = _texts(30, 7)
    clf = LLMClassifier(**REFERENCE, long_text="max", window_overlap=0.5, max_windows=3).fit(X, y)
    clf.save(tmp_path / "clf")
    loaded = LLMClassifier.load(tmp_path / "clf")
    assert (loaded.long_text, loaded.window_overlap, loaded.max_windows) == ("max", 0.5, 3)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert text_windows(loaded.state_, plan_of(loaded)).overlap == window_overlap_tokens(BUDGET, 0.5)


@pytest.mark.parametrize("params, match", [
    ({"long_text": "median"}, r"The 'long_text' parameter of LLMClassifier must be a str among"),
    ({"window_overlap": 1.0}, r"The 'window_overlap' parameter of LLMClassifier must be a float in the range \[0.0, 1.0\)"),
    ({"window_overlap": -0.1}, r"The 'window_overlap' parameter"),
    ({"max_windows": 0}, r"The 'max_windows' parameter of LLMClassifier must be an int in the range \[1, inf\) or None"),
    ({"max_windows": True}, r"The 'max_windows' parameter"),
    ({"long_text": "mean", "inference": "generate"},
     r"The 'long_text' parameter of LLMClassifier must be 'truncate' when inference='generate'"),
])
def test_bad_values_are_refused(params, match):
    X, y = _texts(10, 8)
    with pytest.raises(InvalidParameterError, match=match):
        LLMClassifier(**{**REFERENCE, **params}).fit(X, y)


# -- the tiny model (transformers engine) -------------------------------------------------------------------
def test_tiny_model_reads_long_texts_in_windows(tiny_params, sentiment):
    X, y = sentiment
    X = [text + " " + " ".join([text] * 6) for text in X]  # longer than the budget
    clf = LLMClassifier(**{**tiny_params, "max_steps": 2}, prompt=PROMPT, max_length=48, long_text="mean").fit(X, y)
    windows = text_windows(clf.state_, plan_of(clf))
    encoded = windows.encode(X)
    assert len(encoded.ids) > len(X)
    assert clf.history_["n_examples"] == len(encoded.ids)
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    per_window = get_direction("direct").score(clf.backend_, encoded.ids, clf.choice_ids_, batch_size=4)
    np.testing.assert_allclose(clf.answer_scores(X), windows.pool(per_window, encoded), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])


def test_channel_direction_reads_windows_too():
    X, y = _texts(30, 9)
    clf = LLMClassifier(**{**REFERENCE, "prompt": "auto"}, direction="channel", long_text="mean").fit(X, y)
    windows = text_windows(clf.state_, plan_of(clf))
    encoded = windows.encode(X)
    assert len(encoded.ids) > len(X) and clf.history_["n_examples"] == len(encoded.ids)
    per_window = get_direction("channel").score(clf.backend_, encoded.ids, clf.choice_ids_, batch_size=4)
    np.testing.assert_allclose(clf.answer_scores(X), windows.pool(per_window, encoded), rtol=1e-12)


def test_generation_answers_once_per_text_whatever_long_text_says():
    X, y = _texts(20, 10)
    clf = LLMClassifier(**REFERENCE, long_text="mean").fit(X, y)
    with pytest.warns(UserWarning, match="truncated to their beginning"):
        assert len(clf.generate(X)) == len(X)
