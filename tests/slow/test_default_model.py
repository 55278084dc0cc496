"""A few checks on the real packaged SmolLM2-135M-Instruct (minutes, marked slow)."""

import numpy as np
import pytest

from llm_classifier import LLMClassifier

pytestmark = pytest.mark.slow

TEXTS = [
    "An absolute delight, funny and warm.",
    "A tedious, joyless mess.",
    "One of the best films I have seen this year.",
    "I walked out after half an hour, it was so bad.",
    "Beautifully shot and wonderfully acted.",
    "Painfully boring and far too long.",
] * 2
LABELS = ["positive", "negative"] * 6


def test_default_model_fits_with_qlora_and_scores_labels():
    clf = LLMClassifier(max_steps=4, batch_size=4, random_state=0).fit(TEXTS, LABELS)
    assert clf.backend_.quantization == "4bit"
    assert clf.history_["n_steps"] == 4
    proba = clf.predict_proba(TEXTS[:4])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert set(clf.predict(TEXTS[:4])) <= {"positive", "negative"}


def test_default_model_generate_mode_answers_in_words():
    clf = LLMClassifier(max_steps=0, inference="generate", random_state=0).fit(TEXTS, LABELS)
    generated = clf.generate(TEXTS[:2])
    assert all(isinstance(text, str) and text for text in generated)
    assert set(clf.predict(TEXTS[:2])) <= {"positive", "negative"}
