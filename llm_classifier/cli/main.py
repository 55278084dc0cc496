"""The ``llm-classifier`` command line: fit, predict, evaluate and inspect classifiers on data files.

A thin layer over :class:`~llm_classifier.LLMClassifier`::

    llm-classifier fit train.csv --text-column text --label-column label --out clf --max-steps 100
    llm-classifier predict clf new.jsonl --text-column text --output predictions.csv
    llm-classifier evaluate clf test.parquet --text-column text --label-column label --confusion-png cm.png
    llm-classifier info clf
    llm-classifier fit tagged.csv --label-column topics --label-sep '|' --out tagger   # multi-label

It uses only the public API: ``predict`` labels rows with ``LLMClassifier.predict_from_proba``
(or ``predict``), so its output is ``LLMClassifier.load(ARTIFACT).predict(texts)`` for every
low-confidence policy and for multi-label classifiers. Output files appear complete or not at
all (written to a temporary file, then renamed), CSV/TSV cells that a spreadsheet would run as
formulas are escaped, and ``info`` escapes control characters.

Data files are CSV, TSV, JSON Lines or Parquet (by extension, or ``--format``). Errors are
one line, ``llm-classifier: error: ...``, naming the file, row and column; the exit status
is 2 for usage and parameter errors and 1 for bad data (``--debug`` shows the traceback).
See docs/cli.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain
from typing import Any

import numpy as np

from ..exceptions import LowConfidenceError, LowConfidenceWarning, UnparseableAnswerWarning
from ..io.tables import (FORMATS, STDIO, Row, TableError, TableWriter, chunked, count_rows, detect_format, indicators_of,
                         join_labels, label_of, labels_of, read_rows, text_of)

PROG = "llm-classifier"


class UsageError(Exception):
    """A bad command line (exit status 2)."""


# -- options -----------------------------------------------------------------------------------
def parse_value(text: str) -> Any:
    """A parameter value from the command line: JSON when it parses (``16``, ``1e-3``, ``null``,
    ``true``, ``["q_proj"]``, ``{"pos": "good"}``), else the string itself (``balanced``)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _estimator_params() -> dict[str, Any]:
    from ..estimator import LLMClassifier

    return LLMClassifier().get_params(deep=False)


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


DEFAULT_LABEL_SEP = "|"


def _add_data_options(parser: argparse.ArgumentParser, label: bool, multilabel_default: str | None = DEFAULT_LABEL_SEP) -> None:
    parser.add_argument("--text-column", default="text", help="column of the texts (default: text)")
    if label:
        parser.add_argument("--label-column", default="label", help="column of the labels (default: label)")
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--label-sep", default=multilabel_default, metavar="SEP",
                           help="multi-label data: the label column holds label sets as texts joined by SEP "
                                "('sport|finance'; an empty cell: no label)" +
                                (f" (default for multi-label classifiers: {multilabel_default!r})" if multilabel_default else ""))
        group.add_argument("--label-columns", metavar="A,B", type=_column_list,
                           help="multi-label data: one 0/1 column per label, the column names being the labels")
    parser.add_argument("--format", choices=FORMATS, help="format of DATA (default: from its extension; needed for '-')")


def _column_list(spec: str) -> list[str]:
    columns = list(dict.fromkeys(c.strip() for c in spec.split(",") if c.strip()))
    if not columns:
        raise argparse.ArgumentTypeError("expected comma-separated column names")
    return columns


def _add_fit(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "fit", parents=[common], help="fine-tune a classifier on a data file and save it",
        description="Fine-tune an LLMClassifier on the texts and labels of DATA and save it to --out. "
                    "Every LLMClassifier parameter is an option; values are read as JSON when they parse "
                    "(16, 1e-3, null, true, [\"q_proj\"]) and as strings otherwise.")
    parser.add_argument("data", metavar="DATA", help="training data: .csv, .tsv, .jsonl/.ndjson, .parquet, or '-' (stdin)")
    _add_data_options(parser, label=True, multilabel_default=None)
    parser.add_argument("--out", required=True, metavar="ARTIFACT", help="directory to save the fitted classifier to")
    group = parser.add_argument_group("LLMClassifier parameters (see docs/parameters.md)")
    for name, default in _estimator_params().items():
        group.add_argument(_option(name), dest=f"param_{name}", type=parse_value, default=argparse.SUPPRESS,
                           metavar="VALUE", help=f"default: {json.dumps(default) if isinstance(default, (str, int, float, type(None))) else default!r}")
    parser.set_defaults(run=run_fit)


def _add_predict(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "predict", parents=[common], help="predict the labels (and probabilities) of a data file",
        description="Predict the label of every text of DATA, streaming it in chunks, and write one row per "
                    "text: the --keep-columns, 'label', and one 'p_<class>' probability column per class. The "
                    "labels are exactly LLMClassifier.load(ARTIFACT).predict(texts).")
    parser.add_argument("artifact", metavar="ARTIFACT", help="a classifier saved by 'fit' (or LLMClassifier.save)")
    parser.add_argument("data", metavar="DATA", help="texts to classify: .csv, .tsv, .jsonl/.ndjson, .parquet, or '-' (stdin)")
    _add_data_options(parser, label=False)
    parser.add_argument("--output", "-o", default=STDIO, help="where to write: .csv, .tsv, .jsonl, .parquet or '-' (stdout, default)")
    parser.add_argument("--output-format", choices=FORMATS, help="format of --output (default: from its extension; csv for '-')")
    parser.add_argument("--proba", action=argparse.BooleanOptionalAction, default=True,
                        help="write the p_<class> probability columns (default: yes)")
    parser.add_argument("--keep-columns", default="", metavar="A,B", help="input columns to copy to the output, comma-separated")
    parser.add_argument("--label-sep", default=DEFAULT_LABEL_SEP, metavar="SEP",
                        help=f"multi-label classifiers: the label cell joins the predicted labels by SEP (default: {DEFAULT_LABEL_SEP!r})")
    parser.add_argument("--escape-formulas", action=argparse.BooleanOptionalAction, default=True,
                        help="CSV/TSV: prefix text cells starting with = + - @, tab or CR with ' so that spreadsheets "
                             "show them instead of running them as formulas (default: yes)")
    _add_streaming_options(parser)
    parser.set_defaults(run=run_predict)


def _add_streaming_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--chunk-size", type=int, default=1000, help="rows read and predicted at a time (default: 1000)")
    parser.add_argument("--eval-batch-size", type=int, help="texts per forward pass (default: the classifier's eval_batch_size)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def _add_evaluate(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "evaluate", parents=[common], help="classification report and confusion matrix on labelled data",
        description="Predict the texts of DATA and compare with its labels: accuracy, macro-F1, scikit-learn's "
                    "classification report and the confusion matrix; for a multi-label classifier, subset accuracy, "
                    "micro-, macro- and samples-F1 and the per-label report.")
    parser.add_argument("artifact", metavar="ARTIFACT", help="a classifier saved by 'fit' (or LLMClassifier.save)")
    parser.add_argument("data", metavar="DATA", help="labelled texts: .csv, .tsv, .jsonl/.ndjson, .parquet, or '-' (stdin)")
    _add_data_options(parser, label=True)
    parser.add_argument("--confusion-png", metavar="PNG", help="also draw the confusion matrix to this PNG (needs matplotlib)")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    _add_streaming_options(parser)
    parser.set_defaults(run=run_evaluate)


def _add_info(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "info", parents=[common], help="what a saved classifier holds (without loading the model)",
        description="Show a saved classifier's classes, base model, parameters, training summary and adapter size.")
    parser.add_argument("artifact", metavar="ARTIFACT", help="a classifier saved by 'fit' (or LLMClassifier.save)")
    parser.add_argument("--json", action="store_true", help="print it as JSON")
    parser.set_defaults(run=run_info)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``llm-classifier`` and its four subcommands."""
    from .._version import __version__

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    parser = argparse.ArgumentParser(prog=PROG, description="Fine-tune and apply LLM text classifiers on data files.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_fit(subparsers, common)
    _add_predict(subparsers, common)
    _add_evaluate(subparsers, common)
    _add_info(subparsers, common)
    return parser


# -- fit ---------------------------------------------------------------------------------------
def _target_reader(args: argparse.Namespace, name: str, multilabel: bool) -> Callable[[Row], Any]:
    """How a row's target is read: one label, a label set split at --label-sep, or the names of
    the --label-columns holding 1."""
    if args.label_columns:
        return lambda row: indicators_of(row, args.label_columns, name)
    if multilabel:
        return lambda row: labels_of(row, args.label_column, name, args.label_sep)
    return lambda row: label_of(row, args.label_column, name)


def _label_input_columns(args: argparse.Namespace) -> list[str]:
    """The columns the targets are read from; never the text column (each text would be its own label)."""
    columns, option = (list(args.label_columns), "--label-columns") if args.label_columns else ([args.label_column],
                                                                                                "--label-column")
    if args.text_column in columns:
        raise UsageError(f"{option}: {args.text_column!r} is the text column (--text-column); name the column of the "
                         "labels.")
    return columns


def _read_labelled(args: argparse.Namespace) -> tuple[list[str], list[Any]]:
    name = _name(args.data)
    multilabel = bool(args.label_sep or args.label_columns)
    target = _target_reader(args, name, multilabel)
    texts, labels = [], []
    for row in read_rows(args.data, [args.text_column, *_label_input_columns(args)], args.format):
        texts.append(text_of(row, args.text_column, name))
        labels.append(target(row))
    if not texts:
        raise TableError(f"{name}: no rows to train on.")
    _check_saveable(labels, multilabel, args.label_column, name)
    if args.label_columns:
        for column in args.label_columns:  # a label set names only the labels it holds: a label never 1 would vanish
            if not any(column in row for row in labels):
                raise TableError(f"{name}: the label column {column!r} holds 1 in no row; every label needs an example.")
    return texts, labels


def _check_saveable(labels: list[Any], multilabel: bool, column: str, name: str) -> None:
    """Refuse, before training, labels that ``fit`` takes but the saved classifier cannot hold (dates, decimals
    from Parquet): the fit would run to its end and then fail to save."""
    from ..io.artifact import check_saveable_classes

    distinct = list(dict.fromkeys(chain.from_iterable(labels) if multilabel else labels))
    try:
        check_saveable_classes(np.asarray(distinct))
    except TypeError:
        example = next((label for label in distinct if np.asarray([label]).dtype.kind not in "biufU"), distinct[0])
        raise TableError(f"{name}: the label column {column!r} holds values such as {example!r} "
                         f"({type(example).__name__}), which a saved classifier cannot hold (it holds texts, booleans "
                         "and numbers of up to 64 bits); convert the column first.") from None


def _name(path: str) -> str:
    return "<stdin>" if path == STDIO else path


def run_fit(args: argparse.Namespace) -> int:
    from ..estimator import LLMClassifier

    if os.path.isfile(args.out):
        raise UsageError(f"--out {args.out}: is a file; the classifier is saved as a directory.")
    if args.label_sep == "":
        raise UsageError("--label-sep must not be empty.")
    params = {key[len("param_"):]: value for key, value in vars(args).items() if key.startswith("param_")}
    if isinstance(params.get("model"), str) and os.path.exists(params["model"]):
        params["model"] = os.path.abspath(params["model"])  # the artifact names the base; it must load from any directory
    texts, labels = _read_labelled(args)
    if args.label_sep and not args.label_columns:  # predict and evaluate will join and split these labels again
        _check_separator(dict.fromkeys(label for row in labels for label in row), args.label_sep)
    multilabel = bool(args.label_sep or args.label_columns)
    classes = list(dict.fromkeys(chain.from_iterable(labels) if multilabel else labels))
    for name in ("verbalizer", "class_weight"):  # JSON objects: their keys are texts, the classes may be numbers
        if isinstance(params.get(name), dict):
            params[name] = _keyed_by_class(_option(name), params[name], classes)
    classifier = LLMClassifier(**params).fit(texts, labels)
    classifier.save(args.out)
    history = classifier.history_
    classes = ", ".join(map(str, classifier.classes_.tolist()))
    kind = "labels" if _is_multilabel(classifier) else "classes"
    runtime = history.get("train_runtime")
    took = f" in {runtime:.1f} s" if isinstance(runtime, (int, float)) else ""
    print(printable(f"{PROG}: trained on {len(texts)} texts ({len(classifier.classes_)} {kind}: {classes}), "
                    f"{history.get('n_steps', 0)} steps{took}; saved to {args.out}"), file=sys.stderr)
    return 0


def _keyed_by_class(option: str, mapping: dict[str, Any], classes: list[Any]) -> dict[Any, Any]:
    """``mapping`` (the JSON object of ``option``, whose keys are always texts) keyed by the classes its keys denote,
    matched as ``evaluate`` matches a file's labels (:func:`_class_namer`): ``"1"`` keys the class ``1`` read from
    JSON Lines or Parquet, ``"true"`` the class ``True``. Left as texts, such keys named no class: the verbalizer had
    no answer for the classes, and ``class_weight`` refused them.

    A key that denotes no class is kept as it is, for the parameter's own rule (``class_weight`` refuses it, naming
    it; a verbalizer's extra key is unused, as in Python). Raises :class:`UsageError` naming a key that denotes two
    classes (``1`` and ``"1"``), or a class that two keys denote (``"1"`` and ``"1.0"``).
    """
    named = _class_namer(classes)
    by_text: dict[str, list[Any]] = {}
    for label in classes:
        by_text.setdefault(str(label), []).append(label)
    keyed: dict[Any, Any] = {}
    keys: dict[Any, str] = {}
    for key, value in mapping.items():
        matches = by_text.get(named(key), [key])  # no class: the key itself
        if len(matches) > 1:
            raise UsageError(f"{option}: the key {key!r} names the classes {matches!r} alike; a key must name one class.")
        label = matches[0]
        if label in keyed:
            raise UsageError(f"{option}: the keys {keys[label]!r} and {key!r} both name the class {label!r}; give it once.")
        keyed[label], keys[label] = value, key
    return keyed


# -- predict -----------------------------------------------------------------------------------
def _load(artifact: str, eval_batch_size: int | None) -> Any:
    from ..estimator import LLMClassifier

    classifier = LLMClassifier.load(artifact)
    if eval_batch_size is not None:
        classifier.set_params(eval_batch_size=eval_batch_size)
    return classifier


def _is_multilabel(classifier: Any) -> bool:
    """Multi-label classifiers have per-label thresholds (``thresholds_``); single-label ones None."""
    return getattr(classifier, "thresholds_", None) is not None


def _first_chunk(chunks: Iterator[list[Row]], path: str) -> Iterator[list[Row]]:
    """``chunks`` with the first one read now, so that a bad file fails before the model loads."""
    first = next(chunks, None)
    if first is None:
        raise TableError(f"{_name(path)}: no rows.")
    return chain([first], chunks)


def _open(args: argparse.Namespace, columns: list[str]) -> tuple[Iterator[list[Row]], str, Any]:
    """DATA's chunks (the first read), its format and the loaded classifier, checked in that order."""
    if args.chunk_size < 1:
        raise UsageError(f"--chunk-size must be at least 1; got {args.chunk_size}.")
    if args.label_sep == "":
        raise UsageError("--label-sep must not be empty.")
    _read_config(args.artifact)  # a wrong ARTIFACT fails before DATA is read
    fmt = detect_format(args.data, args.format)
    chunks = _first_chunk(chunked(read_rows(args.data, columns, fmt, batch_size=args.chunk_size), args.chunk_size), args.data)
    return chunks, fmt, _load(args.artifact, args.eval_batch_size)


_LIBRARY_WARNINGS = (LowConfidenceWarning, UnparseableAnswerWarning)


def _decide(classifier: Any, texts: list[str], proba: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Predictions (and probabilities) of ``texts``, exactly as ``classifier.predict(texts)``.

    With probabilities and label scoring the texts are scored once and the public decision rule
    :meth:`~llm_classifier.LLMClassifier.predict_from_proba` (thresholds, the low-confidence
    policy, multi-label thresholds) turns them into predictions, as ``predict`` does.
    """
    if not proba:
        return classifier.predict(texts), None
    probabilities = classifier.predict_proba(texts)
    if classifier.get_params()["inference"] == "score":
        return classifier.predict_from_proba(probabilities), probabilities
    return classifier.predict(texts), probabilities  # generation decides the label; the probabilities are the scores'


def _in_file(message: str, rows: list[Row], name: str) -> str:
    """A library message about a chunk, its rows (counted from 0 in the chunk) renamed as the file's rows."""
    def row(match: re.Match) -> str:
        index = int(match.group(1))
        return f"row {rows[index].number}" if index < len(rows) else match.group(0)
    return f"{name}: rows {rows[0].number} to {rows[-1].number}: " + re.sub(r"\brow (\d+)", row, message)


def _decide_chunk(classifier: Any, texts: list[str], proba: bool, rows: list[Row], name: str
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`_decide`, with the library's warnings and low-confidence errors naming the file's rows."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", _LIBRARY_WARNINGS[0])
        warnings.simplefilter("always", _LIBRARY_WARNINGS[1])
        try:
            decided = _decide(classifier, texts, proba)
        except LowConfidenceError as exc:
            raise TableError(_in_file(str(exc), rows, name)) from None
    for warning in caught:
        if issubclass(warning.category, _LIBRARY_WARNINGS):
            print(printable(f"{PROG}: warning: {_in_file(str(warning.message), rows, name)}"), file=sys.stderr)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno, registry=_REGISTRY)
    return decided


_REGISTRY: dict[Any, Any] = {}  # other warnings, passed on: each shown once, as Python's default filter does


def _progress(path: str, fmt: str, quiet: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=None if quiet else count_rows(path, fmt), disable=quiet, unit="text", desc="Predicting",
                file=sys.stderr, dynamic_ncols=True)


def _iter_predictions(args: argparse.Namespace, chunks: Iterator[list[Row]], fmt: str, classifier: Any, proba: bool,
                      target: Callable[[Row], Any] | None = None
                      ) -> Iterator[tuple[list[Row], list[Any] | None, np.ndarray, np.ndarray | None]]:
    """Per chunk of DATA: its rows, targets (``target`` of each row, or None), predictions and
    probabilities (or None). The rows' texts and targets are checked before the chunk is predicted."""
    name = _name(args.data)
    with _progress(args.data, fmt, args.quiet) as bar:
        for rows in chunks:
            texts = [text_of(row, args.text_column, name) for row in rows]
            targets = None if target is None else [target(row) for row in rows]
            predictions, probabilities = _decide_chunk(classifier, texts, proba, rows, name)
            yield rows, targets, predictions, probabilities
            bar.update(len(rows))


def _keep_columns(spec: str) -> list[str]:
    columns = [c.strip() for c in spec.split(",") if c.strip()]
    return list(dict.fromkeys(columns))


def _label_cells(predictions: np.ndarray, classes: list[Any], multilabel: bool, sep: str) -> list[Any]:
    """The label column: the prediction (a class, or the low-confidence reject value), or for
    multi-label the predicted labels joined by ``sep``."""
    if multilabel:
        return [join_labels((c for c, v in zip(classes, row) if v), sep) for row in np.asarray(predictions)]
    return [value.item() if isinstance(value, np.generic) else value for value in predictions.tolist()]


def _check_separator(classes: Iterable[Any], sep: str) -> None:
    """Refuse labels that joined by ``sep`` would not split back into themselves.

    A label containing ``sep`` splits in two; with a separator of several characters, a label
    ending with the separator's first characters moves the split (``"a|" + "||" + "b"`` reads as
    ``"a"`` and ``"|b"``). Without either, ``str.split`` finds each joint first, so every join of
    the labels splits back exactly.
    """
    for label in classes:
        text = str(label)
        if sep in text:
            raise UsageError(f"--label-sep {sep!r}: the label {text!r} contains it, so joined labels could not "
                             "be told apart; choose another separator.")
        overlap = next((sep[:k] for k in range(len(sep) - 1, 0, -1) if text.endswith(sep[:k])), None)
        if overlap is not None:
            raise UsageError(f"--label-sep {sep!r}: the label {text!r} ends with {overlap!r}, the separator's start, "
                             "so joined labels could not be told apart; choose another separator.")


def run_predict(args: argparse.Namespace) -> int:
    keep = _keep_columns(args.keep_columns)
    if "label" in keep:
        raise UsageError("--keep-columns: 'label' is the output's label column; rename the input column.")
    if args.output != STDIO and args.data != STDIO and os.path.exists(args.output) and os.path.exists(args.data) \
            and os.path.samefile(args.output, args.data):
        raise UsageError(f"--output {args.output}: is DATA itself; the predictions would replace the texts. "
                         "Write them to another file.")
    writer = TableWriter(args.output, args.output_format, escape_formulas=args.escape_formulas)  # fails before the model loads
    chunks, fmt, classifier = _open(args, [args.text_column, *keep])
    classes = classifier.classes_.tolist()
    multilabel = _is_multilabel(classifier)
    if multilabel:
        _check_separator(classes, args.label_sep)
    writer.declare("label", _label_values(classifier, classes, multilabel))
    outputs = ["label", *([f"p_{c}" for c in classes] if args.proba else [])]
    for column in keep:
        if column in outputs:
            raise UsageError(f"--keep-columns: {column!r} is an output column (the label or a class's probability); "
                             "rename the input column.")
    with writer:
        for rows, _, predictions, probabilities in _iter_predictions(args, chunks, fmt, classifier, args.proba):
            labels = _label_cells(predictions, classes, multilabel, args.label_sep)
            writer.write(_output_rows(rows, labels, probabilities, classes, keep))
    return 0


def _label_values(classifier: Any, classes: list[Any], multilabel: bool) -> list[Any]:
    """Every value the label column may hold: the classes, and the low-confidence reject value (any
    ``on_low_confidence`` but "warn" and "raise" once ``confidence_threshold`` is set); multi-label: texts."""
    if multilabel:
        return [""]
    from .._params import is_reject_value

    params = classifier.get_params()
    policy = params["on_low_confidence"]
    rejects = params["confidence_threshold"] is not None and is_reject_value(policy)
    return list(classes) + ([policy] if rejects else [])


def _output_rows(rows: list[Row], labels: list[Any], probabilities: np.ndarray | None, classes: list[Any],
                 keep: list[str]) -> list[dict[str, Any]]:
    out = []
    for i, row in enumerate(rows):
        record = {column: row.values.get(column) for column in keep}
        record["label"] = labels[i]
        if probabilities is not None:
            record.update({f"p_{c}": float(p) for c, p in zip(classes, probabilities[i])})
        out.append(record)
    return out


# -- evaluate ----------------------------------------------------------------------------------
def _check_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("--confusion-png needs matplotlib, which is not installed: pip install matplotlib") from None


def run_evaluate(args: argparse.Namespace) -> int:
    if args.confusion_png:
        _check_matplotlib()
    name = _name(args.data)
    chunks, fmt, classifier = _open(args, [args.text_column, *_label_input_columns(args)])
    classes = classifier.classes_.tolist()
    multilabel = _is_multilabel(classifier)
    if multilabel and args.confusion_png:
        raise UsageError("--confusion-png: a multi-label classifier has one 2x2 matrix per label; "
                         "--json gives them (label_confusion).")
    if args.label_columns and not multilabel:
        raise UsageError("--label-columns: the classifier is single-label; name its one label column with --label-column.")
    if multilabel and not args.label_columns:  # the true label sets are split at --label-sep
        _check_separator(classes, args.label_sep)
    if args.label_columns:
        missing = [str(c) for c in classes if str(c) not in args.label_columns]
        if missing:
            raise UsageError(f"--label-columns lacks the classifier's labels {', '.join(map(repr, missing))}.")
    target = _target_reader(args, name, multilabel)
    named = _class_namer(classes)
    y_true: list[Any] = []
    y_pred: list[Any] = []
    for _, targets, predictions, _ in _iter_predictions(args, chunks, fmt, classifier, False, target):
        if multilabel:
            y_true.extend([named(label) for label in labels] for labels in targets)
            y_pred.extend([str(c) for c, v in zip(classes, row) if v] for row in np.asarray(predictions))
        else:
            y_true.extend(map(named, targets))
            y_pred.extend(map(str, _label_cells(predictions, classes, False, args.label_sep)))
    labels = [str(c) for c in classes]
    metrics = multilabel_evaluation(y_true, y_pred, labels) if multilabel else evaluation(y_true, y_pred, labels)
    if args.confusion_png:
        _draw_confusion(metrics, args.confusion_png)
    if args.json:
        print(printable_json(metrics))
    else:
        print(_format_multilabel(metrics) if multilabel else _format_evaluation(metrics))
    return 0


def _class_namer(classes: list[Any]) -> Callable[[Any], str]:
    """How a true label read from a file is named in the metrics: as the class it denotes, else as its text.

    A file gives text (CSV) or JSON's strings and numbers, while a classifier fitted in Python may
    have numeric or boolean classes: the cell ``"1"`` denotes the class ``1.0``, ``1`` the class ``"1"`` and
    ``"true"`` the class ``True``. A cell is matched by its text first, then by its value.
    """
    texts = {str(c) for c in classes}
    truths = {str(c).lower(): str(c) for c in classes if isinstance(c, (bool, np.bool_))}  # CSV's "true" is True
    numbers: dict[float, str] = {}
    for c in classes:
        if isinstance(c, (int, float, np.integer, np.floating)) and not isinstance(c, (bool, np.bool_)):
            numbers.setdefault(float(c), str(c))

    def name(value: Any) -> str:
        text = str(value)
        if text in texts:
            return text
        if text.strip().lower() in truths:
            return truths[text.strip().lower()]
        if not numbers or isinstance(value, (bool, np.bool_)):
            return text
        try:
            return numbers.get(float(value), text)
        except (TypeError, ValueError, OverflowError):
            return text
    return name


def evaluation(y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, the per-class report and the confusion matrix (labels compared as text;
    true labels outside ``classes`` follow them, and the matrix's last columns are the predictions outside
    both, such as a low-confidence reject value, so that it counts every text)."""
    from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

    labels = list(classes) + sorted(set(y_true) - set(classes))
    shown = labels + sorted(set(y_pred) - set(labels))
    return {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "labels": shown,
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=shown).tolist(),
        "report": classification_report(y_true, y_pred, labels=labels, zero_division=0, output_dict=True),
        "report_text": classification_report(y_true, y_pred, labels=labels, zero_division=0, digits=3),
    }


def multilabel_evaluation(y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]], classes: Sequence[str]
                          ) -> dict[str, Any]:
    """Multi-label scores of label sets (labels compared as text; true labels outside ``classes``
    follow them): subset accuracy (every label of a text right), Hamming loss, micro-, macro- and
    samples-F1, the per-label report and each label's 2x2 confusion matrix ``[[tn, fp], [fn, tp]]``."""
    from sklearn.metrics import (accuracy_score, classification_report, f1_score, hamming_loss,
                                 multilabel_confusion_matrix)
    from sklearn.preprocessing import MultiLabelBinarizer

    labels = list(classes) + sorted({label for row in y_true for label in row} - set(classes))
    binarizer = MultiLabelBinarizer(classes=labels).fit([])
    true, pred = binarizer.transform(y_true), binarizer.transform(y_pred)
    scores = {average: float(f1_score(true, pred, average=average, zero_division=0)) for average in ("micro", "macro", "samples")}
    return {
        "n": len(y_true),
        "multilabel": True,
        "subset_accuracy": float(accuracy_score(true, pred)),
        "hamming_loss": float(hamming_loss(true, pred)),
        "micro_f1": scores["micro"],
        "macro_f1": scores["macro"],
        "samples_f1": scores["samples"],
        "labels": labels,
        "label_confusion": {label: matrix.tolist() for label, matrix in zip(labels, multilabel_confusion_matrix(true, pred))},
        "report": classification_report(true, pred, target_names=labels, zero_division=0, output_dict=True),
        "report_text": classification_report(true, pred, target_names=labels, zero_division=0, digits=3),
    }


def _format_multilabel(metrics: dict[str, Any]) -> str:
    exact = round(metrics["subset_accuracy"] * metrics["n"])
    lines = [f"subset accuracy  {metrics['subset_accuracy']:.4f}  ({exact} of {metrics['n']} texts with every label right)",
             f"micro-F1         {metrics['micro_f1']:.4f}",
             f"macro-F1         {metrics['macro_f1']:.4f}",
             f"samples-F1       {metrics['samples_f1']:.4f}",
             f"Hamming loss     {metrics['hamming_loss']:.4f}", "", metrics["report_text"].rstrip()]
    return "\n".join(printable(part) for line in lines for part in line.split("\n"))


def _format_evaluation(metrics: dict[str, Any]) -> str:
    correct = round(metrics["accuracy"] * metrics["n"])
    lines = [f"accuracy  {metrics['accuracy']:.4f}  ({correct} of {metrics['n']} texts)",
             f"macro-F1  {metrics['macro_f1']:.4f}", "", metrics["report_text"].rstrip(), "",
             "confusion matrix (rows: true label, columns: predicted label)"]
    labels, matrix = metrics["labels"], metrics["confusion_matrix"]
    width = max(len(str(v)) for v in [*labels, *(x for r in matrix for x in r)])
    lines.append(" " * width + "".join(f"  {label:>{width}}" for label in labels))
    lines.extend(f"{label:>{width}}" + "".join(f"  {count:>{width}}" for count in row) for label, row in zip(labels, matrix))
    return "\n".join(printable(part) for line in lines for part in line.split("\n"))


def _draw_confusion(metrics: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    size = max(4.5, 2 + 0.6 * len(metrics["labels"]))
    figure, axes = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay(np.asarray(metrics["confusion_matrix"]), display_labels=metrics["labels"]).plot(
        ax=axes, colorbar=False, xticks_rotation=45)
    axes.set_title(f"accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}")
    figure.tight_layout()
    try:
        figure.savefig(path, format="png")
    except OSError as exc:
        raise UsageError(f"--confusion-png {path}: cannot write ({exc.strerror}).") from None
    finally:
        plt.close(figure)


# -- info --------------------------------------------------------------------------------------
def read_artifact(path: str) -> dict[str, Any]:
    """A summary of the saved classifier at ``path``, read from its files (the model is not loaded)."""
    config = _read_config(path)
    params = config.get("params") if isinstance(config.get("params"), dict) else {}
    history = config.get("history") if isinstance(config.get("history"), dict) else {}
    model = config.get("model") if isinstance(config.get("model"), dict) else {}
    calibration = config.get("calibration")
    return {
        "path": path,
        "format_version": config.get("format_version"),
        "library_version": config.get("library_version"),
        "classes": _list_field(config, "classes", path),
        "answers": _list_field(config, "answers", path),
        "model": {"name": model.get("name"), "fingerprint": model.get("fingerprint")},
        "adapter": _adapter_summary(path, config),
        "training": {key: history.get(key) for key in
                     ("n_steps", "n_examples", "train_runtime", "train_loss", "learning_rate", "early_stopping")},
        "calibration": None if not isinstance(calibration, dict) else {"temperature": calibration.get("temperature"),
                                                                        "bias": calibration.get("bias")},
        "params": {name: _show_param(value) for name, value in params.items()},
    }


def _list_field(config: dict[str, Any], name: str, path: str) -> list[Any] | None:
    """A list field of classifier.json (None when absent); any other value is a damaged artifact, never iterated
    (the text ``"abc"`` would show as three classes)."""
    value = config.get(name)
    if value is not None and not isinstance(value, list):
        raise TableError(f"{path}: the field {name!r} of classifier.json must be a list; got {value!r}. "
                         "The artifact is damaged.")
    return value


def _read_config(path: str) -> dict[str, Any]:
    """The artifact's classifier.json, read by the library's own checked reader (io.artifact.read_config)."""
    from ..exceptions import IncompatibleArtifactError
    from ..io.artifact import read_config

    if not os.path.exists(path):
        raise TableError(f"{path}: no such classifier directory.")
    if not os.path.isdir(path):
        raise TableError(f"{path}: not a saved classifier (a classifier is a directory).")
    try:
        return read_config(path, any_version=True)  # info shows older and newer artifacts too
    except (IncompatibleArtifactError, OSError) as exc:
        raise TableError(f"{path}: {' '.join(str(exc).split())}") from None


def _adapter_summary(path: str, config: dict[str, Any]) -> dict[str, Any] | None:
    """Size, tensor count and parameter count of the adapter file (None: zero-shot, no adapter)."""
    from ..io.artifact import LEGACY_ADAPTER_FILE

    record = config.get("adapter")
    # format 2 names its content-addressed adapter file; format 1 (or a damaged record) the fixed name
    name = os.path.basename(record["file"]) if isinstance(record, dict) and isinstance(record.get("file"), str) \
        else LEGACY_ADAPTER_FILE
    adapter_path = os.path.join(path, name)
    if not os.path.isfile(adapter_path):
        return None
    summary: dict[str, Any] = {"file": name, "bytes": os.path.getsize(adapter_path)}
    try:
        from safetensors import safe_open

        with safe_open(adapter_path, framework="numpy") as tensors:  # reads the header only
            shapes = [tensors.get_slice(key).get_shape() for key in tensors.keys()]
    except Exception as exc:  # noqa: BLE001 - any failure to read the header means a corrupt file
        raise TableError(f"{adapter_path}: unreadable or corrupt ({' '.join(str(exc).split())}).") from None
    summary["tensors"] = len(shapes)
    summary["parameters"] = int(sum(np.prod(shape) for shape in shapes))
    return summary


def _show_param(value: Any) -> Any:
    """A saved parameter as JSON data; plugin objects as ``ClassName(key=value, ...)``."""
    kind = value.get("__class__", value.get("__plugin__")) if isinstance(value, dict) else None
    if kind is not None:
        params = value.get("params") or {}
        inner = (", ".join(f"{key}={_show_param(val)!r}" for key, val in params.items()) if isinstance(params, dict)
                 else repr(params))  # a damaged record is shown as it is
        return f"{str(kind).rpartition('.')[2]}({inner})"
    if isinstance(value, dict) and "__unsaved__" in value:
        return f"<not saved: {value['__unsaved__']}>"
    return value


def printable(text: Any) -> str:
    """``text`` with every character a terminal could act on (control characters: escape
    sequences, carriage returns, newlines; other non-printable ones) written as a Python escape,
    ``\\x1b``: what an artifact or a data file holds cannot drive the terminal."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def printable_json(value: Any) -> str:
    """``value`` as indented JSON with every non-printable character escaped (``json`` escapes
    only C0 controls; C1 controls such as U+009B, a terminal's CSI, pass through it)."""
    def escape(c: str) -> str:
        code = ord(c)
        if code > 0xFFFF:  # a surrogate pair, as JSON writes characters beyond the BMP
            code -= 0x10000
            return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
        return f"\\u{code:04x}"
    text = json.dumps(value, indent=1, ensure_ascii=False)
    return "".join(c if c.isprintable() or c == "\n" else escape(c) for c in text)


def _format_info(info: dict[str, Any]) -> str:
    classes = info["classes"] or []
    show = printable
    lines = [f"artifact     {info['path']} (format {info['format_version']}, library {info['library_version']})",
             f"classes      {len(classes)}: {', '.join(map(str, classes))}"]
    if info["answers"] is not None and [str(c) for c in classes] != list(info["answers"]):
        lines.append(f"answers      {', '.join(map(repr, info['answers']))}")
    model = info["model"]
    lines.append(f"base model   {model['name']} (sha256 {model['fingerprint']})")
    adapter = info["adapter"]
    lines.append("adapter      none (zero-shot)" if adapter is None else
                 f"adapter      {adapter['file']}: {adapter['bytes'] / 1e6:.2f} MB, "
                 f"{adapter['parameters']:,} parameters in {adapter['tensors']} tensors")
    lines.append(f"training     {_training_line(info['training'])}")
    calibration = info["calibration"]
    lines.append("calibration  none" if calibration is None else f"calibration  temperature {calibration['temperature']}, "
                                                                    f"bias {calibration['bias']}")
    lines.append("parameters")
    width = max((len(name) for name in info["params"]), default=0)
    lines.extend(f"  {name:<{width}}  {json.dumps(value, ensure_ascii=False)}" for name, value in info["params"].items())
    return "\n".join(map(show, lines))  # each entry one line: a newline or escape sequence from the artifact is escaped


def _training_line(training: dict[str, Any]) -> str:
    parts = [f"{training['n_steps']} steps" if training["n_steps"] is not None else "steps unknown"]
    if training["n_examples"] is not None:
        parts.append(f"{training['n_examples']} texts")
    if isinstance(training["train_runtime"], (int, float)):
        parts.append(f"{training['train_runtime']:.1f} s")
    if isinstance(training["train_loss"], (int, float)):
        parts.append(f"loss {training['train_loss']:.4f}")
    if isinstance(training["learning_rate"], (int, float)):
        parts.append(f"learning rate {training['learning_rate']:g}")
    if training["early_stopping"] is not None:
        parts.append(f"early stopping {'on' if training['early_stopping'] else 'off'}")
    return ", ".join(parts)


def run_info(args: argparse.Namespace) -> int:
    info = read_artifact(args.artifact)
    print(printable_json(info) if args.json else _format_info(info))
    return 0


# -- entry point -------------------------------------------------------------------------------
def _error(message: str, status: int) -> int:
    print(printable(f"{PROG}: error: {' '.join(message.split())}"), file=sys.stderr)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``llm-classifier`` with ``argv`` (default: ``sys.argv[1:]``); the exit status."""
    from sklearn.utils._param_validation import InvalidParameterError

    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except Exception as exc:
        if args.debug:
            raise
        if isinstance(exc, BrokenPipeError):  # e.g. `predict ... | head`
            sys.stderr.close()
            return 1
        if isinstance(exc, (UsageError, InvalidParameterError)):
            return _error(str(exc), 2)
        if isinstance(exc, (ValueError, TypeError, OSError, ImportError)):
            return _error(str(exc), 1)
        return _error(f"{type(exc).__name__}: {exc} (run with --debug for the traceback)", 1)
    except KeyboardInterrupt:
        return _error("interrupted", 130)


if __name__ == "__main__":
    sys.exit(main())
