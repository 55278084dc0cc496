"""learning_rate="auto": the seed recipe's rate at width 4096, scaled by 4096 / hidden_size."""

from types import SimpleNamespace

import pytest

from llm_classifier import LLMClassifier
from llm_classifier.engines.hf.training import resolve_learning_rate


@pytest.mark.parametrize("hidden, expected", [(4096, 2e-4), (8192, 2e-4), (1536, 2e-4 * 4096 / 1536), (576, 1e-3), (64, 1e-3)])
def test_auto_rate_follows_the_width_rule(hidden, expected):
    model = SimpleNamespace(config=SimpleNamespace(hidden_size=hidden))
    assert resolve_learning_rate("auto", model) == pytest.approx(expected)


def test_nested_text_config_and_unknown_width():
    nested = SimpleNamespace(config=SimpleNamespace(text_config=SimpleNamespace(hidden_size=2048)))
    assert resolve_learning_rate("auto", nested) == pytest.approx(4e-4)
    assert resolve_learning_rate("auto", SimpleNamespace(config=None)) == 2e-4
    assert resolve_learning_rate(3e-5, None) == 3e-5


def test_fit_records_the_rate_it_used(tiny_params, sentiment):
    clf = LLMClassifier(**{**tiny_params, "learning_rate": "auto"}).fit(*sentiment)
    assert clf.history_["learning_rate"] == pytest.approx(1e-3)  # the tiny model is 64 wide
    assert max(s["learning_rate"] for s in clf.history_["steps"]) <= 1e-3
    explicit = LLMClassifier(**{**tiny_params, "learning_rate": 5e-4}).fit(*sentiment)
    assert explicit.history_["learning_rate"] == 5e-4


def test_other_strings_are_rejected(tiny_params, sentiment):
    with pytest.raises(ValueError, match="learning_rate"):
        LLMClassifier(**{**tiny_params, "learning_rate": "fast"}).fit(*sentiment)
