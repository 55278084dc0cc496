"""``few_shot``: demonstrations drawn from the training texts into every prompt (tiny model)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from llm_classifier import LLMClassifier
from llm_classifier.plugins.demonstrations import MIN_DEMONSTRATION_TOKENS, draw_demonstrations, shorten
from llm_classifier.plugins.prompts import AlpacaTemplate, ChatTemplate

LONG = " ".join(["an endlessly long and winding sentence about nothing in particular"] * 40)


def test_draw_takes_per_class_from_eligible_rows_in_a_seeded_order():
    codes = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    held = np.zeros(9, dtype=bool)
    held[[0, 5]] = True
    rows = draw_demonstrations(codes, 2, seed=0, exclude=held)
    assert sorted(np.bincount(codes[rows], minlength=3).tolist()) == [2, 2, 2]
    assert not held[rows].any()
    assert len(set(rows.tolist())) == len(rows)
    assert np.array_equal(rows, draw_demonstrations(codes, 2, seed=0, exclude=held))
    # a class with fewer eligible texts than asked gives what it has
    assert np.bincount(codes[draw_demonstrations(codes, 5, seed=1)], minlength=3).tolist() == [3, 2, 4]
    assert len(draw_demonstrations(codes, 0, seed=0)) == 0


def test_shorten_keeps_the_beginning_within_budget(tiny_model):
    from transformers import AutoTokenizer

    from llm_classifier.engines.hf_tokenizer import HFTokenizer

    tokenizer = HFTokenizer(AutoTokenizer.from_pretrained(tiny_model))
    short = shorten(LONG, tokenizer, 12)
    assert LONG.startswith(short)
    assert len(tokenizer.encode_text(short)) <= 12
    assert shorten("fits", tokenizer, 12) == "fits"


@pytest.mark.parametrize("prompt", ["auto", "alpaca"])
def test_demonstrations_are_in_every_prompt(tiny_params, sentiment, prompt):
    X, y = sentiment
    clf = LLMClassifier(**{**tiny_params, "max_steps": 0}, prompt=prompt, few_shot=1).fit(X, y)
    assert sorted(label for _, label in clf.demonstrations_) == ["negative", "positive"]
    assert all(text in X for text, _ in clf.demonstrations_)  # short texts are kept whole
    assert [list(pair) for pair in clf.template_.examples] == [[t, label] for t, label in clf.demonstrations_]
    for text, label in clf.demonstrations_:
        assert text in clf.prompt_prefix_
        assert label in clf.prompt_prefix_
    proba = clf.predict_proba(["a fine film"])
    assert proba.shape == (1, 2) and np.isclose(proba.sum(), 1)
    # the template given is not changed; a clone refits to the same demonstrations
    assert clf.get_params()["prompt"] == prompt
    again = clone(clf).fit(X, y)
    assert again.demonstrations_ == clf.demonstrations_


def test_few_shot_zero_leaves_the_prompt_alone(tiny_params, sentiment):
    X, y = sentiment
    plain = LLMClassifier(**{**tiny_params, "max_steps": 0}).fit(X, y)
    assert plain.demonstrations_ == []
    assert not plain.template_.examples
    assert not any(text in plain.prompt_prefix_ for text in X)


def test_long_demonstrations_are_cut_to_half_of_max_length(tiny_params):
    X = [LONG + f" number {i}" for i in range(6)]
    y = ["a", "b", "c"] * 2
    clf = LLMClassifier(**{**tiny_params, "max_steps": 0}, few_shot=1, max_length=512).fit(X, y)
    plain = LLMClassifier(**{**tiny_params, "max_steps": 0}, max_length=512).fit(X, y)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_params["model"])

    def length(fitted):
        return len(tokenizer(fitted.prompt_prefix_ + fitted.prompt_suffix_, add_special_tokens=False)["input_ids"])

    added = length(clf) - length(plain)
    assert 256 - 3 * 8 < added <= 256  # the demonstrations fill their half of max_length, and no more
    assert all(LONG.startswith(text) and len(text) < len(LONG) for text, _ in clf.demonstrations_)


def test_demonstrations_come_from_the_training_rows_not_the_validation_slice(tiny_params):
    rng = np.random.default_rng(0)
    X = [f"text {i} " + " ".join(rng.choice(["good", "bad", "fine", "poor"], 3)) for i in range(200)]
    y = ["pos", "neg"] * 100
    clf = LLMClassifier(**{**tiny_params, "max_steps": 2}, few_shot=2, early_stopping=True).fit(X, y)
    assert clf.history_["early_stopping"]
    assert len(clf.demonstrations_) == 4
    assert sorted(label for _, label in clf.demonstrations_) == ["neg", "neg", "pos", "pos"]


def test_saved_classifier_keeps_its_demonstrations(tiny_params, sentiment, tmp_path):
    X, y = sentiment
    clf = LLMClassifier(**{**tiny_params, "max_steps": 0}, few_shot=1).fit(X, y)
    clf.save(tmp_path / "clf")
    loaded = LLMClassifier.load(tmp_path / "clf")
    assert loaded.demonstrations_ == clf.demonstrations_
    assert loaded.prompt_prefix_ == clf.prompt_prefix_
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), atol=1e-6)


def test_few_shot_needs_a_template_with_examples(tiny_params, sentiment):
    X, y = sentiment
    with pytest.raises(ValueError, match="'few_shot'.*takes examples"):
        LLMClassifier(**tiny_params, prompt="Review: {text}\nSentiment:", few_shot=1).fit(X, y)
    with pytest.raises(ValueError, match="'few_shot'.*already has examples"):
        LLMClassifier(**tiny_params, prompt=ChatTemplate(examples=[["ok", "positive"]]), few_shot=1).fit(X, y)


def test_too_many_demonstrations_for_max_length_name_both_parameters(tiny_params, sentiment):
    X, y = sentiment
    with pytest.raises(ValueError, match=f"'few_shot'.*max_length=64.*at least {MIN_DEMONSTRATION_TOKENS}"):
        LLMClassifier(**tiny_params, prompt=AlpacaTemplate(), few_shot=4, max_length=64).fit(X, y)


def test_negative_few_shot_is_rejected_naming_the_parameter(tiny_params, sentiment):
    X, y = sentiment
    with pytest.raises(ValueError, match="'few_shot' parameter"):
        LLMClassifier(**tiny_params, few_shot=-1).fit(X, y)


def test_texts_holding_the_internal_marker_train_but_are_not_demonstrations():
    from llm_classifier.plugins.prompts import TEXT_MARKER

    texts = ["fine " + TEXT_MARKER + " film", "fine film", "dull film", "dull plot"]
    labels = ["pos", "pos", "neg", "neg"]
    clf = LLMClassifier(backend="reference", model="reference", max_steps=1, few_shot=2, random_state=0)
    clf.fit(texts, labels)  # every text of a class would be drawn: the marked one must be left out
    shown = sorted(text for text, _ in clf.demonstrations_)
    assert shown == ["dull film", "dull plot", "fine film"]
    assert clf.history_["n_examples"] == 4  # it still trains
