"""The seed recipe stays expressible as parameters (tiny model in place of Llama-3.1-8B)."""

import numpy as np

from llm_classifier import LLMClassifier

SEED_RECIPE = dict(
    prompt="alpaca",
    quantization="4bit",
    lora_r=16,
    lora_alpha=16,
    lora_dropout=0.0,
    target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    optimizer="adamw_8bit",
    learning_rate=2e-4,
    lr_scheduler="linear",
    warmup_steps=5,
    batch_size=2,
    gradient_accumulation_steps=4,
    max_steps=200,
    weight_decay=0.01,
    ema_decay=None,  # the seed kept the last weights
    early_stopping=False,  # the seed trained on all 500 examples, without a held-out slice
    random_state=3407,
)


def test_seed_recipe_runs(tiny_model, sentiment):
    X, y = sentiment
    clf = LLMClassifier(model=tiny_model, **{**SEED_RECIPE, "max_steps": 12}).fit(X, y)
    history = clf.history_
    assert history["n_steps"] == 12
    assert history["train_samples_per_second"] > 0
    lrs = [step["learning_rate"] for step in history["steps"]]
    assert max(lrs) <= 2e-4 + 1e-12 and np.argmax(lrs) == 5  # 5 warm-up steps, then linear decay
    assert clf.backend_.quantization == "4bit"
    assert sorted(clf.backend_.state().adapter_config["target_modules"]) == sorted(SEED_RECIPE["target_modules"])
    assert set(clf.predict(X)) <= {"negative", "positive"}
