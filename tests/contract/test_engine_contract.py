"""The engine contract (llm_classifier.engines.base): tests any engine must pass.

Every contract test goes through the protocol only (``Engine``, ``Tokenizer``, ``TrainRequest``,
``EngineState``) and runs on each engine: the pure-numpy reference engine (milliseconds) and the
Hugging Face engine on the tiny random Llama. A few engine-specific checks (the brute-force
scorer each engine is compared with, the hostile strings of each tokenizer) come from the case.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_classifier.engines.base import (Capabilities, Decision, Engine, EngineState, Tokenizer, TrainExample,
                                         TrainRequest)
from llm_classifier.engines.reference import SPECIAL_TOKENS, VOCAB_SIZE, ReferenceEngine, ReferenceTokenizer
from llm_classifier.exceptions import IncompatibleArtifactError, ModelNotFoundError

# -- engines -------------------------------------------------------------------------------
@dataclass
class EngineCase:
    """How to make a loaded engine of one kind, and what to compare it with."""

    make: Callable[[], Any]
    #: log p(continuation | context) computed the plain way, for the *unfitted* engine ``engine``
    brute_force: Callable[[Any, list[list[int]], list[list[int]]], np.ndarray]
    #: absolute tolerance between two computations of the same scores (batching, reloading)
    atol: float
    #: what ``load`` and ``load_state`` take besides the model (the engine's options)
    load_options: dict[str, Any]


def _reference_brute_force(engine: ReferenceEngine, contexts: list[list[int]], continuations: list[list[int]]) -> np.ndarray:
    """One position at a time, from the model's definition (the full next-token distribution)."""
    out = np.empty((len(contexts), len(continuations)))
    for i, context in enumerate(contexts):
        for k, continuation in enumerate(continuations):
            history = list(context)
            total = 0.0
            for token in continuation:
                total += float(np.log(engine.next_distribution(history)[token]))
                history.append(token)
            out[i, k] = total
    return out


def _reference_case() -> EngineCase:
    def make() -> ReferenceEngine:
        engine = ReferenceEngine()
        engine.load("reference")
        return engine

    return EngineCase(make=make, brute_force=_reference_brute_force, atol=1e-9, load_options={})


def _transformers_case(tiny_model: str) -> EngineCase:
    options = {"quantization": None, "dtype": "float32", "device": "cpu"}

    def make() -> Any:
        from llm_classifier.engines.hf.engine import TransformersBackend

        engine = TransformersBackend()
        engine.load(tiny_model, **options)
        return engine

    def brute_force(engine: Any, contexts: list[list[int]], continuations: list[list[int]]) -> np.ndarray:
        import torch
        from transformers import AutoModelForCausalLM

        from llm_classifier.engines.hf.scoring import score_labels_naive

        model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
        return score_labels_naive(model, contexts, continuations, pad_id=engine.tokenizer.pad_id, batch_size=4)

    return EngineCase(make=make, brute_force=brute_force, atol=1e-4, load_options=options)


@pytest.fixture(params=["reference", "transformers"])
def case(request: pytest.FixtureRequest) -> EngineCase:
    if request.param == "reference":
        return _reference_case()
    return _transformers_case(request.getfixturevalue("tiny_model"))


@pytest.fixture
def engine(case: EngineCase) -> Any:
    return case.make()


class Counter:
    """A progress bar that remembers how far it got."""

    def __init__(self) -> None:
        self.n = 0

    def update(self, n: int = 1) -> None:
        self.n += n


# -- a separable toy task ------------------------------------------------------------------
TEXTS = ["aaaa aaaa", "bbbb bbbb", "aaa aa aaa", "bb bbb bb", "aaaaa", "bbbbb", "aa aaaa", "bbbb bb"]
CODES = np.array([0, 1] * 4)
ANSWERS = ["x", "y"]


def _prompt(tokenizer: Tokenizer, text: str) -> list[int]:
    """A prompt as the core builds one: library text through encode_prompt, user text through encode_text."""
    return (tokenizer.encode_prompt("Review: ", start=True) + tokenizer.encode_text(text)
            + tokenizer.encode_prompt("\nLabel: ", start=False))


def _answers(tokenizer: Tokenizer) -> list[list[int]]:
    return [tokenizer.encode_text(answer) + [tokenizer.end_id] for answer in ANSWERS]


def _class_prompts(tokenizer: Tokenizer) -> list[list[int]]:
    return [tokenizer.encode_prompt(f"A review labelled {answer}:\n", start=True) for answer in ANSWERS]


def _texts(tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
    return [tokenizer.encode_text(text) + [tokenizer.end_id] for text in texts]


def toy_request(tokenizer: Tokenizer, *, channel: bool = False, texts: list[str] = TEXTS,
                codes: np.ndarray = CODES, weights: np.ndarray | None = None, **schedule: Any) -> TrainRequest:
    """The toy task as a request: full-batch steps, a learning rate the tiny model learns at.

    Direct: each text's prompt, then one decision among the answers; channel: each class's prompt,
    then the text as the only candidate (what the core's formulations build).
    """
    codes = np.asarray(codes)
    weights = np.ones(len(texts)) if weights is None else weights
    schedule = {"max_steps": 8, "batch_size": len(texts), "learning_rate": 5e-3, "warmup_steps": 0, **schedule}
    if channel:
        prompts = _class_prompts(tokenizer)
        examples = [TrainExample(prompts[c], [Decision([], [text], 0, float(w))])
                    for text, c, w in zip(_texts(tokenizer, texts), codes, weights)]
    else:
        answers = _answers(tokenizer)
        examples = [TrainExample(_prompt(tokenizer, t), [Decision([], answers, int(c), float(w))])
                    for t, c, w in zip(texts, codes, weights)]
    return TrainRequest(examples=examples, **schedule)


@dataclass
class _Scorer:
    """An engine's score function (under the adapter being trained) beside its tokenizer."""

    score: Callable[..., np.ndarray]
    tokenizer: Tokenizer


def toy_validation(tokenizer: Tokenizer, texts: list[str], codes: np.ndarray, channel: bool = False) -> Callable[..., Any]:
    """A held-out slice as the core builds one: scored as prediction scores it, the class log-loss."""

    def validation(score: Callable[..., np.ndarray]) -> tuple[float, np.ndarray]:
        scores = class_scores(_Scorer(score, tokenizer), texts, channel)
        return class_log_loss(scores, codes), scores

    return validation


def class_scores(engine: Any, texts: list[str], channel: bool) -> np.ndarray:
    """Every class's log-score for each text, shape (n_texts, n_classes), as prediction computes it."""
    tokenizer = engine.tokenizer
    if channel:
        return engine.score(_class_prompts(tokenizer), _texts(tokenizer, texts), batch_size=4).T
    return engine.score([_prompt(tokenizer, t) for t in texts], _answers(tokenizer), batch_size=4)


def class_log_loss(scores: np.ndarray, codes: np.ndarray) -> float:
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_proba = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_proba[np.arange(len(codes)), codes].mean())


def _some_ids(tokenizer: Tokenizer) -> tuple[list[list[int]], list[list[int]]]:
    """A few prompts and many continuations of different lengths (an empty one included)."""
    prompts = [_prompt(tokenizer, t) for t in ["a fine film", "dull", "über-long, with ünïcode"]]
    continuations = [tokenizer.encode_text(t) + [tokenizer.end_id] for t in ["yes", "no", "maybe so", "ok", "x y z", "Ω"]]
    return prompts, continuations + [[]]


# -- declaration ---------------------------------------------------------------------------
def test_engine_declares_the_contract(engine: Any) -> None:
    assert isinstance(engine, Engine)
    assert isinstance(engine.name, str) and engine.name
    assert isinstance(engine.capabilities, Capabilities)
    assert isinstance(engine.capabilities.options, tuple)
    assert all(isinstance(option, str) for option in engine.capabilities.options)
    assert isinstance(engine.tokenizer, Tokenizer)
    assert isinstance(engine.tokenizer.end_id, int)


# -- score ---------------------------------------------------------------------------------
@pytest.mark.parametrize("transpose", [False, True], ids=["few-continuations", "few-contexts"])
def test_score_shape_dtype_and_range(engine: Any, transpose: bool) -> None:
    prompts, continuations = _some_ids(engine.tokenizer)
    contexts = prompts
    if transpose:  # the channel direction's shape: a few contexts, many continuations
        contexts, continuations = prompts[:2], continuations + [engine.tokenizer.encode_text(t) for t in TEXTS]
    else:  # the direct direction's: many contexts, a few continuations
        contexts, continuations = prompts + [_prompt(engine.tokenizer, t) for t in TEXTS], continuations[:3]
    scores = engine.score(contexts, continuations, batch_size=4)
    assert scores.shape == (len(contexts), len(continuations))
    assert scores.dtype == np.float64
    assert np.isfinite(scores).all() and (scores <= 0).all()


def test_score_of_empty_continuation_is_zero(engine: Any) -> None:
    prompts, _ = _some_ids(engine.tokenizer)
    np.testing.assert_array_equal(engine.score(prompts, [[]], batch_size=2), np.zeros((len(prompts), 1)))


def test_score_equals_brute_force(case: EngineCase, engine: Any) -> None:
    prompts, continuations = _some_ids(engine.tokenizer)
    continuations = continuations[:-1]
    np.testing.assert_allclose(engine.score(prompts, continuations, batch_size=4),
                               case.brute_force(engine, prompts, continuations), rtol=1e-6, atol=case.atol)


@pytest.mark.parametrize("transpose", [False, True], ids=["many-contexts", "many-continuations"])
def test_score_is_invariant_to_batch_size_and_continuation_order(case: EngineCase, engine: Any, transpose: bool) -> None:
    prompts, continuations = _some_ids(engine.tokenizer)
    contexts = prompts + [_prompt(engine.tokenizer, t) for t in TEXTS]
    if transpose:
        contexts, continuations = continuations[:2], [engine.tokenizer.encode_text(t) for t in TEXTS]
    reference = engine.score(contexts, continuations, batch_size=3)
    for batch_size in (1, 64):
        np.testing.assert_allclose(engine.score(contexts, continuations, batch_size=batch_size), reference, atol=case.atol)
    order = np.random.default_rng(0).permutation(len(continuations))
    permuted = engine.score(contexts, [continuations[k] for k in order], batch_size=3)
    np.testing.assert_allclose(permuted, reference[:, order], atol=case.atol)


@pytest.mark.parametrize("transpose", [False, True], ids=["many-contexts", "many-continuations"])
def test_score_advances_progress_along_the_longer_axis(engine: Any, transpose: bool) -> None:
    prompts, continuations = _some_ids(engine.tokenizer)
    contexts, continuations = (prompts[:2], continuations) if transpose else (prompts + prompts, continuations[:2])
    progress = Counter()
    engine.score(contexts, continuations, batch_size=2, progress=progress)
    assert progress.n == max(len(contexts), len(continuations))


# -- fit -----------------------------------------------------------------------------------
@pytest.mark.parametrize("channel", [False, True], ids=["direct", "channel"])
def test_fit_learns_a_separable_task(engine: Any, channel: bool) -> None:
    request = toy_request(engine.tokenizer, channel=channel)
    before = class_scores(engine, TEXTS, channel)
    history = engine.fit(request)
    after = class_scores(engine, TEXTS, channel)
    rows = np.arange(len(CODES))
    assert after[rows, CODES].mean() > before[rows, CODES].mean()  # the right answers became likelier
    assert class_log_loss(after, CODES) < class_log_loss(before, CODES)
    assert (after.argmax(axis=1) == CODES).all()
    assert history["n_steps"] >= 1 and history["n_examples"] == len(TEXTS)
    assert isinstance(history["steps"], list) and history["steps"]


def test_fit_starts_from_the_base_each_time(case: EngineCase, engine: Any) -> None:
    request = toy_request(engine.tokenizer)
    engine.fit(request)
    first = class_scores(engine, TEXTS, channel=False)
    engine.fit(request)
    np.testing.assert_allclose(class_scores(engine, TEXTS, channel=False), first, atol=case.atol)


def test_zero_weights_drop_examples(case: EngineCase, engine: Any) -> None:
    if not engine.capabilities.sample_weight:
        pytest.skip("the engine does not take example weights")
    kept = 6
    weights = np.r_[np.ones(kept), np.zeros(len(TEXTS) - kept)]
    engine.fit(toy_request(engine.tokenizer, weights=weights, batch_size=len(TEXTS)))
    weighted = class_scores(engine, TEXTS, channel=False)
    engine.fit(toy_request(engine.tokenizer, texts=TEXTS[:kept], codes=CODES[:kept], batch_size=len(TEXTS)))
    np.testing.assert_allclose(weighted, class_scores(engine, TEXTS, channel=False), atol=case.atol * 10)


@pytest.mark.parametrize("channel", [False, True], ids=["direct", "channel"])
def test_validation_scores_are_the_kept_adapters(case: EngineCase, engine: Any, channel: bool) -> None:
    tokenizer = engine.tokenizer
    held_texts, held_codes = ["aaa a", "bb b", "a aaaa"], np.array([0, 1, 0])
    request = toy_request(tokenizer, channel=channel, validation=toy_validation(tokenizer, held_texts, held_codes, channel))
    history = engine.fit(request)
    scores = history["validation_scores"]
    assert scores.shape == (len(held_texts), len(ANSWERS))
    np.testing.assert_allclose(scores, class_scores(engine, held_texts, channel), rtol=1e-5, atol=case.atol)


# -- several decisions after one context ----------------------------------------------------
LABELS = ["red", "blue", "green"]
INDICATOR = np.array([[1, 0, 0], [0, 1, 1], [1, 1, 0], [0, 0, 1], [1, 0, 1], [0, 1, 0], [0, 0, 0], [1, 1, 1]])


def _decision_examples(tokenizer: Tokenizer, layout: str, shared: bool) -> list[TrainExample]:
    """The toy texts as a multi-label or single-label (direct) request, in the shared-context layout or one
    pair per example (each decision's prefix moved into its own example's context, one candidate per decision
    for single-label)."""
    end = [tokenizer.end_id]
    if layout == "multilabel":
        yes, no = tokenizer.encode_text(" yes") + end, tokenizer.encode_text(" no") + end
        questions = [tokenizer.encode_text(f" {label}:") for label in LABELS]
        grouped = [(_prompt(tokenizer, text), [Decision(q, [yes, no], 1 - int(y), 1.0 + 0.5 * j * int(y))
                                               for j, (q, y) in enumerate(zip(questions, row))])
                   for text, row in zip(TEXTS, INDICATOR)]
    else:
        answers = _answers(tokenizer)
        grouped = [(_prompt(tokenizer, text), [Decision([], answers, int(code), 1.0 + 0.25 * i)])
                   for i, (text, code) in enumerate(zip(TEXTS, CODES))]
    if shared:
        return [TrainExample(context, decisions) for context, decisions in grouped]
    if layout == "direct":  # the continuation alone: what objective="answer" computes
        return [TrainExample(context, [Decision([], [d.candidates[d.target]], 0, d.weight)])
                for context, decisions in grouped for d in decisions]
    return [TrainExample(context + d.prefix, [Decision([], d.candidates, d.target, d.weight)])
            for context, decisions in grouped for d in decisions]


@pytest.mark.parametrize("objective", ["answer", "class"])
@pytest.mark.parametrize("layout", ["multilabel", "direct"])
def test_shared_context_trains_as_one_pair_per_example(case: EngineCase, engine: Any, layout: str,
                                                       objective: str) -> None:
    """Same losses and same update (plain SGD, full batches) from either layout of the same decisions."""
    if objective != "answer" and engine.name == "reference":
        pytest.skip("the reference engine trains objective='answer' only")
    if layout == "direct" and objective != "answer":
        pytest.skip("one candidate per pair is the answer objective's layout")
    tokenizer = engine.tokenizer
    options = {"optimizer": "sgd", "lr_scheduler": "constant"} if "optimizer" in engine.capabilities.options else {}
    shared_examples = _decision_examples(tokenizer, layout, shared=True)
    pairs = [(e.context + d.prefix, d.candidates) for e in shared_examples for d in e.decisions]
    contexts, candidates = [c for c, _ in pairs], pairs[0][1]

    def run(shared: bool) -> tuple[list[float], np.ndarray]:
        examples = _decision_examples(tokenizer, layout, shared)
        history = engine.fit(TrainRequest(examples=examples, objective=objective, max_steps=2, batch_size=len(examples),
                                          learning_rate=0.5, warmup_steps=0, weight_decay=0.0, options=options))
        assert history["n_examples"] == len(examples)
        return [step["loss"] for step in history["steps"]], engine.score(contexts, candidates, batch_size=4)

    base = engine.score(contexts, candidates, batch_size=4)
    shared_losses, shared_scores = run(True)
    pair_losses, pair_scores = run(False)
    np.testing.assert_allclose(shared_losses, pair_losses, rtol=1e-5)
    tolerance = case.atol / 10
    assert np.abs(shared_scores - base).max() > 100 * tolerance  # training moved the model
    np.testing.assert_allclose(shared_scores, pair_scores, rtol=0, atol=tolerance)


def test_decision_weights_scale_their_loss(engine: Any) -> None:
    if not engine.capabilities.sample_weight:
        pytest.skip("the engine does not take decision weights")
    examples = _decision_examples(engine.tokenizer, "multilabel", shared=True)
    doubled = [TrainExample(e.context, [replace(d, weight=2 * d.weight) for d in e.decisions]) for e in examples]
    losses = [engine.fit(TrainRequest(examples=x, max_steps=1, batch_size=len(x), learning_rate=1e-3,
                                      warmup_steps=0))["steps"][0]["loss"] for x in (examples, doubled)]
    assert losses[1] == pytest.approx(2 * losses[0] if engine.name == "transformers" else losses[0], rel=1e-5)


def test_request_checks_its_examples() -> None:
    with pytest.raises(ValueError, match=r"examples\[0\]\.decisions\[0\]\.target is 2"):
        TrainRequest(examples=[TrainExample([1, 2], [Decision([], [[3], [4]], 2)])])
    with pytest.raises(ValueError, match=r"examples\[0\] has an empty context"):
        TrainRequest(examples=[TrainExample([], [Decision([], [[3]], 0)])])
    with pytest.raises(ValueError, match=r"examples\[1\]\.decisions\[0\] has an empty candidate"):
        TrainRequest(examples=[TrainExample([1], [Decision([], [[3]], 0)]), TrainExample([1], [Decision([], [[]], 0)])])


# -- generate ------------------------------------------------------------------------------
def test_generate_answers_and_stops_at_the_end_token(engine: Any, request: pytest.FixtureRequest) -> None:
    if engine.name == "transformers":  # a tiny random Llama cannot learn the answers in this budget
        pytest.skip("the transformers engine's stopping is tested with a steered model in "
                    "tests/integration/test_generation_stops.py")
    engine.fit(toy_request(engine.tokenizer, max_steps=20))
    prompts = [_prompt(engine.tokenizer, t) for t in TEXTS[:2]]
    progress = Counter()
    assert engine.generate(prompts, max_new_tokens=12, batch_size=1, progress=progress) == ANSWERS
    assert progress.n == len(prompts)


def test_generate_respects_max_new_tokens(engine: Any) -> None:
    prompts = [_prompt(engine.tokenizer, t) for t in TEXTS[:3]]
    short = engine.generate(prompts, max_new_tokens=2, batch_size=2)
    longer = engine.generate(prompts, max_new_tokens=6, batch_size=2)
    assert all(isinstance(text, str) for text in short + longer)
    for a, b in zip(short, longer):
        assert b.startswith(a)  # greedy: more tokens extend the same continuation
        assert len(engine.tokenizer.encode_text(a)) <= 2


# -- state ---------------------------------------------------------------------------------
def test_state_round_trip_reproduces_scores(case: EngineCase, engine: Any) -> None:
    engine.fit(toy_request(engine.tokenizer))
    state = engine.state()
    assert isinstance(state, EngineState) and state.engine == engine.name
    assert state.adapter is not None and all(isinstance(a, np.ndarray) for a in state.adapter.values())
    json.dumps(state.adapter_config)  # JSON-able, as saved
    fresh = type(engine)()
    fresh.load_state(state, **case.load_options)
    np.testing.assert_allclose(class_scores(fresh, TEXTS, False), class_scores(engine, TEXTS, False), rtol=0, atol=case.atol)


def test_state_of_an_unfitted_engine_has_no_adapter(case: EngineCase, engine: Any) -> None:
    state = engine.state()
    assert state.adapter is None
    fresh = type(engine)()
    fresh.load_state(state, **case.load_options)
    np.testing.assert_array_equal(class_scores(fresh, TEXTS, False), class_scores(engine, TEXTS, False))


def test_state_of_another_base_is_refused(case: EngineCase, engine: Any) -> None:
    state = replace(engine.state(), fingerprint="0" * 64)
    with pytest.raises(IncompatibleArtifactError, match=re.escape(state.model)):
        type(engine)().load_state(state, **case.load_options)


# -- the tokenizer protocol ----------------------------------------------------------------
@dataclass
class TokenizerCase:
    tokenizer: Tokenizer
    #: strings a user could write that name control tokens, and the ids they must never become
    special_strings: list[str]
    special_ids: set[int]


def _hf_tokenizer_case(directory: str) -> TokenizerCase:
    from transformers import AutoTokenizer

    from llm_classifier.engines.hf_tokenizer import HFTokenizer

    tokenizer = HFTokenizer(AutoTokenizer.from_pretrained(directory))
    added = {i: t for i, t in tokenizer.hf.added_tokens_decoder.items() if t.special}
    return TokenizerCase(tokenizer, sorted({t.content for t in added.values()} | set(tokenizer.hf.all_special_tokens)),
                         set(added) | set(tokenizer.hf.all_special_ids))


@pytest.fixture(scope="module", params=["reference", "reference-without-chat", "hf-smollm2"])
def tokenizer_case(request: pytest.FixtureRequest) -> TokenizerCase:
    if request.param == "hf-smollm2":
        return _hf_tokenizer_case(request.getfixturevalue("real_tokenizer_dir"))
    chat = request.param == "reference"
    return TokenizerCase(ReferenceTokenizer(chat_template=chat), list(SPECIAL_TOKENS), set(range(256, VOCAB_SIZE)))


ORDINARY_TEXT = st.text(st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs", "Cc", "Co", "Cn"))
                        | st.sampled_from("\n\t"), max_size=40)


def test_tokenizer_is_a_protocol_instance(tokenizer_case: TokenizerCase) -> None:
    tokenizer = tokenizer_case.tokenizer
    assert isinstance(tokenizer, Tokenizer)
    assert tokenizer.end_id in tokenizer_case.special_ids


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_encode_text_never_yields_a_special_token(tokenizer_case: TokenizerCase, data: st.DataObject) -> None:
    pieces = data.draw(st.lists(st.sampled_from(tokenizer_case.special_strings) | st.text(max_size=8), max_size=8))
    text = "".join(pieces)
    assert not set(tokenizer_case.tokenizer.encode_text(text)) & tokenizer_case.special_ids


@settings(max_examples=60, deadline=None)
@given(text=ORDINARY_TEXT)
def test_decode_inverts_encode_text(tokenizer_case: TokenizerCase, text: str) -> None:
    tokenizer = tokenizer_case.tokenizer
    assert tokenizer.decode(tokenizer.encode_text(text)) == text


def test_decode_leaves_special_tokens_out(tokenizer_case: TokenizerCase) -> None:
    tokenizer = tokenizer_case.tokenizer
    assert tokenizer.decode([tokenizer.end_id] + tokenizer.encode_text("plain words") + [tokenizer.end_id]) == "plain words"


@pytest.mark.parametrize("text", ["", "Classify the review.\n", "ends with the end: "])
def test_encode_prompt_start_adds_at_most_one_leading_token(tokenizer_case: TokenizerCase, text: str) -> None:
    tokenizer = tokenizer_case.tokenizer
    begin = tokenizer.encode_prompt("", start=True)
    assert len(begin) <= 1
    assert tokenizer.encode_prompt(text, start=True) == begin + tokenizer.encode_prompt(text, start=False)


def test_render_chat_holds_the_content_and_its_markup_is_parsed(tokenizer_case: TokenizerCase) -> None:
    tokenizer = tokenizer_case.tokenizer
    if not tokenizer.has_chat_template:
        pytest.skip("no chat template")
    rendered = tokenizer.render_chat([{"role": "user", "content": "Is this review positive?"}])
    assert "Is this review positive?" in rendered
    parsed = tokenizer.encode_prompt(rendered, start=False)
    assert set(parsed) & tokenizer_case.special_ids  # the markup's special tokens are real in a prompt
    assert not set(tokenizer.encode_text(rendered)) & tokenizer_case.special_ids


# -- the Hugging Face tokenizer adapter, against today's encoding ---------------------------
@pytest.fixture(scope="module")
def smollm2(real_tokenizer_dir: str) -> Any:
    return _hf_tokenizer_case(real_tokenizer_dir).tokenizer


def test_hf_encode_text_keeps_ordinary_encodings(smollm2: Any) -> None:
    for text in ["hello world", " leading space", "naïve café 東京", "a\tb\nc", "<b>not special</b>"]:
        assert smollm2.encode_text(text) == smollm2.hf(text, add_special_tokens=False)["input_ids"]


def test_hf_encode_text_writes_the_end_token_as_text(smollm2: Any) -> None:
    assert smollm2.hf("<|im_end|>", add_special_tokens=False)["input_ids"] == [smollm2.end_id]
    ids = smollm2.encode_text("<|im_end|>")
    assert smollm2.end_id not in ids and len(ids) > 1
    assert smollm2.decode(ids) == "<|im_end|>"


def _prefix_ids(tokenizer: Any, prefix: str) -> list[int]:
    """The prompt-prefix encoding the library used before the Tokenizer protocol (kept as the reference)."""
    ids = list(tokenizer(prefix, add_special_tokens=True)["input_ids"])
    eos = tokenizer.eos_token_id
    while ids and eos is not None and ids[-1] == eos and not prefix.endswith(str(tokenizer.eos_token)):
        ids.pop()
    bos = tokenizer.bos_token_id
    if bos is not None and len(ids) >= 2 and ids[0] == bos and ids[1] == bos:
        ids.pop(0)
    return ids


def test_hf_encode_prompt_matches_the_prefix_encoding(smollm2: Any) -> None:
    chat = smollm2.render_chat([{"role": "user", "content": "Classify: "}])
    for text in ["Classify the review.\n", chat, "Say it<|im_end|>", ""]:
        assert smollm2.encode_prompt(text, start=True) == _prefix_ids(smollm2.hf, text)
        assert smollm2.encode_prompt(text, start=False) == smollm2.hf(text, add_special_tokens=False)["input_ids"]


def test_hf_special_ids_and_chat(smollm2: Any) -> None:
    from llm_classifier.engines.hf_tokenizer import special_ids

    assert (smollm2.end_id, smollm2.pad_id) == special_ids(smollm2.hf)
    assert smollm2.end_id == smollm2.hf.eos_token_id and smollm2.pad_id != smollm2.end_id
    messages = [{"role": "user", "content": "hi"}]
    assert smollm2.render_chat(messages) == smollm2.hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


# -- the reference engine's own promises ---------------------------------------------------
@pytest.fixture
def reference() -> ReferenceEngine:
    return _reference_case().make()


def test_reference_next_token_distributions_sum_to_one(reference: ReferenceEngine) -> None:
    reference.fit(toy_request(reference.tokenizer))
    for history in ([], [256], _prompt(reference.tokenizer, "aaaa"), list(range(VOCAB_SIZE))):
        distribution = reference.next_distribution(history)
        assert distribution.shape == (VOCAB_SIZE,) and (distribution > 0).all()
        assert distribution.sum() == pytest.approx(1.0, abs=1e-12)


def test_reference_fitted_score_equals_brute_force(reference: ReferenceEngine) -> None:
    reference.fit(toy_request(reference.tokenizer, channel=True))
    prompts, continuations = _some_ids(reference.tokenizer)
    np.testing.assert_allclose(reference.score(prompts, continuations, batch_size=2),
                               _reference_brute_force(reference, prompts, continuations), rtol=1e-10)


def test_reference_tokenizer_markup() -> None:
    tokenizer = ReferenceTokenizer()
    assert tokenizer.encode_text("<|end|>") == list(b"<|end|>")
    assert tokenizer.encode_prompt("<|begin|>x<|end|>", start=True) == [256, ord("x"), 257]
    assert tokenizer.encode_prompt("x", start=True) == [256, ord("x")]
    rendered = tokenizer.render_chat([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}])
    assert rendered == "<|system|>s<|end|><|user|>u<|end|><|assistant|>"
    with pytest.raises(ValueError, match="Message 0 has role 'robot'"):
        tokenizer.render_chat([{"role": "robot", "content": "u"}])
    with pytest.raises(RuntimeError, match="chat_template=False"):
        ReferenceTokenizer(chat_template=False).render_chat([{"role": "user", "content": "u"}])
    with pytest.raises(ValueError, match=r"outside|must be in \[0, 261\)"):
        tokenizer.decode([261])


def test_reference_load_takes_a_corpus_file_and_refuses_options(tmp_path: Any) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("x y x y\n", encoding="utf-8")
    engine = ReferenceEngine()
    engine.load(str(corpus))
    assert engine.model == str(corpus.resolve())
    builtin = _reference_case().make()
    assert engine.fingerprint != builtin.fingerprint
    with pytest.raises(IncompatibleArtifactError, match=r"base model .*corpus\.txt.* differs .*'reference'"):
        ReferenceEngine().load_state(builtin.state(), model=str(corpus))
    with pytest.raises(ModelNotFoundError, match="The 'model' parameter of the reference engine"):
        ReferenceEngine().load("no-such-model")
    with pytest.raises(TypeError, match=r"takes no engine options .*\['lora_r'\]"):
        ReferenceEngine().load("reference", lora_r=8)


def test_reference_refuses_a_state_of_another_engine(reference: ReferenceEngine) -> None:
    with pytest.raises(IncompatibleArtifactError, match="saved by the 'transformers' engine"):
        ReferenceEngine().load_state(replace(reference.state(), engine="transformers"))
    with pytest.raises(IncompatibleArtifactError, match="adapter's 'bag' array has shape"):
        state = reference.state()
        ReferenceEngine().load_state(replace(state, adapter={"unigram": np.zeros(VOCAB_SIZE),
                                                             "bigram": np.zeros((VOCAB_SIZE, VOCAB_SIZE)),
                                                             "bag": np.zeros(3)}))


def test_reference_fit_refuses_other_objectives(reference: ReferenceEngine) -> None:
    with pytest.raises(ValueError, match="objective='answer'.*got objective='class'"):
        reference.fit(toy_request(reference.tokenizer, objective="class"))


def test_reference_fit_without_steps_keeps_the_base(reference: ReferenceEngine) -> None:
    before = class_scores(reference, TEXTS, False)
    history = reference.fit(toy_request(reference.tokenizer, max_steps=0))
    assert history == {"n_steps": 0, "n_examples": len(TEXTS), "steps": []}
    assert reference.state().adapter is None
    np.testing.assert_array_equal(class_scores(reference, TEXTS, False), before)


def test_reference_stops_early_and_keeps_the_best_adapter(reference: ReferenceEngine) -> None:
    tokenizer = reference.tokenizer
    flipped = 1 - CODES  # a validation slice that training can only get worse at
    request = toy_request(tokenizer, max_steps=20, patience=2, validation=toy_validation(tokenizer, TEXTS, flipped))
    history = reference.fit(request)
    assert history["stopped_early"] and history["n_steps"] < 20
    losses = [record["log_loss"] for record in history["validation"]]
    assert len(losses) == 3 and history["best_step"] == history["validation"][0]["step"] == 2
    best = _reference_case().make()
    best.fit(toy_request(tokenizer, max_steps=history["best_step"]))
    np.testing.assert_array_equal(class_scores(reference, TEXTS, False), class_scores(best, TEXTS, False))
