"""SetFit: contrastive fine-tuning of a sentence-transformer, then a logistic-regression head.

``pip install setfit`` (it brings sentence-transformers; it leaves torch and transformers as they are).
The body is the packaged all-MiniLM-L6-v2 the suite's embedding baselines use.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from .baselines import _quiet_transformers, minilm_path

__all__ = ["SETFIT_INSTALL", "SetFitClassifier"]

SETFIT_INSTALL = "pip install setfit"


class SetFitClassifier(ClassifierMixin, BaseEstimator):
    """SetFit at its documented settings (``num_iterations=20``, batch 16, one epoch) on MiniLM.

    Each training text is paired ``num_iterations`` times with a text of its class and with one
    of another class; the body is fine-tuned on the pairs with a cosine-similarity loss, then a
    logistic regression (SetFit's default head) is fitted on the new embeddings.

    Parameters
    ----------
    model_path : str or None
        A sentence-transformers folder (default: the packaged all-MiniLM-L6-v2).
    num_iterations : int, default 20
        Pairs drawn per training text and kind (same class, other class).
    batch_size : int, default 16
    num_epochs : int, default 1
        Epochs over the pairs.
    max_steps : int, default -1
        A cap on the body's optimizer steps (-1: none); the suite keeps it off unless a fit
        would exceed an hour.
    seed : int, default 0
    progress : bool, default True
    """

    def __init__(self, model_path: str | None = None, num_iterations: int = 20, batch_size: int = 16,
                 num_epochs: int = 1, max_steps: int = -1, seed: int = 0, progress: bool = True) -> None:
        self.model_path = model_path
        self.num_iterations = num_iterations
        self.batch_size = batch_size
        self.num_epochs = num_epochs
        self.max_steps = max_steps
        self.seed = seed
        self.progress = progress

    def fit(self, X: Sequence[str], y: Sequence) -> SetFitClassifier:
        """Fine-tune the body on pairs of ``X``, then fit the head; ``history_`` holds the run's figures."""
        try:
            from setfit import SetFitModel, Trainer, TrainingArguments
        except ImportError as exc:
            raise ImportError(f"the setfit method needs SetFit: `{SETFIT_INSTALL}` ({exc})") from exc
        from datasets import Dataset

        X, y = list(X), [str(v) for v in y]
        path = self.model_path or str(minilm_path())
        with _quiet_transformers():
            model = SetFitModel.from_pretrained(path)
        with tempfile.TemporaryDirectory() as scratch:
            args = TrainingArguments(output_dir=scratch, batch_size=self.batch_size, num_epochs=self.num_epochs,
                                     num_iterations=self.num_iterations, max_steps=self.max_steps, seed=self.seed,
                                     show_progress_bar=self.progress, report_to="none", save_strategy="no",
                                     logging_strategy="no")
            trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_dict({"text": X, "label": y}))
            trainer.train()
            state = getattr(getattr(trainer, "st_trainer", None), "state", None)
        self.model_ = model
        self.classes_ = np.asarray(model.model_head.classes_)
        pairs = 2 * self.num_iterations * len(X)  # one same-class and one other-class pair per text and iteration
        self.history_ = {"steps": int(state.global_step) if state is not None else None,
                         "uncapped_steps": math.ceil(pairs / self.batch_size) * self.num_epochs,
                         "num_iterations": self.num_iterations, "batch_size": self.batch_size,
                         "num_epochs": self.num_epochs, "max_steps": self.max_steps}
        return self

    def predict_proba(self, X: Sequence[str]) -> np.ndarray:
        """The head's probabilities, columns in ``classes_`` order."""
        return np.asarray(self.model_.predict_proba(list(X), as_numpy=True, show_progress_bar=False),
                          dtype=np.float64)

    def predict(self, X: Sequence[str]) -> np.ndarray:
        """Predicted labels."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def report_extra(self) -> dict:
        """SetFit's settings, for the result file."""
        return dict(self.history_)
