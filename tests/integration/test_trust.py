"""Trust, round two (issue 29): the base model is checked where it is loaded, and nothing from an artifact
reaches a code path or a process setting. Each test reproduces a hole the review found."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError

from llm_classifier import AlpacaTemplate, ChatTemplate, FormatTemplate, LLMClassifier
from llm_classifier.engines.hf_checkpoints import resolve_model
from llm_classifier.exceptions import IncompatibleArtifactError, ModelNotFoundError
from llm_classifier.plugins.labels import DefaultParser, ExactParser, MappingVerbalizer

TEXTS = ["a wonderful film", "an awful film", "great fun", "boring"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty llm_classifier cache folder of this test's own."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("LLM_CLASSIFIER_CACHE", str(folder))
    return folder


@pytest.fixture
def base(tiny_model, tmp_path, cache):
    return Path(shutil.copytree(tiny_model, tmp_path / "base"))


def _flip_last_byte(path: Path, keep_times: bool = False) -> None:
    info = path.stat()
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    if keep_times:  # as cp -p, rsync -t and tar do
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))


def _edit(directory: Path, change) -> None:
    path = directory / "classifier.json"
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))


# -- the packaged model: the converted checkpoint and the GGUF ------------------------------------


def _copy_converted(source: Path, cache: Path) -> Path:
    """A copy of the converted default checkpoint in ``cache``, with the cache's key that signed its manifest."""
    shutil.copytree(source, cache / source.name)
    for file in source.parent.iterdir():
        if file.is_file():
            shutil.copy(file, cache / file.name)
    return cache / source.name


@pytest.mark.parametrize("name, edit", [
    ("config.json", lambda text: json.dumps({**json.loads(text), "rms_norm_eps": 0.1})),
    ("chat_template.jinja", lambda text: text.replace("system", "sys")),
])
def test_an_edited_converted_checkpoint_is_refused(real_tokenizer_dir, cache, name, edit):
    source = Path(real_tokenizer_dir)
    copy = _copy_converted(source, cache)
    assert resolve_model("smollm2-135m-instruct").path == str(copy)
    edited = edit((copy / name).read_text())
    assert edited != (copy / name).read_text()
    (copy / name).write_text(edited)
    with pytest.raises(ModelNotFoundError, match=rf"is not what the conversion wrote \(changed files: {name}\)"):
        resolve_model("smollm2-135m-instruct")


@pytest.mark.parametrize("converted", [False, True])
def test_a_garbage_packaged_gguf_is_refused(real_tokenizer_dir, cache, tmp_path, monkeypatch, converted):
    from llm_classifier.engines.hf_checkpoints import PACKAGED_MODELS

    if converted:  # a checkpoint converted from the real GGUF is in the cache: the GGUF is still checked
        _copy_converted(Path(real_tokenizer_dir), cache)
    packaged = PACKAGED_MODELS["smollm2-135m-instruct"]
    package = tmp_path / "site" / packaged.package
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / packaged.filename).write_bytes(b"GGUF" + bytes(1000))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(ModelNotFoundError, match=r"has sha256 .*not the expected b179c9523d0e6a0f.*it is not used"):
        resolve_model("smollm2-135m-instruct")
    assert len(list(cache.glob("SmolLM2*"))) == int(converted)  # nothing converted


# -- the hash cache ------------------------------------------------------------------------------


def test_a_rewrite_that_restores_the_mtime_is_hashed_again(base):
    before = resolve_model(str(base))
    _flip_last_byte(base / "model.safetensors", keep_times=True)
    after = resolve_model(str(base))
    assert after.fingerprint != before.fingerprint
    assert dict(after.files)["model.safetensors"] != dict(before.files)["model.safetensors"]


def test_a_forged_cache_entry_is_not_trusted(base, cache):
    weights = base / "model.safetensors"
    recorded = dict(resolve_model(str(base)).files)["model.safetensors"]
    weights.write_bytes(weights.read_bytes()[:-8])  # another size, other bytes
    info = weights.stat()
    key = [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]
    for file in cache.glob("*.json"):  # every cache format: (size, mtime_ns) and the full stat key
        entries = json.loads(file.read_text())
        entries[str(weights)] = {**entries.get(str(weights), {}), "size": info.st_size, "mtime_ns": info.st_mtime_ns,
                                 "key": key, "sha256": recorded}
        file.write_text(json.dumps(entries))
    assert dict(resolve_model(str(base)).files)["model.safetensors"] != recorded


def test_an_unchanged_file_is_not_read_again(base, monkeypatch):
    from llm_classifier.engines import hf_checkpoints

    first = resolve_model(str(base))
    reads = []
    real = hf_checkpoints._file_sha256
    monkeypatch.setattr(hf_checkpoints, "_file_sha256", lambda path: reads.append(path) or real(path))
    assert resolve_model(str(base)).fingerprint == first.fingerprint and reads == []
    os.utime(base / "config.json")  # a new mtime and ctime: read again, same content
    assert resolve_model(str(base)).fingerprint == first.fingerprint and reads == [base / "config.json"]


# -- what is fingerprinted ------------------------------------------------------------------------


def test_the_shard_index_is_fingerprinted(tiny_model, tmp_path, cache):
    import warnings

    from transformers import AutoModelForCausalLM

    sharded = tmp_path / "sharded"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        AutoModelForCausalLM.from_pretrained(tiny_model).save_pretrained(sharded, max_shard_size="2MB")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(Path(tiny_model) / name, sharded / name)
    index = sharded / "model.safetensors.index.json"
    before = resolve_model(str(sharded))
    assert "model.safetensors.index.json" in dict(before.files)
    data = json.loads(index.read_text())
    dropped = next(name for name in data["weight_map"] if "layers.1." in name)
    del data["weight_map"][dropped]
    index.write_text(json.dumps(data))
    assert resolve_model(str(sharded)).fingerprint != before.fingerprint


@pytest.mark.parametrize("adapter_file", ["adapter_config.json", "adapter_model.safetensors"])
def test_a_base_folder_holding_an_adapter_is_refused(base, tiny_params, tmp_path, adapter_file):
    clf = LLMClassifier(**{**tiny_params, "model": str(base), "max_steps": 0}).fit(TEXTS, ["p", "n"] * 2)
    clf.save(tmp_path / "clf")
    (base / adapter_file).write_text("{}")
    with pytest.raises(ModelNotFoundError, match=r"holds a PEFT adapter \(" + adapter_file):
        LLMClassifier.load(tmp_path / "clf")
    with pytest.raises(ModelNotFoundError, match="transformers would load on top of the base weights"):
        LLMClassifier(**{**tiny_params, "model": str(base), "max_steps": 0}).fit(TEXTS, ["p", "n"] * 2)


# -- the check and the read -----------------------------------------------------------------------


def test_weights_replaced_between_load_and_first_predict_are_refused(base, tiny_params, tmp_path):
    clf = LLMClassifier(**{**tiny_params, "model": str(base), "max_steps": 0}).fit(TEXTS, ["p", "n"] * 2)
    clf.save(tmp_path / "clf")
    expected = clf.predict_proba(TEXTS)
    loaded = LLMClassifier.load(tmp_path / "clf")
    _flip_last_byte(base / "model.safetensors")
    with pytest.raises(IncompatibleArtifactError, match=r"changed after it was checked \(changed files: model.safetensors\)"):
        loaded.predict_proba(TEXTS)
    _flip_last_byte(base / "model.safetensors")  # the same bytes again, in a rewritten file: accepted
    np.testing.assert_allclose(loaded.predict_proba(TEXTS), expected, atol=1e-6)


# -- hub ids ------------------------------------------------------------------------------------


def _hub_snapshot(hub: Path, tiny_model: str, commit: str, change=None) -> None:
    """A Hugging Face cache holding ``acme/tiny`` at ``commit`` (what a download leaves), ``main`` pointing to it."""
    repo = hub / "models--acme--tiny"
    shutil.copytree(tiny_model, repo / "snapshots" / commit)
    if change:
        change(repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)


@pytest.fixture
def hub(tmp_path, monkeypatch, cache):
    from huggingface_hub import constants

    folder = tmp_path / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(folder))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return folder


def test_a_hub_base_is_recorded_with_its_revision_and_files(hub, tiny_model, tiny_params, tmp_path):
    first, second = "1" * 40, "2" * 40
    _hub_snapshot(hub, tiny_model, first)
    clf = LLMClassifier(**{**tiny_params, "model": "acme/tiny", "max_steps": 0}).fit(TEXTS, ["p", "n"] * 2)
    clf.save(tmp_path / "clf")
    record = json.loads((tmp_path / "clf" / "classifier.json").read_text())["model"]
    assert record["name"] == f"acme/tiny@{first}" and "model.safetensors" in dict(record["files"])
    expected = clf.predict_proba(TEXTS)
    np.testing.assert_allclose(LLMClassifier.load(tmp_path / "clf").predict_proba(TEXTS), expected, atol=1e-6)
    # other weights behind the same id and revision
    _flip_last_byte(hub / "models--acme--tiny" / "snapshots" / first / "model.safetensors")
    with pytest.raises(IncompatibleArtifactError, match=r"changed files: model.safetensors"):
        LLMClassifier.load(tmp_path / "clf")
    _flip_last_byte(hub / "models--acme--tiny" / "snapshots" / first / "model.safetensors")
    # the same files at another revision: refused too
    _hub_snapshot(hub, tiny_model, second)
    with pytest.raises(IncompatibleArtifactError, match="trained on"):
        LLMClassifier.load(tmp_path / "clf", model="acme/tiny")
    np.testing.assert_allclose(LLMClassifier.load(tmp_path / "clf").predict_proba(TEXTS), expected, atol=1e-6)


# -- engine options and parameters read from a file ---------------------------------------------------


@pytest.fixture
def zero_shot(tiny_params, tmp_path):
    clf = LLMClassifier(**{**tiny_params, "max_steps": 0}).fit(TEXTS, ["n", "p"] * 2)
    clf.save(tmp_path / "clf")
    return tmp_path / "clf"


def _backend(**params):
    return {"__plugin__": "TransformersBackend", "params": params}


@pytest.mark.parametrize("params, pattern", [
    ({"attn_implementation": "owner/repo"}, r"'attn_implementation' parameter of TransformersBackend must be a str among"),
    ({"compute": "bogus"}, r"'compute' parameter of TransformersBackend"),
    ({"shared_prefix": "yes"}, r"'shared_prefix' parameter of TransformersBackend"),
    ({"kernel_hub": "owner/repo"}, r"unknown parameters \['kernel_hub'\]"),
])
def test_engine_options_in_a_file_are_declared_plain_values(zero_shot, params, pattern):
    _edit(zero_shot, lambda c: c["params"].update(backend=_backend(**params)))
    with pytest.raises(IncompatibleArtifactError, match=pattern):
        LLMClassifier.load(zero_shot)


def test_thread_counts_are_never_restored_from_a_file(zero_shot):
    import torch

    before = torch.get_num_threads()
    _edit(zero_shot, lambda c: c["params"].update(backend=_backend(num_threads=before + 3)))
    try:
        loaded = LLMClassifier.load(zero_shot)
        loaded.predict_proba(TEXTS[:1])
        assert loaded.backend.num_threads is None
        assert torch.get_num_threads() == before
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def reference_artifact(tmp_path):
    clf = LLMClassifier(backend="reference", model="reference", max_steps=2, batch_size=2, random_state=0)
    clf.fit(TEXTS, ["n", "p"] * 2).save(tmp_path / "ref")
    return tmp_path / "ref"


@pytest.mark.parametrize("name, value, pattern", [
    ("confidence_threshold", 5, r"'confidence_threshold' parameter of LLMClassifier must be"),
    ("inference", "bogus", r"'inference' parameter"),
    ("long_text", "bogus", r"'long_text' parameter"),
    ("eval_batch_size", 0, r"'eval_batch_size' parameter"),
    ("lora_r", True, r"'lora_r' parameter of LLMClassifier must be a number, not a bool"),
    ("on_low_confidence", ["n", "p"], r"'on_low_confidence' parameter"),
    ("on_low_confidence", "p", r"'on_low_confidence' parameter of LLMClassifier must be .* not one of the classes"),
])
def test_saved_parameters_pass_the_constraints_of_fit(reference_artifact, name, value, pattern):
    def change(config):
        if name == "on_low_confidence":  # a reject value acts with a threshold
            config["params"]["confidence_threshold"] = 0.9
        config["params"][name] = value

    _edit(reference_artifact, change)
    with pytest.raises(IncompatibleArtifactError, match=r"field 'params' of classifier.json .*" + pattern):
        LLMClassifier.load(reference_artifact)


def test_only_the_named_fields_may_hold_plugins(reference_artifact):
    from llm_classifier.io.artifact import ENGINE_FIELDS, PLUGIN_FIELDS

    assert set(PLUGIN_FIELDS) == {"params.prompt", "template", "params.verbalizer", "params.label_parser", "label_parser"}
    assert ENGINE_FIELDS == ("params.backend",)
    _edit(reference_artifact, lambda c: c["params"].update(on_low_confidence={"__plugin__": "ReferenceEngine"}))
    with pytest.raises(IncompatibleArtifactError, match=r"'params.on_low_confidence' of classifier.json must hold a plain value"):
        LLMClassifier.load(reference_artifact)
    _edit(reference_artifact, lambda c: c["params"].update(on_low_confidence=None, verbalizer=_backend()))
    with pytest.raises(IncompatibleArtifactError, match=r"'params.verbalizer' .* names 'TransformersBackend'; it may hold only"):
        LLMClassifier.load(reference_artifact)


@pytest.mark.parametrize("field", ["template", "label_parser"])
@pytest.mark.parametrize("value", [5, "exact", "{text.__class__}", ["a"], {"a": 1}])
def test_the_plugin_fields_hold_a_plugin_not_a_plain_value(reference_artifact, field, value):
    """A plain value where save writes a plugin object: a label parser of 5 crashed generate mode with
    "'int' object has no attribute 'parse'", and a template of '{text.__class__}' escaped the format check."""
    _edit(reference_artifact, lambda c: c.update({field: value}, params={**c["params"], "inference": "generate"}))
    with pytest.raises(IncompatibleArtifactError, match=rf"The field '{field}' of classifier.json must hold one of llm_classifier's plugins "):
        LLMClassifier.load(reference_artifact)


@pytest.mark.parametrize("name, value, pattern", [
    ("verbalizer", "bogus", r"'verbalizer' parameter of LLMClassifier must be None, 'default', a dict"),
    ("label_parser", "bogus", r"'label_parser' parameter of LLMClassifier must be one of \['default', 'exact'"),
])
def test_saved_verbalizer_and_parser_names_pass_the_check_of_fit(reference_artifact, name, value, pattern):
    with pytest.raises(InvalidParameterError, match=pattern):  # fit refuses them before anything loads
        LLMClassifier(**REFERENCE, **{name: value}).fit(TEXTS, ["n", "p"] * 2)
    _edit(reference_artifact, lambda c: c["params"].update({name: value}))
    with pytest.raises(IncompatibleArtifactError, match=r"field 'params' of classifier.json .*" + pattern):
        LLMClassifier.load(reference_artifact)


@pytest.mark.parametrize("value, pattern", [("p", "must be .* not one of the classes"), (["x", "y"], "must be None, an instance")])
def test_a_reject_value_that_is_a_class_or_a_list_is_refused_at_fit(value, pattern):
    clf = LLMClassifier(backend="reference", model="reference", max_steps=0, confidence_threshold=0.9,
                        on_low_confidence=value)
    with pytest.raises(InvalidParameterError, match=r"'on_low_confidence' parameter of LLMClassifier " + pattern):
        clf.fit(TEXTS, ["n", "p"] * 2)


@pytest.mark.parametrize("classes, value", [(["-1", "0", "1"], -1), ([0, 1, 2], "2"), ([0.0, 1.0], "1.0")])
def test_a_reject_value_that_reads_as_a_class_is_refused(classes, value):
    """``--on-low-confidence -1`` on the command line (the JSON number -1) with CSV classes "-1", "0", "1": every
    rejected text was written as the class "-1" and counted as that class by ``evaluate``, since text output and the
    command line's metrics compare labels as text."""
    clf = LLMClassifier(backend="reference", model="reference", max_steps=0, confidence_threshold=0.9,
                        on_low_confidence=value)
    with pytest.raises(InvalidParameterError, match=r"'on_low_confidence' parameter of LLMClassifier must be .* not "
                                                    r"one of the classes .* nor read as one"):
        clf.fit(TEXTS[:3] * 2, classes * (6 // len(classes)))


# -- the low items -----------------------------------------------------------------------------------


@pytest.fixture
def fitted_artifact(tiny_params, tmp_path):
    clf = LLMClassifier(**tiny_params).fit(TEXTS, ["n", "p"] * 2)
    clf.save(tmp_path / "fitted")
    return tmp_path / "fitted"


@pytest.mark.parametrize("sha", ["remove", None, "0" * 64])
def test_the_adapter_sha256_is_required(fitted_artifact, sha):
    def change(config):
        if sha == "remove":
            del config["adapter"]["sha256"]
        else:
            config["adapter"]["sha256"] = sha

    _edit(fitted_artifact, change)
    with pytest.raises(IncompatibleArtifactError, match=r"'adapter.sha256' of classifier.json must be the adapter's sha256"):
        LLMClassifier.load(fitted_artifact)


@pytest.mark.parametrize("which", ["adapter", "classifier.json"])
def test_a_symlink_leaving_the_artifact_is_refused(fitted_artifact, tmp_path, which):
    name = next(fitted_artifact.glob("adapter-*")).name if which == "adapter" else which
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.move(str(fitted_artifact / name), outside / name)
    (fitted_artifact / name).symlink_to(outside / name)
    with pytest.raises(IncompatibleArtifactError, match="symbolic link that leads out of the artifact's folder"):
        LLMClassifier.load(fitted_artifact)


def test_a_symlink_inside_the_artifact_is_followed(fitted_artifact):
    adapter = next(fitted_artifact.glob("adapter-*"))
    (fitted_artifact / "real").mkdir()
    shutil.move(str(adapter), fitted_artifact / "real" / adapter.name)
    adapter.symlink_to(Path("real") / adapter.name)
    assert LLMClassifier.load(fitted_artifact).classes_.tolist() == ["n", "p"]


@pytest.mark.parametrize("depth", [100, 200_000])
def test_a_deeply_nested_classifier_json_is_an_incompatible_artifact(reference_artifact, depth):
    path = reference_artifact / "classifier.json"
    text = path.read_text()
    path.write_text(text[:-1] + ', "nested": ' + "[" * depth + "]" * depth + "}")
    with pytest.raises(IncompatibleArtifactError, match=r"nests arrays or objects more than 32 deep"):
        LLMClassifier.load(reference_artifact)


def test_the_reference_engine_loads_the_zero_shot_classifier_it_saved(tmp_path):
    clf = LLMClassifier(backend="reference", model="reference", max_steps=0).fit(TEXTS, ["n", "p"] * 2)
    clf.save(tmp_path / "zero")
    np.testing.assert_allclose(LLMClassifier.load(tmp_path / "zero").predict_proba(TEXTS), clf.predict_proba(TEXTS))


def test_a_label_holding_the_text_marker_is_blamed(tiny_params):
    from llm_classifier.plugins.prompts import TEXT_MARKER

    label = "odd" + TEXT_MARKER
    with pytest.raises(ValueError, match=r"label answer 'odd.*' contains the marker"):
        LLMClassifier(**{**tiny_params, "max_steps": 0}).fit(TEXTS, [label, "p"] * 2)


def test_load_and_first_predict_keep_torchs_random_state(fitted_artifact):
    import torch

    torch.manual_seed(1234)
    state = torch.get_rng_state()
    LLMClassifier.load(fitted_artifact).predict_proba(TEXTS)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("rename", [lambda name: "adapter-" + name, lambda name: ".hidden-" + name,
                                    lambda name: "sub/" + name])
def test_every_shard_the_index_names_is_fingerprinted(tiny_model, tmp_path, cache, rename):
    """A shard named like a hidden or adapter file, or in a subfolder, is read by the loader: it is checked too."""
    from safetensors.numpy import load_file, save_file
    from transformers import AutoModelForCausalLM

    folder = tmp_path / "sharded"
    AutoModelForCausalLM.from_pretrained(tiny_model).save_pretrained(folder, max_shard_size="5MB")
    for entry in Path(tiny_model).iterdir():
        if entry.name.startswith("tokenizer") or entry.suffix == ".jinja":
            shutil.copy(entry, folder)
    index_path = folder / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    names = sorted(set(index["weight_map"].values()))
    assert len(names) >= 2
    (folder / "sub").mkdir()
    for name in names:
        os.rename(folder / name, folder / rename(name))
    index["weight_map"] = {key: rename(value) for key, value in index["weight_map"].items()}
    index_path.write_text(json.dumps(index))
    clf = LLMClassifier(model=str(folder), quantization=None, dtype="float32", max_steps=0).fit(TEXTS, ["n", "p"] * 2)
    clf.save(tmp_path / "clf")
    shard = folder / rename(names[0])
    save_file({key: value * 1.5 for key, value in load_file(shard).items()}, shard, metadata={"format": "pt"})
    with pytest.raises(IncompatibleArtifactError, match="changed files: .*" + rename(names[0]).split("/")[-1]):
        LLMClassifier.load(tmp_path / "clf")


def test_the_command_line_reads_classifier_json_through_the_checked_reader(reference_artifact, capsys):
    from llm_classifier.cli.main import main

    (reference_artifact / "classifier.json").write_text("[" * 100_000 + "]" * 100_000)
    assert main(["info", str(reference_artifact)]) != 0
    error = capsys.readouterr().err
    assert "nest" in error and "RecursionError" not in error


@pytest.mark.parametrize("version", [True, 2.0, "2"])
def test_a_format_version_must_be_an_int(reference_artifact, version):
    _edit(reference_artifact, lambda c: c.update(format_version=version))
    with pytest.raises(IncompatibleArtifactError, match="artifact format"):
        LLMClassifier.load(reference_artifact)


# -- what fit checks, load checks with the same function: answers, plugin parameters, format fields --------


REFERENCE = {"backend": "reference", "model": "reference", "max_steps": 0}


@pytest.mark.parametrize("answers, pattern", [
    (["caf\u00e9", "cafe\u0301"], r"answers 'caf\\xe9' and 'cafe\\u0301' .* differ only by Unicode normalisation"),
    (["a", "a\u200b"], r"answers 'a' and 'a\\u200b' .* or zero-width characters"),
    (["a", "\ufeffa"], r"answers 'a' and '\\ufeffa' .* or zero-width characters"),
    (["n", ""], r"gave the class 'p' an empty answer ''"),
    (["n", "  "], r"gave the class 'p' an empty answer '  '"),
    (["same", "same"], r"The classes 'n' and 'p' have the same answer text 'same'"),
    (["n", "\udcff"], r"lone surrogate U\+DCFF"),
])
def test_saved_answers_pass_the_check_of_fit(reference_artifact, answers, pattern):
    """An edited file cannot hold answers that fit refuses: twins a reader cannot tell apart, empty or equal answers."""
    _edit(reference_artifact, lambda c: c.update(answers=answers))
    with pytest.raises(IncompatibleArtifactError, match=r"field 'answers' of classifier.json holds answers fit refuses: .*"
                                                        + pattern):
        LLMClassifier.load(reference_artifact)


def test_load_refuses_answers_with_the_message_of_fit(reference_artifact):
    """One rule: the message at load is the one fit gives for the same answers of the same classes."""
    twins = {"n": "caf\u00e9", "p": "cafe\u0301"}
    with pytest.raises(ValueError) as at_fit:
        LLMClassifier(**REFERENCE, verbalizer=twins).fit(TEXTS, ["n", "p"] * 2)
    _edit(reference_artifact, lambda c: c.update(answers=list(twins.values())))
    with pytest.raises(IncompatibleArtifactError) as at_load:
        LLMClassifier.load(reference_artifact)
    assert str(at_fit.value).rstrip(".") in str(at_load.value)


#: (field of classifier.json, plugin written there, pattern of the refusal)
BAD_PLUGINS = [
    ("label_parser", {"__plugin__": "DefaultParser", "params": {"cutoff": 5}},
     r"'cutoff' parameter of DefaultParser must be a float in the range \[0.0, 1.0\]. Got 5"),
    ("label_parser", {"__plugin__": "DefaultParser", "params": {"cutoff": True}},
     r"'cutoff' parameter of DefaultParser must be a number, not a bool"),
    ("params.label_parser", {"__plugin__": "DefaultParser", "params": {"cutoff": -0.5}},
     r"'cutoff' parameter of DefaultParser must be a float in the range"),
    ("params.label_parser", {"__plugin__": "ExactParser", "params": {"case_sensitive": "no"}},
     r"'case_sensitive' parameter of ExactParser must be an instance of 'bool'"),
    ("template", {"__plugin__": "ChatTemplate", "params": {"repeat_instruction": "yes"}},
     r"'repeat_instruction' parameter of ChatTemplate must be an instance of 'bool'"),
    ("template", {"__plugin__": "ChatTemplate", "params": {"instruction": 7}},
     r"'instruction' parameter of ChatTemplate must be an instance of 'str'"),
    ("template", {"__plugin__": "AlpacaTemplate", "params": {"examples": [["a text", 1]]}},
     r"'examples' parameter of AlpacaTemplate must be None or a sequence of \(text, answer\) pairs of str; "
     r"examples\[0\] is \['a text', 1\]"),
    ("template", {"__plugin__": "ChannelTemplate", "params": {"instruction": "no label here"}},
     r"'instruction' parameter of ChannelTemplate must be a str containing '\{label\}'"),
    ("params.verbalizer", {"__plugin__": "MappingVerbalizer", "params": {"mapping": ["n", "p"]}},
     r"'mapping' parameter of MappingVerbalizer must be an instance of 'collections.abc.Mapping'"),
]


def _put(config: dict, field: str, value) -> None:
    parent, _, key = field.rpartition(".")
    (config[parent] if parent else config)[key] = value


@pytest.mark.parametrize("field, plugin, pattern", BAD_PLUGINS)
def test_saved_plugin_parameters_pass_the_check_of_fit(reference_artifact, field, plugin, pattern):
    """A plugin rebuilt from the file is put through its declared constraints, as fit puts it."""
    _edit(reference_artifact, lambda c: _put(c, field, plugin))
    with pytest.raises(IncompatibleArtifactError, match=rf"field '{re.escape(field)}.params' of classifier.json is "
                                                        rf"refused: The {pattern}"):
        LLMClassifier.load(reference_artifact)


@pytest.mark.parametrize("parameter, plugin, pattern", [
    ("label_parser", lambda: DefaultParser(cutoff=5), BAD_PLUGINS[0][2]),
    ("label_parser", lambda: DefaultParser(cutoff=True), BAD_PLUGINS[1][2]),
    ("label_parser", lambda: ExactParser(case_sensitive="no"), BAD_PLUGINS[3][2]),
    ("prompt", lambda: ChatTemplate(repeat_instruction="yes"), BAD_PLUGINS[4][2]),
    ("prompt", lambda: AlpacaTemplate(examples=[["a text", 1]]), BAD_PLUGINS[6][2]),
    ("verbalizer", lambda: MappingVerbalizer(["n", "p"]), BAD_PLUGINS[8][2]),
])
def test_plugin_parameters_are_checked_at_fit(parameter, plugin, pattern):
    """The same constraints at fit, before anything loads, naming the estimator's parameter and the plugin's."""
    clf = LLMClassifier(**REFERENCE, **{parameter: plugin()})
    with pytest.raises(InvalidParameterError, match=rf"The '{parameter}' parameter of LLMClassifier is refused: The {pattern}"):
        clf.fit(TEXTS, ["n", "p"] * 2)


def test_a_format_template_without_text_is_refused_before_the_model_loads():
    """A FormatTemplate object without {text} was refused only once the tokenizer had loaded (by the prompt split)."""
    clf = LLMClassifier(model="/no/such/model", prompt=FormatTemplate("Pick one of {labels}:"))
    with pytest.raises(InvalidParameterError, match=r"The 'prompt' parameter of LLMClassifier is refused: The 'template' "
                                                    r"parameter of FormatTemplate has no '\{text\}' placeholder"):
        clf.fit(TEXTS, ["n", "p"] * 2)


@pytest.mark.parametrize("backend", ["nonsense", 5, None, ["reference"]])
def test_a_bad_saved_backend_is_the_files_fault(reference_artifact, backend):
    """A backend the file names that is no engine is an incompatible artifact (the CLI's exit 1, a bad input), as every
    other bad field is, not a bad parameter of the caller's (exit 2); a caller's own bad backend stays the caller's error."""
    _edit(reference_artifact, lambda c: _put(c, "params.backend", backend))
    with pytest.raises(IncompatibleArtifactError, match=r"field 'params.backend' of classifier.json is refused: The "
                                                        r"'backend' parameter of LLMClassifier must"):
        LLMClassifier.load(reference_artifact)
    with pytest.raises(InvalidParameterError, match=r"^The 'backend' parameter of LLMClassifier must"):
        LLMClassifier.load(reference_artifact, backend="nonsense")
    assert LLMClassifier.load(reference_artifact, backend="reference").predict(TEXTS).shape == (len(TEXTS),)


#: format strings whose fields are not plain names: an attribute walk, an index, a positional field, a conversion,
#: a format spec (which could also inflate a text to any length)
BAD_FORMATS = [
    ("{text} {text.__class__}", "{text.__class__}"),
    ("{text.__class__.__mro__}", "{text.__class__.__mro__}"),
    ("{text[0]}{text}", "{text[0]}"),
    ("{text} {labels[0]}", "{labels[0]}"),
    ("{text} {labels.__doc__}", "{labels.__doc__}"),
    ("{0} {text}", "{0}"),
    ("{} {text}", "{}"),
    ("{text!r}", "{text!r}"),
    ("{text:>99999999}", "{text:>99999999}"),
    ("{text} {label}", "{label}"),
]


@pytest.mark.parametrize("prompt, field", BAD_FORMATS)
def test_a_format_prompt_holds_only_plain_fields(prompt, field):
    """A format string reaches only {text} and {labels}, as plain names: at fit, as a string or a FormatTemplate."""
    with pytest.raises(InvalidParameterError, match=rf"^The 'prompt' parameter of LLMClassifier holds the format "
                                                    rf"field {re.escape(repr(field))}"):
        LLMClassifier(**REFERENCE, prompt=prompt).fit(TEXTS, ["n", "p"] * 2)
    with pytest.raises(InvalidParameterError, match=rf"'prompt' parameter of LLMClassifier is refused: The 'template' "
                                                    rf"parameter of FormatTemplate holds the format field {re.escape(repr(field))}"):
        LLMClassifier(**REFERENCE, prompt=FormatTemplate(prompt)).fit(TEXTS, ["n", "p"] * 2)
    with pytest.raises(InvalidParameterError, match=re.escape(repr(field))):  # and never rendered, whoever asks
        FormatTemplate(prompt).render("a text", ["n", "p"])


@pytest.mark.parametrize("where", ["template", "params.prompt"])
@pytest.mark.parametrize("prompt, field", BAD_FORMATS[:6])
def test_a_saved_format_template_holds_only_plain_fields(reference_artifact, where, prompt, field):
    """The same check at load: on the resolved template and on the prompt parameter, as an object or a string."""
    _edit(reference_artifact, lambda c: _put(c, where, {"__plugin__": "FormatTemplate", "params": {"template": prompt}}))
    with pytest.raises(IncompatibleArtifactError, match=rf"field '{re.escape(where)}.params' of classifier.json is refused: "
                                                        rf"The 'template' parameter of FormatTemplate holds the format "
                                                        rf"field {re.escape(repr(field))}"):
        LLMClassifier.load(reference_artifact)
    if where == "params.prompt":  # also as the string a user would have passed
        _edit(reference_artifact, lambda c: _put(c, where, prompt))
        with pytest.raises(IncompatibleArtifactError, match=rf"field 'params' of classifier.json holds a value LLMClassifier "
                                                            rf"refuses: The 'prompt' parameter of LLMClassifier holds the "
                                                            rf"format field {re.escape(repr(field))}"):
            LLMClassifier.load(reference_artifact)


def test_plain_format_fields_and_doubled_braces_still_work(tmp_path):
    """The check refuses only what it names: {text}, {labels} and literal {{braces}} fit, save and load."""
    clf = LLMClassifier(**REFERENCE, prompt="{{json}} Labels: {labels}\nText: {text}\nAnswer:").fit(TEXTS, ["n", "p"] * 2)
    assert (clf.prompt_prefix_, clf.prompt_suffix_) == ("{json} Labels: n, p\nText: ", "\nAnswer:")
    clf.save(tmp_path / "clf")
    np.testing.assert_allclose(LLMClassifier.load(tmp_path / "clf").predict_proba(TEXTS), clf.predict_proba(TEXTS))


@pytest.mark.parametrize("field, value", [
    ("prompt_prefix", "\udcff"), ("prompt_prefix", 5), ("prompt_suffix", None), ("demonstrations", [["\udcff", 0]]),
])
def test_saved_prompt_pieces_are_strings_of_valid_unicode(reference_artifact, field, value):
    """Not coerced with str() and not left to fail when tokenised at the first prediction."""
    _edit(reference_artifact, lambda c: c.update({field: value}))
    with pytest.raises(IncompatibleArtifactError, match=rf"field '{field}(\[0\]\[0\])?' of classifier.json must be a "
                                                        r"string of valid Unicode"):
        LLMClassifier.load(reference_artifact)
