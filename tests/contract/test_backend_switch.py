"""Fit on one engine, predict on another: LLMClassifier.load(path, backend=...) and clf.with_backend(...).

The cross-engine equality with vLLM is tested in tests/vllm_engine (run in .venv-vllm); these tests check
the switch itself with the transformers engine, which every environment has.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from llm_classifier import LLMClassifier
from llm_classifier.engines.hf.engine import TransformersBackend
from llm_classifier.exceptions import ModelNotFoundError


@pytest.fixture(scope="module")
def fitted(tiny_model):
    from tests.conftest import SENTIMENT_X, SENTIMENT_Y

    return LLMClassifier(model=tiny_model, quantization=None, dtype="float32", max_steps=3, batch_size=4,
                         random_state=0).fit(SENTIMENT_X, SENTIMENT_Y)


def test_with_backend_predicts_the_same_through_a_new_engine(fitted, sentiment):
    texts, _ = sentiment
    engine = TransformersBackend(num_threads=1)
    switched = fitted.with_backend(engine)
    assert switched is not fitted and switched.backend is engine
    assert switched.backend_ is not fitted.backend_ and switched.backend_ is not engine  # a fresh copy, loaded
    assert fitted.backend == "transformers"  # the original is unchanged
    np.testing.assert_allclose(switched.predict_proba(texts), fitted.predict_proba(texts), atol=1e-6)
    assert switched.backend_.state().adapter is not None


def test_with_backend_needs_a_fitted_classifier(tiny_model):
    with pytest.raises(NotFittedError):
        LLMClassifier(model=tiny_model).with_backend("transformers")


def test_with_backend_refuses_an_engine_that_cannot_load_the_base(fitted):
    with pytest.raises(ModelNotFoundError, match="reference engine"):
        fitted.with_backend("reference")


def test_load_with_backend_replaces_the_saved_one(fitted, sentiment, tmp_path):
    texts, _ = sentiment
    fitted.save(tmp_path / "clf")
    engine = TransformersBackend(num_threads=1)
    loaded = LLMClassifier.load(tmp_path / "clf", backend=engine)
    assert loaded.backend is engine and isinstance(loaded.backend_, TransformersBackend)
    assert loaded.backend_.num_threads == 1
    np.testing.assert_allclose(loaded.predict_proba(texts), fitted.predict_proba(texts), atol=1e-6)
    with pytest.raises(ModelNotFoundError, match="reference engine"):
        LLMClassifier.load(tmp_path / "clf", backend="reference")
