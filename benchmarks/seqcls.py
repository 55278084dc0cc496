"""The decoder with a classification head and LoRA: the standard way to fine-tune a decoder for classification.

``AutoModelForSequenceClassification`` puts a linear head on the hidden state of the last
non-padding token; peft's ``TaskType.SEQ_CLS`` trains LoRA adapters on the seven projections
and the head with them. The budget is meant to be fair to it: a learning rate chosen from a
small grid on a held-out slice of the training texts (never the test set), early stopping on
that slice, and the checkpoint with the lowest held-out log-loss kept.

Single-label only (the suite skips it on multi-label tasks). It uses ``llm_classifier`` to find the
packaged model (as ``LLMClassifier(model=...)`` does) and for the held-out slice (the same rows
``LLMClassifier``'s early stopping would hold out), nothing else.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from .baselines import _batches, _quiet_transformers

__all__ = ["PROJECTIONS", "DecoderHeadClassifier"]

#: the seven projections of a Llama / Gemma block, as LLMClassifier adapts them
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class DecoderHeadClassifier(ClassifierMixin, BaseEstimator):
    """A decoder LLM with a classification head on the last token, fine-tuned with LoRA (bf16 on CPU).

    For each learning rate of ``learning_rates`` a fresh model is trained on the training texts
    less a stratified ``validation_fraction`` (LLMClassifier's held-out slice); the slice's
    log-loss is measured ``evals_per_epoch`` times per epoch, training stops after ``patience``
    evaluations without a new best, and the best checkpoint is kept. The learning rate whose
    best checkpoint has the lowest held-out log-loss wins; that checkpoint is the model (it is
    not refitted on the slice, as LLMClassifier's early stopping does not refit either).

    Parameters
    ----------
    model : str, default "smollm2-135m-instruct"
        A packaged model alias or a checkpoint folder (resolved like ``LLMClassifier(model=...)``).
    learning_rates : tuple of float, default (2e-4, 5e-4, 1e-3)
        Peak AdamW learning rates tried; linear warm-up over 5 % of the planned steps, then linear decay.
    max_epochs : int, default 3
        Upper bound on training epochs (early stopping usually ends sooner).
    batch_size : int, default 8
    lora_r, lora_alpha, lora_dropout : int, float, float, default 16, 16, 0.0
        LoRA on all seven projections (the scale of ``LLMClassifier``'s defaults).
    weight_decay : float, default 0.01
    validation_fraction : float, default 0.1
        Share of each class held out to choose the learning rate and the checkpoint.
    evals_per_epoch : int, default 2
    patience : int, default 2
        Evaluations without a lower held-out log-loss before a run stops.
    max_length : int, default 512
        Token limit per text (head truncation, as ``LLMClassifier``'s default).
    dtype : {"bfloat16", "float32"}, default "bfloat16"
        Storage of the frozen base weights; with bfloat16 the forward pass runs under bf16
        autocast and the adapters and head stay in float32.
    seed : int, default 0
    progress : bool, default True
        Show a tqdm bar over each run's steps.
    """

    def __init__(self, model: str = "smollm2-135m-instruct",
                 learning_rates: tuple[float, ...] = (2e-4, 5e-4, 1e-3), max_epochs: int = 3,
                 batch_size: int = 8, lora_r: int = 16, lora_alpha: float = 16, lora_dropout: float = 0.0,
                 weight_decay: float = 0.01, validation_fraction: float = 0.1, evals_per_epoch: int = 2,
                 patience: int = 2, max_length: int = 512, dtype: str = "bfloat16", seed: int = 0,
                 progress: bool = True) -> None:
        self.model = model
        self.learning_rates = learning_rates
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lora_r = lora_r
        self.lora_alpha = lora_alpha
        self.lora_dropout = lora_dropout
        self.weight_decay = weight_decay
        self.validation_fraction = validation_fraction
        self.evals_per_epoch = evals_per_epoch
        self.patience = patience
        self.max_length = max_length
        self.dtype = dtype
        self.seed = seed
        self.progress = progress

    # ------------------------------------------------------------------ building

    def _autocast(self):
        import torch

        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.dtype == "bfloat16")

    def _build(self, path: str, n_classes: int):
        """A fresh head model with LoRA adapters; the trainable weights in float32."""
        import torch
        from peft import LoraConfig, TaskType, get_peft_model
        from transformers import AutoModelForSequenceClassification

        if self.dtype not in ("bfloat16", "float32"):
            raise ValueError(f"The 'dtype' parameter of DecoderHeadClassifier must be 'bfloat16' or 'float32'. "
                             f"Got {self.dtype!r} instead.")
        with _quiet_transformers():  # "score.weight newly initialized" is expected
            base = AutoModelForSequenceClassification.from_pretrained(
                path, num_labels=n_classes, dtype=getattr(torch, self.dtype),
                pad_token_id=self.tokenizer_.pad_token_id)
        base.config.pad_token_id = self.tokenizer_.pad_token_id  # the last non-pad token is pooled
        present = {name.rsplit(".", 1)[-1] for name, _ in base.named_modules()}
        targets = [m for m in PROJECTIONS if m in present]
        config = LoraConfig(task_type=TaskType.SEQ_CLS, r=self.lora_r, lora_alpha=self.lora_alpha,
                            lora_dropout=self.lora_dropout, target_modules=targets)
        model = get_peft_model(base, config)  # SEQ_CLS: the head ("score") is trained and saved too
        for p in model.parameters():
            if p.requires_grad:
                p.data = p.data.float()
        return model

    def _trainable_state(self, model) -> dict:
        return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    # ------------------------------------------------------------------ fitting

    def fit(self, X: Sequence[str], y: Sequence) -> DecoderHeadClassifier:
        """Choose the learning rate and the checkpoint on the held-out slice; ``history_`` records each run."""
        from transformers import AutoTokenizer

        from llm_classifier.engines.hf_checkpoints import resolve_model
        from llm_classifier.pipeline.holdout import stratified_holdout

        X, y = list(X), list(y)
        self.classes_ = np.asarray(sorted(set(y)))
        index = {c: i for i, c in enumerate(self.classes_)}
        codes = np.asarray([index[v] for v in y])
        path = resolve_model(self.model).path
        with _quiet_transformers():
            self.tokenizer_ = AutoTokenizer.from_pretrained(path)
        if self.tokenizer_.pad_token is None:
            self.tokenizer_.pad_token = self.tokenizer_.eos_token
        self.tokenizer_.padding_side = "right"
        held = stratified_holdout(codes, self.validation_fraction, self.seed)
        if not held.any():
            raise ValueError(f"validation_fraction={self.validation_fraction} holds out no text of {len(X)}: "
                             "every class needs at least 5 examples at 0.1")
        enc = self.tokenizer_(X, truncation=True, max_length=self.max_length)["input_ids"]
        train_rows, held_rows = np.flatnonzero(~held), np.flatnonzero(held)
        start = time.perf_counter()
        runs, best_model, best_loss = [], None, math.inf
        for lr in self.learning_rates:
            model, run = self._train_one(path, float(lr), enc, codes, train_rows, held_rows)
            runs.append(run)
            if run["best_val_loss"] < best_loss:
                best_model, best_loss = model, run["best_val_loss"]
        best_model.eval()
        self.model_ = best_model
        chosen = min(runs, key=lambda r: r["best_val_loss"])
        self.learning_rate_ = chosen["learning_rate"]
        self.history_ = {
            "train_runtime": time.perf_counter() - start,
            "learning_rate": self.learning_rate_,
            "best_val_loss": chosen["best_val_loss"],
            "best_step": chosen["best_step"],
            "steps_run": chosen["steps_run"],
            "n_train": int(len(train_rows)), "n_validation": int(len(held_rows)),
            "runs": runs,
            "steps": chosen["steps"],
        }
        return self

    def _train_one(self, path: str, lr: float, enc: list, codes: np.ndarray, train_rows: np.ndarray,
                   held_rows: np.ndarray):
        """One run at ``lr`` with early stopping; returns the model at its best checkpoint and the run's record."""
        import torch
        from tqdm.auto import tqdm

        torch.manual_seed(self.seed)
        model = self._build(path, len(self.classes_))
        params = [p for p in model.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": self.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=lr)
        steps_per_epoch = math.ceil(len(train_rows) / self.batch_size)
        total = steps_per_epoch * self.max_epochs
        warmup = max(1, int(0.05 * total))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (total - s) / max(1, total - warmup)))
        eval_every = max(1, math.ceil(steps_per_epoch / self.evals_per_epoch))
        targets = torch.as_tensor(codes)
        rng = np.random.default_rng(self.seed)
        steps, evaluations = [], []
        best_loss, best_step, best_state, since_best = math.inf, 0, None, 0
        bar = tqdm(total=total, desc=f"seqcls lr={lr:g}", leave=False, disable=not self.progress)
        stop = False
        model.train()
        for epoch in range(self.max_epochs):
            for idx in self._length_grouped_batches(train_rows, [len(t) for t in enc], rng):
                batch = self.tokenizer_.pad({"input_ids": [enc[i] for i in idx]}, return_tensors="pt")
                with self._autocast():
                    out = model(**batch, labels=targets[idx])
                out.loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sched.step()
                opt.zero_grad()
                steps.append({"step": len(steps) + 1, "epoch": epoch + 1, "loss": float(out.loss.detach()),
                              "lr": float(sched.get_last_lr()[0])})
                bar.update(1)
                if len(steps) % eval_every == 0 or len(steps) == total:
                    val = self._log_loss(model, [enc[i] for i in held_rows], codes[held_rows])
                    evaluations.append({"step": len(steps), "val_loss": val})
                    bar.set_postfix(val_loss=f"{val:.3f}")
                    if val < best_loss:
                        best_loss, best_step, best_state, since_best = val, len(steps), \
                            self._trainable_state(model), 0
                    else:
                        since_best += 1
                        stop = since_best >= self.patience
                    model.train()
                if stop:
                    break
            if stop:
                break
        bar.close()
        if best_state is not None:
            with torch.no_grad():
                for n, p in model.named_parameters():
                    if n in best_state:
                        p.copy_(best_state[n])
        run = {"learning_rate": lr, "best_val_loss": best_loss, "best_step": best_step, "steps_run": len(steps),
               "evaluations": evaluations, "steps": steps}
        return model, run

    def _length_grouped_batches(self, rows: np.ndarray, lengths: list[int], rng: np.random.Generator):
        """Batches of ``rows`` in random order, each drawn from texts of similar length (less padding).

        Like transformers' ``group_by_length``: shuffle, cut into mega-batches of 16 batches, sort
        each by length, cut into batches, then shuffle the batches.
        """
        rows = rows[rng.permutation(len(rows))]
        mega = 16 * self.batch_size
        batches = []
        for start in range(0, len(rows), mega):
            chunk = rows[start:start + mega]
            chunk = chunk[np.argsort([lengths[i] for i in chunk], kind="stable")]
            batches += [chunk[i:i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def _logits(self, model, ids: list[list[int]]) -> np.ndarray:
        import torch

        model.eval()
        order = np.argsort([len(t) for t in ids], kind="stable")  # similar lengths share a batch
        out = np.zeros((len(ids), len(self.classes_)), dtype=np.float32)
        with torch.inference_mode():
            for idx in _batches(len(ids), 16, order):
                batch = self.tokenizer_.pad({"input_ids": [ids[i] for i in idx]}, return_tensors="pt")
                with self._autocast():
                    logits = model(**batch).logits
                out[idx] = logits.float().numpy()
        return out

    def _log_loss(self, model, ids: list[list[int]], codes: np.ndarray) -> float:
        logits = self._logits(model, ids)
        logits = logits - logits.max(axis=1, keepdims=True)
        log_proba = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return float(-log_proba[np.arange(len(codes)), codes].mean())

    # ------------------------------------------------------------------ prediction

    def predict_proba(self, X: Sequence[str]) -> np.ndarray:
        """Softmax over the head's logits, columns in ``classes_`` order."""
        ids = self.tokenizer_(list(X), truncation=True, max_length=self.max_length)["input_ids"]
        logits = self._logits(self.model_, ids)
        logits = logits - logits.max(axis=1, keepdims=True)
        proba = np.exp(logits)
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, X: Sequence[str]) -> np.ndarray:
        """Predicted labels."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def report_extra(self) -> dict:
        """The chosen learning rate and each run's held-out log-loss, for the result file."""
        return {"model": self.model, "learning_rate": self.learning_rate_,
                "val_loss_per_learning_rate": {str(r["learning_rate"]): r["best_val_loss"]
                                               for r in self.history_["runs"]},
                "best_step": self.history_["best_step"], "steps_run": self.history_["steps_run"],
                "max_epochs": self.max_epochs, "batch_size": self.batch_size, "lora_r": self.lora_r,
                "lora_alpha": self.lora_alpha, "dtype": self.dtype, "max_length": self.max_length}
