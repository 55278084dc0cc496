"""Saving and loading a fitted LLMClassifier without pickle.

An artifact is a directory:

* ``classifier.json`` - format version, library version, the estimator's parameters,
  classes, answers, the rendered prompt around the text, the LoRA configuration, the
  training history, and the base model's name and checksum (the base is not copied);
* ``adapter.safetensors`` - the LoRA weights (absent for a zero-shot classifier).

Loading reads JSON and safetensors only, so it never executes code from the artifact.
Plugin objects (templates, verbalizers, parsers) are restored only if they are
llm_classifier's own classes; custom callables are not saved (the rendered prompt and
answers are, so predictions are unaffected) and are replaced by the defaults.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ._logging import warn_caller
from .calibration import Calibration
from .exceptions import IncompatibleArtifactError

FORMAT = "llm_classifier"
FORMAT_VERSION = 1
CONFIG_FILE = "classifier.json"
ADAPTER_FILE = "adapter.safetensors"
_PLUGIN_MODULES = ("llm_classifier.prompts", "llm_classifier.channel", "llm_classifier.labels", "llm_classifier.backends.hf.engine")
_UNSAVED = "__unsaved__"


def _plain(value: Any) -> bool:
    """True when ``value`` survives a JSON round trip unchanged (a dict keyed by ints would not)."""
    try:
        return json.loads(json.dumps(value)) == value
    except (TypeError, ValueError):
        return False


def _encode_param(name: str, value: Any) -> Any:
    if isinstance(value, tuple) and _plain(list(value)):
        return list(value)
    if _plain(value):
        return value
    module = type(value).__module__
    if module in _PLUGIN_MODULES:
        params = {key: val for key, val in vars(value).items() if not key.startswith("_")}
        encoded = {key: _encode_param(f"{name}.{key}", val) for key, val in params.items()}
        if not any(isinstance(val, dict) and _UNSAVED in val for val in encoded.values()):
            return {"__class__": f"{module}.{type(value).__qualname__}", "params": encoded}
    warn_caller(
        f"The '{name}' parameter ({value!r}) cannot be saved as JSON and is stored by name only; "
        "predictions of the loaded classifier are unaffected, but refitting it needs the parameter again. "
        "Use joblib/pickle to keep arbitrary objects."
    )
    return {_UNSAVED: repr(value)}


def _decode_param(value: Any, default: Any) -> Any:
    if isinstance(value, dict) and _UNSAVED in value:
        return default
    if isinstance(value, dict) and "__class__" in value:
        module_name, _, class_name = value["__class__"].rpartition(".")
        if module_name not in _PLUGIN_MODULES:
            raise IncompatibleArtifactError(f"The artifact names the class {value['__class__']!r}, which is not one of llm_classifier's own.")
        cls = getattr(importlib.import_module(module_name), class_name)
        return cls(**{key: _decode_param(val, None) for key, val in value["params"].items()})
    return value


def save(estimator: Any, path: str | os.PathLike) -> Path:
    """Write a fitted estimator to the directory ``path`` (created if needed)."""
    from safetensors.numpy import save_file
    from sklearn.utils.validation import check_is_fitted

    from . import __version__

    check_is_fitted(estimator, "classes_")
    backend = estimator.backend_
    resolved = getattr(backend, "resolved", None)
    if resolved is None:
        raise TypeError(f"The backend {type(backend).__name__} does not support save(); pickle the estimator instead.")
    classes = estimator.classes_
    if classes.dtype.kind not in "biufU":
        raise TypeError(f"Classes of dtype {classes.dtype} cannot be saved as JSON; use joblib/pickle instead.")
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    params = {name: _encode_param(name, value) for name, value in estimator.get_params(deep=False).items()}
    history = {key: value for key, value in estimator.history_.items() if _plain(value)}
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "params": params,
        "classes": classes.tolist(),
        "classes_dtype": classes.dtype.str,
        "answers": list(estimator.answers_),
        "prompt_prefix": estimator.prompt_prefix_,
        "prompt_suffix": estimator.prompt_suffix_,
        "class_prompts": list(getattr(estimator, "class_prompts_", [])),
        "template": _encode_param("template_", estimator.template_),
        "demonstrations": [[text, int(np.searchsorted(classes, label))] for text, label in getattr(estimator, "demonstrations_", [])],
        "label_parser": _encode_param("label_parser_", estimator.label_parser_),
        "model": {"name": resolved.name, "fingerprint": resolved.fingerprint},
        "adapter_config": backend.get_adapter_config(),
        "history": history,
        "random_seed": int(estimator.random_seed_),
        "calibration": _encode_calibration(getattr(estimator, "calibration_", None)),
    }
    adapter = backend.get_adapter()
    adapter_path = directory / ADAPTER_FILE
    if adapter is not None:
        save_file({name: np.ascontiguousarray(value) for name, value in adapter.items()}, str(adapter_path))
    elif adapter_path.exists():
        adapter_path.unlink()
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=1, ensure_ascii=False), encoding="utf-8")
    return directory


def _read_config(directory: Path) -> dict[str, Any]:
    config_path = directory / CONFIG_FILE
    if not directory.is_dir():
        raise FileNotFoundError(f"No saved classifier at {str(directory)!r}: not a directory.")
    if not config_path.is_file():
        raise IncompatibleArtifactError(f"{str(directory)!r} is not a saved LLMClassifier: {CONFIG_FILE} is missing.")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IncompatibleArtifactError(f"{str(config_path)!r} is truncated or corrupt: {exc}.") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise IncompatibleArtifactError(f"{str(config_path)!r} is not an llm_classifier artifact.")
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise IncompatibleArtifactError(
            f"{str(directory)!r} was saved in artifact format {version!r} (library {config.get('library_version')!r}); "
            f"this library reads format {FORMAT_VERSION}. Re-save it with a matching version."
        )
    return config


def _check_adapter(adapter: dict[str, np.ndarray] | None, adapter_config: Any, directory: Path) -> None:
    """The adapter's tensors must be LoRA factors of the saved rank (caught here, not at the first predict)."""
    if adapter is None:
        return
    if not isinstance(adapter_config, dict) or "r" not in adapter_config:
        raise IncompatibleArtifactError(f"{str(directory)!r} is incomplete: {ADAPTER_FILE} has no adapter_config in {CONFIG_FILE}.")
    rank = int(adapter_config["r"])
    for name, tensor in adapter.items():
        axis = 0 if "lora_A" in name else 1 if "lora_B" in name else None
        if axis is None or tensor.ndim != 2 or tensor.shape[axis] != rank or not np.all(np.isfinite(tensor)):
            raise IncompatibleArtifactError(
                f"{str(directory / ADAPTER_FILE)!r} does not match its configuration: the tensor {name!r} of shape "
                f"{tuple(tensor.shape)} is not a finite LoRA factor of rank {rank}."
            )


def load(path: str | os.PathLike) -> Any:
    """Read a classifier written by :func:`save`; it predicts exactly as before saving."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    from .backends import resolve_backend
    from .estimator import LLMClassifier
    from .labels import DefaultParser
    from .channel import encode_class_prompts
    from .tokenization import encode_answers

    directory = Path(path)
    config = _read_config(directory)
    try:
        defaults = LLMClassifier().get_params(deep=False)
        params = {name: _decode_param(value, defaults.get(name)) for name, value in config["params"].items() if name in defaults}
        estimator = LLMClassifier(**params)
        adapter = None
        if (directory / ADAPTER_FILE).exists():
            try:
                adapter = load_file(str(directory / ADAPTER_FILE))
            except (SafetensorError, OSError, ValueError) as exc:
                raise IncompatibleArtifactError(f"{str(directory / ADAPTER_FILE)!r} is truncated or corrupt: {exc}.") from None
        elif config.get("adapter_config") is not None:
            raise IncompatibleArtifactError(f"{str(directory)!r} is incomplete: {ADAPTER_FILE} is missing.")
        _check_adapter(adapter, config.get("adapter_config"), directory)
        backend = resolve_backend(estimator.backend)
        backend.load(config["model"]["name"], quantization=estimator.quantization, dtype=estimator.dtype, device=estimator.device)
        if backend.resolved.fingerprint != config["model"]["fingerprint"]:
            raise IncompatibleArtifactError(
                f"The base model {config['model']['name']!r} found here has checksum {backend.resolved.fingerprint[:16]}..., "
                f"but the classifier was trained on {config['model']['fingerprint'][:16]}...; install the same model."
            )
        backend.set_adapter(adapter, config.get("adapter_config"))

        estimator.classes_ = np.asarray(config["classes"], dtype=np.dtype(config["classes_dtype"]))
        estimator.answers_ = list(config["answers"])
        estimator.class_prompts_ = list(config.get("class_prompts", []))
        if estimator.class_prompts_:  # direction="channel": texts are scored after these prompts
            estimator.answer_ids_ = encode_class_prompts(backend.tokenizer, estimator.class_prompts_)
        else:
            estimator.answer_ids_ = encode_answers(backend.tokenizer, estimator.answers_)
        estimator.prompt_prefix_ = config["prompt_prefix"]
        estimator.prompt_suffix_ = config["prompt_suffix"]
        estimator.template_ = _decode_param(config["template"], None)
        estimator.demonstrations_ = [(text, estimator.classes_[code]) for text, code in config.get("demonstrations", [])]
        estimator.label_parser_ = _decode_param(config["label_parser"], None) or DefaultParser()
        estimator.history_ = dict(config.get("history", {}))
        estimator.random_seed_ = int(config["random_seed"])
        estimator.calibration_ = _decode_calibration(config)
        estimator.backend_ = backend
    except KeyError as exc:
        raise IncompatibleArtifactError(f"{str(directory)!r} is incomplete: the field {exc} is missing.") from None
    return estimator


def _encode_calibration(calibration: Calibration | None) -> dict[str, Any] | None:
    if calibration is None:
        return None
    return {"bias": calibration.bias.tolist(), "temperature": float(calibration.temperature)}


def _decode_calibration(config: dict[str, Any]) -> Calibration | None:
    """The saved calibration; earlier files stored only the prior correction's log offsets."""
    saved = config.get("calibration")
    if saved is not None:
        return Calibration(bias=np.asarray(saved["bias"], dtype=np.float64), temperature=float(saved["temperature"]))
    legacy = config.get("log_prior_correction")
    return None if legacy is None else Calibration(bias=np.asarray(legacy, dtype=np.float64))
