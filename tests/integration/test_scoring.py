import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from llm_classifier.engines.hf.scoring import common_prefix_length, score_channel, score_labels, score_labels_naive


@pytest.fixture(scope="module")
def tiny_lm(tiny_model):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    return model.eval()


def test_fast_scoring_matches_naive_with_shared_multi_token_labels(tiny_lm):
    rng = np.random.default_rng(0)
    prompts = [list(rng.integers(10, 40000, size=n)) for n in (5, 17, 9, 30, 1, 12)]
    answers = [[100, 200, 2], [100, 201, 2], [100, 200, 300, 2], [7, 2], [100, 2]]
    fast = score_labels(tiny_lm, prompts, answers, pad_id=0, batch_size=4)
    naive = score_labels_naive(tiny_lm, prompts, answers, pad_id=0, batch_size=7)
    assert fast.shape == (6, 5)
    np.testing.assert_allclose(fast, naive, atol=1e-4)


def test_fast_scoring_real_label_tokens(tiny_lm, tiny_model):
    from transformers import AutoTokenizer

    from llm_classifier.encoding import encode_answers

    from llm_classifier.engines.hf_tokenizer import HFTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    answers = encode_answers(HFTokenizer(tokenizer), ["money", "money-fx", "money-supply", "Ebner-Eschenbach", "earn"])
    prompts = [tokenizer("Classify this text please: " * k)["input_ids"] for k in (1, 3, 2)]
    fast = score_labels(tiny_lm, prompts, answers, pad_id=0, batch_size=2)
    naive = score_labels_naive(tiny_lm, prompts, answers, pad_id=0)
    np.testing.assert_allclose(fast, naive, atol=1e-4)
    assert np.all(fast < 0)


def test_logits_are_computed_in_chunks_with_the_same_result(tiny_lm, monkeypatch):
    import llm_classifier.engines.hf.scoring as scoring

    rng = np.random.default_rng(1)
    prompts = [list(rng.integers(10, 40000, size=n)) for n in (4, 11, 7)]
    answers = [[int(a), int(b), 2] for a, b in rng.integers(10, 40000, size=(40, 2))] + [[100, 2], [100, 5, 2]]
    whole = score_labels(tiny_lm, prompts, answers, pad_id=0)
    monkeypatch.setattr(scoring, "LOGIT_ELEMENTS", 3 * tiny_lm.config.vocab_size * 3)  # 3 rows per chunk
    np.testing.assert_allclose(score_labels(tiny_lm, prompts, answers, pad_id=0), whole, atol=1e-6)


def _tokens_run(model, call):
    """How many token positions the model's embedding layer saw during ``call()``, and its result."""
    seen = []
    handle = model.get_input_embeddings().register_forward_hook(lambda module, args, out: seen.append(args[0].numel()))
    try:
        result = call()
    finally:
        handle.remove()
    return sum(seen), result


@pytest.mark.parametrize("batch_size", [1, 4])
def test_shared_prefix_runs_once_and_scores_the_same(tiny_lm, batch_size):
    rng = np.random.default_rng(2)
    head = list(rng.integers(10, 40000, size=40))
    prompts = [head + list(rng.integers(10, 40000, size=n)) for n in (5, 17, 9, 30, 1, 12, 3)]
    answers = [[100, 200, 2], [100, 201, 2], [100, 200, 300, 2], [7, 2]]
    shared_tokens, shared = _tokens_run(tiny_lm, lambda: score_labels(tiny_lm, prompts, answers, pad_id=0,
                                                                       batch_size=batch_size))
    plain_tokens, plain = _tokens_run(tiny_lm, lambda: score_labels(tiny_lm, prompts, answers, pad_id=0,
                                                                     batch_size=batch_size, shared_prefix=False))
    np.testing.assert_allclose(shared, plain, atol=1e-5)
    np.testing.assert_allclose(shared, score_labels_naive(tiny_lm, prompts, answers, pad_id=0), atol=1e-4)
    assert shared_tokens <= plain_tokens - 40 * (len(prompts) - 1)  # the 40 shared tokens run once, not 7 times


def test_shared_prefix_in_the_channel_direction(tiny_lm):
    rng = np.random.default_rng(3)
    head = list(rng.integers(10, 40000, size=25))
    class_prompts = [head + [5, 6], head + [7], head + [8, 9, 10]]
    texts = [list(rng.integers(10, 40000, size=n)) + [2] for n in (3, 8, 1, 20, 11)]
    shared_tokens, shared = _tokens_run(tiny_lm, lambda: score_channel(tiny_lm, texts, class_prompts, pad_id=0,
                                                                        batch_size=6))
    plain_tokens, plain = _tokens_run(tiny_lm, lambda: score_channel(tiny_lm, texts, class_prompts, pad_id=0,
                                                                      batch_size=6, shared_prefix=False))
    np.testing.assert_allclose(shared, plain, atol=1e-4)
    assert shared_tokens < plain_tokens - 25 * 10


def test_prompts_that_share_nothing_or_everything(tiny_lm):
    answers = [[100, 2], [7, 8, 2]]
    for prompts in ([[5, 6, 7], [9, 6, 7]], [[5, 6, 7], [5, 6, 7], [5, 6, 7]], [[5], [5, 6]], [[5, 6, 7, 8]]):
        np.testing.assert_allclose(score_labels(tiny_lm, prompts, answers, pad_id=0),
                                   score_labels(tiny_lm, prompts, answers, pad_id=0, shared_prefix=False), atol=1e-5)


@given(st.lists(st.lists(st.integers(0, 3), min_size=1, max_size=6), min_size=1, max_size=5))
def test_common_prefix_length_is_the_longest_shared_head(sequences):
    length = common_prefix_length(sequences)
    assert 0 <= length < min(len(s) for s in sequences)  # every sequence keeps a token of its own
    assert all(s[:length] == sequences[0][:length] for s in sequences)
    if length + 1 < min(len(s) for s in sequences):
        assert len({tuple(s[: length + 1]) for s in sequences}) > 1  # one more token is not shared
