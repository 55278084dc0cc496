"""LLMClassifier through the real vLLM CPU engine: the transformers engine's probabilities, within 1e-3.

Fit with transformers (float32), predict with vLLM: ``with_backend`` and ``load(path, backend=...)``,
both directions, with an adapter (on a 4-bit base and an unquantised one) and zero-shot.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import ENGINE_ARGS

from llm_classifier import LLMClassifier
from llm_classifier.engines.vllm import VLLMEngine

TEXTS = ["a wonderful, moving film", "dull, long and badly acted", "great fun from start to finish",
         "an awful waste of time", "I loved every minute", "boring and predictable",
         "brilliant performances all round", "the worst film this year"]
LABELS = ["positive", "negative"] * 4
NEW = ["what a film", "not worth it", "a masterpiece <|im_end|> of its kind", "ok"]
TOLERANCE = 1e-3


def _vllm() -> VLLMEngine:
    return VLLMEngine(engine_args=ENGINE_ARGS)


@pytest.fixture(scope="module")
def params(vllm_tiny_model: str) -> dict:
    return dict(model=vllm_tiny_model, dtype="float32", max_steps=3, batch_size=4, random_state=0)


@pytest.fixture(scope="module", params=["direct", "channel"])
def fitted(request: pytest.FixtureRequest, params: dict) -> LLMClassifier:
    # direct on the default 4-bit base (vLLM serves it dequantised as transformers computes it), channel unquantised
    quantization = "4bit" if request.param == "direct" else None
    return LLMClassifier(direction=request.param, quantization=quantization, **params).fit(TEXTS, LABELS)


@pytest.fixture(scope="module")
def served(fitted: LLMClassifier) -> LLMClassifier:
    return fitted.with_backend(_vllm())


def test_with_backend_predicts_as_transformers(fitted: LLMClassifier, served: LLMClassifier) -> None:
    assert isinstance(served.backend_, VLLMEngine) and served.backend_.state().adapter is not None
    np.testing.assert_allclose(served.predict_proba(NEW + TEXTS), fitted.predict_proba(NEW + TEXTS), atol=TOLERANCE)
    np.testing.assert_allclose(served.answer_scores(NEW), fitted.answer_scores(NEW), atol=1e-4)
    assert (served.predict(NEW + TEXTS) == fitted.predict(NEW + TEXTS)).all()


def test_load_with_the_vllm_backend_and_back(fitted: LLMClassifier, served: LLMClassifier, tmp_path) -> None:
    fitted.save(tmp_path / "fitted")
    loaded = LLMClassifier.load(tmp_path / "fitted", backend=_vllm())
    assert loaded.backend_.llm is served.backend_.llm  # the same merged checkpoint: one running engine
    expected = fitted.predict_proba(NEW)
    np.testing.assert_allclose(loaded.predict_proba(NEW), expected, atol=TOLERANCE)
    loaded.save(tmp_path / "served")  # a vLLM classifier saves the same engine-neutral state
    again = LLMClassifier.load(tmp_path / "served", backend="transformers")
    np.testing.assert_allclose(again.predict_proba(NEW), expected, atol=1e-6)


def test_a_vllm_engine_parameter_is_saved_by_its_kind_name(served: LLMClassifier, tmp_path) -> None:
    served.save(tmp_path / "served")
    config = json.loads((tmp_path / "served" / "classifier.json").read_text())
    # engine_args go to vllm.LLM (trust_remote_code, worker_extension_cls, ...): never saved, only the caller passes them
    assert config["params"]["backend"] == {"__engine__": "vllm", "params": {"route": "auto"}}
    backend = LLMClassifier.load(tmp_path / "served").get_params()["backend"]
    assert type(backend) is VLLMEngine and backend.engine_args is None and backend.route == "auto"
    config["params"]["backend"]["params"]["engine_args"] = {"trust_remote_code": True}  # an edited file
    (tmp_path / "served" / "classifier.json").write_text(json.dumps(config))
    assert LLMClassifier.load(tmp_path / "served").get_params()["backend"].engine_args is None


def test_generate_mode_predicts_as_transformers(fitted: LLMClassifier, served: LLMClassifier) -> None:
    if fitted.direction == "channel":
        pytest.skip("generation answers the direct prompt")
    generating = dict(inference="generate", max_new_tokens=4)
    for clf in (fitted, served):
        clf.set_params(**generating)
    try:
        assert served.generate(NEW) == fitted.generate(NEW)
        np.testing.assert_array_equal(served.predict(NEW), fitted.predict(NEW))
    finally:
        for clf in (fitted, served):
            clf.set_params(inference="score", max_new_tokens=None)


def test_zero_shot_fit_on_vllm_equals_transformers(params: dict) -> None:
    on_vllm = {}
    for direction in ("direct", "channel"):  # one running engine: the base, for both
        zero = dict(params, max_steps=0, quantization=None, direction=direction)
        on_vllm[direction] = LLMClassifier(backend=_vllm(), **zero).fit(TEXTS, LABELS)
        on_transformers = LLMClassifier(**zero).fit(TEXTS, LABELS)
        np.testing.assert_allclose(on_vllm[direction].predict_proba(NEW), on_transformers.predict_proba(NEW),
                                   atol=TOLERANCE)


def test_fitting_an_adapter_on_vllm_is_refused(params: dict) -> None:
    with pytest.raises(TypeError, match=re.escape("cannot fine-tune (capabilities.fit=False); use max_steps=0")):
        LLMClassifier(backend=_vllm(), quantization=None, **params).fit(TEXTS, LABELS)
