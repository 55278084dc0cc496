"""The engine contract on the real vLLM CPU engine (no mocks), and its agreement with the transformers engine.

The contract tests of tests/contract/test_engine_contract.py that need no fine-tuning run here unchanged
(imported, with this module's ``case`` and ``engine``); the vLLM engine cannot fine-tune, so the
tests that fit an adapter fit it with the transformers engine and hand its state to vLLM.
One vLLM engine runs per checkpoint (the base, each merged adapter), shared by the tests.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from test_engine_contract import (  # noqa: F401  (collected here, on the vLLM engine)
    ANSWERS,
    TEXTS,
    EngineCase,
    class_scores,
    test_engine_declares_the_contract,
    test_generate_respects_max_new_tokens,
    test_score_advances_progress_along_the_longer_axis,
    test_score_equals_brute_force,
    test_score_is_invariant_to_batch_size_and_continuation_order,
    test_score_of_empty_continuation_is_zero,
    test_score_shape_dtype_and_range,
    test_state_of_an_unfitted_engine_has_no_adapter,
    test_state_of_another_base_is_refused,
    toy_request,
    _prompt,
    _some_ids,
)
from conftest import ENGINE_ARGS

from llm_classifier.engines import resolve_backend
from llm_classifier.engines.vllm import VLLMEngine
from llm_classifier.engines.vllm.engine import choose_route

OPTIONS = {"quantization": None, "dtype": "float32"}
#: vLLM and transformers (both float32) agree this closely on the tiny model (measured: 3e-6)
ATOL = 1e-4


def _transformers(model: str) -> Any:
    from llm_classifier.engines.hf.engine import TransformersBackend

    engine = TransformersBackend()
    engine.load(model, device="cpu", **OPTIONS)
    return engine


@pytest.fixture(scope="module")
def base_engine(vllm_tiny_model: str) -> VLLMEngine:
    engine = VLLMEngine(engine_args=ENGINE_ARGS)
    engine.load(vllm_tiny_model, **OPTIONS)
    return engine


@pytest.fixture(scope="module")
def reference(vllm_tiny_model: str) -> Any:
    return _transformers(vllm_tiny_model)


@pytest.fixture
def case(base_engine: VLLMEngine, reference: Any) -> EngineCase:
    def brute_force(engine: Any, contexts: list[list[int]], continuations: list[list[int]]) -> np.ndarray:
        from llm_classifier.engines.hf.scoring import score_labels_naive

        return score_labels_naive(reference.inference_model, contexts, continuations, pad_id=reference.pad_id,
                                  batch_size=4)

    return EngineCase(make=lambda: base_engine, brute_force=brute_force, atol=ATOL,
                      load_options={**OPTIONS})


@pytest.fixture
def engine(base_engine: VLLMEngine) -> VLLMEngine:
    return base_engine


@pytest.fixture(autouse=True)
def _default_constructor(monkeypatch: pytest.MonkeyPatch) -> None:
    """``type(engine)()`` in the contract tests makes an engine with the tests' vLLM arguments."""
    monkeypatch.setattr(VLLMEngine.__init__, "__defaults__", ("auto", ENGINE_ARGS))


# -- vLLM's own promises -------------------------------------------------------------------
def test_registered_and_inference_only(base_engine: VLLMEngine) -> None:
    assert isinstance(resolve_backend("vllm"), VLLMEngine)
    assert not base_engine.capabilities.fit and base_engine.capabilities.generate and base_engine.capabilities.state
    with pytest.raises(TypeError, match=re.escape("cannot fine-tune (capabilities.fit=False)")):
        base_engine.fit(toy_request(base_engine.tokenizer))


def test_same_tokenization_as_the_transformers_engine(base_engine: VLLMEngine, reference: Any) -> None:
    for text in ["a fine film", "<|im_end|> not special", "naïve café"]:
        assert base_engine.tokenizer.encode_text(text) == reference.tokenizer.encode_text(text)
        assert base_engine.tokenizer.encode_prompt(text, start=True) == reference.tokenizer.encode_prompt(text, start=True)
    assert base_engine.tokenizer.end_id == reference.tokenizer.end_id


@pytest.mark.parametrize("route", ["trie", "pairs"])
def test_both_routes_equal_the_transformers_engine(base_engine: VLLMEngine, reference: Any, route: str) -> None:
    prompts, continuations = _some_ids(base_engine.tokenizer)
    prompts = prompts + [_prompt(base_engine.tokenizer, t) for t in TEXTS]
    expected = reference.score(prompts, continuations, batch_size=4)
    base_engine.route = route
    try:
        np.testing.assert_allclose(base_engine.score(prompts, continuations, batch_size=4), expected, atol=ATOL)
        np.testing.assert_allclose(base_engine.score(continuations[:3], prompts, batch_size=4),
                                   reference.score(continuations[:3], prompts, batch_size=4), atol=ATOL)
    finally:
        base_engine.route = "auto"


def test_trie_route_asks_in_groups_beyond_vllms_limit(base_engine: VLLMEngine, reference: Any) -> None:
    """200 single-token answers: the root has more children than one request may ask about (128)."""
    tokenizer = base_engine.tokenizer
    answers = [[token, tokenizer.end_id] for token in range(1000, 1200)]
    prompts = [_prompt(tokenizer, t) for t in TEXTS[:2]]
    base_engine.route = "trie"
    try:
        np.testing.assert_allclose(base_engine.score(prompts, answers, batch_size=4),
                                   reference.score(prompts, answers, batch_size=4), atol=ATOL)
    finally:
        base_engine.route = "auto"


def test_route_choice_follows_the_work() -> None:
    contexts = [list(range(100))] * 4
    assert choose_route(contexts, [[1, 2], [3, 2]]) == "trie"  # a few short answers after long prompts
    assert choose_route([[1, 2, 3]] * 2, [list(range(k, k + 60)) for k in range(50)]) == "pairs"  # channel: texts


# -- with an adapter fitted by the transformers engine ------------------------------------------
@pytest.fixture(scope="module", params=[False, True], ids=["direct", "channel"])
def fitted_pair(request: pytest.FixtureRequest, vllm_tiny_model: str) -> tuple[Any, VLLMEngine, bool]:
    channel = request.param
    trained = _transformers(vllm_tiny_model)
    trained.fit(toy_request(trained.tokenizer, channel=channel, max_steps=20))
    served = VLLMEngine(engine_args=ENGINE_ARGS)
    served.load_state(trained.state(), **OPTIONS)
    return trained, served, channel


def test_fitted_adapter_scores_as_the_transformers_engine(fitted_pair: tuple[Any, VLLMEngine, bool]) -> None:
    trained, served, channel = fitted_pair
    np.testing.assert_allclose(class_scores(served, TEXTS, channel), class_scores(trained, TEXTS, channel), atol=ATOL)


def test_fitted_generation_answers_and_stops_at_the_end_id(fitted_pair: tuple[Any, VLLMEngine, bool],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    trained, served, channel = fitted_pair
    if channel:
        pytest.skip("generation answers the direct prompt")
    prompts = [_prompt(served.tokenizer, t) for t in TEXTS[:4]]
    generated = served.generate(prompts, max_new_tokens=6, batch_size=1)
    assert generated == trained.generate(prompts, max_new_tokens=6, batch_size=2)
    assert [text[:1] for text in generated] == ANSWERS * 2  # (this small model learns the answer, not its end)
    # It stops at the tokenizer's end id: made the answer's own token here, generation stops after one.
    monkeypatch.setattr(served.tokenizer, "end_id", served.tokenizer.encode_text(ANSWERS[0])[0])
    assert served.generate(prompts[:1], max_new_tokens=6, batch_size=1) == [ANSWERS[0]]


def test_state_round_trip_keeps_the_adapter(fitted_pair: tuple[Any, VLLMEngine, bool]) -> None:
    trained, served, channel = fitted_pair
    state = served.state()
    assert state.engine == "vllm" and state.fingerprint == trained.state().fingerprint
    assert all(np.array_equal(state.adapter[name], trained.state().adapter[name]) for name in state.adapter)
    fresh = VLLMEngine(engine_args=ENGINE_ARGS)
    fresh.load_state(state, **OPTIONS)
    assert fresh.checkpoint == served.checkpoint  # the merge is written once and reused
    np.testing.assert_array_equal(class_scores(fresh, TEXTS, channel), class_scores(served, TEXTS, channel))
