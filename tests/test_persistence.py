"""save/load (JSON + safetensors, no pickle) and round trips through a new process."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from llm_classifier import AlpacaTemplate, LLMClassifier
from llm_classifier.exceptions import IncompatibleArtifactError


@pytest.fixture
def fitted(tiny_params, sentiment):
    return LLMClassifier(**{**tiny_params, "prompt": AlpacaTemplate(instruction="Sentiment: {labels}")}).fit(*sentiment)


def test_save_load_same_probabilities(fitted, sentiment, tmp_path):
    X, _ = sentiment
    fitted.save(tmp_path / "clf")
    assert sorted(p.name for p in (tmp_path / "clf").iterdir()) == ["adapter.safetensors", "classifier.json"]
    loaded = LLMClassifier.load(tmp_path / "clf")
    np.testing.assert_allclose(loaded.predict_proba(X), fitted.predict_proba(X), atol=1e-6)
    assert loaded.get_params()["prompt"].instruction == "Sentiment: {labels}"
    assert loaded.classes_.tolist() == fitted.classes_.tolist()


def test_zero_shot_artifact_has_no_adapter(tiny_params, sentiment, tmp_path):
    clf = LLMClassifier(**{**tiny_params, "max_steps": 0}).fit(*sentiment)
    clf.save(tmp_path / "zs")
    assert not (tmp_path / "zs" / "adapter.safetensors").exists()
    np.testing.assert_allclose(LLMClassifier.load(tmp_path / "zs").predict_proba(sentiment[0]), clf.predict_proba(sentiment[0]), atol=1e-6)


def test_custom_callable_is_not_saved_but_predictions_are_kept(tiny_params, sentiment, tmp_path):
    clf = LLMClassifier(**{**tiny_params, "prompt": lambda text, labels: f"{text} ->"}).fit(*sentiment)
    with pytest.warns(UserWarning, match="cannot be saved as JSON") as record:
        clf.save(tmp_path / "c")
    assert record[0].filename == __file__
    loaded = LLMClassifier.load(tmp_path / "c")
    np.testing.assert_allclose(loaded.predict_proba(sentiment[0]), clf.predict_proba(sentiment[0]), atol=1e-6)


def test_round_trip_through_new_process(fitted, sentiment, tmp_path):
    X, _ = sentiment
    fitted.save(tmp_path / "clf")
    np.save(tmp_path / "expected.npy", fitted.predict_proba(X))
    script = textwrap.dedent(
        f"""
        import json, numpy as np
        from llm_classifier import LLMClassifier
        clf = LLMClassifier.load({str(tmp_path / 'clf')!r})
        got = clf.predict_proba({X!r})
        print(float(np.abs(got - np.load({str(tmp_path / 'expected.npy')!r})).max()))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout.strip().splitlines()[-1]) <= 1e-6


def test_load_rejects_missing_truncated_and_foreign_artifacts(fitted, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        LLMClassifier.load(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(IncompatibleArtifactError, match="classifier.json is missing"):
        LLMClassifier.load(tmp_path / "empty")
    fitted.save(tmp_path / "clf")
    config_path = tmp_path / "clf" / "classifier.json"
    text = config_path.read_text()
    config_path.write_text(text[: len(text) // 2])
    with pytest.raises(IncompatibleArtifactError, match="truncated or corrupt"):
        LLMClassifier.load(tmp_path / "clf")
    config = json.loads(text)
    config_path.write_text(json.dumps({**config, "format_version": 99}))
    with pytest.raises(IncompatibleArtifactError, match="format 99"):
        LLMClassifier.load(tmp_path / "clf")
    config_path.write_text(json.dumps({**config, "model": {**config["model"], "fingerprint": "0" * 64}}))
    with pytest.raises(IncompatibleArtifactError, match="checksum"):
        LLMClassifier.load(tmp_path / "clf")
    config_path.write_text(text)
    adapter = tmp_path / "clf" / "adapter.safetensors"
    adapter.write_bytes(adapter.read_bytes()[:100])
    with pytest.raises(IncompatibleArtifactError, match="truncated or corrupt"):
        LLMClassifier.load(tmp_path / "clf")


def test_load_never_imports_foreign_classes(fitted, tmp_path):
    fitted.save(tmp_path / "clf")
    config_path = tmp_path / "clf" / "classifier.json"
    config = json.loads(config_path.read_text())
    config["params"]["prompt"] = {"__class__": "os.system", "params": {"command": "echo pwned"}}
    config_path.write_text(json.dumps(config))
    with pytest.raises(IncompatibleArtifactError, match="not one of llm_classifier's own"):
        LLMClassifier.load(tmp_path / "clf")


def _lora_parameters(config: dict, r: int) -> int:
    """LoRA parameters of rank r on the seven attention/MLP projections of a Llama-style config."""
    hidden, inter = config["hidden_size"], config["intermediate_size"]
    head_dim = config.get("head_dim") or hidden // config["num_attention_heads"]
    q_out, kv_out = config["num_attention_heads"] * head_dim, config["num_key_value_heads"] * head_dim
    shapes = [(hidden, q_out), (hidden, kv_out), (hidden, kv_out), (q_out, hidden), (hidden, inter), (hidden, inter), (inter, hidden)]
    return config["num_hidden_layers"] * sum(r * (fan_in + fan_out) for fan_in, fan_out in shapes)


def test_artifact_holds_the_adapter_only(fitted, tmp_path, tiny_model, real_tokenizer_dir):
    """The artifact is the LoRA weights (float32) plus a small JSON; the base is referenced, not copied.

    For the default model (SmolLM2-135M, 30 layers) with the default r=16 on all seven
    projections that is ~4.9M parameters, about 19.5 MB; for r=8 about 9.8 MB.
    """
    from safetensors.numpy import load_file

    fitted.save(tmp_path / "clf")
    adapter = load_file(str(tmp_path / "clf" / "adapter.safetensors"))
    tiny_config = json.loads((Path(tiny_model) / "config.json").read_text())
    n_params = sum(value.size for value in adapter.values())
    assert n_params == _lora_parameters(tiny_config, fitted.lora_r)
    assert all(value.dtype == np.float32 for value in adapter.values())
    adapter_bytes = (tmp_path / "clf" / "adapter.safetensors").stat().st_size
    assert 4 * n_params <= adapter_bytes <= 4 * n_params + 64_000  # the weights and the safetensors header
    assert (tmp_path / "clf" / "classifier.json").stat().st_size < 50_000
    default_config = json.loads((Path(real_tokenizer_dir) / "config.json").read_text())
    default_bytes = 4 * _lora_parameters(default_config, 16)
    assert 15e6 < default_bytes < 25e6  # ~19.5 MB: against 540 MB for the dense float32 base


def test_load_never_unpickles_or_runs_remote_code(fitted, sentiment, tmp_path, monkeypatch):
    import pickle

    import torch
    import transformers

    fitted.save(tmp_path / "clf")
    expected = fitted.predict_proba(sentiment[0])

    def forbidden(*args, **kwargs):
        raise AssertionError("load must not unpickle anything")

    for module, name in [(pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")]:
        monkeypatch.setattr(module, name, forbidden)
    seen = []
    for auto in (transformers.AutoTokenizer, transformers.AutoModelForCausalLM):
        real = auto.from_pretrained

        def spy(*args, _real=real, **kwargs):
            seen.append(kwargs.get("trust_remote_code", False))
            return _real(*args, **kwargs)

        monkeypatch.setattr(auto, "from_pretrained", spy)
    loaded = LLMClassifier.load(tmp_path / "clf")
    np.testing.assert_allclose(loaded.predict_proba(sentiment[0]), expected, atol=1e-6)
    assert seen and not any(seen)


def test_default_precision_round_trip_and_refit_are_exact(tiny_model, sentiment, tmp_path):
    """With the defaults (4-bit NF4 base, dtype="auto": bfloat16 on CPUs that compute it),
    a saved classifier reloads to the same probabilities and a same-seed refit is identical."""
    X, y = sentiment
    params = dict(model=tiny_model, max_steps=1, batch_size=4, random_state=0)
    clf = LLMClassifier(**params).fit(X, y)
    assert clf.backend_.quantization == "4bit"
    expected = clf.predict_proba(X)
    clf.save(tmp_path / "clf")
    np.testing.assert_allclose(LLMClassifier.load(tmp_path / "clf").predict_proba(X), expected, atol=1e-6)
    np.testing.assert_array_equal(LLMClassifier(**params).fit(X, y).predict_proba(X), expected)


def test_parameters_that_json_would_change_are_not_saved_as_json():
    """A dict keyed by ints (``class_weight={0: 2.0}``) would come back keyed by strings: it is stored by name only."""
    from llm_classifier.persistence import _encode_param

    assert _encode_param("class_weight", {"spam": 2.0}) == {"spam": 2.0}
    with pytest.warns(UserWarning, match="'class_weight' parameter .* cannot be saved as JSON"):
        encoded = _encode_param("class_weight", {0: 2.0})
    assert "__unsaved__" in encoded
