"""The prompt's shared prefix runs once (``TransformersBackend(shared_prefix=True)``, the default).

At prediction and in training the results must be those of running every prompt whole
(``shared_prefix=False``), up to float rounding; these tests hold that on the tiny model
in float32, for both directions and the three training objectives (training batches packed
into one sequence, or run as rows after the prefix's cache), and check that the shared
tokens really are run once.
"""

from __future__ import annotations

import numpy as np
import pytest

from llm_classifier import LLMClassifier
from llm_classifier.engines.hf.engine import TransformersBackend


def _fit(tiny_params, sentiment, shared: bool, **params):
    X, y = sentiment
    clf = LLMClassifier(**{**tiny_params, "max_steps": 4, "learning_rate": 1e-2, **params},
                        backend=TransformersBackend(shared_prefix=shared))
    return clf.fit(X, y)


def _adapter(clf):
    return clf.backend_.state().adapter


@pytest.mark.parametrize("params", [
    {},
    {"objective": "class"},
    {"objective": "answer+class"},
    {"direction": "channel", "prompt": "auto"},
])
def test_training_and_prediction_match_running_every_prompt_whole(tiny_params, sentiment, params):
    shared = _fit(tiny_params, sentiment, True, **params)
    whole = _fit(tiny_params, sentiment, False, **params)
    first, second = _adapter(shared), _adapter(whole)
    assert first.keys() == second.keys()
    changed = max(float(np.abs(first[name]).max()) for name in first if "lora_B" in name)
    assert changed > 1e-3  # the adapter did train
    for name in first:
        np.testing.assert_allclose(first[name], second[name], atol=2e-5, err_msg=name)
    X, _ = sentiment
    np.testing.assert_allclose(shared.predict_proba(X), whole.predict_proba(X), atol=1e-5)
    np.testing.assert_allclose(shared.history_["train_loss"], whole.history_["train_loss"], rtol=1e-5)


def test_the_prefix_runs_once_per_scoring_call(tiny_params, sentiment):
    seen: dict[bool, list[tuple[int, ...]]] = {True: [], False: []}
    for shared in (True, False):
        X, y = sentiment
        clf = LLMClassifier(**{**tiny_params, "max_steps": 1, "batch_size": 8},
                            backend=TransformersBackend(shared_prefix=shared))
        clf.fit(X, y)
        clf.backend_.release()
        embed = clf.backend_.inference_model.get_input_embeddings()
        handle = embed.register_forward_hook(lambda module, args, out, s=shared: seen[s].append(tuple(args[0].shape)))
        clf.predict_proba(X)
        handle.remove()
    prefix_runs = [shape for shape in seen[True] if shape[0] == 1]
    assert len(prefix_runs) == 1  # one scoring call: the prefix once, then the batches after it
    assert sum(np.prod(s) for s in seen[True]) < sum(np.prod(s) for s in seen[False]) - 6 * prefix_runs[0][1]


def test_the_option_round_trips_through_save_and_load(tiny_params, sentiment, tmp_path):
    clf = _fit(tiny_params, sentiment, False, max_steps=1)
    clf.save(tmp_path / "artifact")
    loaded = LLMClassifier.load(tmp_path / "artifact")
    assert loaded.backend_.shared_prefix is False
    np.testing.assert_allclose(loaded.predict_proba(sentiment[0]), clf.predict_proba(sentiment[0]), atol=1e-6)


@pytest.mark.parametrize("objective, route", [("answer", "packed"), ("answer", "cached"), ("class", "cached")])
def test_one_batch_gives_the_same_loss_and_gradients_with_the_prefix_run_once(tiny_model, objective, route, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM

    from llm_classifier.engines.hf import training
    from llm_classifier.engines.hf.scoring import TrieTensors
    from llm_classifier.engines.hf.training import (AnswerCollator, TrainConfig, TreeCollator, add_lora,
                                                     answer_only_loss, build_dataset, class_objective_loss)

    if route == "cached":  # too long to pack: rows after the prefix's cache
        monkeypatch.setattr(training, "PACK_MAX_TOKENS", 0)
    model = add_lora(AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32),
                     TrainConfig(lora_r=4, target_modules=["q_proj", "v_proj", "up_proj"], seed=1))
    for name, parameter in model.named_parameters():  # B = 0 at initialisation: give the adapter a gradient path
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.05)
    rng = np.random.default_rng(4)
    head = list(rng.integers(10, 40000, size=30))
    contexts = [head + list(rng.integers(10, 40000, size=n)) for n in (4, 11, 1, 7)]
    answers = [[100, 200, 2], [300, 2]]
    codes = np.array([0, 1, 1, 0])
    features = list(build_dataset(contexts, [answers[c] for c in codes], codes, weights=np.array([1.0, 2.0, 0.5, 1.0])))
    tensors = TrieTensors.build(answers)
    tokens, losses, grads = {}, {}, {}
    for shared in (True, False):
        collate = AnswerCollator(0, shared) if objective == "answer" else TreeCollator(tensors, 0, shared)
        batch = collate(features)
        if shared and route == "packed":
            assert batch["input_ids"].shape == (1, 30 + sum(len(c) - 30 for c in contexts) + 3 + 2 + 2 + 3)
        else:
            assert ("prefix_ids" in batch) == shared and (not shared or len(batch["prefix_ids"]) == 30)
        seen = []
        handle = model.get_input_embeddings().register_forward_hook(lambda m, a, o: seen.append(a[0].numel()))
        model.zero_grad()
        loss = answer_only_loss(model, batch) if objective == "answer" else class_objective_loss(model, batch, tensors, objective)
        loss.backward()
        handle.remove()
        tokens[shared], losses[shared] = sum(seen), float(loss.detach())
        grads[shared] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert tokens[True] <= tokens[False] - 30 * 3  # the 30 shared tokens ran once instead of four times
    assert losses[True] == pytest.approx(losses[False], rel=1e-5)
    assert grads[True].keys() == grads[False].keys() and len(grads[True]) == 2 * 3 * 2  # A and B, 3 targets, 2 layers
    for name in grads[True]:
        torch.testing.assert_close(grads[True][name], grads[False][name], atol=1e-6, rtol=1e-4, msg=name)


def test_packing_leaves_each_example_its_own_positions_and_attention():
    from llm_classifier.engines.hf.training import pack_examples

    features = [{"input_ids": [7, 8, 9, 1, 50], "prompt_length": 4}, {"input_ids": [7, 8, 2, 3, 60, 61], "prompt_length": 4}]
    packed = pack_examples(features, 2)
    assert packed["input_ids"].tolist() == [[7, 8, 9, 1, 50, 2, 3, 60, 61]]
    assert packed["position_ids"].tolist() == [[0, 1, 2, 3, 4, 2, 3, 4, 5]]
    assert packed["example_ids"].tolist() == [[-1, -1, 0, 0, 0, 1, 1, 1, 1]]
    assert packed["labels"].tolist() == [[-100, -100, -100, -100, 50, -100, -100, 60, 61]]
    allowed = packed["allowed"][0, 0]
    assert allowed[5].tolist() == [True, True, False, False, False, True, False, False, False]  # prefix + itself
    assert allowed[4].tolist() == [True] * 5 + [False] * 4
    assert not allowed[1, 2]  # the prefix is causal too


@pytest.fixture(scope="module")
def tiny_lm(tiny_model):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()


@pytest.mark.parametrize("head", [30, 0])
def test_greedy_generation_with_the_prefix_run_once_answers_as_generate_does(tiny_lm, head):
    import torch

    from llm_classifier.engines.hf.generation import greedy_generate

    rng = np.random.default_rng(5)
    shared = list(rng.integers(10, 40000, size=head))
    prompts = [shared + list(rng.integers(10, 40000, size=n)) for n in (3, 9, 1, 14, 6)]
    eos = int(tiny_lm.generation_config.eos_token_id or 2)
    ours = greedy_generate(tiny_lm, prompts, max_new_tokens=7, eos_id=eos, pad_id=0, batch_size=3)
    for prompt, tokens in zip(prompts, ours):
        ids = torch.tensor([prompt])
        with torch.inference_mode():
            reference = tiny_lm.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=7,
                                         do_sample=False, eos_token_id=eos, pad_token_id=0)[0, len(prompt):].tolist()
        assert tokens == reference


def test_generate_mode_predicts_the_same_with_and_without_the_shared_prefix(tiny_params, sentiment):
    X, y = sentiment
    clf = LLMClassifier(**{**tiny_params, "inference": "generate", "max_new_tokens": 4, "on_unparseable": "score"},
                        backend=TransformersBackend(shared_prefix=True)).fit(X, y)
    shared = clf.generate(X)
    clf.backend_.shared_prefix = False
    assert clf.generate(X) == shared


def test_short_sequences_run_the_eager_kernel_on_cpu_with_the_same_scores(tiny_lm):
    from llm_classifier.engines.hf import scoring

    rng = np.random.default_rng(6)
    prompts = [list(rng.integers(10, 40000, size=n)) for n in (5, 17, 9)]
    answers = [[100, 200, 2], [300, 2]]
    fused = scoring.score_labels(tiny_lm, prompts, answers, pad_id=0)
    seen = []
    tiny_lm.short_sequence_attention = "eager"
    try:
        original = scoring.attention_for

        def spy(model, batch, queries, keys):
            seen.append(batch * queries * keys)
            return original(model, batch, queries, keys)

        scoring.attention_for = spy
        eager = scoring.score_labels(tiny_lm, prompts, answers, pad_id=0)
    finally:
        scoring.attention_for = original
        del tiny_lm.short_sequence_attention
    assert tiny_lm.config._attn_implementation == "sdpa"  # restored after the call
    assert seen and max(seen) <= scoring.EAGER_MAX_SCORES
    np.testing.assert_allclose(eager, fused, atol=1e-5)


def test_the_engine_marks_the_short_sequence_kernel_on_cpu_only(tiny_params, sentiment):
    from llm_classifier.engines.hf.engine import resolve_attention

    assert resolve_attention("auto", "cpu") == ("sdpa", "eager")
    assert resolve_attention("auto", "cuda") == ("sdpa", None)
    assert resolve_attention("sdpa", "cpu") == ("sdpa", None)
    clf = LLMClassifier(**{**tiny_params, "max_steps": 1}).fit(*sentiment)
    assert clf.backend_.inference_model.short_sequence_attention == "eager"
    assert clf.backend_.inference_model.config._attn_implementation == "sdpa"
