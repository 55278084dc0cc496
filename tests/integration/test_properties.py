"""Properties of a fitted classifier, checked with hypothesis on the tiny model.

One classifier is fitted per module; hypothesis draws the texts and subsets to predict.
The few properties that need their own fits (row order, reproducibility) draw few examples.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm_classifier import LLMClassifier
from llm_classifier.encoding import TRUNCATIONS, truncate

from tests.conftest import SENTIMENT_X, SENTIMENT_Y

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
FITS = settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Any text a str can hold in valid Unicode: emoji, right-to-left scripts, combining marks,
# control characters and NUL; lone surrogates (category Cs) cannot be encoded and are
# rejected with a clear error instead (tests/integration/test_errors.py).
TEXTS = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=60)
SPECIAL = st.sampled_from(["", " ", "\t\n", "\x00", "a\x00b", "\x1b[31mred", "😀" * 20, "עברית \u202e שלום", "e\u0301\u0301", "\ufeff", "\r\n" * 5])


def _params(tiny_model):
    return dict(model=tiny_model, quantization=None, dtype="float32", max_steps=2, batch_size=4, random_state=0)


@pytest.fixture(scope="module")
def fitted(tiny_model):
    return LLMClassifier(**_params(tiny_model)).fit(SENTIMENT_X, SENTIMENT_Y)


@pytest.fixture(scope="module")
def three_class(tiny_model):
    y = ["pos", "neg", "mixed", "pos", "neg", "mixed", "pos", "neg"]
    return LLMClassifier(**{**_params(tiny_model), "max_steps": 0, "verbalizer": {"pos": "good", "neg": "bad", "mixed": "so so"}}).fit(SENTIMENT_X, y)


@FAST
@given(texts=st.lists(st.one_of(TEXTS, SPECIAL), min_size=1, max_size=6))
def test_probabilities_are_a_distribution(fitted, texts):
    proba = fitted.predict_proba(texts)
    assert proba.shape == (len(texts), len(fitted.classes_))
    assert np.all(np.isfinite(proba)) and np.all((proba >= 0) & (proba <= 1))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(np.exp(fitted.predict_log_proba(texts)), proba, atol=1e-12)


@FAST
@given(texts=st.lists(st.one_of(TEXTS, SPECIAL), min_size=1, max_size=6))
def test_predict_is_argmax_of_predict_proba_and_a_class(three_class, texts):
    proba = three_class.predict_proba(texts)
    predictions = three_class.predict(texts)
    assert set(predictions.tolist()) <= set(three_class.classes_.tolist())
    np.testing.assert_array_equal(predictions, three_class.classes_[np.argmax(proba, axis=1)])


@FAST
@given(indices=st.lists(st.integers(0, len(SENTIMENT_X) - 1), min_size=1, max_size=8))
def test_a_text_scores_the_same_whatever_else_is_in_the_batch(fitted, indices):
    """Padding and batching do not change a text's probabilities (float32, CPU)."""
    alone = fitted.predict_proba(SENTIMENT_X)
    together = fitted.predict_proba([SENTIMENT_X[i] for i in indices])
    np.testing.assert_allclose(together, alone[indices], atol=1e-5)


@FITS
@given(permutation=st.permutations(range(len(SENTIMENT_X))))
def test_row_order_does_not_change_the_model(fitted, tiny_model, permutation):
    """classes_, the adapter and the probabilities do not depend on the order of the training rows
    (nor on the order in which classes first appear): fit sorts the rows by (label, text)."""
    X = [SENTIMENT_X[i] for i in permutation]
    y = [SENTIMENT_Y[i] for i in permutation]
    permuted = LLMClassifier(**_params(tiny_model)).fit(X, y)
    np.testing.assert_array_equal(permuted.classes_, fitted.classes_)
    reference, adapter = fitted.backend_.state().adapter, permuted.backend_.state().adapter
    assert reference.keys() == adapter.keys()
    for name in reference:
        np.testing.assert_array_equal(adapter[name], reference[name])
    np.testing.assert_array_equal(permuted.predict_proba(SENTIMENT_X), fitted.predict_proba(SENTIMENT_X))


def test_same_random_state_gives_identical_adapter_and_probabilities(fitted, tiny_model):
    again = LLMClassifier(**_params(tiny_model)).fit(SENTIMENT_X, SENTIMENT_Y)
    reference, adapter = fitted.backend_.state().adapter, again.backend_.state().adapter
    for name in reference:
        np.testing.assert_array_equal(adapter[name], reference[name])
    np.testing.assert_array_equal(again.predict_proba(SENTIMENT_X), fitted.predict_proba(SENTIMENT_X))
    assert [s["loss"] for s in again.history_["steps"]] == [s["loss"] for s in fitted.history_["steps"]]


def test_another_random_state_gives_another_adapter(fitted, tiny_model):
    other = LLMClassifier(**{**_params(tiny_model), "random_state": 1}).fit(SENTIMENT_X, SENTIMENT_Y)
    reference, adapter = fitted.backend_.state().adapter, other.backend_.state().adapter
    assert any(not np.array_equal(adapter[name], reference[name]) for name in reference)


@FAST
@given(texts=st.lists(TEXTS, min_size=1, max_size=4))
def test_texts_as_utf8_bytes_score_like_str(fitted, texts):
    np.testing.assert_array_equal(fitted.predict_proba([t.encode("utf-8") for t in texts]), fitted.predict_proba(texts))


@FAST
@given(n=st.integers(0, 60), budget=st.integers(1, 40), truncation=st.sampled_from(TRUNCATIONS))
def test_truncate_keeps_exactly_the_budget_from_the_ends_of_the_text(n, budget, truncation):
    ids = list(range(n))  # distinct tokens, so the kept ones show where they came from
    kept = truncate(ids, budget, truncation)
    if n <= budget:
        assert kept == ids
        return
    assert len(kept) == budget and kept == sorted(set(kept))
    n_head = next((i for i, token in enumerate(kept) if token != i), budget)  # the kept beginning ...
    assert kept[n_head:] == ids[n - (budget - n_head):]  # ... and the rest is the end
    if truncation == "head":
        assert n_head == budget
    elif truncation == "tail":
        assert n_head == 0 or kept == ids[n - budget:]
    else:
        assert n_head >= 1 and (budget < 2 or budget - n_head >= n_head)


def _bytes_saved_for_backward(fit):
    """Run ``fit()`` adding up the tensors autograd keeps from forward passes for the backward ones.

    Checkpointed layers keep theirs under their own hook, out of this count: what is left is
    what training holds in memory across a whole forward pass.
    """
    import torch

    total = [0]

    def pack(tensor):
        total[0] += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        result = fit()
    return result, total[0]


@pytest.mark.parametrize("objective", ["answer", "class"])
def test_gradient_checkpointing_keeps_less_and_trains_the_same_adapter(tiny_model, objective):
    """Checkpointing changes memory, not the result: same losses and adapter, fewer stored activations."""
    params = {**_params(tiny_model), "objective": objective}
    plain, plain_bytes = _bytes_saved_for_backward(lambda: LLMClassifier(**params).fit(SENTIMENT_X, SENTIMENT_Y))
    checkpointed, checkpointed_bytes = _bytes_saved_for_backward(
        lambda: LLMClassifier(gradient_checkpointing=True, **params).fit(SENTIMENT_X, SENTIMENT_Y)
    )
    # the checkpointed layers keep their activations under their own hook: strictly less is held
    # (how much less depends on depth and where the logits dominate; docs/performance.md measures it)
    assert checkpointed_bytes < plain_bytes
    np.testing.assert_allclose([s["loss"] for s in checkpointed.history_["steps"]], [s["loss"] for s in plain.history_["steps"]], rtol=1e-5)
    reference, adapter = plain.backend_.state().adapter, checkpointed.backend_.state().adapter
    for name in reference:
        np.testing.assert_allclose(adapter[name], reference[name], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(checkpointed.predict_proba(SENTIMENT_X), plain.predict_proba(SENTIMENT_X), rtol=1e-4, atol=1e-6)
