"""Drawn task samples (:class:`TaskData`) and the file that carries them to another machine.

``python -m benchmarks --save-samples S.json.xz --tasks ...`` draws each task's train / test
sample (:func:`benchmarks.tasks.save_samples`) and writes them here; ``python -m benchmarks
--samples S.json.xz ...`` on another machine (a GPU host without network, say) reads them
instead of the data packages, so both machines score the very same texts.
:func:`benchmarks.tasks.load_task` consults the file named by ``$LLM_CLASSIFIER_SAMPLES``,
which subprocess-isolated runs inherit. This module imports nothing else of the suite
but :mod:`benchmarks.sources`; :mod:`benchmarks.tasks` builds on it.
"""

from __future__ import annotations

import json
import lzma
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .sources import MissingDataError

__all__ = ["SAMPLES_ENV", "TaskData", "load_saved_sample", "sample_key", "write_samples"]

#: Environment variable naming a samples file that :func:`benchmarks.tasks.load_task` reads first.
SAMPLES_ENV = "LLM_CLASSIFIER_SAMPLES"

_FIELDS = ("train_texts", "train_labels", "test_texts", "test_labels", "metadata", "train_groups", "test_groups")


@dataclass
class TaskData:
    """A sampled task: unpacks as ``train_texts, train_labels, test_texts, test_labels, metadata``.

    Attributes
    ----------
    train_texts, train_labels, test_texts, test_labels : list of str
    metadata : dict
        Name, description, source, classes, counts per class, sizes, seed.
    train_groups, test_groups : list of str
        Group of each example (for checking that no group straddles the split).
    """

    train_texts: list[str]
    train_labels: list[str]
    test_texts: list[str]
    test_labels: list[str]
    metadata: dict = field(default_factory=dict)
    train_groups: list[str] = field(default_factory=list)
    test_groups: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator:
        yield from (self.train_texts, self.train_labels, self.test_texts, self.test_labels, self.metadata)


def sample_key(name: str, n_train: int | None, n_test: int | None, seed: int) -> str:
    """The key of one task's sample (task, sizes and seed) in a samples file."""
    return f"{name}|{n_train}|{n_test}|{seed}"


def write_samples(drawn: Mapping[str, TaskData], path: str | Path) -> Path:
    """Write samples keyed by :func:`sample_key` to ``path`` (xz-compressed JSON); returns the path."""
    payload = {key: {f: getattr(data, f) for f in _FIELDS} for key, data in drawn.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with lzma.open(path, "wt", encoding="utf-8") as fh:
        json.dump(payload, fh, ensure_ascii=False)
    return path


def load_saved_sample(name: str, n_train: int | None, n_test: int | None, seed: int) -> TaskData | None:
    """The sample saved for this task and size in ``$LLM_CLASSIFIER_SAMPLES``, or ``None`` when unset.

    Raises
    ------
    MissingDataError
        If the variable names a file that lacks this task, size and seed.
    """
    path = os.environ.get(SAMPLES_ENV)
    if not path:
        return None
    payload = _read(path)
    key = sample_key(name, n_train, n_test, seed)
    if key not in payload:
        saved = ", ".join(sorted(payload)) or "none"
        raise MissingDataError(f"{path} (${SAMPLES_ENV}) holds no sample for task {name!r}, n_train={n_train}, "
                               f"n_test={n_test}, seed={seed}; it holds: {saved}")
    return TaskData(**payload[key])


_CACHE: dict[str, dict] = {}


def _read(path: str) -> dict:
    cached = _CACHE.get(path)
    if cached is None:
        with lzma.open(path, "rt", encoding="utf-8") as fh:
            cached = _CACHE[path] = json.load(fh)
    return cached
