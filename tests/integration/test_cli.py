"""The llm-classifier command line: the real command in a subprocess on the tiny model, and its readers."""

from __future__ import annotations

import csv
import datetime
import decimal
import io
import itertools
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from llm_classifier import LLMClassifier
from llm_classifier.io.tables import (TableError, TableWriter, chunked, count_rows, csv_rows, jsonl_rows, read_rows,
                                    text_of)
from llm_classifier.cli.main import evaluation, main, parse_value

from tests.conftest import SENTIMENT_X, SENTIMENT_Y

ROOT = Path(__file__).resolve().parents[2]
WORDS = ["good", "bad", "film", "plot", "cast", "fine", "dull", "music", "great", "awful"]


def _env(*prepend: Path) -> dict[str, str]:
    """The environment of a subprocess: this checkout's llm_classifier first, one thread."""
    path = os.pathsep.join([*map(str, prepend), str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


def run_cli(*args: str, cwd: Path, stdin: str | None = None, prepend: tuple[Path, ...] = ()) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "llm_classifier.cli", *map(str, args)]
    return subprocess.run(command, cwd=cwd, input=stdin, capture_output=True, text=True, env=_env(*prepend), timeout=600)


def _write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _one_line_error(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llm-classifier: error: "), stderr
    return lines[0]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli")
    _write_csv(path / "train.csv", [{"text": x, "label": y} for x, y in zip(SENTIMENT_X, SENTIMENT_Y)])
    return path


@pytest.fixture(scope="module")
def artifact(work, tiny_model) -> Path:
    """A classifier fitted once by ``llm-classifier fit`` on the CSV."""
    os.symlink(tiny_model, work / "base")
    result = run_cli("fit", "train.csv", "--text-column", "text", "--label-column", "label", "--out", "clf",
                     "--model", "base", "--quantization", "null", "--dtype", "float32", "--max-steps", "3",
                     "--batch-size", "4", "--random-state", "0", cwd=work)
    assert result.returncode == 0, result.stderr
    assert "trained on 8 texts (2 classes: negative, positive), 3 steps" in result.stderr
    return work / "clf"


@pytest.fixture(scope="module")
def loaded(artifact) -> LLMClassifier:
    """The artifact loaded in this process, whose working directory is not the one fit ran in
    (so a relative ``--model`` must have been saved absolute)."""
    return LLMClassifier.load(artifact)


# -- the round trip ------------------------------------------------------------------------------
def test_info_reads_what_fit_saved(capsys, artifact, work):
    result = run_cli("info", artifact, "--json", cwd=work)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["classes"] == ["negative", "positive"]
    assert info["training"]["n_steps"] == 3 and info["training"]["n_examples"] == 8
    assert info["params"]["model"] == str(work / "base")  # a relative --model is saved absolute
    assert info["params"]["max_steps"] == 3 and info["params"]["quantization"] is None and info["params"]["lora_r"] == 16
    assert len(info["model"]["fingerprint"]) == 64 and info["format_version"] == 2
    # r=16 LoRA on 7 projections x 2 layers: 14 A and 14 B factors
    assert info["adapter"]["tensors"] == 28 and info["adapter"]["parameters"] > 0
    assert main(["info", str(artifact)]) == 0
    text = capsys.readouterr().out
    assert "classes      2: negative, positive" in text and "3 steps, 8 texts" in text


def test_predict_streams_jsonl_in_chunks_with_the_probabilities_of_predict_proba(artifact, loaded, work):
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=5)) for _ in range(3000)]
    _write_jsonl(work / "big.jsonl", [{"id": i, "text": t} for i, t in enumerate(texts)])
    result = run_cli("predict", artifact, "big.jsonl", "--text-column", "text", "--output", "big.csv",
                     "--keep-columns", "id", "--chunk-size", "700", cwd=work)
    assert result.returncode == 0, result.stderr
    assert "3000/3000" in result.stderr  # the progress bar, with the row count as total
    with open(work / "big.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert list(rows[0]) == ["id", "label", "p_negative", "p_positive"]
    assert [int(row["id"]) for row in rows] == list(range(3000))
    written = np.array([[float(row["p_negative"]), float(row["p_positive"])] for row in rows])
    assert [row["label"] for row in rows] == loaded.classes_[written.argmax(axis=1)].tolist()
    sample = np.r_[0:40, 690:710, 2960:3000]  # across chunk boundaries
    np.testing.assert_allclose(written[sample], loaded.predict_proba([texts[i] for i in sample]), atol=1e-6)


def test_evaluate_parquet_report_matrix_and_png(artifact, loaded, work):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    pq.write_table(pa.table({"review": SENTIMENT_X, "sentiment": SENTIMENT_Y}), work / "test.parquet")
    result = run_cli("evaluate", artifact, "test.parquet", "--text-column", "review", "--label-column", "sentiment",
                     "--json", "--confusion-png", "cm.png", "--quiet", cwd=work)
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    predicted = loaded.predict(SENTIMENT_X)
    assert metrics["n"] == 8 and metrics["labels"] == ["negative", "positive"]
    assert metrics["accuracy"] == pytest.approx(np.mean(predicted == np.array(SENTIMENT_Y)))
    expected = [[int(np.sum((np.array(SENTIMENT_Y) == t) & (predicted == p))) for p in metrics["labels"]] for t in metrics["labels"]]
    assert metrics["confusion_matrix"] == expected
    assert (work / "cm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(shutil.which("llm-classifier") is None, reason="the console script is not installed")
def test_console_script(artifact, work):
    result = subprocess.run(["llm-classifier", "info", str(artifact)], capture_output=True, text=True, env=_env(), timeout=120)
    assert result.returncode == 0, result.stderr
    assert "negative, positive" in result.stdout


# -- errors: one line naming file, row and column --------------------------------------------------
def test_data_error_in_a_subprocess_is_one_line_without_traceback(work):
    _write_jsonl(work / "hole.jsonl", [{"text": "fine", "label": "a"}, {"text": "good", "label": "b"}, {"text": None, "label": "a"}])
    result = run_cli("fit", "hole.jsonl", "--out", "never", cwd=work)
    assert result.returncode == 1
    assert _one_line_error(result.stderr) == ("llm-classifier: error: hole.jsonl: row 3 (line 3): the text column 'text' is "
                                              "missing (None); every row must be a text. Drop or fill missing rows first.")
    assert not (work / "never").exists()


def test_parameter_error_exits_2(work):
    result = run_cli("fit", "train.csv", "--out", "never", "--lora-r", "0", cwd=work)
    assert result.returncode == 2
    assert _one_line_error(result.stderr) == (
        "llm-classifier: error: The 'lora_r' parameter of LLMClassifier must be an int in the range [1, inf). Got 0 instead.")


@pytest.mark.parametrize("args, fragment", [
    (["--max-steps", "2.5"], "The 'max_steps' parameter of LLMClassifier must be"),
    (["--optimizer", "adam"], "The 'optimizer' parameter of LLMClassifier must be a str among"),
    (["--class-weight", '{"neutral": 2}'], "The 'class_weight' parameter of LLMClassifier must be 'balanced', None or a dict whose keys"),
])
def test_parameter_values_reach_scikit_learn_validation(capsys, work, args, fragment):
    status, message = _main_error(capsys, "fit", str(work / "train.csv"), "--out", str(work / "never"), *args)
    assert status == 2 and fragment in message


def test_unknown_option_is_a_usage_error(work):
    result = run_cli("fit", "train.csv", "--out", "never", "--lora-rank", "8", cwd=work)
    assert result.returncode == 2 and "unrecognized arguments: --lora-rank 8" in result.stderr


def test_reads_standard_input(work):
    data = "text,label\nfine,a\n  \n"
    result = run_cli("fit", "-", "--format", "csv", "--out", "never", cwd=work, stdin=data)
    assert _one_line_error(result.stderr) == "llm-classifier: error: <stdin>: row 2 (line 3): the label column 'label' is empty."
    result = run_cli("fit", "-", "--out", "never", cwd=work, stdin=data)
    assert "standard input ('-') needs --format" in _one_line_error(result.stderr)


def _hiding(tmp: Path, package: str) -> Path:
    """A directory that, first on PYTHONPATH, makes ``import package`` fail as if it were not installed."""
    (tmp / package).mkdir(parents=True)
    (tmp / package / "__init__.py").write_text(f"raise ImportError({'No module named ' + repr(package)!r})\n")
    return tmp


def test_missing_pyarrow_names_the_package(work, tmp_path):
    (work / "any.parquet").write_bytes(b"PAR1")
    result = run_cli("fit", "any.parquet", "--out", "never", cwd=work, prepend=(_hiding(tmp_path, "pyarrow"),))
    assert result.returncode == 1
    assert _one_line_error(result.stderr).endswith("any.parquet: reading Parquet needs pyarrow, which is not installed: pip install pyarrow")


def test_missing_matplotlib_names_the_package(artifact, work, tmp_path):
    result = run_cli("evaluate", artifact, "train.csv", "--confusion-png", "cm2.png", cwd=work,
                     prepend=(_hiding(tmp_path, "matplotlib"),))
    assert result.returncode == 2
    assert _one_line_error(result.stderr).endswith("--confusion-png needs matplotlib, which is not installed: pip install matplotlib")


def _main_error(capsys, *args: str) -> tuple[int, str]:
    status = main(list(args))
    return status, _one_line_error(capsys.readouterr().err)


def test_file_and_column_errors(capsys, tmp_path):
    train = _write_csv(tmp_path / "t.csv", [{"text": "fine", "label": "a"}, {"text": "good", "label": ""}])
    out = str(tmp_path / "out")
    assert _main_error(capsys, "fit", str(tmp_path / "nope.csv"), "--out", out) == (1, f"llm-classifier: error: {tmp_path}/nope.csv: no such file.")
    status, message = _main_error(capsys, "fit", str(train), "--text-column", "review", "--out", out)
    assert status == 1 and message.endswith("t.csv: no column 'review'; the columns are: 'text', 'label'.")
    status, message = _main_error(capsys, "fit", str(train), "--out", out)
    assert message.endswith("t.csv: row 2 (line 3): the label column 'label' is empty.")
    status, message = _main_error(capsys, "fit", str(tmp_path / "t.xlsx"), "--out", out)
    assert message.endswith("t.xlsx: cannot tell the format from the extension '.xlsx'; use .csv, .tsv, .jsonl, .ndjson or .parquet, or pass --format.")
    (tmp_path / "latin1.csv").write_bytes("text,label\ncaf\xe9,a\n".encode("latin-1"))
    status, message = _main_error(capsys, "fit", str(tmp_path / "latin1.csv"), "--out", out)
    assert message.endswith("latin1.csv: after row 0: the file is not UTF-8 text (invalid continuation byte).")
    assert not os.path.exists(out)


@pytest.mark.parametrize("command, option", [("fit", ["--label-column", "text"]), ("evaluate", ["--label-column", "text"]),
                                             ("fit", ["--label-columns", "a,text"])])
def test_the_text_column_cannot_be_a_label_column(capsys, tmp_path, low_confidence_base, command, option):
    """``--label-column`` naming the text column trained (and scored) each text as its own class, without a word."""
    clf, _ = low_confidence_base
    clf.save(tmp_path / "clf")
    data = _write_csv(tmp_path / "d.csv", [{"text": "aaaa", "a": "1"}, {"text": "bbbb", "a": "0"}])
    args = ["fit", str(data), "--out", str(tmp_path / "o")] if command == "fit" else ["evaluate", str(tmp_path / "clf"), str(data)]
    status, message = _main_error(capsys, *args, *option)
    assert status == 2 and message.endswith(f"{option[0]}: 'text' is the text column (--text-column); name the "
                                            "column of the labels."), message


def test_jsonl_row_errors(capsys, tmp_path):
    path = tmp_path / "d.jsonl"
    cases = [
        ('{"text": "a", "label": "x"}\n\n{"text": 5, "label": "y"}\n',
         "d.jsonl: row 2 (line 3): the text column 'text' is 5 of type int; every row must be a str. Convert with str() if that is intended."),
        ('{"text": "a", "label": "x"}\n{"label": "y"}\n', "d.jsonl: row 2 (line 2): the text column 'text' is missing (None); every row must be a text. "
                                           "Drop or fill missing rows first."),
        ('{"text": "a", "label": "x"}\n{"text": "b", "label": ["x", "y"]}\n', "row 2 (line 2): the label column 'label' holds a list; for multi-label data pass --label-sep (or --label-columns)."),
        ('{"text": "a", "label": "x"}\n{"text": "b", "label": "y"\n', "d.jsonl: row 2 (line 2): not valid JSON (Expecting ',' delimiter at column 27)."),
        ('["a", "x"]\n', "d.jsonl: row 1 (line 1): expected a JSON object, got list."),
        ('{"body": "a", "label": "x"}\n', "d.jsonl: no column 'text'; the columns are: 'body', 'label'."),
        # was "RecursionError: maximum recursion depth exceeded while decoding a JSON array ..." naming no row
        ('{"text": "a", "label": "x"}\n{"text": "b", "label": ' + "[" * 100_000 + "]" * 100_000 + '}\n',
         "d.jsonl: row 2 (line 2): not valid JSON (arrays or objects nested too deeply)."),
    ]
    for content, expected in cases:
        path.write_text(content)
        status, message = _main_error(capsys, "fit", str(path), "--out", str(tmp_path / "out"))
        assert status == 1 and message.endswith(expected), message


@pytest.mark.parametrize("labels", [
    [datetime.date(2020, 1, 1), datetime.date(2021, 1, 1)],  # trained, then failed to save: "use joblib/pickle"
    [decimal.Decimal("1.5"), decimal.Decimal("2.5")],  # scikit-learn's "Unknown label type: unknown"
])
def test_fit_refuses_labels_a_saved_classifier_cannot_hold_before_training(capsys, tmp_path, labels):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["good", "bad"] * 2, "label": labels * 2}), tmp_path / "d.parquet")
    status, message = _main_error(capsys, "fit", str(tmp_path / "d.parquet"), "--out", str(tmp_path / "clf"),
                                  "--backend", "reference", "--model", "reference", "--max-steps", "1")
    assert status == 1 and message.endswith(f"d.parquet: the label column 'label' holds values such as {labels[0]!r} "
                                            f"({type(labels[0]).__name__}), which a saved classifier cannot hold (it "
                                            "holds texts, booleans and numbers of up to 64 bits); convert the column "
                                            "first."), message
    assert not (tmp_path / "clf").exists()


def test_corrupt_parquet(capsys, tmp_path):
    pytest.importorskip("pyarrow")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    status, message = _main_error(capsys, "fit", str(tmp_path / "bad.parquet"), "--out", str(tmp_path / "out"))
    assert status == 1 and "bad.parquet: not a readable Parquet file (" in message


def test_artifact_errors(capsys, artifact, tmp_path):
    data = _write_csv(tmp_path / "x.csv", [{"text": "fine"}])
    status, message = _main_error(capsys, "predict", str(tmp_path / "nothing"), str(data))
    assert status == 1 and message.endswith("nothing: no such classifier directory.")
    status, message = _main_error(capsys, "info", str(data))
    assert message.endswith("x.csv: not a saved classifier (a classifier is a directory).")
    broken = tmp_path / "broken"
    shutil.copytree(artifact, broken)
    (broken / "classifier.json").write_text('{"format": "llm_classifier", "params": {')
    status, message = _main_error(capsys, "info", str(broken))
    assert status == 1 and "broken/classifier.json' is truncated or corrupt: Expecting" in message
    (broken / "classifier.json").write_text('{"format": "llm_classifier"}')
    (broken / "adapter.safetensors").write_bytes(b"\x00" * 5)
    status, message = _main_error(capsys, "info", str(broken))
    assert "adapter.safetensors: unreadable or corrupt" in message


def test_usage_errors_exit_2(capsys, artifact, tmp_path):
    data = _write_csv(tmp_path / "x.csv", [{"text": "fine", "label": "a"}])
    status, message = _main_error(capsys, "predict", str(artifact), str(data), "--keep-columns", "label")
    assert status == 2 and "--keep-columns: 'label' is the output's label column" in message
    status, message = _main_error(capsys, "predict", str(artifact), str(data), "--chunk-size", "0")
    assert status == 2 and message.endswith("--chunk-size must be at least 1; got 0.")
    status, message = _main_error(capsys, "fit", str(data), "--out", str(data))
    assert status == 2 and message.endswith("x.csv: is a file; the classifier is saved as a directory.")
    status, message = _main_error(capsys, "predict", str(artifact), str(data), "--output", str(tmp_path / "p.txt"))
    assert message.endswith("p.txt: cannot tell the format from the extension '.txt'; use .csv, .tsv, .jsonl, .ndjson or .parquet, or pass --output-format.")


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(TableError, match="no such file"):
        main(["fit", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o"), "--debug"])


def test_info_tolerates_missing_fields(capsys, tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "classifier.json").write_text('{"format": "llm_classifier", "classes": ["a", "b"]}')
    assert main(["info", str(tmp_path / "old")]) == 0
    out = capsys.readouterr().out
    assert "classes      2: a, b" in out and "adapter      none (zero-shot)" in out and "steps unknown" in out


@pytest.mark.parametrize("field, value", [
    ("classes", 5),  # crashed: "object of type 'int' has no len()"
    ("classes", "abc"),  # shown as the 3 classes a, b, c
    ("classes", {"a": 1}),
    ("answers", 7),  # crashed: "'int' object is not iterable"
    ("answers", "xy"),  # shown as the answers 'x', 'y'
])
def test_info_names_a_damaged_field_instead_of_misreading_it(capsys, tmp_path, field, value):
    (tmp_path / "clf").mkdir()
    config = {"format": "llm_classifier", "format_version": 2, "classes": ["a", "b"], field: value}
    (tmp_path / "clf" / "classifier.json").write_text(json.dumps(config))
    for extra in ([], ["--json"]):
        status, message = _main_error(capsys, "info", str(tmp_path / "clf"), *extra)
        assert status == 1 and message.endswith(f"the field {field!r} of classifier.json must be a list; "
                                                f"got {value!r}. The artifact is damaged."), message


def test_info_shows_a_plugin_whose_saved_parameters_are_not_an_object(capsys, tmp_path):
    """A tampered plugin record (``params`` a list or a string) crashed info with AttributeError."""
    (tmp_path / "clf").mkdir()
    config = {"format": "llm_classifier", "format_version": 2, "classes": ["a", "b"],
              "params": {"prompt": {"__class__": "ChatTemplate", "params": [1, 2]},
                         "label_parser": {"__plugin__": "DefaultParser", "params": "x"}}}
    (tmp_path / "clf" / "classifier.json").write_text(json.dumps(config))
    assert main(["info", str(tmp_path / "clf")]) == 0
    out = capsys.readouterr().out
    assert '"ChatTemplate([1, 2])"' in out and '"DefaultParser(\'x\')"' in out


def test_every_parameter_is_an_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for name in LLMClassifier().get_params(deep=False):
        assert f"--{name.replace('_', '-')} VALUE" in help_text


@pytest.mark.parametrize("text, value", [
    ("16", 16), ("1e-3", 1e-3), ("null", None), ("false", False), ('["q_proj", "v_proj"]', ["q_proj", "v_proj"]),
    ('{"pos": "good"}', {"pos": "good"}), ("balanced", "balanced"), ("Review: {text}", "Review: {text}"),
])
def test_parse_value(text, value):
    assert parse_value(text) == value


# -- readers and writers -------------------------------------------------------------------------
def _lines_until(limit: int, first: str, make) -> itertools.chain:
    """``first`` and then lines ``make(i)``; reading past ``limit`` lines fails the test."""
    def rest():
        for i in itertools.count():
            if i >= limit:
                raise AssertionError(f"the reader read more than {limit} lines")
            yield make(i)
    return itertools.chain([first], rest())


def test_csv_and_jsonl_readers_are_lazy():
    lines = _lines_until(2500, "text,label\n", lambda i: f"text {i},a\n")
    first = next(chunked(csv_rows(lines, "endless.csv", ["text"]), 1000))
    assert [row.values["text"] for row in first[:2]] == ["text 0", "text 1"] and len(first) == 1000
    lines = _lines_until(2500, '{"text": "start"}\n', lambda i: json.dumps({"text": f"t{i}"}) + "\n")
    first = next(chunked(jsonl_rows(lines, "endless.jsonl", ["text"]), 1000))
    assert first[-1].values["text"] == "t998" and first[-1].line == 1000


def test_csv_rows_count_records_and_lines():
    data = 'text,label\n"two\nlines",a\n\nshort\n'
    rows = list(csv_rows(io.StringIO(data), "d.csv", ["text"]))
    assert [(r.number, r.line) for r in rows] == [(1, 2), (2, 5)]
    assert rows[0].values == {"text": "two\nlines", "label": "a"} and rows[1].values == {"text": "short", "label": None}
    with pytest.raises(TableError, match=r"^d.csv: row 2 \(line 5\): the text column 'label' is missing"):
        text_of(rows[1], "label", "d.csv")


@pytest.mark.parametrize("data, expected", [
    # an unquoted delimiter in a text: the text was cut to 'hello' and ' world' became its label (a new class)
    ('text,label\ngood,pos\nhello, world,neg\n', r"^d.csv: row 2 \(line 3\): 3 fields but the header names 2 columns"),
    ('text,label\na,b,c,d\n', r"^d.csv: row 1 \(line 2\): 4 fields but the header names 2 columns"),
    # a quote never closed swallowed every later row into one text (2 rows read as 1)
    ('text,label\ngood,pos\n"unterminated,pos\nbad,neg\nawful,neg\n', r"^d.csv: row 2 \(line 3\): not valid CSV "
     r"\(unexpected end of data\)"),
    # text after a closing quote was glued to the field ('"abc"def' read as 'abcdef')
    ('text,label\n"abc"def,pos\n', r"^d.csv: row 1 \(line 2\): not valid CSV"),
])
def test_csv_rows_refuse_records_that_do_not_fit_the_header(data, expected):
    with pytest.raises(TableError, match=expected):
        list(csv_rows(io.StringIO(data, newline=""), "d.csv", ["text"]))


@pytest.mark.parametrize("data, row, line", [
    ('text,label\ngood,pos\ntext,label\nbad,neg\n', 2, 3),  # two files joined: the second one's header
    ('text,label\ngood,pos\n\n\ufefftext , label,\nbad,neg\n', 2, 4),  # its byte order mark, spaces, a trailing comma
    ('text\ngood\n"text"\n', 2, 3),
])
def test_csv_rows_refuse_a_row_repeating_the_header(data, row, line):
    """The header repeated mid-file was read as data: a text 'text' with the label 'label', a class at fit."""
    with pytest.raises(TableError, match=rf"^d.csv: row {row} \(line {line}\): each field is its column's name; it looks "
                                         r"like a repeated header \('text'"):
        list(csv_rows(io.StringIO(data, newline=""), "d.csv", ["text"]))


@pytest.mark.parametrize("command", ["fit", "predict", "evaluate"])
def test_fit_predict_and_evaluate_refuse_a_repeated_header(capsys, tmp_path, low_confidence_base, command):
    clf, _ = low_confidence_base
    clf.save(tmp_path / "clf")
    data = tmp_path / "joined.tsv"
    data.write_text("text\tlabel\naaaa\ta\nbbbb\tb\ntext\tlabel\ncccc\tc\n")
    args = {"fit": ["fit", str(data), "--out", str(tmp_path / "o"), *REF, "--max-steps", "1"],
            "predict": ["predict", str(tmp_path / "clf"), str(data), "-o", str(tmp_path / "o.csv"), "-q"],
            "evaluate": ["evaluate", str(tmp_path / "clf"), str(data), "-q"]}[command]
    status, message = _main_error(capsys, *args)
    assert status == 1 and message.endswith("joined.tsv: row 3 (line 4): each field is its column's name; it looks like a "
                                            "repeated header ('text', 'label'), as where two files were joined; remove it.")
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.csv").exists()


def test_csv_rows_keep_empty_trailing_fields_and_quoted_delimiters():
    data = 'text,label\ngood,pos,\n"hello, world",neg\n"say ""hi""",pos\n'
    rows = list(csv_rows(io.StringIO(data, newline=""), "d.csv", ["text"]))
    assert [row.values for row in rows] == [{"text": "good", "label": "pos"}, {"text": "hello, world", "label": "neg"},
                                            {"text": 'say "hi"', "label": "pos"}]


def test_read_rows_parquet_in_batches(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": [f"t{i}" for i in range(2500)], "n": list(range(2500))}), tmp_path / "d.parquet", row_group_size=1000)
    rows = read_rows(str(tmp_path / "d.parquet"), ["text"], batch_size=300)
    assert [row.values for row in itertools.islice(rows, 2)] == [{"text": "t0"}, {"text": "t1"}]  # only the needed columns
    assert count_rows(str(tmp_path / "d.parquet"), "parquet") == 2500


def test_count_rows(tmp_path):
    (tmp_path / "a.csv").write_text("text\nx\ny")
    (tmp_path / "b.jsonl").write_text('{"text": "x"}\n{"text": "y"}\n')
    assert count_rows(str(tmp_path / "a.csv"), "csv") == 2
    assert count_rows(str(tmp_path / "b.jsonl"), "jsonl") == 2


@pytest.mark.parametrize("suffix", ["csv", "tsv", "jsonl", "parquet"])
def test_writers_round_trip(tmp_path, suffix):
    if suffix == "parquet":
        pytest.importorskip("pyarrow")
    path = str(tmp_path / f"out.{suffix}")
    rows = [{"id": "1", "label": "neg", "p_neg": 0.25, "p_pos": 0.75}, {"id": "2", "label": "pos", "p_neg": 0.5, "p_pos": 0.5}]
    with TableWriter(path) as writer:
        writer.write(rows[:1])
        writer.write(rows[1:])
    read = [row.values for row in read_rows(path, list(rows[0]))]
    if suffix in ("csv", "tsv"):  # text cells
        read = [{**row, "p_neg": float(row["p_neg"]), "p_pos": float(row["p_pos"])} for row in read]
    assert read == rows


@pytest.fixture(scope="module")
def integer_classifier() -> tuple[LLMClassifier, float]:
    """A reference-engine classifier of the integer classes 0 and 1, and a threshold the first text misses."""
    X = ["good", "bad", "fine", "awful", "great", "terrible"]
    clf = LLMClassifier(backend="reference", model="reference", max_steps=2, random_state=0).fit(X, [1, 0] * 3)
    top = clf.predict_proba(X).max(axis=1)
    assert top[0] < np.median(top)
    return clf, float(np.median(top))


@pytest.mark.parametrize("reject", [None, -1])
def test_parquet_output_holds_the_classes_and_the_reject_value_from_any_first_chunk(tmp_path, integer_classifier, reject):
    """The label column's type was inferred from the first chunk: a first chunk of rejected rows (None) made it a
    null column, and the first class written later failed the run ('Invalid null value')."""
    pq = pytest.importorskip("pyarrow.parquet")
    clf, threshold = integer_classifier
    clf.set_params(confidence_threshold=threshold, on_low_confidence=reject)
    try:
        clf.save(tmp_path / "clf")
        texts = ["good", "bad", "fine", "awful", "great", "terrible"]
        expected = clf.predict(texts).tolist()
    finally:
        clf.set_params(confidence_threshold=None, on_low_confidence=None)
    data = _write_csv(tmp_path / "x.csv", [{"text": t} for t in texts])
    assert main(["predict", str(tmp_path / "clf"), str(data), "-o", str(tmp_path / "o.parquet"), "--chunk-size", "1",
                 "-q"]) == 0
    assert expected[0] == reject and pq.read_table(tmp_path / "o.parquet").column("label").to_pylist() == expected


def test_parquet_writer_types_a_column_empty_in_the_first_chunk_from_its_first_value(tmp_path):
    """A column holding only None in the first chunk was typed null for the whole file: the first value written later
    failed the run ('Invalid null value'). It takes its first value's type; the rows before it keep their nulls."""
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "o.parquet"
    chunks = [[{"id": None, "n": None, "label": "a"}], [{"id": None, "n": None, "label": "b"}],
              [{"id": "x7", "n": None, "label": "a"}], [{"id": None, "n": 3, "label": "b"}, {"id": "y", "n": 4, "label": "a"}]]
    with TableWriter(str(path)) as writer:
        for chunk in chunks:
            writer.write(chunk)
    table = pq.read_table(path)
    assert table.to_pylist() == [row for chunk in chunks for row in chunk]
    assert (str(table.schema.field("id").type), str(table.schema.field("n").type)) == ("string", "int64")
    assert os.listdir(tmp_path) == ["o.parquet"]  # the rows rewritten with the new type: no temporary file left


def test_predict_to_parquet_keeps_a_column_empty_in_the_first_chunk(tmp_path, low_confidence_base):
    pq = pytest.importorskip("pyarrow.parquet")
    clf, _ = low_confidence_base
    clf.save(tmp_path / "clf")
    ids = [None, None, "x7", None, "y"]
    data = _write_jsonl(tmp_path / "x.jsonl", [{"text": t, "id": i} for t, i in zip(LOW_X, ids)])
    assert main(["predict", str(tmp_path / "clf"), str(data), "--keep-columns", "id", "-o", str(tmp_path / "o.parquet"),
                 "--chunk-size", "2", "-q"]) == 0
    table = pq.read_table(tmp_path / "o.parquet")
    assert table.column("id").to_pylist() == ids and table.column("label").to_pylist() == clf.predict(LOW_X[:5]).tolist()


def test_parquet_output_refuses_a_reject_value_of_another_type_than_the_classes(capsys, tmp_path, integer_classifier):
    """Integer classes and the reject value 'unknown' cannot share a Parquet column: the run failed at the first
    chunk holding both, with pyarrow's 'Expected bytes, got a 'int' object'. It is refused before predicting."""
    pytest.importorskip("pyarrow")
    clf, threshold = integer_classifier
    clf.set_params(confidence_threshold=threshold, on_low_confidence="unknown")
    try:
        clf.save(tmp_path / "clf")
    finally:
        clf.set_params(confidence_threshold=None, on_low_confidence=None)
    data = _write_csv(tmp_path / "x.csv", [{"text": "good"}])
    status, message = _main_error(capsys, "predict", str(tmp_path / "clf"), str(data), "-o", str(tmp_path / "o.parquet"))
    assert status == 1 and message.endswith("o.parquet: the column 'label' would hold values of the types int and str "
                                            "(e.g. 0 and 'unknown'), and a Parquet column holds one type; write CSV or "
                                            "JSON Lines instead."), message
    assert not (tmp_path / "o.parquet").exists()


def test_evaluation_text_labels_outside_the_classes():
    metrics = evaluation(["a", "b", "c", "a"], ["a", "b", "a", "b"], ["a", "b"])
    assert metrics["labels"] == ["a", "b", "c"]
    assert metrics["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]
    assert metrics["accuracy"] == 0.5


def test_evaluation_counts_rejected_predictions_in_the_confusion_matrix():
    """A low-confidence reject value ("unsure") is a predicted column: the matrix dropped those rows (3 of 6)."""
    metrics = evaluation(["a", "b", "a", "b", "c", "a"], ["a", "unsure", "a", "unsure", "unsure", "a"], ["a", "b", "c"])
    assert metrics["labels"] == ["a", "b", "c", "unsure"]
    assert metrics["confusion_matrix"] == [[3, 0, 0, 0], [0, 0, 0, 2], [0, 0, 0, 1], [0, 0, 0, 0]]
    assert sum(map(sum, metrics["confusion_matrix"])) == metrics["n"] == 6
    assert metrics["accuracy"] == 0.5 and metrics["macro_f1"] == pytest.approx(1 / 3)  # over the classes, as before


# -- one decision rule: the command line predicts what Python predicts ------------------------------------
REF = ["--backend", "reference", "--model", "reference", "--batch-size", "2", "--random-state", "0"]
LOW_X = ["aaaa aaaa", "bbbb bbbb", "aaaa aa", "bbbb bb", "cccc cc", "aabb aabb"]
LOW_Y = ["a", "b", "a", "b", "c", "a"]
ML_TEXTS = ["goal scored in the match", "the team won the cup", "stocks fell sharply", "market rallies on earnings",
            "election results announced", "parliament votes on budget", "football club buys striker",
            "bank shares drop after vote"]
ML_SETS = [{"sport"}, {"sport"}, {"finance"}, {"finance"}, {"politics"}, {"politics", "finance"}, {"sport", "finance"},
           set()]


def _between_middle(values: np.ndarray) -> float:
    """A threshold strictly between the two middle values: half the rows on each side, none on it."""
    ordered = np.sort(values.ravel())
    middle = len(ordered) // 2
    assert ordered[middle - 1] < ordered[middle], "the test needs distinct middle values"
    return float((ordered[middle - 1] + ordered[middle]) / 2)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


@pytest.fixture(scope="module")
def low_confidence_base() -> tuple[LLMClassifier, float]:
    """A three-class reference-engine classifier and a confidence threshold that half the texts miss."""
    clf = LLMClassifier(backend="reference", model="reference", max_steps=4, batch_size=2, random_state=0).fit(LOW_X, LOW_Y)
    return clf, _between_middle(clf.predict_proba(LOW_X).max(axis=1))


@pytest.mark.parametrize("policy", ["unknown", None, "warn"])
@pytest.mark.parametrize("proba", ["--proba", "--no-proba"])
def test_predict_equals_python_predict_for_a_low_confidence_classifier(capsys, tmp_path, low_confidence_base, policy, proba):
    clf, threshold = low_confidence_base
    clf.set_params(confidence_threshold=threshold, on_low_confidence=policy).save(tmp_path / "clf")
    clf.set_params(confidence_threshold=None, on_low_confidence=None)
    data = _write_csv(tmp_path / "x.csv", [{"id": i, "text": t} for i, t in enumerate(LOW_X)])
    status = main(["predict", str(tmp_path / "clf"), str(data), "-o", str(tmp_path / "out.jsonl"), "--keep-columns", "id", proba, "-q"])
    err = capsys.readouterr().err
    assert status == 0, err
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = LLMClassifier.load(tmp_path / "clf").predict(LOW_X)
    assert [row["label"] for row in rows] == expected.tolist()
    argmax = clf.classes_[clf.predict_proba(LOW_X).argmax(axis=1)]
    assert (policy == "warn") == (expected.tolist() == argmax.tolist())  # the policy changed 3 of the 6 rows
    if policy == "warn":
        assert "llm-classifier: warning: " in err and "rows 1 to 6: 3 of 6 texts have a top probability under" in err


def test_predict_with_on_low_confidence_raise_fails_naming_the_rows_and_writes_nothing(capsys, tmp_path, low_confidence_base):
    clf, threshold = low_confidence_base
    clf.set_params(confidence_threshold=threshold, on_low_confidence="raise").save(tmp_path / "clf")
    clf.set_params(confidence_threshold=None, on_low_confidence=None)
    data = _write_csv(tmp_path / "x.csv", [{"text": t} for t in LOW_X])
    status, message = _main_error(capsys, "predict", str(tmp_path / "clf"), str(data), "-o", str(tmp_path / "out.csv"), "-q")
    first = int(np.flatnonzero(clf.predict_proba(LOW_X).max(axis=1) < threshold)[0]) + 1  # the file's rows count from 1
    assert status == 1 and message.startswith(f"llm-classifier: error: {data}: rows 1 to 6: 3 of 6 texts have a top probability")
    assert f"e.g. row {first} (" in message
    assert sorted(os.listdir(tmp_path)) == ["clf", "x.csv"]  # no output file, no temporary file


# -- multi-label data ------------------------------------------------------------------------------------
def _multilabel_threshold() -> float:
    """``multilabel_threshold`` that splits the probabilities of a short reference-engine fit in half
    (the reference engine learns little in a few steps; the test is about the command line)."""
    clf = LLMClassifier(backend="reference", model="reference", max_steps=6, batch_size=2, random_state=0)
    return _between_middle(clf.fit(ML_TEXTS, [sorted(s) for s in ML_SETS]).predict_proba(ML_TEXTS))


@pytest.mark.parametrize("proba", ["--proba", "--no-proba"])
def test_predict_equals_python_predict_for_a_multilabel_classifier(capsys, tmp_path, proba):
    clf = LLMClassifier(backend="reference", model="reference", max_steps=6, batch_size=2, random_state=0,
                        multilabel_threshold=_multilabel_threshold()).fit(ML_TEXTS, [sorted(s) for s in ML_SETS])
    clf.save(tmp_path / "clf")
    data = _write_jsonl(tmp_path / "x.jsonl", [{"text": t} for t in ML_TEXTS])
    assert main(["predict", str(tmp_path / "clf"), str(data), "-o", str(tmp_path / "o.jsonl"), proba, "-q"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    indicator = LLMClassifier.load(tmp_path / "clf").predict(ML_TEXTS)
    assert 0 < indicator.sum() < indicator.size
    assert [row["label"] for row in rows] == ["|".join(c for c, v in zip(clf.classes_, r) if v) for r in indicator]


def test_multilabel_fit_predict_evaluate_round_trip(tmp_path):
    _write_csv(tmp_path / "train.csv", [{"text": t, "topics": "|".join(sorted(s))} for t, s in zip(ML_TEXTS, ML_SETS)])
    threshold = _multilabel_threshold()
    result = run_cli("fit", "train.csv", "--label-column", "topics", "--label-sep", "|", "--out", "clf", "--max-steps", "6",
                     "--multilabel-threshold", repr(threshold), *REF, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "trained on 8 texts (3 labels: finance, politics, sport)" in result.stderr
    loaded = LLMClassifier.load(tmp_path / "clf")
    indicator = loaded.predict(ML_TEXTS)
    assert 0 < indicator.sum() < indicator.size  # some labels predicted, some not: the join is tested
    python = ["|".join(c for c, v in zip(loaded.classes_, row) if v) for row in indicator]

    for flag in ("--proba", "--no-proba"):
        result = run_cli("predict", "clf", "train.csv", "-o", "out.csv", flag, "-q", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        rows = _read_csv(tmp_path / "out.csv")
        assert [row["label"] for row in rows] == python
        if flag == "--proba":
            assert list(rows[0]) == ["label", "p_finance", "p_politics", "p_sport"]
            written = np.array([[float(row[f"p_{c}"]) for c in loaded.classes_] for row in rows])
            np.testing.assert_allclose(written, loaded.predict_proba(ML_TEXTS), rtol=1e-12)
        else:
            assert list(rows[0]) == ["label"]

    # the predictions, read back as labels with the same separator, score as Python's own predictions
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import MultiLabelBinarizer

    truth = MultiLabelBinarizer(classes=loaded.classes_).fit_transform(ML_SETS)
    result = run_cli("evaluate", "clf", "train.csv", "--label-column", "topics", "--json", "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["labels"] == ["finance", "politics", "sport"] and metrics["n"] == 8
    for average in ("micro", "macro", "samples"):
        assert metrics[f"{average}_f1"] == pytest.approx(f1_score(truth, indicator, average=average, zero_division=0))
    assert metrics["subset_accuracy"] == pytest.approx(np.mean((truth == indicator).all(axis=1)))
    assert metrics["label_confusion"]["sport"][1][1] == int(((truth[:, 2] == 1) & (indicator[:, 2] == 1)).sum())
    assert metrics["report"]["politics"]["support"] == 2
    result = run_cli("evaluate", "clf", "train.csv", "--label-column", "topics", "-q", cwd=tmp_path)  # text output
    assert result.returncode == 0 and "samples-F1" in result.stdout and "subset accuracy" in result.stdout


def test_multilabel_fit_from_label_columns_equals_fit_from_a_separator(tmp_path):
    _write_csv(tmp_path / "sep.csv", [{"text": t, "y": ";".join(sorted(s))} for t, s in zip(ML_TEXTS, ML_SETS)])
    _write_csv(tmp_path / "cols.csv", [{"text": t, "sport": int("sport" in s), "finance": int("finance" in s),
                                        "politics": int("politics" in s)} for t, s in zip(ML_TEXTS, ML_SETS)])
    assert main(["fit", str(tmp_path / "sep.csv"), "--label-column", "y", "--label-sep", ";", "--out", str(tmp_path / "a"),
                 "--max-steps", "3", *REF]) == 0
    assert main(["fit", str(tmp_path / "cols.csv"), "--label-columns", "sport,finance,politics", "--out", str(tmp_path / "b"),
                 "--max-steps", "3", *REF]) == 0
    a, b = LLMClassifier.load(tmp_path / "a"), LLMClassifier.load(tmp_path / "b")
    assert a.classes_.tolist() == b.classes_.tolist() == ["finance", "politics", "sport"]
    np.testing.assert_array_equal(a.predict_proba(ML_TEXTS), b.predict_proba(ML_TEXTS))
    # evaluate reads 0/1 columns too
    assert main(["evaluate", str(tmp_path / "b"), str(tmp_path / "cols.csv"), "--label-columns", "sport,finance,politics",
                 "--json", "-q"]) == 0


def test_multilabel_data_errors(capsys, tmp_path):
    bad = _write_csv(tmp_path / "bad.csv", [{"text": "x", "a": "1", "b": "0"}, {"text": "y", "a": "yes", "b": "1"}])
    status, message = _main_error(capsys, "fit", str(bad), "--label-columns", "a,b", "--out", str(tmp_path / "o"))
    assert status == 1 and message.endswith("bad.csv: row 2 (line 3): the label column 'a' holds 'yes'; --label-columns takes one 0/1 column per label.")
    never = _write_csv(tmp_path / "never.csv", [{"text": "x", "a": "1", "b": "0"}, {"text": "y", "a": "1", "b": "0"}])
    status, message = _main_error(capsys, "fit", str(never), "--label-columns", "a,b", "--out", str(tmp_path / "o"))
    assert status == 1 and message.endswith("never.csv: the label column 'b' holds 1 in no row; every label needs an example.")
    path = tmp_path / "lists.jsonl"
    path.write_text('{"text": "a", "label": ["x"]}\n{"text": "b", "label": 5}\n')
    status, message = _main_error(capsys, "fit", str(path), "--label-sep", "|", "--out", str(tmp_path / "o"))
    assert message.endswith("lists.jsonl: row 2 (line 2): the label column 'label' holds 5 (int); multi-label cells are "
                            "texts of labels separated by '|', or lists.")
    assert not (tmp_path / "o").exists()


def test_predict_refuses_a_separator_inside_a_label(capsys, tmp_path):
    LLMClassifier(backend="reference", model="reference", max_steps=2, random_state=0).fit(
        ML_TEXTS[:4], [["a|b"], ["c"], ["a|b", "c"], []]).save(tmp_path / "clf")
    data = _write_csv(tmp_path / "x.csv", [{"text": "x"}])
    status, message = _main_error(capsys, "predict", str(tmp_path / "clf"), str(data), "-q")
    assert status == 2 and "--label-sep '|': the label 'a|b' contains it" in message
    assert main(["predict", str(tmp_path / "clf"), str(data), "--label-sep", ";", "-o", str(tmp_path / "o.csv"), "-q"]) == 0


def test_evaluate_refuses_a_separator_inside_a_label(capsys, tmp_path):
    # split at '|', the true label 'a|b' would become 'a' and 'b' and the metrics would be silently wrong
    LLMClassifier(backend="reference", model="reference", max_steps=2, random_state=0).fit(
        ML_TEXTS[:4], [["a|b"], ["c"], ["a|b", "c"], []]).save(tmp_path / "clf")
    data = _write_csv(tmp_path / "x.csv", [{"text": t, "label": l} for t, l in zip(ML_TEXTS[:4], ["a|b", "c", "a|b;c", ""])])
    status, message = _main_error(capsys, "evaluate", str(tmp_path / "clf"), str(data), "-q")
    assert status == 2 and "--label-sep '|': the label 'a|b' contains it" in message
    data.write_text(data.read_text().replace("a|b;c", "a|b ; c"))
    assert main(["evaluate", str(tmp_path / "clf"), str(data), "--label-sep", ";", "--json", "-q"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["labels"] == ["a|b", "c"] and metrics["report"]["a|b"]["support"] == 2


@pytest.mark.parametrize("labels, sep, bad, end", [(["a|", "b"], "||", "a|", "|"), (["x", "tag~"], "~~>", "tag~", "~"),
                                                  (["x", "tag~~"], "~~>", "tag~~", "~~")])
def test_a_label_ending_with_the_start_of_the_separator_is_refused(capsys, tmp_path, labels, sep, bad, end):
    """Joined by '||', the labels 'a|' and 'b' read 'a|||b', which splits into 'a' and '|b': fit (of lists),
    predict and evaluate refuse such a separator, fit before anything trains."""
    clf = LLMClassifier(backend="reference", model="reference", max_steps=2, random_state=0)
    clf.fit(ML_TEXTS[:4], [[labels[0]], [labels[1]], labels, []]).save(tmp_path / "clf")
    expected = f"--label-sep {sep!r}: the label {bad!r} ends with {end!r}, the separator's start"
    data = _write_csv(tmp_path / "x.csv", [{"text": t, "label": sep.join(s)} for t, s in zip(ML_TEXTS[:2], [labels, []])])
    lists = tmp_path / "x.jsonl"  # lists keep the labels whole at fit; a joined cell would already split wrongly
    lists.write_text("".join(json.dumps({"text": t, "label": s}) + "\n" for t, s in zip(ML_TEXTS[:2], [labels, []])))
    for command in (["fit", str(lists), "--label-sep", sep, "--out", str(tmp_path / "o"), *REF],
                    ["predict", str(tmp_path / "clf"), str(data), "--label-sep", sep, "-q"],
                    ["evaluate", str(tmp_path / "clf"), str(data), "--label-sep", sep, "-q"]):
        status, message = _main_error(capsys, *command)
        assert status == 2 and expected in message, (command[0], message)
    assert not (tmp_path / "o").exists()
    assert main(["predict", str(tmp_path / "clf"), str(data), "--label-sep", ";", "-o", str(tmp_path / "o.csv"), "-q"]) == 0


def test_evaluate_matches_a_cell_to_a_numeric_class_by_value(capsys, tmp_path):
    """A classifier fitted in Python on the floats 0.0 / 1.0 and a CSV whose cells read '0' / '1': the cells are
    those classes (compared as text, '1' != '1.0' counted every text as wrong, and outside the classes)."""
    y = [0.0, 1.0] * 4
    clf = LLMClassifier(backend="reference", model="reference", max_steps=2, random_state=0).fit(ML_TEXTS[:8], y)
    clf.save(tmp_path / "clf")
    data = _write_csv(tmp_path / "x.csv", [{"text": t, "label": str(int(v))} for t, v in zip(ML_TEXTS[:8], y)])
    assert main(["evaluate", str(tmp_path / "clf"), str(data), "--json", "-q"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["labels"] == ["0.0", "1.0"]
    assert metrics["accuracy"] == pytest.approx(np.mean(clf.predict(ML_TEXTS[:8]) == np.asarray(y)))
    assert metrics["report"]["1.0"]["support"] == 4
    flags = [False, True] * 4  # bool classes, a CSV of lower-case true / false
    clf = LLMClassifier(backend="reference", model="reference", max_steps=2, random_state=0).fit(ML_TEXTS[:8], flags)
    clf.save(tmp_path / "flags")
    data = _write_csv(tmp_path / "f.csv", [{"text": t, "label": str(v).lower()} for t, v in zip(ML_TEXTS[:8], flags)])
    assert main(["evaluate", str(tmp_path / "flags"), str(data), "--json", "-q"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["labels"] == ["False", "True"] and metrics["report"]["True"]["support"] == 4


@pytest.mark.filterwarnings(r"ignore:The '(verbalizer|class_weight)' parameter .* cannot be saved as JSON:UserWarning")
def test_fit_keys_verbalizer_and_class_weight_objects_by_the_classes_they_denote(capsys, tmp_path):
    """A JSON object's keys are texts: '--verbalizer {"0": ...}' named no class of the integer labels 0 / 1 of a JSON
    Lines file (the fit failed: 'no answer for the classes [0, 1]'), '--class-weight {"0": 3}' was refused, and
    '"true"' keyed no bool class. The keys are matched to the classes as evaluate matches a file's labels."""
    data = _write_jsonl(tmp_path / "x.jsonl", [{"text": t, "label": v} for t, v in zip(ML_TEXTS[:8], [0, 1] * 4)])
    assert main(["fit", str(data), "--out", str(tmp_path / "ints"), *REF, "--max-steps", "1",
                 "--verbalizer", '{"0": "negative", "1.0": "positive"}', "--class-weight", '{"0": 3}']) == 0
    clf = LLMClassifier.load(tmp_path / "ints")
    assert clf.classes_.tolist() == [0, 1] and clf.history_["class_weights"] == [3.0, 1.0]
    assert main(["info", str(tmp_path / "ints"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["answers"] == ["negative", "positive"]
    flags = _write_jsonl(tmp_path / "f.jsonl", [{"text": t, "label": v} for t, v in zip(ML_TEXTS[:8], [True, False] * 4)])
    assert main(["fit", str(flags), "--out", str(tmp_path / "flags"), *REF, "--max-steps", "1",
                 "--verbalizer", '{"true": "yes", "False": "no"}']) == 0
    assert main(["info", str(tmp_path / "flags"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["answers"] == ["no", "yes"]


@pytest.mark.parametrize("labels, option, value, expected", [
    ([0, 1], "--class-weight", '{"0": 2, "2": 3}', "The 'class_weight' parameter of LLMClassifier must be 'balanced', "
                                                   "None or a dict whose keys are classes ([0, 1]); ['2'] are not. Got "
                                                   "{0: 2, '2': 3} instead."),  # the library's rule, on the key as given
    ([0, 1], "--class-weight", '{"1": 2, "1.0": 3}', "--class-weight: the keys '1' and '1.0' both name the class 1; "
                                                     "give it once."),
    (["1", 1], "--class-weight", '{"1": 2}', "--class-weight: the key '1' names the classes ['1', 1] alike; a key must "
                                             "name one class."),
])
@pytest.mark.filterwarnings("ignore:The classes are the integers:UserWarning")
def test_fit_refuses_verbalizer_or_class_weight_keys_that_miss_or_name_two_classes(capsys, tmp_path, labels, option, value,
                                                                             expected):
    data = _write_jsonl(tmp_path / "x.jsonl", [{"text": t, "label": v} for t, v in zip(ML_TEXTS[:4], labels * 2)])
    status, message = _main_error(capsys, "fit", str(data), "--out", str(tmp_path / "o"), *REF, option, value)
    assert status == 2 and message.endswith(expected), message
    assert not (tmp_path / "o").exists()


# -- safe output -----------------------------------------------------------------------------------------
FORMULAS = ["=1+1", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tx", "\rx"]


def test_csv_output_neutralises_formulas(tmp_path, low_confidence_base):
    clf, _ = low_confidence_base
    clf.save(tmp_path / "clf")
    rows = [{"id": value, "text": text} for value, text in zip([*FORMULAS, "-0.5", "plain"], LOW_X + LOW_X[:2])]
    data = _write_jsonl(tmp_path / "x.jsonl", rows)
    assert main(["predict", str(tmp_path / "clf"), str(data), "--keep-columns", "id", "-o", str(tmp_path / "o.csv"), "-q"]) == 0
    written = _read_csv(tmp_path / "o.csv")
    assert [row["id"] for row in written] == ["'" + v for v in FORMULAS] + ["-0.5", "plain"]  # a number stays a number
    assert main(["predict", str(tmp_path / "clf"), str(data), "--keep-columns", "id", "-o", str(tmp_path / "raw.tsv"),
                 "--no-escape-formulas", "-q"]) == 0
    with open(tmp_path / "raw.tsv", newline="") as stream:
        assert [row["id"] for row in csv.DictReader(stream, delimiter="\t")] == [*FORMULAS, "-0.5", "plain"]


def test_writer_escapes_text_cells_only(tmp_path):
    with TableWriter(str(tmp_path / "o.csv")) as writer:
        writer.write([{"=h": "=x", "label": -0.5, "n": -3, "t": "-1e-3", "u": "-1-1", "s": "@a"}])
    assert (tmp_path / "o.csv").read_text().splitlines() == ["'=h,label,n,t,u,s", "'=x,-0.5,-3,-1e-3,'-1-1,'@a"]
    with TableWriter(str(tmp_path / "o.jsonl")) as writer:  # JSON Lines is data, not a spreadsheet: unchanged
        writer.write([{"id": "=x"}])
    assert json.loads((tmp_path / "o.jsonl").read_text()) == {"id": "=x"}


def test_info_escapes_control_characters(capsys, tmp_path, low_confidence_base):
    clf, _ = low_confidence_base
    clf.save(tmp_path / "clf")
    config_path = tmp_path / "clf" / "classifier.json"
    config = json.loads(config_path.read_text())
    config["classes"] = ["\x1b[2J\x1b[31mred", "b\nadapter      none", "c\x9b1m"]
    config["model"]["name"] = "\x1b]0;owned\x07base"
    config_path.write_text(json.dumps(config))
    assert main(["info", str(tmp_path / "clf")]) == 0
    out = capsys.readouterr().out
    assert not any(c in out for c in "\x1b\x07\x9b") and "\\x1b[2J\\x1b[31mred" in out and "\\x1b]0;owned\\x07base" in out
    assert "b\\nadapter      none" in out and "c\\x9b1m" in out
    assert main(["info", str(tmp_path / "clf"), "--json"]) == 0
    out = capsys.readouterr().out
    assert not any(c in out for c in "\x1b\x07\x9b")
    assert json.loads(out)["classes"] == config["classes"]  # escaped, and still the same JSON data


@pytest.mark.parametrize("name, content, expected", [
    ("d.csv", "text,label,text\na,b,c\n", "d.csv: the header names the column 'text' twice; rename one of them."),
    ("d.tsv", "id\ttext\tid\n1\ta\t2\n", "d.tsv: the header names the column 'id' twice; rename one of them."),
    ("d.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": "y", "text": "c"}\n',
     "d.jsonl: row 2 (line 2): the object names the column 'text' twice; rename one of them."),
])
def test_duplicated_columns_are_errors(capsys, tmp_path, name, content, expected):
    (tmp_path / name).write_text(content)
    status, message = _main_error(capsys, "fit", str(tmp_path / name), "--out", str(tmp_path / "o"))
    assert status == 1 and message.endswith(expected)


def test_duplicated_parquet_columns_are_errors(capsys, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_arrays([pa.array(["a"]), pa.array(["b"])], names=["text", "text"]), tmp_path / "d.parquet")
    status, message = _main_error(capsys, "fit", str(tmp_path / "d.parquet"), "--out", str(tmp_path / "o"))
    assert status == 1 and message.endswith("d.parquet: the schema names the column 'text' twice; rename one of them.")


def test_keep_columns_may_not_overwrite_an_output_column(capsys, tmp_path, low_confidence_base):
    clf, _ = low_confidence_base
    clf.save(tmp_path / "clf")
    data = _write_csv(tmp_path / "x.csv", [{"text": "x", "p_b": "mine"}])
    status, message = _main_error(capsys, "predict", str(tmp_path / "clf"), str(data), "--keep-columns", "p_b",
                                  "-o", str(tmp_path / "o.csv"))
    assert status == 2 and message.endswith("--keep-columns: 'p_b' is an output column (the label or a class's probability); "
                                            "rename the input column.")
    assert not (tmp_path / "o.csv").exists()
    assert main(["predict", str(tmp_path / "clf"), str(data), "--keep-columns", "p_b", "--no-proba", "-o",
                 str(tmp_path / "o.csv"), "-q"]) == 0  # without probabilities there is no p_b column
    assert _read_csv(tmp_path / "o.csv")[0]["p_b"] == "mine"


def test_kept_cells_are_written_as_data_every_format_reads(capsys, tmp_path, low_confidence_base):
    """A kept JSON Lines cell holding NaN (Python's json reads it) was written back as NaN, which is not JSON; a
    kept list or object was written to CSV as Python's repr ("{'k': 1}")."""
    clf, _ = low_confidence_base
    clf.save(tmp_path / "clf")
    data = tmp_path / "x.jsonl"
    data.write_text('{"text": "aaaa", "score": NaN, "meta": {"k": [1, Infinity]}}\n{"text": "bb", "score": 2.5, "meta": null}\n')
    assert main(["predict", str(tmp_path / "clf"), str(data), "--keep-columns", "score,meta", "-o",
                 str(tmp_path / "o.jsonl"), "-q"]) == 0
    rows = [json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
            for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [(r["score"], r["meta"]) for r in rows] == [(None, {"k": [1, None]}), (2.5, None)]
    assert main(["predict", str(tmp_path / "clf"), str(data), "--keep-columns", "meta", "-o", str(tmp_path / "o.csv"),
                 "-q"]) == 0
    assert [r["meta"] for r in _read_csv(tmp_path / "o.csv")] == ['{"k": [1, null]}', ""]


def test_predict_refuses_to_write_over_its_own_data(capsys, tmp_path, low_confidence_base):
    """``-o`` naming DATA itself (or a link to it) replaced the texts with the predictions once the run ended."""
    clf, _ = low_confidence_base
    clf.save(tmp_path / "clf")
    data = _write_csv(tmp_path / "x.csv", [{"text": "aaaa", "id": "1"}])
    before = data.read_bytes()
    (tmp_path / "link.csv").symlink_to(data)
    for output in (str(data), str(tmp_path / "link.csv"), str(tmp_path / "." / "x.csv")):
        status, message = _main_error(capsys, "predict", str(tmp_path / "clf"), str(data), "-o", output, "-q")
        assert status == 2 and message.endswith(f"--output {output}: is DATA itself; the predictions would replace "
                                                "the texts. Write them to another file."), message
        assert data.read_bytes() == before


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
def test_a_failure_leaves_no_partial_output_and_the_old_file_intact(capsys, tmp_path, low_confidence_base, suffix):
    if suffix == "parquet":
        pytest.importorskip("pyarrow")
    clf, _ = low_confidence_base
    clf.save(tmp_path / "clf")
    data = _write_jsonl(tmp_path / "x.jsonl", [{"text": "aaaa"}, {"text": "bbbb"}, {"text": "cccc"}, {"text": None}])
    out = tmp_path / f"out.{suffix}"
    status, message = _main_error(capsys, "predict", str(tmp_path / "clf"), str(data), "-o", str(out), "--chunk-size", "2", "-q")
    assert status == 1 and message.endswith("x.jsonl: row 4 (line 4): the text column 'text' is missing (None); every row "
                                            "must be a text. Drop or fill missing rows first.")
    assert not out.exists()  # the first chunk was written to a temporary file, removed
    out.write_bytes(b"previous")
    assert _main_error(capsys, "predict", str(tmp_path / "clf"), str(data), "-o", str(out), "--chunk-size", "2", "-q")[0] == 1
    assert out.read_bytes() == b"previous"
    assert sorted(os.listdir(tmp_path)) == ["clf", f"out.{suffix}", "x.jsonl"]  # no temporary file left behind


def test_the_command_line_accepts_the_texts_the_library_accepts(tmp_path, low_confidence_base):
    clf, _ = low_confidence_base
    clf.save(tmp_path / "clf")
    texts = ["   ", "", "\t\n", "aaaa"]
    data = _write_jsonl(tmp_path / "x.jsonl", [{"text": t} for t in texts])
    assert main(["predict", str(tmp_path / "clf"), str(data), "-o", str(tmp_path / "o.jsonl"), "-q"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [row["label"] for row in rows] == clf.predict(texts).tolist()
    np.testing.assert_allclose([[row[f"p_{c}"] for c in clf.classes_] for row in rows], clf.predict_proba(texts), rtol=1e-12)


def test_predict_on_a_terminal_prints_no_terminal_escape_sequences(tmp_path):
    """Class names are data: on a terminal their control characters are shown escaped, never sent raw."""
    import pty

    clf = LLMClassifier(backend="reference", model="reference", max_steps=1, random_state=0)
    clf.fit(["good film", "bad film", "fine plot", "dull plot"], ["\x1b[31mred\x07", "ok", "\x1b[31mred\x07", "ok"])
    clf.save(tmp_path / "clf")
    data = _write_csv(tmp_path / "in.csv", [{"text": "good plot"}, {"text": "dull film"}])
    leader, follower = pty.openpty()
    try:
        result = subprocess.run([sys.executable, "-m", "llm_classifier.cli", "predict", str(tmp_path / "clf"), str(data)],
                                stdout=follower, stderr=subprocess.PIPE, env=_env(), timeout=600)
        os.close(follower)
        follower = -1
        output = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)
    assert result.returncode == 0, result.stderr
    assert b"\x1b" not in output and b"\x07" not in output
    assert b"\\x1b[31mred\\x07" in output  # shown, escaped
