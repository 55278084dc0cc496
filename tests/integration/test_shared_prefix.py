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


def _naive_loss(model, examples, objective):
    """The loss of TrainRequest's definition, one full (context + prefix + candidate) sequence per pair, plain forward."""
    import torch

    token_terms, decision_terms = [], []
    for example in examples:
        for decision in example.decisions:
            head = list(example.context) + list(decision.prefix)
            scores, token_log_probs = [], []
            for candidate in decision.candidates:
                ids = torch.tensor([head + list(candidate)])
                log_probs = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
                steps = torch.arange(len(head) - 1, len(head) - 1 + len(candidate))
                per_token = log_probs[steps, torch.tensor(candidate)]
                token_log_probs.append(per_token)
                scores.append(per_token.sum())
            target = decision.target
            token_terms.append(decision.weight * token_log_probs[target])
            scores = torch.stack(scores)
            loss = torch.logsumexp(scores, 0) - scores[target]
            if objective == "answer+class":
                loss = loss - scores[target] / len(decision.candidates[target])
            decision_terms.append(decision.weight * loss)
    if objective == "answer":
        return -torch.cat(token_terms).mean()
    return torch.stack(decision_terms).mean()


@pytest.mark.parametrize("objective, route", [("answer", "packed"), ("answer", "cached"), ("answer", "whole"),
                                              ("class", "packed"), ("class", "cached"), ("answer+class", "whole")])
def test_one_tree_pass_gives_the_loss_and_gradients_of_one_sequence_per_pair(tiny_model, objective, route, monkeypatch):
    """Several decisions (prefix + candidates) after each context, the contexts' shared tokens run once: the loss
    and gradients of running every (context + prefix + candidate) sequence whole."""
    import torch
    from transformers import AutoModelForCausalLM

    from llm_classifier.engines.base import Decision, TrainExample
    from llm_classifier.engines.hf import decision_trees
    from llm_classifier.engines.hf.decision_trees import DecisionCollator, decision_loss, flatten_example
    from llm_classifier.engines.hf.training import TrainConfig, add_lora

    if route == "cached":  # too long to pack: rows after the prefix's cache
        monkeypatch.setattr(decision_trees, "PACK_MAX_TOKENS", 0)
    model = add_lora(AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32),
                     TrainConfig(lora_r=4, target_modules=["q_proj", "v_proj", "up_proj"], seed=1))
    for name, parameter in model.named_parameters():  # B = 0 at initialisation: give the adapter a gradient path
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.05)
    rng = np.random.default_rng(4)
    head = [int(t) for t in rng.integers(10, 40000, size=30)]
    contexts = [head + [int(t) for t in rng.integers(10, 40000, size=n)] for n in (4, 11, 1, 7)]
    yes, no, questions = [100, 2], [101, 2], [[500, 501], [502], [503, 504, 505]]
    examples = [TrainExample(context, [Decision(q, [yes, no], int(rng.integers(2)), float(w))
                                       for q, w in zip(questions, rng.uniform(0.5, 3, size=3))])
                for context in contexts]
    examples.append(TrainExample(contexts[0][:-2], [Decision([], [[300, 301, 2], [300, 2], [7, 2]], 1, 1.5)]))
    features = [flatten_example(e.context, e.decisions, objective) for e in examples]
    batch = DecisionCollator(0, shared_prefix=route != "whole")(features)
    if route == "packed":
        assert batch["input_ids"].shape[0] == 1 and "prefix_ids" not in batch
    else:
        assert ("prefix_ids" in batch) == (route == "cached")
        assert batch["input_ids"].shape[0] == (4 if route == "cached" else 5)  # trees share rows where they fit
    losses, grads = {}, {}
    for way in ("tree", "naive"):
        model.zero_grad()
        loss = decision_loss(model, batch, objective) if way == "tree" else _naive_loss(model, examples, objective)
        loss.backward()
        losses[way] = float(loss.detach())
        grads[way] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert losses["tree"] == pytest.approx(losses["naive"], rel=1e-5)
    assert grads["tree"].keys() == grads["naive"].keys() and len(grads["tree"]) == 2 * 3 * 2  # A and B, 3 targets, 2 layers
    for name in grads["tree"]:
        torch.testing.assert_close(grads["tree"][name], grads["naive"][name], atol=1e-6, rtol=1e-4, msg=name)


def test_packing_gives_each_branch_its_own_positions_and_attention():
    from llm_classifier.engines.base import Decision
    from llm_classifier.engines.hf.decision_trees import DecisionCollator, flatten_example

    first = flatten_example([7, 8, 9, 1], [Decision([40], [[50, 2]], 0), Decision([41], [[50, 2], [51, 2]], 1)], "answer")
    second = flatten_example([7, 8, 3], [Decision([], [[60], [61]], 0, 2.0)], "answer")
    assert first["input_ids"] == [7, 8, 9, 1, 40, 50, 41, 51]  # each target after its question; leaves not fed
    assert second["input_ids"] == [7, 8, 3, 60]  # a lone chain keeps its last token
    packed = DecisionCollator(0, shared_prefix=True)([first, second])
    assert packed["input_ids"].tolist() == [[7, 8, 9, 1, 40, 50, 41, 51, 3, 60]]
    assert packed["position_ids"].tolist() == [[0, 1, 2, 3, 4, 5, 4, 5, 2, 3]]
    allowed = packed["allowed"][0, 0]
    assert allowed[6].tolist() == [True] * 4 + [False] * 2 + [True] + [False] * 3  # the 2nd question: context + itself
    assert allowed[9].tolist() == [True, True] + [False] * 6 + [True, True]  # prefix, own context, itself
    assert not allowed[1, 2]  # the prefix is causal too
    # edges: the output before each target token, its token, its decision (numbered over the batch)
    assert packed["edge_index"].tolist() == [4, 5, 6, 7, 8]
    assert packed["edge_tokens"].tolist() == [50, 2, 51, 2, 60]
    assert packed["edge_decisions"].tolist() == [0, 0, 1, 1, 2]
    assert packed["decision_weights"].tolist() == [1.0, 1.0, 2.0]


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
