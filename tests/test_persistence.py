"""save/load (JSON + safetensors, no pickle) and round trips through a new process."""

import json
import subprocess
import sys
import textwrap

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
    with pytest.warns(UserWarning, match="cannot be saved as JSON"):
        clf.save(tmp_path / "c")
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
