"""Drawn task samples in one file, to run the suite where the data packages are not installed.

``python -m benchmarks --save-samples S.json.xz --tasks ...`` draws each task's train / test
sample here and writes them; ``python -m benchmarks --samples S.json.xz ...`` on another
machine (a GPU host without network, say) reads them instead of the data packages, so both
machines score the very same texts. :func:`load_task` consults the file named by
``$LLM_CLASSIFIER_SAMPLES``, which subprocess-isolated runs inherit.
"""

from __future__ import annotations

import json
import lzma
import os
from collections.abc import Sequence
from pathlib import Path

from .sources import MissingDataError

#: Environment variable naming a samples file that :func:`benchmarks.tasks.load_task` reads first.
SAMPLES_ENV = "LLM_CLASSIFIER_SAMPLES"

_FIELDS = ("train_texts", "train_labels", "test_texts", "test_labels", "metadata", "train_groups", "test_groups")


def _key(name: str, n_train: int | None, n_test: int | None, seed: int) -> str:
    return f"{name}|{n_train}|{n_test}|{seed}"


def save_samples(tasks: Sequence[str], path: str | Path, n_train: int | None = 500, n_test: int | None = 200,
                 seed: int = 0) -> Path:
    """Draw ``tasks`` with :func:`~benchmarks.tasks.load_task` and write them to ``path`` (xz-compressed JSON).

    Returns
    -------
    Path
        The file written.
    """
    from .tasks import load_task

    payload = {}
    for name in tasks:
        data = load_task(name, n_train=n_train, n_test=n_test, seed=seed)
        payload[_key(name, n_train, n_test, seed)] = {f: getattr(data, f) for f in _FIELDS}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with lzma.open(path, "wt", encoding="utf-8") as fh:
        json.dump(payload, fh, ensure_ascii=False)
    return path


def load_saved_sample(name: str, n_train: int | None, n_test: int | None, seed: int):
    """The sample saved for this task and size in ``$LLM_CLASSIFIER_SAMPLES``, or ``None`` when unset.

    Raises
    ------
    MissingDataError
        If the variable names a file that lacks this task, size and seed.
    """
    path = os.environ.get(SAMPLES_ENV)
    if not path:
        return None
    from .tasks import TaskData

    payload = _read(path)
    key = _key(name, n_train, n_test, seed)
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

