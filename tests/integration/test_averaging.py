"""The moving average of the adapter weights (``ema_decay``)."""

import numpy as np
import pytest
import torch

from llm_classifier import LLMClassifier
from llm_classifier.engines.hf.averaging import AdapterEMA
from llm_classifier.pipeline.holdout import stratified_holdout
from llm_classifier.inputs import canonical_order


def _module():
    torch.manual_seed(0)
    module = torch.nn.Linear(3, 2)
    module.bias.requires_grad_(False)  # frozen: not averaged
    return module


def test_update_follows_the_warmed_up_decay():
    module = _module()
    ema = AdapterEMA(module, decay=0.5)
    expected = module.weight.detach().clone()
    for t in range(6):
        with torch.no_grad():
            module.weight.add_(1.0)
        decay = min(0.5, (1 + t) / (10 + t))
        assert ema.current_decay() == pytest.approx(decay)
        ema.update()
        expected = decay * expected + (1 - decay) * module.weight.detach()
        assert torch.allclose(ema.shadow["weight"], expected)
    assert set(ema.shadow) == {"weight"}


def test_applied_swaps_in_the_average_and_back():
    module = _module()
    ema = AdapterEMA(module, decay=0.9)
    with torch.no_grad():
        module.weight.mul_(3.0)
    ema.update()
    trained = module.weight.detach().clone()
    with ema.applied():
        assert torch.equal(module.weight, ema.shadow["weight"])
        assert not torch.equal(module.weight, trained)
    assert torch.equal(module.weight, trained)
    ema.copy_to_model()
    assert torch.equal(module.weight, ema.shadow["weight"])


def test_decay_out_of_range_is_refused():
    with pytest.raises(ValueError, match="decay"):
        AdapterEMA(_module(), decay=1.0)


def test_decay_zero_is_plain_training(tiny_params, sentiment):
    X, y = sentiment
    plain = LLMClassifier(**tiny_params, learning_rate=5e-3, ema_decay=None).fit(X, y)
    averaged = LLMClassifier(**tiny_params, learning_rate=5e-3, ema_decay=0.0).fit(X, y)
    np.testing.assert_allclose(averaged.predict_proba(X), plain.predict_proba(X), rtol=1e-5, atol=1e-6)


def test_averaged_adapter_is_kept(tiny_params, sentiment):
    X, y = sentiment
    params = {**tiny_params, "max_steps": 6, "learning_rate": 5e-3}
    plain = LLMClassifier(**params, ema_decay=None).fit(X, y)
    averaged = LLMClassifier(**params, ema_decay=0.9).fit(X, y)
    assert not np.allclose(averaged.predict_proba(X), plain.predict_proba(X), atol=1e-4)
    assert averaged.history_["n_steps"] == plain.history_["n_steps"] == 6
    assert (averaged.history_["ema_decay"], plain.history_["ema_decay"]) == (0.9, None)


def test_early_stopping_scores_and_restores_the_average(tiny_params, sentiment):
    X, y = sentiment
    params = {**tiny_params, "max_steps": 8, "learning_rate": 5e-3, "early_stopping": True, "validation_fraction": 0.25,
              "n_iter_no_change": None, "calibration": None}
    plain = LLMClassifier(**params, ema_decay=None).fit(X, y)
    averaged = LLMClassifier(**params, ema_decay=0.8).fit(X, y)
    plain_losses = [r["log_loss"] for r in plain.history_["validation"]]
    averaged_losses = [r["log_loss"] for r in averaged.history_["validation"]]
    assert averaged_losses != pytest.approx(plain_losses)  # the slice was scored under other weights
    best = next(r for r in averaged.history_["validation"] if r["step"] == averaged.history_["best_step"])
    codes = np.searchsorted(averaged.classes_, y)
    order = canonical_order(list(X), codes)
    held = stratified_holdout(codes[order], 0.25, averaged.random_seed_)
    texts = [X[i] for i, h in zip(order, held) if h]
    proba = averaged.predict_proba(texts)  # the kept (averaged) adapter gives the best evaluation's log-loss
    log_loss = -np.mean(np.log(proba[np.arange(len(texts)), codes[order][held]]))
    assert log_loss == pytest.approx(best["log_loss"], abs=1e-4)
