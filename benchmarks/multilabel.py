"""Multi-label tasks in the benchmark: one-vs-rest baselines, the run loop and the metrics.

A multi-label corpus stores each text's label set as one string (labels joined by the
corpus's ``label_separator``), so the sampling code stratifies by label set unchanged;
here the sets become an indicator matrix. The baselines are one-vs-rest logistic
regressions on TF-IDF features and on MiniLM embeddings; the LLM methods are
``LLMClassifier`` fitted on the indicator matrix (one yes/no question per label).
"""

from __future__ import annotations

import time
import traceback
import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, hamming_loss, precision_recall_fscore_support
from sklearn.multiclass import OneVsRestClassifier

__all__ = ["OneVsRestBertEmbedding", "OneVsRestTfidf", "indicator", "multilabel_metrics", "run_multilabel_unit"]


def indicator(label_sets: Sequence[str], labels: Sequence[str], separator: str) -> np.ndarray:
    """The ``(n, len(labels))`` 0/1 matrix of label-set strings such as ``"a|b"`` ("" is no label)."""
    position = {label: j for j, label in enumerate(labels)}
    Y = np.zeros((len(label_sets), len(labels)), dtype=int)
    for i, joined in enumerate(label_sets):
        for label in filter(None, joined.split(separator)):
            Y[i, position[label]] = 1
    return Y


def _head(C: float) -> OneVsRestClassifier:
    return OneVsRestClassifier(LogisticRegression(C=C, class_weight="balanced", solver="liblinear", max_iter=2000))


class OneVsRestTfidf(ClassifierMixin, BaseEstimator):
    """The TF-IDF features of :class:`~benchmarks.baselines.TfidfClassifier`, a logistic regression per label."""

    def __init__(self, C: float = 10.0) -> None:
        self.C = C

    def fit(self, X: list[str], Y: np.ndarray) -> OneVsRestTfidf:
        from sklearn.pipeline import Pipeline

        from .baselines import TfidfClassifier

        features = TfidfClassifier()._pipeline(None).named_steps["features"]
        self.pipeline_ = Pipeline([("features", features), ("clf", _head(self.C))]).fit(list(X), Y)
        return self

    def predict_proba(self, X: list[str]) -> np.ndarray:
        return self.pipeline_.predict_proba(list(X))

    def predict(self, X: list[str]) -> np.ndarray:
        return self.pipeline_.predict(list(X))


class OneVsRestBertEmbedding(ClassifierMixin, BaseEstimator):
    """Mean-pooled all-MiniLM-L6-v2 embeddings, a logistic regression per label."""

    def __init__(self, C: float = 10.0) -> None:
        self.C = C

    def fit(self, X: list[str], Y: np.ndarray) -> OneVsRestBertEmbedding:
        from .baselines import BertEmbeddingClassifier

        self.embedder_ = BertEmbeddingClassifier()
        self.head_ = _head(self.C).fit(self.embedder_.embed(list(X)), Y)
        return self

    def predict_proba(self, X: list[str]) -> np.ndarray:
        return self.head_.predict_proba(self.embedder_.embed(list(X)))

    def predict(self, X: list[str]) -> np.ndarray:
        return self.head_.predict(self.embedder_.embed(list(X)))


BASELINES = {"tfidf": OneVsRestTfidf, "bert-emb": OneVsRestBertEmbedding}


def multilabel_metrics(Y: np.ndarray, predicted: np.ndarray, labels: Sequence[str]) -> dict:
    """Micro, macro and samples F1, subset accuracy (as ``accuracy``) and Hamming loss, and per-label scores."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # labels or rows without a prediction: F1 0 there
        precision, recall, f1, support = precision_recall_fscore_support(Y, predicted, zero_division=0)
        scores = {average: float(f1_score(Y, predicted, average=average, zero_division=0))
                  for average in ("micro", "macro", "samples")}
    return {
        "accuracy": float((Y == predicted).all(axis=1).mean()),
        "macro_f1": scores["macro"], "micro_f1": scores["micro"], "samples_f1": scores["samples"],
        "hamming_loss": float(hamming_loss(Y, predicted)),
        "labels_per_text_true": float(Y.sum(axis=1).mean()),
        "labels_per_text_predicted": float(predicted.sum(axis=1).mean()),
        "per_class": {label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                      for label, p, r, f, s in zip(labels, precision, recall, f1, support)},
    }


def run_multilabel_unit(task: str, data, methods: list[str], options: dict, rss_mode: str) -> list[dict]:
    """Fit and score ``methods`` on a multi-label task's sample; one record per method."""
    import resource

    from .methods import METHODS
    from .report import to_jsonable

    labels = list(data.metadata["labels"])
    separator = data.metadata["label_separator"]
    Y_train = indicator(data.train_labels, labels, separator)
    Y_test = indicator(data.test_labels, labels, separator)
    records = []
    for method in methods:
        rec: dict = {"task": task, "method": method, "n_train": len(data.train_texts), "n_test": len(data.test_texts),
                     "rss_mode": rss_mode, "multilabel": True}
        try:
            if method in BASELINES:
                est = BASELINES[method]()
            elif METHODS[method].needs_llm and not METHODS[method].reuses:
                est = METHODS[method].build(options)
            else:
                records.append({**rec, "status": "skipped", "reason": f"{method} has no multi-label form"})
                continue
            t0 = time.perf_counter()
            if METHODS[method].needs_llm:  # named columns: the label names are the LLM's answers
                import pandas as pd

                est.fit(data.train_texts, pd.DataFrame(Y_train, columns=labels))
            else:
                est.fit(data.train_texts, Y_train)
            rec["fit_time_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            if METHODS[method].needs_llm:  # predict's own two steps, keeping the probabilities for the record
                proba = np.asarray(est.predict_proba(data.test_texts))
                predicted = np.asarray(est.predict_from_proba(proba))
            else:
                predicted = np.asarray(est.predict(data.test_texts))
            rec["predict_time_s"] = time.perf_counter() - t0
            rec["predict_examples_per_s"] = len(data.test_texts) / rec["predict_time_s"]
            rec["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
            rec["metrics"] = multilabel_metrics(Y_test, predicted, labels)
            if METHODS[method].needs_llm:
                from .llm_methods import llm_extra

                rec["history"] = dict(est.history_)
                rec["extra"] = {**llm_extra(est), "thresholds": np.asarray(est.thresholds_).tolist(),
                                "test_proba": proba.tolist(),
                                # a diagnostic, not the result: the same probabilities cut at 0.5
                                "metrics_at_0.5": multilabel_metrics(Y_test, (proba >= 0.5).astype(int), labels)}
            rec["status"] = "ok"
        except Exception as exc:  # noqa: BLE001 - one failing method must not stop the run
            rec.update(status="error", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        records.append(to_jsonable(rec))
    return records
