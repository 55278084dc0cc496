"""``direction="channel"``: texts scored after each class's prompt, ``log p(text | class)`` (tiny model)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.utils._param_validation import InvalidParameterError

from llm_classifier import LLMClassifier
from llm_classifier.plugins.channel_template import ChannelTemplate, resolve_channel_template
from llm_classifier.encoding import encode_class_prompts
from llm_classifier.engines.hf.scoring import score_channel
from llm_classifier.engines.hf_tokenizer import HFTokenizer
from llm_classifier.engines.hf.training import build_dataset
from llm_classifier.formulations.registry import get_direction


@pytest.fixture(scope="module")
def tiny_lm(tiny_model):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()


def _reference(model, text, class_prompt):
    """Sum of the text tokens' log-probabilities after ``class_prompt``, one unpadded sequence."""
    ids = torch.tensor([list(class_prompt) + list(text)])
    with torch.no_grad():
        log_probs = torch.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)
    start = len(class_prompt)
    return float(sum(log_probs[t - 1, ids[0, t]] for t in range(start, ids.shape[1])))


def test_channel_scores_match_one_sequence_at_a_time(tiny_lm):
    texts = [[5, 6, 7, 2], [9, 2], [11, 12, 13, 14, 15, 16, 2], [3, 2]]
    class_prompts = [[1, 40, 41], [1, 40, 42, 43], [1, 44]]
    scores = score_channel(tiny_lm, texts, class_prompts, pad_id=0, batch_size=4)  # mixed lengths, padded batches
    expected = np.array([[_reference(tiny_lm, t, c) for c in class_prompts] for t in texts])
    assert scores.shape == (4, 3)
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-3)


def test_channel_training_sequences_put_the_text_after_its_class_prompt():
    texts, class_prompts = [[5, 6, 2], [7, 2]], [[1, 40], [1, 41, 42]]
    request = get_direction("channel").train_request(texts, np.array([1, 0]), class_prompts)
    assert [e.context for e in request.examples] == [[1, 41, 42], [1, 40]]
    assert [[(d.candidates, d.target) for d in e.decisions] for e in request.examples] == [[([texts[0]], 0)], [([texts[1]], 0)]]
    rows = build_dataset(request.examples)
    assert rows["input_ids"] == [[1, 41, 42, 5, 6, 2], [1, 40, 7, 2]]
    assert rows["context_length"] == [3, 2]  # the loss starts at the text
    assert rows["edge_rows"] == [[2, 3, 4], [1, 2]] and rows["edge_tokens"] == [[5, 6, 2], [7, 2]]


def test_channel_template_renders_each_class(tiny_model):
    from transformers import AutoTokenizer

    tokenizer = HFTokenizer(AutoTokenizer.from_pretrained(tiny_model))
    chat = ChannelTemplate().render_class("Danish", tokenizer)
    assert "Write a text of this class: Danish" in chat and chat.endswith("assistant\n")
    assert ChannelTemplate("Text by {label}:").render_class("Goethe") == "### Instruction:\nText by Goethe:\n\n### Response:\n"
    assert resolve_channel_template("A {label} review").instruction == "A {label} review"
    with pytest.raises(ValueError, match="The channel prompts 'same' and 'same' are the same"):
        encode_class_prompts(tokenizer, ["same", "same"])


def test_channel_fit_predicts_from_text_scores(tiny_params, sentiment):
    X, y = sentiment
    clf = LLMClassifier(**tiny_params, direction="channel").fit(X, y)
    assert isinstance(clf.template_, ChannelTemplate)
    assert [p.count(answer) for p, answer in zip(clf.class_prompts_, clf.answers_)] == [1, 1]
    assert clf.history_["n_steps"] == 3
    proba = clf.predict_proba(X[:5])
    assert proba.shape == (5, 2) and np.allclose(proba.sum(axis=1), 1)
    np.testing.assert_array_equal(clf.predict(X[:5]), clf.classes_[proba.argmax(axis=1)])
    # the scores are log p(text + end token | class prompt) under the fitted model
    model = clf.backend_.inference_model
    eos = clf.backend_.tokenizer.hf.eos_token_id
    text_ids = clf.backend_.tokenizer.hf(X[0], add_special_tokens=False)["input_ids"] + [eos]
    expected = [_reference(model, text_ids, ids) for ids in clf.choice_ids_]
    np.testing.assert_allclose(clf.answer_scores(X[:1])[0], expected, rtol=1e-4, atol=1e-3)


def test_channel_training_learns_the_texts_of_each_class(tiny_params, sentiment):
    X, y = sentiment
    untrained = LLMClassifier(**{**tiny_params, "max_steps": 0, "calibration": None}, direction="channel").fit(X, y)
    trained = LLMClassifier(**{**tiny_params, "max_steps": 12, "learning_rate": 1e-2}, direction="channel",
                            calibration=None).fit(X, y)
    codes = np.searchsorted(trained.classes_, y)
    rows = np.arange(len(X))

    def true_class_score(clf):
        return clf.answer_scores(X)[rows, codes].mean()

    assert true_class_score(trained) > true_class_score(untrained) + 1.0  # texts became far more likely
    losses = [step["loss"] for step in trained.history_["steps"]]
    assert losses[-1] < losses[0]


def test_channel_early_stopping_scores_the_slice_with_text_scores(tiny_params, sentiment):
    X, y = sentiment
    clf = LLMClassifier(**{**tiny_params, "max_steps": 4}, direction="channel", early_stopping=True,
                        validation_fraction=0.25).fit(X, y)
    assert clf.history_["early_stopping"]
    assert len(clf.history_["validation"]) >= 1
    assert all(np.isfinite(record["log_loss"]) for record in clf.history_["validation"])


def test_channel_save_load_and_clone(tiny_params, sentiment, tmp_path):
    X, y = sentiment
    clf = LLMClassifier(**tiny_params, direction="channel", prompt="A text that is {label}:").fit(X, y)
    clf.save(tmp_path / "channel")
    loaded = LLMClassifier.load(tmp_path / "channel")
    assert loaded.direction == "channel" and loaded.class_prompts_ == clf.class_prompts_
    np.testing.assert_allclose(loaded.predict_proba(X[:4]), clf.predict_proba(X[:4]), atol=1e-5)
    again = clone(clf).fit(X, y)
    np.testing.assert_allclose(again.predict_proba(X[:4]), clf.predict_proba(X[:4]), atol=1e-5)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"inference": "generate"}, "'inference' parameter .* must be 'score'"),
        ({"few_shot": 1}, "'few_shot' parameter .* must be 0"),
        ({"objective": "class"}, "'objective' parameter .* must be 'answer'"),
        ({"prompt": "Review: {text}"}, "direction='channel' the 'prompt' parameter"),
        ({"direction": "backwards"}, "'direction' parameter"),
    ],
)
def test_channel_rejects_what_needs_answers(tiny_params, sentiment, params, match):
    X, y = sentiment
    with pytest.raises(ValueError, match=match):
        LLMClassifier(**{**tiny_params, "direction": "channel", **params}).fit(X, y)


def test_generate_set_after_a_channel_fit_is_refused_not_run(sentiment):
    """inference="generate" after fit would generate from the class prompts and parse whatever came out."""
    X, y = sentiment
    clf = LLMClassifier(backend="reference", model="reference", direction="channel", max_steps=0).fit(X, y)
    clf.set_params(inference="generate")
    with pytest.raises(InvalidParameterError, match=r"'inference' parameter .* must be 'score' \(a channel model writes"):
        clf.predict(X[:2])


def test_channel_needs_a_backend_that_implements_the_engine_contract(tiny_params, sentiment):
    class AnswersOnly:  # scores and generates, but cannot save or restore its state
        def load(self, model, **options): ...
        def fit(self, request): ...
        def score(self, contexts, continuations, *, batch_size, progress=None): ...
        def generate(self, prompts, *, max_new_tokens, batch_size, progress=None): ...

    X, y = sentiment
    with pytest.raises(InvalidParameterError, match=r"'backend' parameter of LLMClassifier must implement "
                       r"llm_classifier\.engines\.Engine; .* lacks the methods \['state', 'load_state'\]"):
        LLMClassifier(**tiny_params, direction="channel", backend=AnswersOnly()).fit(X, y)
