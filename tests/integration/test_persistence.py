"""save/load (JSON + safetensors, no pickle) and round trips through a new process."""

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from llm_classifier import AlpacaTemplate, LLMClassifier
from llm_classifier.engines.reference import ReferenceEngine
from llm_classifier.exceptions import IncompatibleArtifactError, ModelNotFoundError


def adapter_path(directory: Path) -> Path:
    """The adapter file that an artifact's classifier.json names."""
    return directory / json.loads((directory / "classifier.json").read_text())["adapter"]["file"]


@pytest.fixture
def fitted(tiny_params, sentiment):
    return LLMClassifier(**{**tiny_params, "prompt": AlpacaTemplate(instruction="Sentiment: {labels}")}).fit(*sentiment)


def test_save_load_same_probabilities(fitted, sentiment, tmp_path):
    X, _ = sentiment
    fitted.save(tmp_path / "clf")
    names = sorted(p.name for p in (tmp_path / "clf").iterdir())
    assert names[1] == "classifier.json" and re.fullmatch(r"adapter-[0-9a-f]{16}\.safetensors", names[0]) and len(names) == 2
    loaded = LLMClassifier.load(tmp_path / "clf")
    np.testing.assert_allclose(loaded.predict_proba(X), fitted.predict_proba(X), atol=1e-6)
    assert loaded.get_params()["prompt"].instruction == "Sentiment: {labels}"
    assert loaded.classes_.tolist() == fitted.classes_.tolist()


def test_zero_shot_artifact_has_no_adapter(tiny_params, sentiment, tmp_path):
    clf = LLMClassifier(**{**tiny_params, "max_steps": 0}).fit(*sentiment)
    clf.save(tmp_path / "zs")
    assert [p.name for p in (tmp_path / "zs").iterdir()] == ["classifier.json"]
    np.testing.assert_allclose(LLMClassifier.load(tmp_path / "zs").predict_proba(sentiment[0]), clf.predict_proba(sentiment[0]), atol=1e-6)


def test_custom_callable_is_not_saved_but_predictions_are_kept(tiny_params, sentiment, tmp_path):
    clf = LLMClassifier(**{**tiny_params, "prompt": lambda text, labels: f"{text} ->"}).fit(*sentiment)
    with pytest.warns(UserWarning, match="cannot be saved as JSON") as record:
        clf.save(tmp_path / "c")
    assert record[0].filename == __file__
    loaded = LLMClassifier.load(tmp_path / "c")
    np.testing.assert_allclose(loaded.predict_proba(sentiment[0]), clf.predict_proba(sentiment[0]), atol=1e-6)


def test_an_unsaved_label_parser_warns_that_generated_predictions_change(sentiment, tmp_path):
    """The loaded classifier parses generated answers with the default parser: the warning says so (it said
    predictions were unaffected, and generate-mode predictions changed)."""
    X, y = sentiment
    clf = LLMClassifier(backend="reference", model="reference", max_steps=2, random_state=0, inference="generate",
                        label_parser=lambda text, answers: 1).fit(X, y)
    with pytest.warns(UserWarning, match=r"'label_parser' parameter .* stored by name only; the loaded classifier "
                                         r"parses generated answers with the default parser"):
        clf.save(tmp_path / "c")
    loaded = LLMClassifier.load(tmp_path / "c")
    assert set(clf.predict(X)) == {clf.classes_[1]} and repr(loaded.label_parser_) == "DefaultParser()"


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
    with pytest.raises(IncompatibleArtifactError, match=r"format 99 .*this library reads formats 1, 2"):
        LLMClassifier.load(tmp_path / "clf")
    config_path.write_text(json.dumps({**config, "model": {**config["model"], "fingerprint": "0" * 64}}))
    with pytest.raises(IncompatibleArtifactError, match="checksum"):
        LLMClassifier.load(tmp_path / "clf")
    config_path.write_text(text)
    adapter = adapter_path(tmp_path / "clf")
    adapter.write_bytes(adapter.read_bytes()[:100])
    with pytest.raises(IncompatibleArtifactError, match="does not have the sha256 recorded in the field 'adapter.sha256'"):
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
    adapter = load_file(str(adapter_path(tmp_path / "clf")))
    tiny_config = json.loads((Path(tiny_model) / "config.json").read_text())
    n_params = sum(value.size for value in adapter.values())
    assert n_params == _lora_parameters(tiny_config, fitted.lora_r)
    assert all(value.dtype == np.float32 for value in adapter.values())
    adapter_bytes = adapter_path(tmp_path / "clf").stat().st_size
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
    from llm_classifier.io.artifact import _encode_param

    assert _encode_param("class_weight", {"spam": 2.0}) == {"spam": 2.0}
    with pytest.warns(UserWarning, match="'class_weight' parameter .* cannot be saved as JSON"):
        encoded = _encode_param("class_weight", {0: 2.0})
    assert "__unsaved__" in encoded


def test_numpy_scalar_parameters_are_saved_as_their_values(sentiment, tmp_path):
    """np.float32 / np.int64 / np.bool_ (what np.arange or a grid search hands out) are plain numbers: they were
    stored by name only, so the loaded classifier lost its confidence_threshold (predictions changed) and its
    ExactParser became the DefaultParser, under a warning that said predictions were unaffected."""
    import warnings

    from llm_classifier.plugins.labels import ExactParser

    X, y = sentiment
    clf = LLMClassifier(backend="reference", model="reference", max_steps=np.int64(2), random_state=0,
                        confidence_threshold=np.float32(0.75), on_low_confidence=np.int64(-1),
                        label_parser=ExactParser(case_sensitive=np.False_)).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is "stored by name only"
        clf.save(tmp_path / "clf")
    loaded = LLMClassifier.load(tmp_path / "clf")
    params = loaded.get_params()
    assert (params["max_steps"], params["confidence_threshold"], params["on_low_confidence"]) == (2, 0.75, -1)
    assert type(params["max_steps"]) is int and type(params["on_low_confidence"]) is int
    assert repr(loaded.label_parser_) == repr(params["label_parser"]) == "ExactParser(case_sensitive=False)"
    expected = clf.predict(X)
    assert -1 in expected.tolist() and loaded.predict(X).tolist() == expected.tolist()


# -- format 1 --------------------------------------------------------------------------------


def _legacy_plugins(value):
    """Format 1 named plugins by import path (``{"__class__": "llm_classifier.plugins.prompts.AlpacaTemplate"}``)."""
    modules = {"AlpacaTemplate": "llm_classifier.plugins.prompts", "DefaultParser": "llm_classifier.plugins.labels",
               "TransformersBackend": "llm_classifier.engines.transformers"}
    if isinstance(value, dict) and "__plugin__" in value:
        return {"__class__": f"{modules[value['__plugin__']]}.{value['__plugin__']}", "params": value["params"]}
    return value


def _to_format_1(directory: Path, base: str) -> None:
    """Rewrite a saved artifact into the format-1 layout written by llm_classifier before format 2."""
    from llm_classifier.engines.hf_checkpoints import legacy_directory_fingerprint

    config = json.loads((directory / "classifier.json").read_text())
    (directory / config.pop("adapter")["file"]).rename(directory / "adapter.safetensors")
    config["format_version"] = 1
    config["model"] = {"name": base, "fingerprint": legacy_directory_fingerprint(base)}
    config["params"] = {name: _legacy_plugins(value) for name, value in config["params"].items()}
    config["template"] = _legacy_plugins(config["template"])
    config["label_parser"] = _legacy_plugins(config["label_parser"])
    (directory / "classifier.json").write_text(json.dumps(config))


def test_format_1_artifacts_still_load(fitted, sentiment, tmp_path, tiny_model):
    fitted.save(tmp_path / "clf")
    _to_format_1(tmp_path / "clf", tiny_model)
    assert "__class__" in (tmp_path / "clf" / "classifier.json").read_text()
    loaded = LLMClassifier.load(tmp_path / "clf")
    np.testing.assert_allclose(loaded.predict_proba(sentiment[0]), fitted.predict_proba(sentiment[0]), atol=1e-6)
    assert loaded.get_params()["prompt"].instruction == "Sentiment: {labels}"
    loaded.save(tmp_path / "clf")  # re-saving upgrades it in place to format 2
    assert sorted(p.name for p in (tmp_path / "clf").iterdir())[1:] == ["classifier.json"]
    assert json.loads((tmp_path / "clf" / "classifier.json").read_text())["format_version"] == 2


# -- atomic and concurrent saves ---------------------------------------------------------------


# -- engines, by kind name ------------------------------------------------------------------


class ThirdPartyEngine(ReferenceEngine):
    """An engine a user ships and registers (here the reference engine under its own kind name)."""

    name = "third-party"


@pytest.fixture
def engine_registry():
    from llm_classifier.engines import ENGINES

    saved = dict(ENGINES)
    yield ENGINES
    ENGINES.clear()
    ENGINES.update(saved)


REFERENCE_FIT = dict(model="reference", max_steps=2, batch_size=2, random_state=0)


def test_an_engine_object_is_saved_by_its_kind_name(engine_registry, sentiment, tmp_path):
    """A registered engine (third-party here, vLLM in tests/vllm_engine) is saved as its kind name and parameters."""
    from llm_classifier.engines import register_engine

    register_engine("third-party", ThirdPartyEngine)
    clf = LLMClassifier(backend=ThirdPartyEngine(chat_template=False), **REFERENCE_FIT).fit(*sentiment)
    clf.save(tmp_path / "clf")
    saved = json.loads((tmp_path / "clf" / "classifier.json").read_text())["params"]["backend"]
    assert saved == {"__engine__": "third-party", "params": {"chat_template": False}}
    loaded = LLMClassifier.load(tmp_path / "clf")
    backend = loaded.get_params()["backend"]
    assert type(backend) is ThirdPartyEngine and backend.chat_template is False
    assert type(loaded.backend_) is ThirdPartyEngine
    np.testing.assert_allclose(loaded.predict_proba(sentiment[0]), clf.predict_proba(sentiment[0]), atol=1e-12)


def test_an_unregistered_engine_object_is_not_saved(sentiment, tmp_path):
    clf = LLMClassifier(backend=ThirdPartyEngine(), **REFERENCE_FIT).fit(*sentiment)
    with pytest.warns(UserWarning, match="'backend' parameter .* cannot be saved as JSON"):
        clf.save(tmp_path / "clf")
    saved = json.loads((tmp_path / "clf" / "classifier.json").read_text())["params"]["backend"]
    assert list(saved) == ["__unsaved__"]


def test_engines_named_by_class_before_the_registry_still_load(sentiment, tmp_path):
    """Artifacts written before the engine registry named a built-in engine by its class."""
    clf = LLMClassifier(backend=ReferenceEngine(chat_template=False), **REFERENCE_FIT).fit(*sentiment)
    clf.save(tmp_path / "clf")
    path = tmp_path / "clf" / "classifier.json"
    config = json.loads(path.read_text())
    assert config["params"]["backend"] == {"__engine__": "reference", "params": {"chat_template": False}}
    config["params"]["backend"] = {"__plugin__": "ReferenceEngine", "params": {"chat_template": False}}
    path.write_text(json.dumps(config))
    loaded = LLMClassifier.load(tmp_path / "clf")
    assert type(loaded.get_params()["backend"]) is ReferenceEngine and loaded.get_params()["backend"].chat_template is False
    np.testing.assert_allclose(loaded.predict_proba(sentiment[0]), clf.predict_proba(sentiment[0]), atol=1e-12)


@pytest.fixture
def other(tiny_params, sentiment):
    """A second classifier that predicts differently from ``fitted``."""
    return LLMClassifier(**{**tiny_params, "max_steps": 6, "random_state": 1, "learning_rate": 1e-3}).fit(*sentiment)


def test_killed_saves_leave_the_old_or_the_new_artifact(tiny_model, tmp_path):
    """SIGKILL at a random moment of an overwrite (benchmarks/save_crash.py, 5 runs): never mixed or corrupt."""
    from benchmarks.save_crash import run

    outcomes, _, _ = run(tiny_model, tmp_path, runs=5, seed=1)
    assert sum(outcomes.values()) == 5 and set(outcomes) <= {"old", "new"}, outcomes


def test_concurrent_savers_and_readers_never_see_a_mix(fitted, other, sentiment, tmp_path):
    import threading

    from llm_classifier.io import artifact as persistence

    target = tmp_path / "clf"
    fitted.save(target)
    adapters = [fitted.backend_.state().adapter, other.backend_.state().adapter]
    errors, reads = [], []

    def saver(clf):
        try:
            for _ in range(15):
                clf.save(target)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    def reader(stop):
        while not stop.is_set():
            state = persistence.load(target)
            reads.append(any(all(np.array_equal(state.adapter[k], a[k]) for k in a) for a in adapters))

    stop = threading.Event()
    threads = [threading.Thread(target=saver, args=(clf,)) for clf in (fitted, other)]
    watcher = threading.Thread(target=reader, args=(stop,))
    watcher.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    watcher.join()
    assert not errors and reads and all(reads)
    assert len([p for p in target.iterdir()]) == 2  # classifier.json and the one adapter it names, no leftovers
    probabilities = LLMClassifier.load(target).predict_proba(sentiment[0])
    assert any(np.allclose(probabilities, clf.predict_proba(sentiment[0]), atol=1e-6) for clf in (fitted, other))


def test_overwrite_removes_the_old_adapter_and_crashed_temporaries(fitted, other, sentiment, tmp_path):
    fitted.save(tmp_path / "clf")
    (tmp_path / "clf" / ".classifier.json.abc.partial").write_text("{")  # left by a killed saver
    other.save(tmp_path / "clf")
    assert len(list((tmp_path / "clf").iterdir())) == 2
    np.testing.assert_allclose(LLMClassifier.load(tmp_path / "clf").predict_proba(sentiment[0]),
                               other.predict_proba(sentiment[0]), atol=1e-6)


def test_save_with_a_stray_rank_variable_writes(fitted, tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    fitted.save(tmp_path / "clf")
    assert (tmp_path / "clf" / "classifier.json").is_file()


def test_save_refuses_a_diverged_adapter(fitted, tmp_path):
    # The engine's state holds its live adapter (load_state would refuse a non-finite one): poison it in place.
    adapter = fitted.backend_.state().adapter
    name = sorted(adapter)[0]
    adapter[name][0, 0] = np.nan
    assert np.isnan(fitted.backend_.state().adapter[name][0, 0])
    with pytest.raises(ValueError, match=f"adapter tensor '{re.escape(name)}' has non-finite values .*diverged"):
        fitted.save(tmp_path / "clf")
    assert not (tmp_path / "clf" / "classifier.json").exists()


# -- consistency checks at load ------------------------------------------------------------------


def _edit(directory, change):
    path = directory / "classifier.json"
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))


INCONSISTENT = [
    ("answers-length", lambda c: c.update(answers=c["answers"][:1]), r"'answers' .* must list 2 strings"),
    ("classes-unsorted", lambda c: c.update(classes=c["classes"][::-1]), r"'classes' .* sorted and unique"),
    ("classes-duplicated", lambda c: c.update(classes=[c["classes"][0]] * 2), r"'classes' .* sorted and unique"),
    ("class-prompts-length", lambda c: c.update(class_prompts=["a"]), r"'class_prompts' .* must list 2 strings"),
    ("calibration-length", lambda c: c.update(calibration={"bias": [0.0], "temperature": 1.0}), r"'calibration.bias' .* 2 finite numbers"),
    ("calibration-nan", lambda c: c.update(calibration={"bias": [0.0, float("nan")], "temperature": 1.0}), r"'calibration.bias' .* 2 finite numbers"),
    ("calibration-temperature", lambda c: c.update(calibration={"bias": [0.0, 0.0], "temperature": 0}), r"'calibration.temperature' .* > 0"),
    ("demonstration-code", lambda c: c.update(demonstrations=[["a text", 2]]), r"'demonstrations\[0\]' .* \[0, 2\)"),
    ("adapter-missing-tensor", lambda c: c["adapter"]["tensors"].update({"base_model.x.lora_A.weight": [8, 64]}), r"'adapter.tensors' .* missing tensors \['base_model.x.lora_A.weight'\]"),
    ("adapter-extra-tensor", lambda c: c["adapter"]["tensors"].pop(sorted(c["adapter"]["tensors"])[0]), r"'adapter.tensors' .* extra tensors"),
    ("adapter-targets", lambda c: c["adapter_config"].update(target_modules=["q_proj"]), r"'adapter_config.target_modules' .* does not cover"),
    ("adapter-rank", lambda c: c["adapter_config"].update(r=3), r"field 'adapter_config.r' .* not a finite LoRA factor of rank 3"),
    ("adapter-hash", lambda c: c["adapter"].update(sha256="0" * 64), r"field 'adapter.sha256'"),
    ("adapter-file-name", lambda c: c["adapter"].update(file="../../etc/passwd"), r"'adapter.file' .* adapter-<sha16>"),
    ("model-missing-name", lambda c: c["model"].pop("name"), r"'model' .* 'name' and 'fingerprint'"),
]


@pytest.mark.parametrize("case, change, pattern", INCONSISTENT, ids=[case[0] for case in INCONSISTENT])
def test_load_rejects_inconsistent_artifacts(fitted, tmp_path, case, change, pattern):
    fitted.save(tmp_path / "clf")
    _edit(tmp_path / "clf", change)
    with pytest.raises(IncompatibleArtifactError, match=pattern):
        LLMClassifier.load(tmp_path / "clf")


@pytest.mark.parametrize("which", ["classifier.json", "adapter"])
def test_load_refuses_a_fifo_instead_of_blocking(fitted, tmp_path, which):
    import os
    import time

    fitted.save(tmp_path / "clf")
    path = tmp_path / "clf" / "classifier.json" if which == "classifier.json" else adapter_path(tmp_path / "clf")
    path.unlink()
    os.mkfifo(path)
    start = time.monotonic()
    with pytest.raises(IncompatibleArtifactError, match="is not a regular file"):
        LLMClassifier.load(tmp_path / "clf")
    assert time.monotonic() - start < 10


# -- the base model, by content ---------------------------------------------------------------


@pytest.fixture
def base_copy(tiny_model, tmp_path):
    import shutil

    return Path(shutil.copytree(tiny_model, tmp_path / "base"))


def _fit_on(base, tiny_params, sentiment):
    return LLMClassifier(**{**tiny_params, "model": str(base)}).fit(*sentiment)


def test_a_changed_base_is_refused_naming_the_file(base_copy, tiny_params, sentiment, tmp_path):
    clf = _fit_on(base_copy, tiny_params, sentiment)
    clf.save(tmp_path / "clf")
    weights = base_copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # same size, one bit of one weight changed
    weights.write_bytes(bytes(data))
    with pytest.raises(IncompatibleArtifactError, match=r"changed files: model.safetensors"):
        LLMClassifier.load(tmp_path / "clf")
    weights.write_bytes(bytes(data[:-1]) + bytes([data[-1] ^ 1]))
    tokenizer_config = base_copy / "tokenizer_config.json"
    tokenizer_config.write_text(tokenizer_config.read_text() + "\n")
    with pytest.raises(IncompatibleArtifactError, match=r"changed files: tokenizer_config.json"):
        LLMClassifier.load(tmp_path / "clf")


def test_unpickling_refuses_a_changed_base(base_copy, tiny_params, sentiment):
    import pickle

    clf = _fit_on(base_copy, tiny_params, sentiment)
    blob = pickle.dumps(clf)
    np.testing.assert_allclose(pickle.loads(blob).predict_proba(sentiment[0]), clf.predict_proba(sentiment[0]), atol=1e-6)
    (base_copy / "config.json").write_text((base_copy / "config.json").read_text() + " ")
    with pytest.raises(IncompatibleArtifactError, match=r"changed since this classifier was pickled \(changed files: config.json\)"):
        pickle.loads(blob)


def test_saving_inside_the_base_folder_keeps_its_fingerprint(base_copy, tiny_params, sentiment):
    from llm_classifier.engines.hf_checkpoints import resolve_model

    clf = _fit_on(base_copy, tiny_params, sentiment)
    before = resolve_model(str(base_copy)).fingerprint
    clf.save(base_copy / "clf")
    clf.save(base_copy)  # even into the model's own folder
    assert resolve_model(str(base_copy)).fingerprint == before
    np.testing.assert_allclose(LLMClassifier.load(base_copy).predict_proba(sentiment[0]), clf.predict_proba(sentiment[0]), atol=1e-6)


def test_model_paths_are_stored_absolute_and_can_be_redirected(base_copy, tiny_params, sentiment, tmp_path, monkeypatch):
    import shutil

    monkeypatch.chdir(base_copy.parent)
    clf = _fit_on(Path("base"), tiny_params, sentiment)
    clf.save(tmp_path / "clf")
    config = json.loads((tmp_path / "clf" / "classifier.json").read_text())
    assert config["params"]["model"] == config["model"]["name"] == str(base_copy)
    moved = Path(shutil.move(str(base_copy), tmp_path / "moved"))
    with pytest.raises(ModelNotFoundError, match=r"if the model moved, pass LLMClassifier.load\(path, model=<its new location>\)"):
        LLMClassifier.load(tmp_path / "clf")
    loaded = LLMClassifier.load(tmp_path / "clf", model=str(moved))
    np.testing.assert_allclose(loaded.predict_proba(sentiment[0]), clf.predict_proba(sentiment[0]), atol=1e-6)
    assert loaded.model == str(moved)
    (moved / "config.json").write_text((moved / "config.json").read_text() + " ")
    with pytest.raises(IncompatibleArtifactError, match=r"changed files: config.json"):
        LLMClassifier.load(tmp_path / "clf", model=str(moved))


def test_content_hashes_are_cached_by_path_and_stat_key(base_copy, tmp_path, monkeypatch):
    import os

    from llm_classifier.engines import hf_checkpoints
    from llm_classifier.engines.hf_checkpoints import files_sha256

    monkeypatch.setenv("LLM_CLASSIFIER_CACHE", str(tmp_path / "cache"))
    config = base_copy / "config.json"
    first = dict(files_sha256([config]))["config.json"]
    reads = []
    real = hf_checkpoints._file_sha256
    monkeypatch.setattr(hf_checkpoints, "_file_sha256", lambda path: reads.append(path) or real(path))
    assert dict(files_sha256([config]))["config.json"] == first and reads == []  # not read again
    os.utime(config, ns=(config.stat().st_atime_ns, config.stat().st_mtime_ns + 1))
    assert dict(files_sha256([config]))["config.json"] == first and reads == [config]  # touched: hashed again


@pytest.mark.parametrize("marker", ["__plugin__", "__engine__", "__class__", "__unsaved__"])
def test_a_class_named_like_a_file_marker_saves_and_loads(marker, tmp_path):
    """A verbalizer mapping keyed by a class named like one of the file's markers was saved as a plain dict and
    read back as a plugin (load failed) or as an unsaved object; it is now stored by name only, with a warning,
    and the classifier loads and predicts as before (its answers are saved)."""
    X = ["good film", "bad film", "great plot", "awful plot"] * 2
    y = [marker, "other", marker, "other"] * 2
    clf = LLMClassifier(backend="reference", model="reference", max_steps=2, random_state=0,
                        verbalizer={marker: "yes", "other": "no"}).fit(X, y)
    with pytest.warns(UserWarning, match="'verbalizer' parameter .* stored by name only"):
        clf.save(tmp_path / "clf")
    loaded = LLMClassifier.load(tmp_path / "clf")
    assert list(loaded.classes_) == [marker, "other"] and loaded.answers_ == ["yes", "no"]
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))


REFERENCE = dict(backend="reference", model="reference", max_steps=2, random_state=0)
MULTILABEL_Y = [["a"], ["b"], ["a", "b"], [], ["a"], ["b"], ["a"], ["b"]]


@pytest.mark.parametrize("fit_params, y, change, name", [
    ({}, MULTILABEL_Y, {"few_shot": 2}, "few_shot"),
    ({}, MULTILABEL_Y, {"direction": "channel"}, "direction"),
    ({}, MULTILABEL_Y, {"class_weight": "balanced"}, "class_weight"),
    ({"direction": "channel"}, None, {"objective": "class"}, "objective"),
    ({"direction": "channel"}, None, {"prompt": "Text: {text}"}, "prompt"),
    ({}, None, {"lora_r": 0}, "lora_r"),  # any value fit refuses: load refused the artifact
    ({}, None, {"on_low_confidence": "positive", "confidence_threshold": 0.9}, "on_low_confidence"),
])
def test_save_refuses_a_parameter_set_after_fit_that_load_would_refuse(sentiment, tmp_path, fit_params, y, change, name):
    """Set after fit, these saved without a word and the artifact could never be loaded (load checks the saved
    parameters against the fitted formulation). save now refuses before writing, naming the parameter, and an
    artifact already at the path is kept."""
    X, labels = sentiment
    clf = LLMClassifier(**REFERENCE, **fit_params).fit(X, labels if y is None else y)
    clf.save(tmp_path / "clf")
    before = (tmp_path / "clf" / "classifier.json").read_bytes()
    defaults = {key: clf.get_params()[key] for key in change}
    clf.set_params(**change)
    with pytest.raises(ValueError, match=rf"^Cannot save: .*'{name}' parameter of LLMClassifier .* set it back"):
        clf.save(tmp_path / "clf")
    assert (tmp_path / "clf" / "classifier.json").read_bytes() == before
    clf.set_params(**defaults).save(tmp_path / "clf")
    np.testing.assert_array_equal(LLMClassifier.load(tmp_path / "clf").predict_proba(X), clf.predict_proba(X))
