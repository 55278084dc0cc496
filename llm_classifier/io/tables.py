"""Reading and writing the command line's data files: CSV, TSV, JSON Lines and Parquet.

Rows are read lazily (one record, or one Parquet batch, at a time), so a file of any size
streams through ``predict``. Every problem is a :class:`TableError` whose one-line message
names the file, the row (and line) and the column. Only the standard library is needed,
except for Parquet, which needs ``pyarrow``.

Output is safe to open in a spreadsheet and never left half-written: :class:`TableWriter`
writes to a temporary file beside the target and renames it at the end (a failure leaves
no partial file and the previous file untouched), and in CSV/TSV a text cell that a
spreadsheet would read as a formula gets a leading ``'`` (:func:`escape_formula`).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

FORMATS = ("csv", "tsv", "jsonl", "parquet")
_EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
_DELIMITERS = {"csv": ",", "tsv": "\t"}
STDIO = "-"


class TableError(ValueError):
    """A data file cannot be read or holds a bad row; the message names file, row and column."""


@dataclass(frozen=True)
class Row:
    """One record of a data file."""

    number: int  # 1-based, counting data rows only (not the header, not blank lines)
    line: int | None  # the line the record starts on (text formats), else None
    values: dict[str, Any]

    def where(self, name: str) -> str:
        """``"data.csv: row 3 (line 4)"``: where the row is, for error messages."""
        line = "" if self.line is None else f" (line {self.line})"
        return f"{name}: row {self.number}{line}"


def detect_format(path: str, override: str | None = None, option: str = "--format") -> str:
    """The format of ``path``: ``override`` if given, else from the extension (``option`` overrides it)."""
    if override is not None:
        if override not in FORMATS:
            raise TableError(f"unknown format {override!r}; use one of {', '.join(FORMATS)}.")
        return override
    if path == STDIO:
        raise TableError(f"standard input ('-') needs {option} (csv, tsv or jsonl).")
    extension = os.path.splitext(path)[1].lower()
    if extension not in _EXTENSIONS:
        raise TableError(f"{path}: cannot tell the format from the extension {extension!r}; "
                         f"use .csv, .tsv, .jsonl, .ndjson or .parquet, or pass {option}.")
    return _EXTENSIONS[extension]


def read_rows(path: str, columns: Sequence[str], fmt: str | None = None, batch_size: int = 1024) -> Iterator[Row]:
    """The rows of the data file ``path`` (``"-"``: standard input), read lazily.

    Raises :class:`TableError` when the file is missing or unreadable, or lacks one of
    ``columns`` (the message lists the columns it has).
    """
    fmt = detect_format(path, fmt)
    if fmt == "parquet":
        return parquet_rows(path, columns, batch_size)
    return _text_rows(path, columns, fmt)


def _text_rows(path: str, columns: Sequence[str], fmt: str) -> Iterator[Row]:
    if path == STDIO:
        stream = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="")
        yield from _decoded(stream, "<stdin>", columns, fmt)
        return
    _check_file(path)
    with open(path, encoding="utf-8-sig", newline="") as stream:
        yield from _decoded(stream, path, columns, fmt)


def _decoded(stream: TextIO, name: str, columns: Sequence[str], fmt: str) -> Iterator[Row]:
    rows = csv_rows(stream, name, columns, _DELIMITERS[fmt]) if fmt in _DELIMITERS else jsonl_rows(stream, name, columns)
    last = 0
    try:
        for row in rows:
            last = row.number
            yield row
    except UnicodeDecodeError as exc:
        raise TableError(f"{name}: after row {last}: the file is not UTF-8 text ({exc.reason}).") from None


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise TableError(f"{path}: no such file.")
    if os.path.isdir(path):
        raise TableError(f"{path}: is a directory, not a data file.")


def _missing_column(name: str, column: str, available: Iterable[str]) -> TableError:
    names = ", ".join(repr(c) for c in available) or "none"
    return TableError(f"{name}: no column {column!r}; the columns are: {names}.")


def _check_distinct(name: str, columns: Sequence[str], where: str = "the header") -> None:
    """A column named twice would silently read one of its two values: refuse it, naming it."""
    seen: set[str] = set()
    for column in columns:
        if column in seen:
            raise TableError(f"{name}: {where} names the column {column!r} twice; rename one of them.")
        seen.add(column)


def csv_rows(lines: Iterable[str], name: str, columns: Sequence[str], delimiter: str = ",") -> Iterator[Row]:
    """The records of CSV ``lines`` (any iterable of lines, read lazily); the first line is the header.

    Malformed quoting (a quote never closed, text after a closing quote), a record with more
    non-empty fields than the header has columns (a text holding an unquoted delimiter) and a record
    repeating the header (two files joined) are errors naming the row: read leniently, they shifted a
    text's tail into the label, swallowed later rows, or made the header's names a text and a class.
    """
    csv.field_size_limit(2**31 - 1)  # long texts: the default limit is 128 KiB per field
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    number, start = 0, 1  # start: the line the record being read starts on
    try:
        header = next(reader, None)
        if header is None:
            raise TableError(f"{name}: the file is empty (no header line).")
        _check_distinct(name, header)
        for column in columns:
            if column not in header:
                raise _missing_column(name, column, header)
        start = reader.line_num + 1
        names = [column.strip() for column in header]  # a repeated header's fields, spaces aside
        for record in reader:
            if record:  # a blank line is not a row
                number += 1
                row = Row(number, start, dict(zip(header, record)))
                if any(field.strip() for field in record[len(header):]):  # empty trailing fields lose nothing
                    raise TableError(f"{row.where(name)}: {len(record)} fields but the header names {len(header)} "
                                     "columns; quote a text that holds the delimiter.")
                if _repeats_header(record, names):
                    raise TableError(f"{row.where(name)}: each field is its column's name; it looks like a repeated "
                                     f"header ({', '.join(map(repr, header))}), as where two files were joined; "
                                     "remove it.")
                for column in header[len(record):]:
                    row.values[column] = None  # a short row: its last columns are missing
                yield row
            start = reader.line_num + 1
    except csv.Error as exc:
        where = "the header" if start == 1 else f"row {number + 1} (line {start})"  # where the bad record starts
        raise TableError(f"{name}: {where}: not valid CSV ({exc}).") from None


def _repeats_header(record: list[str], names: list[str]) -> bool:
    """Whether ``record`` is the header again (each field the column's name, ``names`` being the header's names
    stripped; a byte order mark or spaces around a name, and empty trailing fields, aside): a second file's header
    where two files were joined."""
    if not names or len(record) < len(names) or record[0].lstrip("\ufeff").strip() != names[0]:  # most rows stop here
        return False
    return [field.strip() for field in record[1:len(names)]] == names[1:]


class _DuplicateKey(Exception):
    def __init__(self, key: str):
        self.key = key


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refusing a key given twice (``json`` would keep the last)."""
    record = dict(pairs)
    if len(record) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return record


def jsonl_rows(lines: Iterable[str], name: str, columns: Sequence[str]) -> Iterator[Row]:
    """The records of JSON Lines ``lines`` (one object per line, read lazily; blank lines skipped).

    The first record must have every column in ``columns``; a later record without one has
    that value missing (``None``).
    """
    number = 0
    for line_number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        number += 1
        try:
            record = json.loads(line.rstrip("\r\n"), object_pairs_hook=_pairs)
        except _DuplicateKey as exc:
            raise TableError(f"{name}: row {number} (line {line_number}): the object names the column {exc.key!r} twice; "
                             "rename one of them.") from None
        except json.JSONDecodeError as exc:
            raise TableError(f"{name}: row {number} (line {line_number}): not valid JSON ({exc.msg} at column {exc.pos + 1}).") from None
        except RecursionError:
            raise TableError(f"{name}: row {number} (line {line_number}): not valid JSON (arrays or objects nested too "
                             "deeply).") from None
        if not isinstance(record, dict):
            raise TableError(f"{name}: row {number} (line {line_number}): expected a JSON object, got {type(record).__name__}.")
        if number == 1:
            for column in columns:
                if column not in record:
                    raise _missing_column(name, column, record)
        yield Row(number, line_number, record)


def _pyarrow(feature: str) -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise TableError(f"{feature} needs pyarrow, which is not installed: pip install pyarrow") from None
    return pyarrow


def parquet_rows(path: str, columns: Sequence[str], batch_size: int = 1024) -> Iterator[Row]:
    """The records of a Parquet file, one batch of ``batch_size`` rows in memory at a time."""
    if path == STDIO:
        raise TableError("Parquet cannot be read from standard input; pass a file.")
    pa = _pyarrow(f"{path}: reading Parquet")
    _check_file(path)
    try:
        parquet = pa.parquet.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise TableError(f"{path}: not a readable Parquet file ({_one_line(exc)}).") from None
    available = parquet.schema_arrow.names
    _check_distinct(path, available, "the schema")
    for column in columns:
        if column not in available:
            raise _missing_column(path, column, available)
    return _parquet_batches(parquet, path, list(dict.fromkeys(columns)) or None, batch_size)


def _parquet_batches(parquet: Any, path: str, columns: list[str] | None, batch_size: int) -> Iterator[Row]:
    import pyarrow as pa

    number = 0
    try:
        for batch in parquet.iter_batches(batch_size=batch_size, columns=columns):
            for values in batch.to_pylist():
                number += 1
                yield Row(number, None, values)
    except (pa.ArrowException, OSError) as exc:
        raise TableError(f"{path}: after row {number}: the Parquet file is corrupt ({_one_line(exc)}).") from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def text_of(row: Row, column: str, name: str) -> str:
    """The text in ``column`` of ``row``, or a :class:`TableError` naming the row.

    The same rule as the library (:func:`llm_classifier.inputs.check_texts`, which it calls):
    any ``str`` (empty and whitespace-only texts too) or UTF-8 ``bytes``; a missing value or a
    number is an error.
    """
    from ..inputs import check_texts

    value = row.values.get(column)
    try:
        return check_texts([value], _TEXT)[0]
    except (TypeError, ValueError) as exc:
        reason = str(exc).removeprefix(f"{_TEXT}[0] ")
        raise TableError(f"{row.where(name)}: the text column {column!r} {reason}") from None


_TEXT = "text"  # the name check_texts gives the row in its messages, replaced by the row's place


def label_of(row: Row, column: str, name: str) -> Any:
    """The label in ``column`` of ``row`` (one scalar), or a :class:`TableError` naming the row."""
    value = row.values.get(column)
    if _is_missing(value) or (isinstance(value, str) and not value.strip()):
        raise TableError(f"{row.where(name)}: the label column {column!r} is empty.")
    if isinstance(value, (list, tuple, dict)):
        raise TableError(f"{row.where(name)}: the label column {column!r} holds a {type(value).__name__}; "
                         "for multi-label data pass --label-sep (or --label-columns).")
    return value


def labels_of(row: Row, column: str, name: str, sep: str) -> list[Any]:
    """The label set in ``column`` of ``row`` (multi-label): the text split at ``sep`` (an empty
    text: no label), or a JSON Lines / Parquet list as it is."""
    value = row.values.get(column)
    if _is_missing(value):
        raise TableError(f"{row.where(name)}: the label column {column!r} is missing (an empty text means no label).")
    if isinstance(value, (list, tuple)):
        labels = list(value)
        for label in labels:
            if _is_missing(label) or isinstance(label, (list, tuple, dict)):
                raise TableError(f"{row.where(name)}: the label column {column!r} holds {label!r}; "
                                 "a label set holds scalar labels.")
        return labels
    if not isinstance(value, str):
        raise TableError(f"{row.where(name)}: the label column {column!r} holds {value!r} ({type(value).__name__}); "
                         f"multi-label cells are texts of labels separated by {sep!r}, or lists.")
    return [part.strip() for part in value.split(sep) if part.strip()]


_TRUE, _FALSE = (1, True, "1", "1.0", "true", "True"), (0, False, "0", "0.0", "false", "False")


def indicators_of(row: Row, columns: Sequence[str], name: str) -> list[str]:
    """The names of the ``columns`` that hold 1 in ``row`` (one 0/1 column per label)."""
    labels = []
    for column in columns:
        value = row.values.get(column)
        if isinstance(value, str):
            value = value.strip()
        if value in _TRUE:  # by ==: 1, 1.0 and True alike
            labels.append(column)
        elif value not in _FALSE:
            raise TableError(f"{row.where(name)}: the label column {column!r} holds {value!r}; "
                             "--label-columns takes one 0/1 column per label.")
    return labels


def join_labels(labels: Iterable[Any], sep: str) -> str:
    """A label set as one cell: its labels as text, joined by ``sep``."""
    return sep.join(str(label) for label in labels)


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of at most ``size`` consecutive items, read lazily."""
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def count_rows(path: str, fmt: str) -> int | None:
    """About how many rows ``path`` holds (for a progress bar): Parquet's row count, or the
    number of lines of a text file (less the header); None for standard input."""
    if path == STDIO:
        return None
    if fmt == "parquet":
        return _pyarrow(f"{path}: reading Parquet").parquet.ParquetFile(path).metadata.num_rows
    lines, last = 0, b"\n"
    with open(path, "rb") as stream:
        while block := stream.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    lines += last != b"\n"  # a last line without its newline
    return max(lines - (fmt in _DELIMITERS), 0)


#: What a spreadsheet reads as the start of a formula (OWASP's list): a text cell starting so gets a leading "'".
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _json_value(value: Any) -> Any:
    """``value`` as strict JSON data: a NaN or infinite number (a kept Parquet or JSON Lines cell) becomes null,
    which JSON can hold (``NaN`` is not JSON, and strict readers refuse the whole line)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(item) for item in value]
    return value


def _text_cell(value: Any) -> Any:
    """A CSV cell: a list or an object (a kept JSON Lines or Parquet cell) as JSON text, not Python's repr."""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(_json_value(value), ensure_ascii=False, allow_nan=False)
    return value


def escape_formula(value: Any) -> Any:
    """``value`` safe in a spreadsheet cell: a text starting with ``= + - @``, a tab or a carriage
    return gets a leading ``'`` (shown as text, not run as a formula). Numbers, and texts that are
    a plain number (``-0.5``, ``+3``), are unchanged: a spreadsheet reads them as the number."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def escape_terminal(value: Any) -> Any:
    """``value`` safe to print on a terminal: control characters (ESC, BEL, C1 ...) other than tab and newline
    written as ``\\xNN``; anything but text unchanged. Used for tables written to a terminal."""
    if isinstance(value, str) and _CONTROL.search(value):
        return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", value)
    return value


class TableWriter:
    """Writes rows (dicts with the same keys) to a CSV, TSV, JSON Lines or Parquet file, or stdout.

    A file is written to a temporary file in its directory and renamed to ``path`` when the
    ``with`` block ends without an error; on an error the temporary file is removed, so ``path``
    is either the complete new table or as it was. ``escape_formulas`` (CSV and TSV only)
    passes every text cell, the header included, through :func:`escape_formula`.
    """

    def __init__(self, path: str, fmt: str | None = None, *, escape_formulas: bool = True):
        if path == STDIO and fmt is None:
            fmt = "csv"
        self.path, self.fmt = path, detect_format(path, fmt, "--output-format")
        if self.fmt == "parquet" and path == STDIO:
            raise TableError("Parquet cannot be written to standard output; pass a file name.")
        if self.fmt == "parquet":
            _pyarrow(f"{path}: writing Parquet")
        if path != STDIO and os.path.isdir(path):
            raise TableError(f"{path}: is a directory; pass a file name.")
        self.escape = escape_formulas and self.fmt in _DELIMITERS
        #: a table printed on a terminal has its control characters escaped (no terminal escape sequences)
        self.terminal = path == STDIO and sys.stdout.isatty()
        self._temporary: str | None = None
        self._stream: Any = None
        self._writer: Any = None
        self._types: dict[str, Any] = {}  # Parquet: column -> Arrow type fixed from all its values (declare)

    def declare(self, column: str, values: Sequence[Any]) -> None:
        """Fix the Parquet type of ``column`` from every value it may hold, rather than from the first chunk (whose
        rows may show none of some values: a chunk of rejected rows typed the label column as null, and the first
        class written later failed the run). Other formats need nothing.

        Raises :class:`TableError` when the values are not of one type (a Parquet column holds one).
        """
        if self.fmt != "parquet":
            return
        import pyarrow as pa

        try:
            self._types[column] = pa.array(list(values)).type
        except (pa.ArrowException, TypeError, ValueError):
            kinds = list(dict.fromkeys(type(value).__name__ for value in values if value is not None))
            examples = [next(value for value in values if type(value).__name__ == kind) for kind in kinds[:2]]
            raise TableError(f"{self.path}: the column {column!r} would hold values of the types {' and '.join(kinds)} "
                             f"(e.g. {' and '.join(map(repr, examples))}), and a Parquet column holds one type; write "
                             "CSV or JSON Lines instead.") from None

    def __enter__(self) -> TableWriter:
        if self.path == STDIO:
            self._stream = sys.stdout
            return self
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            descriptor, self._temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(self.path)}.",
                                                           suffix=".partial")
        except OSError as exc:
            raise TableError(f"{self.path}: cannot write ({exc.strerror}).") from None
        if self.fmt == "parquet":
            os.close(descriptor)
        else:
            self._stream = open(descriptor, "w", encoding="utf-8", newline="")
        return self

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Append ``rows``; the first call fixes the columns. Parquet: the first chunk fixes the column types (but
        the :meth:`declare`\ d ones), and a column holding only missing values so far takes the type of its first
        value."""
        if not rows:
            return
        if self.fmt == "parquet":
            self._write_parquet(rows)
        elif self.fmt == "jsonl":  # json escapes C0 controls; on a terminal C1 ones too (ensure_ascii)
            self._stream.writelines(json.dumps(_json_value(row), ensure_ascii=self.terminal, allow_nan=False) + "\n"
                                    for row in rows)
        else:
            rows = [{key: _text_cell(value) for key, value in row.items()} for row in rows]
            if self.escape:
                rows = [{escape_formula(key): escape_formula(value) for key, value in row.items()} for row in rows]
            if self.terminal:
                rows = [{escape_terminal(key): escape_terminal(value) for key, value in row.items()} for row in rows]
            if self._writer is None:
                self._writer = csv.DictWriter(self._stream, fieldnames=list(rows[0]), delimiter=_DELIMITERS[self.fmt])
                self._writer.writeheader()
            self._writer.writerows(rows)
        if self._stream is sys.stdout:
            self._stream.flush()

    def _write_parquet(self, rows: list[dict[str, Any]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            if self._writer is None:
                schema = pa.Table.from_pylist(rows).schema
                for column, kind in self._types.items():
                    if column in schema.names:
                        schema = schema.set(schema.get_field_index(column), pa.field(column, kind))
                table = pa.Table.from_pylist(rows, schema=schema)
                self._writer = pq.ParquetWriter(self._temporary, table.schema)
            else:  # later chunks take the column types fixed so far
                self._type_null_columns(rows)
                table = pa.Table.from_pylist(rows, schema=self._writer.schema)
            self._writer.write_table(table)
        except (pa.ArrowException, OSError) as exc:
            raise TableError(f"{self.path}: cannot write Parquet ({_one_line(exc)}).") from None

    def _type_null_columns(self, rows: list[dict[str, Any]]) -> None:
        """Type the columns the chunks so far typed null (only missing values: a kept column empty in the first chunk)
        from the first chunk holding a value in them, rewriting the rows written so far with that type (their cells
        there are all null, so the rewrite is exact). A Parquet file has one schema: the later values were refused
        ('Invalid null value') and the run failed."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = self._writer.schema
        for index, field in enumerate(schema):
            if pa.types.is_null(field.type) and any(row.get(field.name) is not None for row in rows):
                kind = pa.array([row.get(field.name) for row in rows]).type
                schema = schema.set(index, pa.field(field.name, kind))
        if schema.equals(self._writer.schema):
            return
        self._writer.close()
        written = self._temporary
        descriptor, self._temporary = tempfile.mkstemp(dir=os.path.dirname(written), prefix=f".{os.path.basename(self.path)}.",
                                                       suffix=".partial")
        os.close(descriptor)
        try:
            self._writer = pq.ParquetWriter(self._temporary, schema)
            for batch in pq.ParquetFile(written).iter_batches():  # one batch in memory at a time
                self._writer.write_table(pa.Table.from_batches([batch]).cast(schema))
        finally:  # on a failure __exit__ removes the new temporary file
            os.remove(written)

    def __exit__(self, exc_type: Any, *exc_info: Any) -> None:
        if self.path == STDIO:
            return
        try:
            if self.fmt == "parquet":
                if self._writer is not None:
                    self._writer.close()
            elif self._stream is not None:
                self._stream.flush()
                if exc_type is None:
                    os.fsync(self._stream.fileno())
                self._stream.close()
            if exc_type is None and not (self.fmt == "parquet" and self._writer is None):  # no rows: no Parquet file
                os.chmod(self._temporary, 0o666 & ~_umask())
                os.replace(self._temporary, self.path)
                self._temporary = None
        except OSError as exc:
            if exc_type is None:
                raise TableError(f"{self.path}: cannot write ({exc.strerror}).") from None
        finally:
            if self._temporary is not None and os.path.exists(self._temporary):
                os.remove(self._temporary)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
