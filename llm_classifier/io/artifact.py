"""Saving and loading a fitted classifier's state without pickle, atomically.

An artifact is a directory:

* ``classifier.json`` - format version, library version, the estimator's parameters,
  classes, answers, the rendered prompt around the text, the training history, the base
  model's name, checksum and per-file sha256 (the base is not copied), and the adapter's
  file name, sha256, tensor names and shapes and LoRA configuration;
* ``adapter-<sha16>.safetensors`` - the LoRA weights, named by the first 16 hex digits of
  their sha256 (absent for a zero-shot classifier).

**Why this layout (atomic overwrite).** ``classifier.json`` is the commit point. ``save``
writes the adapter under its content-addressed name (a private temporary file, fsynced,
then renamed), then writes the JSON to a temporary file, fsyncs it and ``os.replace``-s it
over ``classifier.json``, fsyncs the directory, and only then removes adapters that the
committed JSON no longer names. A crash at any moment therefore leaves either the old
JSON (whose adapter is still there: it is removed only after the commit) or the new JSON
(whose adapter was complete on disk before the commit): never a mix. Swapping whole
directories instead would need two renames (target to trash, new to target), with a window
where the path does not exist at all, and would break readers holding the directory open.
Concurrent savers take an exclusive ``flock`` on the directory for the whole save, so one
saver's clean-up never deletes the adapter another has just committed; a saver also removes
the temporary files a crashed saver left. A reader takes no lock: if the adapter its JSON
named was removed by a later save in between, it re-reads the JSON. The JSON records the
adapter's sha256 and ``load`` verifies it, so any mix (or a hand edit) is detected anyway.

**Why loading cannot run code.** Loading reads JSON and safetensors only. No field of
``classifier.json`` names a module, class or function that the loader imports or calls:
plugin objects (templates, verbalizers, parsers) are rebuilt from the fixed registry
:func:`_plugins` by a stable kind name, and an engine object (the ``backend`` parameter) from
the engine registry (:data:`llm_classifier.engines.ENGINES`, which only code fills) by its
kind name, with their parameters checked against the constructor's keywords and restricted
to plain JSON values. Switches that load
code (``trust_remote_code``) are never read from the file: :func:`load` always restores the
backend with them off, and only the caller of ``LLMClassifier.load`` can turn them on.

``LLMClassifier.save``/``load`` call :func:`save_state`/:func:`load_state`, which take and give
the estimator's parameters and its :class:`~llm_classifier.state.FittedState` (this module never
imports the estimator or any engine).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import math
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.utils._param_validation import InvalidParameterError

from .._logging import warn_caller
from ..plugins.base import check_plugin
from ..plugins.calibration import Calibration
from ..exceptions import IncompatibleArtifactError

FORMAT = "llm_classifier"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
CONFIG_FILE = "classifier.json"
LEGACY_ADAPTER_FILE = "adapter.safetensors"  # format 1
_ADAPTER_NAME = re.compile(r"^adapter-[0-9a-f]{16}\.safetensors$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TEMP_SUFFIX = ".partial"
_UNSAVED = "__unsaved__"
_PLUGIN = "__plugin__"
_ENGINE = "__engine__"  # an engine object, by its kind name in llm_classifier.engines.ENGINES
_LEGACY_CLASS = "__class__"  # format 1 named plugins by their import path; mapped onto PLUGINS by class name
_MARKERS = (_PLUGIN, _ENGINE, _LEGACY_CLASS)


def _plugins() -> dict[str, type]:
    """The fixed registry of plugin objects an artifact may ask for, by stable kind name (engines: :func:`_engine`)."""
    from ..plugins.channel_template import ChannelTemplate
    from ..plugins.labels import DefaultParser, DefaultVerbalizer, ExactParser, MappingVerbalizer
    from ..plugins.prompts import AlpacaTemplate, ChatTemplate, FormatTemplate

    classes = (AlpacaTemplate, ChatTemplate, FormatTemplate, ChannelTemplate, DefaultVerbalizer, MappingVerbalizer,
               DefaultParser, ExactParser)
    return {cls.__name__: cls for cls in classes}


def _engine(kind: Any) -> type | None:
    """The engine class registered under the kind name ``kind`` (None when none is), from the engine registry."""
    from ..engines import ENGINES, engine_class

    return engine_class(kind) if isinstance(kind, str) and kind in ENGINES else None


def _legacy_engine_kind(class_name: str) -> str | None:
    """Before the engine registry, artifacts named a built-in engine by its class (``"TransformersBackend"``)."""
    from ..engines import BACKENDS, ENGINES

    return next((kind for kind in BACKENDS if ENGINES[kind].rpartition(":")[2] == class_name), None)


#: keyword arguments that load code; never taken from an artifact (the caller decides)
CODE_SWITCHES = ("trust_remote_code",)
#: the fields of classifier.json that may hold a plugin object, and the plugin kinds each may hold; every other
#: field holds plain JSON values only
PLUGIN_FIELDS: dict[str, tuple[str, ...]] = {
    "params.prompt": ("AlpacaTemplate", "ChatTemplate", "FormatTemplate", "ChannelTemplate"),
    "template": ("AlpacaTemplate", "ChatTemplate", "FormatTemplate", "ChannelTemplate"),
    "params.verbalizer": ("DefaultVerbalizer", "MappingVerbalizer"),
    "params.label_parser": ("DefaultParser", "ExactParser"),
    "label_parser": ("DefaultParser", "ExactParser"),
}
#: the fields of classifier.json that may hold an engine, by its registered kind name (``{"__engine__": kind}``)
ENGINE_FIELDS = ("params.backend",)
#: the deepest nesting of arrays and objects classifier.json may have (a saved one has at most 4 or 5)
MAX_DEPTH = 32


@dataclass
class Artifact:
    """An artifact's content as the file format holds it: a fitted state's data and its engine's state.

    Only this module builds one: :func:`save_state` from a
    :class:`~llm_classifier.state.FittedState` and the engine's ``state()``, :func:`load`
    from the files; :func:`load_state` turns it back into a fitted state with a loaded engine.

    ``params`` holds the estimator's constructor parameters (plugins already rebuilt by
    :func:`load`); ``adapter`` the LoRA tensors (None for zero-shot); ``model`` the base
    model's ``name``, ``fingerprint`` and ``files`` (``[[name, sha256], ...]``).
    """

    classes: np.ndarray
    answers: list[str]
    prompt_prefix: str
    prompt_suffix: str
    params: dict[str, Any]
    model: dict[str, Any]
    class_prompts: list[str] = field(default_factory=list)
    template: Any = None
    demonstrations: list[tuple[str, Any]] = field(default_factory=list)
    label_parser: Any = None
    history: dict[str, Any] = field(default_factory=dict)
    random_seed: int = 0
    calibration: Calibration | None = None
    adapter: dict[str, np.ndarray] | None = None
    adapter_config: dict[str, Any] | None = None
    format_version: int = FORMAT_VERSION
    direction: str = "direct"
    thresholds: np.ndarray | None = None  # multi-label: per-label probability thresholds


# -- plugins -----------------------------------------------------------------------------------


def _plain(value: Any) -> bool:
    """True when ``value`` survives a JSON round trip unchanged (a dict keyed by ints would not) and holds no dict
    keyed by one of the file's markers (a class named ``"__plugin__"`` in a verbalizer mapping would be read back
    as a plugin)."""
    try:
        return json.loads(json.dumps(value, allow_nan=False)) == value and not _holds_marker(value)
    except (TypeError, ValueError):
        return False


def _holds_marker(value: Any) -> bool:
    if isinstance(value, dict):
        return any(key in _MARKERS + (_UNSAVED,) for key in value) or any(_holds_marker(v) for v in value.values())
    return isinstance(value, list) and any(_holds_marker(item) for item in value)


def _constructor_keywords(cls: type) -> list[str]:
    return [name for name, parameter in inspect.signature(cls.__init__).parameters.items()
            if name != "self" and parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)]


def _file_params(cls: type) -> list[str]:
    """The constructor keywords of ``cls`` that a file may set: its declared ``file_params``, else all of them."""
    declared = getattr(cls, "file_params", None)
    return list(declared) if declared is not None else _constructor_keywords(cls)


def _json_value(value: Any) -> Any:
    """``value`` with NumPy scalars as Python numbers/bools/strs and tuples as lists, inside lists and dicts too
    (``np.float32(0.5)``, ``np.int64(2)``, ``np.bool_``: what ``np.arange`` and grid searches hand out)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_json_value(item) for item in value]
    if isinstance(value, dict):  # keys as they are: a dict keyed by ints is not plain JSON and stays unsaved
        return {key: _json_value(item) for key, item in value.items()}
    return value


def _encode_param(name: str, value: Any) -> Any:
    if _plain(_json_value(value)):
        return _json_value(value)
    from ..engines import registered_name

    cls = type(value)
    marker, kind = (_PLUGIN, cls.__name__) if _plugins().get(cls.__name__) is cls else (_ENGINE, registered_name(value))
    if kind is not None:
        encoded = {key: _json_value(getattr(value, key)) for key in _file_params(cls)}
        if all(_plain(val) for val in encoded.values()):
            return {marker: kind, "params": encoded}
    effect = ("the loaded classifier parses generated answers with the default parser, so its inference='generate' "
              "predictions may differ (scored ones are unaffected)" if name.startswith("label_parser")
              else "predictions of the loaded classifier are unaffected")
    warn_caller(
        f"The '{name}' parameter ({value!r}) cannot be saved as JSON and is stored by name only; {effect}, but "
        "refitting it needs the parameter again. Use joblib/pickle to keep arbitrary objects."
    )
    return {_UNSAVED: repr(value)}


def _decode_param(value: Any, default: Any, where: str) -> Any:
    """Rebuild a parameter: plain JSON as is, a plugin or an engine from its registry, an unsaved one as ``default``.

    Only the fields named in :data:`PLUGIN_FIELDS` may hold a plugin, and only of the kinds named there;
    only :data:`ENGINE_FIELDS` may hold an engine (by its registered kind name). A plugin's or engine's
    parameters must be plain JSON values among those its class lets a file set (``file_params``: the
    transformers engine's compute, attention kernel and shared-prefix switch); the others it once saved
    (``num_threads``, ``trust_remote_code``) are dropped, unknown ones refused, and the class's constructor
    checks the values against its declared constraints before anything loads (a plugin through
    :func:`~llm_classifier.plugins.base.check_plugin`, the check ``fit`` applies). An engine whose optional
    dependencies are missing here (``ImportError`` when built) comes back as its kind name, which raises
    that error when the classifier is used with it.
    """
    if not isinstance(value, dict):
        return value
    if _UNSAVED in value:
        return default
    if not any(marker in value for marker in _MARKERS):
        return value
    from ..engines import ENGINES

    named = value.get(_ENGINE, value.get(_PLUGIN, value.get(_LEGACY_CLASS)))
    if where not in PLUGIN_FIELDS and where not in ENGINE_FIELDS:
        raise IncompatibleArtifactError(
            f"The field '{where}' of {CONFIG_FILE} must hold a plain value, not a plugin object ({named!r}); only "
            f"the fields {', '.join([*PLUGIN_FIELDS, *ENGINE_FIELDS])} may hold llm_classifier's plugins or engines."
        )
    plugins = _plugins()
    is_engine = _ENGINE in value
    if is_engine:
        kind = named
        cls = _engine(kind)
    else:
        kind = named.rpartition(".")[2] if isinstance(named, str) and named.startswith("llm_classifier.") else named
        if _PLUGIN in value and not isinstance(named, str):
            kind = None
        cls = plugins.get(kind) if isinstance(kind, str) else None
        if cls is None and isinstance(kind, str) and _legacy_engine_kind(kind) is not None:
            kind, is_engine = _legacy_engine_kind(kind), True
            cls = _engine(kind)
    if cls is None:
        known = (f"the registered engines ({', '.join(sorted(ENGINES))})" if is_engine
                 else f"llm_classifier's own plugins ({', '.join(sorted(plugins))})")
        raise IncompatibleArtifactError(f"The field '{where}' of {CONFIG_FILE} names {named!r}, which is not one of {known}.")
    if is_engine and where not in ENGINE_FIELDS or not is_engine and kind not in PLUGIN_FIELDS.get(where, ()):
        allowed_kinds = "an engine" if where in ENGINE_FIELDS else ", ".join(PLUGIN_FIELDS[where])
        raise IncompatibleArtifactError(f"The field '{where}' of {CONFIG_FILE} names {named!r}; it may hold only "
                                        f"{allowed_kinds}.")
    params = value.get("params", {})
    if not isinstance(params, dict):
        raise IncompatibleArtifactError(f"The field '{where}.params' of {CONFIG_FILE} must be an object. Got {params!r} instead.")
    keywords, allowed = _constructor_keywords(cls), _file_params(cls)
    unknown = sorted(set(params) - set(keywords))
    if unknown:
        raise IncompatibleArtifactError(
            f"The field '{where}.params' of {CONFIG_FILE} gives {kind} the unknown parameters {unknown}; a file may set {allowed}."
        )
    for key, val in params.items():
        if not _plain(val) or (isinstance(val, dict) and any(marker in val for marker in _MARKERS)):
            raise IncompatibleArtifactError(
                f"The field '{where}.params.{key}' of {CONFIG_FILE} must be a plain JSON value. Got {val!r} instead."
            )
    safe = {key: val for key, val in params.items() if key in allowed and key not in CODE_SWITCHES}
    try:
        built = cls(**safe)
        check_plugin(built)  # a plugin's declared constraints, as fit checks them
        return built
    except ImportError:
        if not is_engine:
            raise
        return kind  # an engine whose extra is missing here (vLLM): its kind name raises the ImportError on use
    except (TypeError, ValueError) as exc:  # the class's declared constraints (InvalidParameterError is a ValueError)
        raise IncompatibleArtifactError(f"The field '{where}.params' of {CONFIG_FILE} is refused: {exc}") from None


# -- files -------------------------------------------------------------------------------------


def _read_regular(path: Path, what: str) -> bytes:
    """The bytes of ``path``, which must be a regular file inside its folder.

    A FIFO or device raises instead of blocking; a symbolic link that leads out of the artifact's folder
    (anywhere in the path, or swapped in after the check: the resolved path is opened without following
    links) is refused.
    """
    folder, real = os.path.realpath(path.parent), os.path.realpath(path)
    if not real.startswith(folder + os.sep):
        raise IncompatibleArtifactError(f"{str(path)!r} ({what}) is a symbolic link that leads out of the artifact's "
                                        f"folder (to {real!r}); an artifact's files must be inside it.")
    try:
        info = os.stat(real)
    except FileNotFoundError:
        raise
    if not stat.S_ISREG(info.st_mode):
        raise IncompatibleArtifactError(f"{str(path)!r} ({what}) is not a regular file.")
    try:
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise IncompatibleArtifactError(f"{str(path)!r} ({what}) changed while it was opened: {exc}.") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced between stat and open
            raise IncompatibleArtifactError(f"{str(path)!r} ({what}) is not a regular file.")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read()
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform/filesystem can fsync a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_durable(directory: Path, name: str, data: bytes) -> None:
    """Write ``data`` to ``directory/name`` through a fsynced temporary file and a rename."""
    fd, scratch = tempfile.mkstemp(prefix=f".{name}.", suffix=_TEMP_SUFFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(scratch, directory / name)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(scratch)
        raise


@contextlib.contextmanager
def _exclusive(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` against other savers (no-op where flock is missing)."""
    try:
        import fcntl
    except ImportError:  # Windows: concurrent savers are not serialised
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _clean(directory: Path, keep: str | None) -> None:
    """Remove adapters other than ``keep``, the format-1 adapter, and temporary files of crashed saves."""
    for entry in directory.iterdir():
        stale_adapter = (_ADAPTER_NAME.match(entry.name) or entry.name == LEGACY_ADAPTER_FILE) and entry.name != keep
        if stale_adapter or (entry.name.startswith(".") and entry.name.endswith(_TEMP_SUFFIX)):
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()


# -- save --------------------------------------------------------------------------------------


def _check_finite_adapter(adapter: dict[str, np.ndarray]) -> None:
    for name, tensor in adapter.items():
        if not np.all(np.isfinite(tensor)):
            raise ValueError(
                f"The adapter tensor {name!r} has non-finite values (NaN or inf): the fit diverged. Refit with a "
                "lower learning_rate; a diverged classifier is not saved."
            )


def _encode_calibration(calibration: Calibration | None) -> dict[str, Any] | None:
    if calibration is None:
        return None
    return {"bias": np.asarray(calibration.bias, dtype=float).tolist(), "temperature": float(calibration.temperature)}


def _config(state: Artifact, adapter_record: dict[str, Any] | None) -> dict[str, Any]:
    from .._version import __version__

    classes = state.classes
    history = {key: value for key, value in state.history.items() if _plain(value)}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "params": {name: _encode_param(name, value) for name, value in state.params.items()},
        "classes": classes.tolist(),
        "classes_dtype": classes.dtype.str,
        "answers": list(state.answers),
        "prompt_prefix": state.prompt_prefix,
        "prompt_suffix": state.prompt_suffix,
        "class_prompts": list(state.class_prompts),
        "template": _encode_param("template_", state.template),
        "demonstrations": [[text, int(np.searchsorted(classes, label))] for text, label in state.demonstrations],
        "label_parser": _encode_param("label_parser_", state.label_parser),
        "model": {"name": state.model["name"], "fingerprint": state.model["fingerprint"],
                  "files": [list(pair) for pair in state.model.get("files", ())]},
        "adapter": adapter_record,
        "adapter_config": state.adapter_config,
        "history": history,
        "random_seed": int(state.random_seed),
        "calibration": _encode_calibration(state.calibration),
        "direction": state.direction,
        "thresholds": None if state.thresholds is None else np.asarray(state.thresholds, dtype=float).tolist(),
    }


def check_saveable_classes(classes: np.ndarray) -> None:
    """Raise ``TypeError`` for classes an artifact cannot hold: it stores bools, numbers and strings (JSON), not
    other objects (dates, decimals)."""
    if classes.dtype.kind not in "biufU":
        raise TypeError(f"Classes of dtype {classes.dtype} cannot be saved as JSON; use joblib/pickle instead.")


def save(state: Artifact, path: str | os.PathLike) -> Path:
    """Write ``state`` to the directory ``path`` (created if needed), atomically (see the module docstring).

    Raises
    ------
    ValueError
        If the adapter has non-finite values (a diverged fit).
    TypeError
        If the classes cannot be stored as JSON.
    """
    from safetensors.numpy import save as to_bytes

    check_saveable_classes(state.classes)
    adapter_bytes, adapter_record = None, None
    if state.adapter is not None:
        _check_finite_adapter(state.adapter)
        tensors = {name: np.ascontiguousarray(value) for name, value in state.adapter.items()}
        adapter_bytes = to_bytes(tensors)
        sha = hashlib.sha256(adapter_bytes).hexdigest()
        adapter_record = {"file": f"adapter-{sha[:16]}.safetensors", "sha256": sha,
                          "tensors": {name: list(value.shape) for name, value in sorted(tensors.items())}}
    text = json.dumps(_config(state, adapter_record), indent=1, ensure_ascii=False, allow_nan=False)
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    with _exclusive(directory):
        if adapter_record is not None:
            _write_durable(directory, adapter_record["file"], adapter_bytes)
        _write_durable(directory, CONFIG_FILE, text.encode("utf-8"))  # the commit point
        _fsync_dir(directory)
        _clean(directory, keep=adapter_record and adapter_record["file"])
    return directory


# -- load --------------------------------------------------------------------------------------


def read_config(path: str | os.PathLike, *, any_version: bool = False) -> dict[str, Any]:
    """The checked ``classifier.json`` of the artifact at ``path`` (a regular file inside it, nesting bounded,
    a known format version unless ``any_version``), without loading anything: what ``llm-classifier info`` shows."""
    return _read_config(Path(path), any_version=any_version)


def _read_config(directory: Path, any_version: bool = False) -> dict[str, Any]:
    config_path = directory / CONFIG_FILE
    if not directory.is_dir():
        raise FileNotFoundError(f"No saved classifier at {str(directory)!r}: not a directory.")
    try:
        raw = _read_regular(config_path, "the classifier's configuration")
    except FileNotFoundError:
        raise IncompatibleArtifactError(f"{str(directory)!r} is not a saved LLMClassifier: {CONFIG_FILE} is missing.") from None
    config = parse_config(raw, str(config_path))
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise IncompatibleArtifactError(f"{str(config_path)!r} is not an llm_classifier artifact.")
    version = config.get("format_version")
    if any_version:
        return config
    if type(version) is not int or version not in READABLE_VERSIONS:  # true == 1 and 2.0 == 2 are not versions
        raise IncompatibleArtifactError(
            f"{str(directory)!r} was saved in artifact format {version!r} (library {config.get('library_version')!r}); "
            f"this library reads formats {', '.join(map(str, READABLE_VERSIONS))}. Re-save it with a matching version."
        )
    return config


def _depth(value: Any) -> int:
    """How deeply arrays and objects nest in ``value`` (iteratively: no recursion to exhaust)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if depth > MAX_DEPTH:
                break
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def parse_config(raw: bytes, where: str = CONFIG_FILE) -> Any:
    """Decode the bytes of a classifier.json, refusing one nested deeper than :data:`MAX_DEPTH`.

    Raises
    ------
    IncompatibleArtifactError
        If the bytes are not UTF-8 JSON, or nest too deeply (never ``RecursionError``).
    """
    try:
        config = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IncompatibleArtifactError(f"{where!r} is truncated or corrupt: {exc}.") from None
    except RecursionError:
        config = None
    if config is None or _depth(config) > MAX_DEPTH:
        raise IncompatibleArtifactError(f"{where!r} nests arrays or objects more than {MAX_DEPTH} deep; "
                                        "it was not written by llm_classifier.")
    return config


def adapter_file(config: dict[str, Any]) -> tuple[str | None, str | None]:
    """(file name, expected sha256) of the adapter the config names; format 1 has a fixed name and no hash."""
    if config["format_version"] == 1:
        return (LEGACY_ADAPTER_FILE if config.get("adapter_config") is not None else None), None
    record = config.get("adapter")
    if record is None:
        return None, None
    if not isinstance(record, dict) or not isinstance(record.get("file"), str) or not _ADAPTER_NAME.match(record["file"]):
        raise IncompatibleArtifactError(f"The field 'adapter.file' of {CONFIG_FILE} must name an adapter-<sha16>.safetensors file. Got {record!r} instead.")
    sha = record.get("sha256")
    if not isinstance(sha, str) or not _SHA256.match(sha) or not record["file"].startswith(f"adapter-{sha[:16]}."):
        raise IncompatibleArtifactError(
            f"The field 'adapter.sha256' of {CONFIG_FILE} must be the adapter's sha256 (64 hex digits, the first 16 "
            f"in its file name {record['file']!r}). Got {sha!r} instead."
        )
    return record["file"], sha


def _read_adapter(directory: Path, name: str, sha: str | None) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load as from_bytes

    raw = _read_regular(directory / name, "the adapter")
    if sha is not None and hashlib.sha256(raw).hexdigest() != sha:
        raise IncompatibleArtifactError(
            f"{str(directory / name)!r} does not have the sha256 recorded in the field 'adapter.sha256' of {CONFIG_FILE}: "
            "the adapter was changed or only partly written."
        )
    try:
        return from_bytes(raw)
    except (SafetensorError, OSError, ValueError) as exc:
        raise IncompatibleArtifactError(f"{str(directory / name)!r} is truncated or corrupt: {exc}.") from None


def _config_and_adapter(directory: Path) -> tuple[dict[str, Any], dict[str, np.ndarray] | None]:
    """The committed config and the adapter it names, re-reading the config if a concurrent save replaced both."""
    for _ in range(5):
        config = _read_config(directory)
        name, sha = adapter_file(config)
        if name is None:
            if config.get("adapter_config") is not None:
                raise IncompatibleArtifactError(f"{str(directory)!r} is incomplete: the field 'adapter' is missing.")
            return config, None
        try:
            return config, _read_adapter(directory, name, sha)
        except FileNotFoundError:
            if _read_config(directory) == config:
                raise IncompatibleArtifactError(f"{str(directory)!r} is incomplete: {name} is missing.") from None
    raise IncompatibleArtifactError(f"{str(directory)!r} kept changing while it was read; load it again.")


def _invalid(field_name: str, problem: str) -> IncompatibleArtifactError:
    return IncompatibleArtifactError(f"The field '{field_name}' of {CONFIG_FILE} {problem}.")


def _check_adapter(adapter: dict[str, np.ndarray] | None, config: dict[str, Any]) -> None:
    """The adapter's tensors are those recorded and finite (the engine checks their shapes at ``load_state``)."""
    if adapter is None:
        return
    if not isinstance(config.get("adapter_config"), dict):
        raise _invalid("adapter_config", f"must describe the adapter. Got {config.get('adapter_config')!r} instead")
    recorded = (config.get("adapter") or {}).get("tensors")
    if recorded is not None:
        missing, extra = sorted(set(recorded) - set(adapter)), sorted(set(adapter) - set(recorded))
        if missing or extra:
            raise _invalid("adapter.tensors", f"does not match the adapter file: missing tensors {missing[:3]}, extra tensors {extra[:3]}")
    for name, tensor in adapter.items():
        if not np.all(np.isfinite(tensor)):
            raise _invalid("adapter", f"holds non-finite values in the tensor {name!r}")


def _check_finite_list(values: Any, length: int | None, field_name: str) -> np.ndarray:
    ok = isinstance(values, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    array = np.asarray(values, dtype=np.float64) if ok else None
    if array is None or array.shape != (len(values) if length is None else length,) or not np.all(np.isfinite(array)):
        raise _invalid(field_name, f"must be {length} finite numbers (one per class). Got {values!r} instead")
    return array


def _decode_calibration(config: dict[str, Any], n_classes: int | None = None) -> Calibration | None:
    """The saved calibration; early format-1 files stored only the prior correction's log offsets."""
    saved = config.get("calibration")
    if saved is not None:
        if not isinstance(saved, dict):
            raise _invalid("calibration", f"must be an object with 'bias' and 'temperature'. Got {saved!r} instead")
        temperature = saved.get("temperature")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or temperature <= 0:
            raise _invalid("calibration.temperature", f"must be a finite number > 0. Got {temperature!r} instead")
        return Calibration(bias=_check_finite_list(saved.get("bias"), n_classes, "calibration.bias"), temperature=float(temperature))
    legacy = config.get("log_prior_correction")
    return None if legacy is None else Calibration(bias=_check_finite_list(legacy, n_classes, "log_prior_correction"))


def _classes(config: dict[str, Any]) -> np.ndarray:
    try:
        classes = np.asarray(config["classes"], dtype=np.dtype(config["classes_dtype"]))
    except (TypeError, ValueError) as exc:
        raise _invalid("classes", f"does not hold values of the dtype {config['classes_dtype']!r}: {exc}") from None
    if classes.ndim != 1 or len(classes) < 2 or not np.array_equal(np.unique(classes), classes):
        raise _invalid("classes", f"must list at least two classes, sorted and unique. Got {config['classes']!r} instead")
    return classes


def _check_strings(values: Any, length: int, field_name: str, allow_empty: bool = False) -> list[str]:
    if allow_empty and values in (None, []):
        return []
    if not isinstance(values, list) or len(values) != length or not all(isinstance(v, str) for v in values):
        raise _invalid(field_name, f"must list {length} strings, one per class. Got {values!r} instead")
    return list(values)


def _text(value: Any, field_name: str) -> str:
    """A saved prompt piece: a string of valid Unicode (a lone surrogate would fail when tokenised, at predict)."""
    try:
        if isinstance(value, str):
            value.encode("utf-8")
            return value
    except UnicodeEncodeError:
        pass
    raise _invalid(field_name, f"must be a string of valid Unicode (no lone surrogates). Got {value!r} instead")


def _answers(config: dict[str, Any], classes: np.ndarray) -> list[str]:
    """The saved answers, one string per class, passing the check ``fit`` applies to a verbalizer's answers
    (:func:`~llm_classifier.plugins.labels.check_answers`: non-empty, valid Unicode, distinct also after NFC
    normalisation and without zero-width characters)."""
    from ..plugins.labels import check_answers

    answers = _check_strings(config["answers"], len(classes), "answers")
    try:
        return check_answers(answers, classes.tolist())
    except ValueError as exc:
        raise _invalid("answers", f"holds answers fit refuses: {str(exc).rstrip('.')}") from None


def _demonstrations(config: dict[str, Any], classes: np.ndarray) -> list[tuple[str, Any]]:
    out = []
    for index, item in enumerate(config.get("demonstrations", [])):
        ok = isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) and type(item[1]) is int
        if not ok or not 0 <= item[1] < len(classes):
            raise _invalid(f"demonstrations[{index}]", f"must be [text, class code in [0, {len(classes)})]. Got {item!r} instead")
        out.append((_text(item[0], f"demonstrations[{index}][0]"), classes[item[1]]))
    return out


def load(path: str | os.PathLike, defaults: dict[str, Any] | None = None) -> Artifact:
    """Read and check an artifact written by :func:`save` (or by format 1).

    Parameters
    ----------
    path : path-like
        The artifact directory.
    defaults : dict, optional
        The estimator's default parameters: unsaved parameters fall back to them, and
        parameters the estimator no longer has are dropped.

    Raises
    ------
    IncompatibleArtifactError
        Naming the field or file that is missing, corrupt or inconsistent.
    """
    directory = Path(path)
    config, adapter = _config_and_adapter(directory)
    try:
        saved_params = config["params"]
        if not isinstance(saved_params, dict):
            raise _invalid("params", "must be an object")
        defaults = defaults or {}
        params = {name: _decode_param(value, defaults.get(name), f"params.{name}")
                  for name, value in saved_params.items() if not defaults or name in defaults}
        classes = _classes(config)
        model = config["model"]
        if not isinstance(model, dict) or not isinstance(model.get("name"), str) or not isinstance(model.get("fingerprint"), str):
            raise _invalid("model", f"must give the base model's 'name' and 'fingerprint'. Got {model!r} instead")
        _check_adapter(adapter, config)
        if defaults:
            _check_params({**defaults, **params}, classes, _direction(config))
        random_seed = config["random_seed"]
        if type(random_seed) is not int:
            raise _invalid("random_seed", f"must be an int. Got {random_seed!r} instead")
        return Artifact(
            classes=classes,
            answers=_answers(config, classes),
            prompt_prefix=_text(config["prompt_prefix"], "prompt_prefix"),
            prompt_suffix=_text(config["prompt_suffix"], "prompt_suffix"),
            params=params,
            model=dict(model),
            class_prompts=[_text(prompt, f"class_prompts[{index}]") for index, prompt in enumerate(
                _check_strings(config.get("class_prompts", []), len(classes), "class_prompts", allow_empty=True))],
            template=_plugin_field(config, "template"),
            demonstrations=_demonstrations(config, classes),
            label_parser=_plugin_field(config, "label_parser"),
            history=dict(config.get("history") or {}),
            random_seed=random_seed,
            calibration=_decode_calibration(config, len(classes)),
            adapter=adapter,
            adapter_config=config.get("adapter_config"),
            format_version=config["format_version"],
            direction=_direction(config),
            thresholds=_thresholds(config, len(classes)),
        )
    except KeyError as exc:
        raise IncompatibleArtifactError(f"{str(directory)!r} is incomplete: the field {exc} is missing.") from None


def _plugin_field(config: dict[str, Any], name: str) -> Any:
    """The fitted template or label parser: one of the plugins :data:`PLUGIN_FIELDS` allows the field, or None
    (an object of the user's, saved by name only); a plain value (a label parser of ``5``, a template string
    that escapes the format check) is refused, as ``save`` never writes one."""
    value = _decode_param(config[name], None, name)
    plugins = _plugins()
    if value is not None and not any(type(value) is plugins[kind] for kind in PLUGIN_FIELDS[name]):
        raise _invalid(name, f"must hold one of llm_classifier's plugins {', '.join(PLUGIN_FIELDS[name])} (or an "
                             f"unsaved object). Got {value!r} instead")
    return value


def check_fitted_params(params: dict[str, Any], classes: np.ndarray, formulation: str) -> None:
    """The parameters pass the same constraints and rules as ``fit``'s (:func:`~llm_classifier._params.check_param_values`),
    those of the classes and those of the formulation the classifier was fitted with: at load on the file's
    parameters, and at save on the estimator's (one set after ``fit`` that the fitted classifier refuses, e.g.
    ``few_shot=2`` on a multi-label one, saved an artifact that could never be loaded).

    Raises
    ------
    InvalidParameterError (a ValueError) or TypeError
        Naming the parameter, with ``fit``'s message.
    """
    from ..exceptions import invalid
    from ..formulations.registry import get_formulation
    from .._params import check_class_params, check_param_values

    values = check_param_values(params)
    check_class_params(values, classes)
    for name, allowed in get_formulation(formulation).check_params(values):
        raise invalid(values, name, allowed, getattr(values, name))


def _check_params(params: dict[str, Any], classes: np.ndarray, formulation: str) -> None:
    """:func:`check_fitted_params` on the parameters read from a file."""
    try:
        check_fitted_params(params, classes, formulation)
    except (TypeError, ValueError) as exc:  # InvalidParameterError is a ValueError
        raise IncompatibleArtifactError(f"The field 'params' of {CONFIG_FILE} holds a value LLMClassifier refuses: {exc}") from None


def _direction(config: dict[str, Any]) -> str:
    """The saved direction; format 1 implied it by having class prompts."""
    from ..formulations.registry import FORMULATIONS

    direction = config.get("direction", "channel" if config.get("class_prompts") else "direct")
    if direction not in FORMULATIONS:
        raise _invalid("direction", f"must be one of {sorted(FORMULATIONS)}. Got {direction!r} instead")
    if (direction == "multilabel") != (config.get("thresholds") is not None):
        raise _invalid("thresholds", "must be a list of per-label thresholds exactly when direction is 'multilabel'")
    return direction


def _thresholds(config: dict[str, Any], n_classes: int) -> np.ndarray | None:
    """The saved per-label thresholds of a multi-label classifier (each in (0, 1)), or None."""
    saved = config.get("thresholds")
    if saved is None:
        return None
    thresholds = np.asarray(_check_finite_list(saved, n_classes, "thresholds"), dtype=float)
    if not ((thresholds > 0) & (thresholds < 1)).all():
        raise _invalid("thresholds", f"must lie in (0, 1). Got {saved!r} instead")
    return thresholds


# -- the fitted state's side --------------------------------------------------------------------


def save_state(path: str | os.PathLike, params: dict[str, Any], fitted: Any) -> Path:
    """Save the estimator's ``params`` and its fitted state (a :class:`~llm_classifier.state.FittedState`)."""
    engine = fitted.engine
    if not engine.capabilities.state:
        raise TypeError(f"The engine {type(engine).__name__} cannot save its state (capabilities.state=False); "
                        "pickle the estimator instead.")
    layout = fitted.layout
    try:  # the check load makes: a value set after fit that the fitted classifier refuses would never load
        check_fitted_params(dict(params), fitted.classes, layout.formulation)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"Cannot save: {exc} Parameters set after fit must suit the fitted classifier, or the saved "
                        "one could not be loaded; set it back, or fit again.") from None
    engine_state = engine.state()
    params = dict(params)
    params["model"] = engine_state.model  # local paths absolute, so the artifact loads from any directory
    record = Artifact(
        classes=fitted.classes, answers=list(fitted.answers), prompt_prefix=layout.prefix,
        prompt_suffix=layout.suffix, params=params,
        model={"name": engine_state.model, "fingerprint": engine_state.fingerprint, "files": engine_state.files},
        class_prompts=list(layout.class_prompts), template=layout.template,
        demonstrations=[(text, fitted.classes[code]) for text, code in layout.demonstrations],
        label_parser=fitted.label_parser, history=fitted.history, random_seed=int(fitted.random_seed),
        calibration=fitted.calibration, adapter=engine_state.adapter, adapter_config=engine_state.adapter_config,
        direction=layout.formulation, thresholds=fitted.thresholds,
    )
    return save(record, path)


def load_state(path: str | os.PathLike, *, defaults: dict[str, Any], model: str | None = None,
               trust_remote_code: bool = False, backend: Any = None) -> tuple[dict[str, Any], Any]:
    """``(params, fitted state)`` of the artifact at ``path``, its engine loaded.

    ``backend`` (an engine name or object) replaces the saved ``backend`` parameter: the saved
    engine state is engine-neutral data, so a classifier fitted on one engine predicts on another.
    """
    from ..engines import restore_engine
    from ..engines.base import EngineState
    from ..exceptions import ModelNotFoundError
    from ..formulations.base import PromptLayout
    from ..pipeline.plan import plan_of_params
    from ..plugins.labels import DefaultParser
    from ..state import FittedState

    if not isinstance(trust_remote_code, bool):
        raise TypeError(f"The 'trust_remote_code' parameter of LLMClassifier.load must be a bool. "
                        f"Got {trust_remote_code!r} instead.")
    record = load(path, defaults=defaults)
    params = {**defaults, **record.params}
    if model is not None:
        params["model"] = model
    if backend is not None:
        params["backend"] = backend
    engine_state = EngineState(engine="", model=record.model["name"], fingerprint=record.model["fingerprint"],
                               adapter=record.adapter, adapter_config=record.adapter_config,
                               files=[list(pair) for pair in record.model.get("files") or ()],
                               legacy_fingerprint=record.format_version == 1)
    try:
        engine = restore_engine(engine_state, params["backend"], plan_of_params(params).engine_options, model=model,
                                trust_remote_code=trust_remote_code)
    except ModelNotFoundError as exc:
        raise ModelNotFoundError(f"{exc} The saved classifier needs its base model; if the model moved, pass "
                                 "LLMClassifier.load(path, model=<its new location>).") from None
    except InvalidParameterError as exc:
        if backend is not None:  # the caller's own argument: its error is theirs
            raise
        raise IncompatibleArtifactError(f"The field 'params.backend' of {CONFIG_FILE} is refused: {exc}") from None
    codes = {label: code for code, label in enumerate(record.classes.tolist())}
    layout = PromptLayout(record.direction, record.template,
                          [(text, codes[label.item() if hasattr(label, "item") else label])
                           for text, label in record.demonstrations],
                          list(record.class_prompts), record.prompt_prefix, record.prompt_suffix)
    fitted = FittedState(record.classes, list(record.answers), layout, record.label_parser or DefaultParser(), engine,
                    dict(record.history), record.random_seed, record.calibration, record.thresholds)
    return params, fitted
