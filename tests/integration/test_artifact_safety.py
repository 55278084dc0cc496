"""Loading an edited classifier.json can never import or run code.

Plugins come from a fixed registry (llm_classifier.io.artifact._plugins) and engines from the
engine registry (llm_classifier.engines.ENGINES) by kind name, with checked parameters; trust_remote_code is taken from the caller of LLMClassifier.load only.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from llm_classifier import LLMClassifier
from llm_classifier.exceptions import IncompatibleArtifactError


@pytest.fixture
def saved(tiny_params, sentiment, tmp_path):
    clf = LLMClassifier(**tiny_params).fit(*sentiment)
    clf.save(tmp_path / "clf")
    return clf, tmp_path / "clf"


def _edit(directory: Path, change) -> None:
    path = directory / "classifier.json"
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))


def _malicious_copy(tiny_model: str, folder: Path, marker: Path) -> Path:
    """The tiny model with a tokenizer whose auto_map points at a module that writes ``marker`` when imported."""
    shutil.copytree(tiny_model, folder)
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    tokenizer_config["auto_map"] = {"AutoTokenizer": ["evil.EvilTokenizer", None]}
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    (folder / "evil.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from transformers import PreTrainedTokenizerFast\n\n\nclass EvilTokenizer(PreTrainedTokenizerFast):\n    pass\n"
    )
    return folder


BACKEND_WITH_REMOTE_CODE = {"__class__": "llm_classifier.engines.transformers.TransformersBackend",
                            "params": {"trust_remote_code": True}}


def test_an_edited_artifact_cannot_make_load_run_the_base_folders_code(saved, tiny_model, tmp_path, sentiment):
    from llm_classifier.engines.hf_checkpoints import resolve_model

    _, directory = saved
    marker = tmp_path / "MARKER"
    evil = _malicious_copy(tiny_model, tmp_path / "evil-model", marker)
    found = resolve_model(str(evil))  # the attacker can compute the checksum of their own folder

    def attack(config):
        config["params"]["backend"] = BACKEND_WITH_REMOTE_CODE
        config["params"]["model"] = str(evil)
        config["model"] = {"name": str(evil), "fingerprint": found.fingerprint, "files": [list(f) for f in found.files]}

    _edit(directory, attack)
    loaded = LLMClassifier.load(directory)
    loaded.predict_proba(sentiment[0])
    assert not marker.exists()
    assert loaded.backend_.trust_remote_code is False and loaded.get_params()["backend"].trust_remote_code is False
    # The folder is really malicious: the caller's own switch (and only it) runs its code.
    LLMClassifier.load(directory, trust_remote_code=True)
    assert marker.read_text() == "ran"


def test_trust_remote_code_comes_from_the_caller_only(saved):
    _, directory = saved
    _edit(directory, lambda c: c["params"].update(backend={"__plugin__": "TransformersBackend", "params": {"trust_remote_code": True}}))
    assert LLMClassifier.load(directory).backend_.trust_remote_code is False
    assert LLMClassifier.load(directory, trust_remote_code=True).backend_.trust_remote_code is True
    with pytest.raises(TypeError, match="'trust_remote_code' parameter of LLMClassifier.load must be a bool"):
        LLMClassifier.load(directory, trust_remote_code="yes")


NAMED = [
    ("plain-function", "params.prompt", {"__class__": "llm_classifier.plugins.prompts.resolve_template", "params": {"prompt": "x"}}),
    ("foreign-module", "params.prompt", {"__class__": "os.system", "params": {"command": "echo pwned"}}),
    ("foreign-kind", "params.prompt", {"__plugin__": "os.system", "params": {}}),
    ("look-alike-module", "params.prompt", {"__class__": "evil.AlpacaTemplate.x", "params": {}}),
    ("callable-template", "template", {"__plugin__": "CallableTemplate", "params": {"func": "print"}}),
    ("kind-not-a-string", "label_parser", {"__plugin__": ["ExactParser"], "params": {}}),
]


@pytest.mark.parametrize("case, where, value", NAMED, ids=[case[0] for case in NAMED])
def test_fields_naming_code_outside_the_registry_are_refused(saved, case, where, value):
    _, directory = saved

    def put(config):
        if where.startswith("params."):
            config["params"][where.split(".", 1)[1]] = value
        else:
            config[where] = value

    _edit(directory, put)
    with pytest.raises(IncompatibleArtifactError, match=rf"The field '{where}' of classifier.json names .* not one of llm_classifier's own plugins"):
        LLMClassifier.load(directory)


@pytest.mark.parametrize("value", [{"__engine__": "os:system", "params": {}},
                                   {"__engine__": "llm_classifier.engines.hf.engine:TransformersBackend", "params": {}},
                                   {"__engine__": ["transformers"], "params": {}}], ids=["foreign", "import-path", "not-a-string"])
def test_engines_outside_the_registry_are_refused(saved, value):
    _, directory = saved
    _edit(directory, lambda c: c["params"].update(backend=value))
    with pytest.raises(IncompatibleArtifactError, match=r"The field 'params.backend' of classifier.json names .* not one "
                                                        r"of the registered engines \(reference, transformers, vllm\)"):
        LLMClassifier.load(directory)


def test_plugin_parameters_are_checked(saved):
    _, directory = saved
    _edit(directory, lambda c: c["params"].update(prompt={"__plugin__": "AlpacaTemplate", "params": {"func": "os.system"}}))
    with pytest.raises(IncompatibleArtifactError, match=r"'params.prompt.params' .* unknown parameters \['func'\]"):
        LLMClassifier.load(directory)
    nested = {"__plugin__": "AlpacaTemplate", "params": {"instruction": {"__plugin__": "ExactParser", "params": {}}}}
    _edit(directory, lambda c: c["params"].update(prompt=nested))
    with pytest.raises(IncompatibleArtifactError, match=r"'params.prompt.params.instruction' .* plain JSON value"):
        LLMClassifier.load(directory)


def test_registered_plugins_round_trip(tiny_params, sentiment, tmp_path):
    from llm_classifier import AlpacaTemplate
    from llm_classifier.engines.hf.engine import TransformersBackend
    from llm_classifier.plugins.labels import ExactParser

    clf = LLMClassifier(**tiny_params, prompt=AlpacaTemplate(instruction="Say {labels}"), verbalizer={"negative": "bad", "positive": "good"},
                        label_parser=ExactParser(case_sensitive=False), backend=TransformersBackend(compute="dense")).fit(*sentiment)
    clf.save(tmp_path / "clf")
    loaded = LLMClassifier.load(tmp_path / "clf")
    params = loaded.get_params(deep=False)
    assert params["prompt"].instruction == "Say {labels}" and params["label_parser"].case_sensitive is False
    assert params["verbalizer"] == {"negative": "bad", "positive": "good"} and params["backend"].compute == "dense"
    np.testing.assert_allclose(loaded.predict_proba(sentiment[0]), clf.predict_proba(sentiment[0]), atol=1e-6)


def test_the_loader_has_no_dynamic_import():
    """No field can reach importlib: persistence does not use it at all."""
    import llm_classifier.io.artifact as persistence

    source = Path(persistence.__file__).read_text()
    assert "importlib" not in source and "__import__" not in source and "getattr(module" not in source
