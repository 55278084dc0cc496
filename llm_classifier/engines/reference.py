"""A pure-numpy reference engine: a second, independent implementation of the engine contract.

:class:`ReferenceEngine` is a real (if small) language model over a byte-level vocabulary:

* :class:`ReferenceTokenizer`: ids 0-255 are the UTF-8 bytes of a text, followed by five
  special tokens (``<|begin|>``, ``<|end|>``, ``<|system|>``, ``<|user|>``, ``<|assistant|>``).
* The model interpolates three additively smoothed count models over that vocabulary: a
  unigram, a bigram on the previous token, and a "bag of context" model (the mean, over
  every token of the history, of a next-token distribution conditioned on that token),
  so what comes next depends on the whole context, not only on its last token::

      p(t | h) = MIX[0] * P_uni(t) + MIX[1] * P_bi(t | h[-1]) + MIX[2] * mean_{s in h} P_bag(t | s)

  (``P_uni(t)`` alone for an empty history). Every table is ``(count + ALPHA) / (row total +
  ALPHA * VOCAB_SIZE)``, so each next-token distribution sums to one over the vocabulary.
* The base model is the counts of a corpus: a small built-in one (``model="reference"``) or
  a UTF-8 text file (``model=<path>``). Fine-tuning adds the training continuations' tokens,
  in their contexts, as counts weighted by the examples' weights: the adapter is those
  count arrays.

It imports no deep-learning library and runs the contract tests in milliseconds; it is the
worked example of docs/extending.md and the fast half of ``tests/contract/test_engine_contract.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..exceptions import IncompatibleArtifactError, ModelNotFoundError
from .base import Capabilities, EngineState, Progress, TrainRequest

__all__ = ["ReferenceEngine", "ReferenceTokenizer", "SPECIAL_TOKENS", "VOCAB_SIZE"]

#: The special tokens, in id order after the 256 byte ids.
SPECIAL_TOKENS = ("<|begin|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>")
BEGIN_ID, END_ID = 256, 257
VOCAB_SIZE = 256 + len(SPECIAL_TOKENS)
CHAT_ROLES = ("system", "user", "assistant")

#: Additive smoothing of every count table.
ALPHA = 0.01
#: Interpolation weights of the unigram, bigram and bag-of-context models (they sum to one).
MIX = (0.05, 0.25, 0.7)
#: The weight of a base-corpus token's count relative to a training example's (weight 1): a
#: weak prior, so that a few fine-tuning steps visibly move the model.
BASE_WEIGHT = 0.1
#: The names and shapes of the count arrays (base model and adapter alike).
TABLES = {"unigram": (VOCAB_SIZE,), "bigram": (VOCAB_SIZE, VOCAB_SIZE), "bag": (VOCAB_SIZE, VOCAB_SIZE)}
#: The built-in base model's name for ``load(model=...)``.
BUILTIN = "reference"
BUILTIN_CORPUS = (
    "<|begin|>The quick brown fox jumps over the lazy dog. A good film is a joy to watch; a bad one is long.\n"
    "Text: the plot was thin but the acting was fine.\nAnswer: positive<|end|>\n"
    "<|begin|><|system|>You are a helpful assistant.<|end|><|user|>Hello, how are you?<|end|>"
    "<|assistant|>I am well, thank you.<|end|>\n"
    "<|begin|>Numbers: 0 1 2 3 4 5 6 7 8 9. Letters: abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ.<|end|>\n"
)
_SPECIAL_PATTERN = re.compile("(" + "|".join(re.escape(token) for token in SPECIAL_TOKENS) + ")")


class ReferenceTokenizer:
    """Byte-level tokenizer: ids 0-255 are UTF-8 bytes, 256-260 the :data:`SPECIAL_TOKENS`.

    Parameters
    ----------
    chat_template : bool, default=True
        Whether :meth:`render_chat` renders chat turns (False makes a model without a chat
        template, for which ``prompt="auto"`` falls back to the Alpaca template).
    """

    end_id = END_ID
    begin_id = BEGIN_ID
    vocab_size = VOCAB_SIZE

    special_strings = tuple(sorted(SPECIAL_TOKENS, key=lambda s: (-len(s), s)))

    def __init__(self, chat_template: bool = True) -> None:
        self.has_chat_template = bool(chat_template)

    def encode_texts(self, texts: Sequence[str]) -> list[list[int]]:
        """:meth:`encode_text` of each text."""
        return [self.encode_text(text) for text in texts]

    def encode_text(self, text: str) -> list[int]:
        """The UTF-8 bytes of ``text``: special-token strings stay text (``"<|end|>"`` is 7 ids)."""
        return list(text.encode("utf-8"))

    def encode_prompt(self, text: str, *, start: bool) -> list[int]:
        """``text`` with its special-token strings as their ids, ``<|begin|>`` first when ``start``."""
        ids: list[int] = []
        for part in _SPECIAL_PATTERN.split(text):
            if part in SPECIAL_TOKENS:
                ids.append(256 + SPECIAL_TOKENS.index(part))
            elif part:
                ids.extend(part.encode("utf-8"))
        if start and (not ids or ids[0] != BEGIN_ID):
            ids.insert(0, BEGIN_ID)
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """The text of the byte ids in ``ids`` (special tokens left out; invalid UTF-8 replaced)."""
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < VOCAB_SIZE]
        if bad:
            raise ValueError(f"Token ids must be in [0, {VOCAB_SIZE}); got {bad[:5]}.")
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")

    def render_chat(self, messages: Sequence[dict[str, str]]) -> str:
        """``<|role|>content<|end|>`` per message, then the assistant's header ``<|assistant|>``."""
        if not self.has_chat_template:
            raise RuntimeError("This ReferenceTokenizer was made with chat_template=False: it has no chat markup.")
        turns = []
        for index, message in enumerate(messages):
            role = message["role"]
            if role not in CHAT_ROLES:
                raise ValueError(f"Message {index} has role {role!r}; the reference chat markup knows {list(CHAT_ROLES)}.")
            turns.append(f"<|{role}|>{message['content']}<|end|>")
        return "".join(turns) + "<|assistant|>"


def _zero_tables() -> dict[str, np.ndarray]:
    return {name: np.zeros(shape) for name, shape in TABLES.items()}


def count_tokens(tables: dict[str, np.ndarray], context: Sequence[int], continuation: Sequence[int],
                 weight: float = 1.0) -> None:
    """Add ``weight`` times each continuation token, in its history, to the count ``tables`` (in place)."""
    if not continuation or weight == 0:
        return
    history = list(context)
    bag = np.bincount(np.asarray(history, dtype=np.int64), minlength=VOCAB_SIZE).astype(np.float64)
    for token in continuation:
        tables["unigram"][token] += weight
        if history:
            tables["bigram"][history[-1], token] += weight
            tables["bag"][:, token] += weight * bag  # each history token (with its multiplicity) saw ``token`` next
        history.append(token)
        bag[token] += 1


def _log_normalise(counts: np.ndarray) -> np.ndarray:
    return np.log(counts + ALPHA) - np.log(counts.sum(axis=-1, keepdims=True) + ALPHA * VOCAB_SIZE)


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def _check_ids(ids: Sequence[Sequence[int]], what: str) -> list[np.ndarray]:
    arrays = []
    for index, sequence in enumerate(ids):
        array = np.asarray(list(sequence), dtype=np.int64)
        if array.size and (array.min() < 0 or array.max() >= VOCAB_SIZE):
            raise ValueError(f"{what}[{index}] has token ids outside [0, {VOCAB_SIZE}).")
        arrays.append(array)
    return arrays


class ReferenceEngine:
    """The pure-numpy reference implementation of :class:`~llm_classifier.engines.base.Engine`.

    Parameters
    ----------
    chat_template : bool, default=True
        Whether the tokenizer has a chat template (see :class:`ReferenceTokenizer`).

    Notes
    -----
    Training counts tokens, so of :class:`~llm_classifier.engines.base.TrainRequest`'s schedule
    only ``max_steps`` / ``num_train_epochs``, ``batch_size``, ``gradient_accumulation_steps``,
    ``seed``, ``patience`` and ``eval_batch_size`` mean anything: each step adds the counts of
    the next ``batch_size * gradient_accumulation_steps`` examples (a seeded shuffle per epoch):
    each decision's target candidate, in its history (the context, then the decision's prefix),
    weighted by the decision's weight.
    ``learning_rate``, ``warmup_steps`` and ``weight_decay`` have nothing to act on, and only
    ``objective="answer"`` (maximum likelihood of the continuation) is a count model's objective.
    """

    name = "reference"
    capabilities = Capabilities(fit=True, sample_weight=True, generate=True, state=True, options=())

    def __init__(self, chat_template: bool = True) -> None:
        self.chat_template = chat_template
        self.model: str | None = None
        self._base: dict[str, np.ndarray] | None = None
        self._adapter: dict[str, np.ndarray] | None = None
        self._probabilities: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    # -- loading -----------------------------------------------------------------------
    def load(self, model: str, **options: Any) -> None:
        """Count the base corpus: ``"reference"`` (built in) or the path of a UTF-8 text file."""
        _check_no_options("load", options)
        self.model, corpus = _resolve(model)
        self.tokenizer = ReferenceTokenizer(self.chat_template)
        self.fingerprint = _fingerprint(corpus)
        self._base = _zero_tables()
        for line in corpus.splitlines(keepends=True):
            count_tokens(self._base, [], self.tokenizer.encode_prompt(line, start=False), BASE_WEIGHT)
        self._set_adapter(None)

    def _set_adapter(self, adapter: dict[str, np.ndarray] | None) -> None:
        self._adapter = adapter
        self._probabilities = None

    def _require_loaded(self) -> dict[str, np.ndarray]:
        if self._base is None:
            raise RuntimeError("The reference engine has no model: call load() or load_state() first.")
        return self._base

    def _tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The unigram, bigram and bag-of-context log-probability tables (base + adapter counts)."""
        if self._probabilities is None:
            base = self._require_loaded()
            adapter = self._adapter or _zero_tables()
            self._probabilities = tuple(_log_normalise(base[name] + adapter[name]) for name in TABLES)  # type: ignore[assignment]
        return self._probabilities  # type: ignore[return-value]

    # -- the model ---------------------------------------------------------------------
    def next_distribution(self, history: Sequence[int]) -> np.ndarray:
        """``p(t | history)`` for every token ``t``: the model's definition, one position at a time."""
        unigram, bigram, bag = self._tables()
        if len(history) == 0:
            return np.exp(unigram)
        history = np.asarray(list(history), dtype=np.int64)
        logits = MIX[0] * unigram + MIX[1] * bigram[history[-1]] + MIX[2] * bag[history].mean(axis=0)
        probability = np.exp(logits - logits.max())
        return probability / probability.sum()

    def _block(self, contexts: list[np.ndarray], continuations: list[np.ndarray]) -> np.ndarray:
        """Summed log-probabilities of every continuation after every context, vectorised over contexts."""
        unigram, bigram, bag = self._tables()
        lengths = np.array([len(c) for c in contexts], dtype=np.float64)
        last = np.array([c[-1] if len(c) else 0 for c in contexts], dtype=np.int64)
        bag_sums = np.stack([bag[c].sum(axis=0) for c in contexts]) if contexts else np.zeros((0, VOCAB_SIZE))
        out = np.zeros((len(contexts), len(continuations)))
        for k, tokens in enumerate(continuations):
            if not len(tokens):
                continue
            # the history of token j is the context, then tokens[:j]
            within = np.cumsum(bag[tokens], axis=0) - bag[tokens]  # [L, V]: sum over m < j of log P_bag(. | t_m)
            history_length = lengths[:, None] + np.arange(len(tokens))[None, :]  # [C, L]
            bag_mean = (bag_sums[:, None, :] + within[None]) / np.maximum(history_length, 1)[..., None]
            previous = np.empty((len(contexts), len(tokens)), dtype=np.int64)
            previous[:, 0] = last
            previous[:, 1:] = tokens[None, :-1]
            logits = MIX[0] * unigram + MIX[1] * bigram[previous] + MIX[2] * bag_mean  # [C, L, V]
            logits = np.where((history_length == 0)[..., None], unigram, logits)
            peak = logits.max(axis=-1)
            normaliser = peak + np.log(np.exp(logits - peak[..., None]).sum(axis=-1))
            chosen = np.take_along_axis(logits, np.broadcast_to(tokens, previous.shape)[..., None], axis=-1)[..., 0]
            out[:, k] = (chosen - normaliser).sum(axis=1)
        return out

    # -- the contract ------------------------------------------------------------------
    def score(self, contexts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]], *,
              batch_size: int, progress: Progress | None = None) -> np.ndarray:
        """``log p(continuation_k | context_i)`` for every pair, shape ``(n_contexts, n_continuations)``."""
        self._require_loaded()
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}.")
        contexts_ = _check_ids(contexts, "contexts")
        continuations_ = _check_ids(continuations, "continuations")
        out = np.empty((len(contexts_), len(continuations_)), dtype=np.float64)
        by_context = len(contexts_) >= len(continuations_)
        for chunk in _chunks(len(contexts_) if by_context else len(continuations_), batch_size):
            if by_context:
                out[chunk] = self._block(contexts_[chunk], continuations_)
            else:
                out[:, chunk] = self._block(contexts_, continuations_[chunk])
            if progress is not None:
                progress.update(chunk.stop - chunk.start)
        return out

    def generate(self, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, batch_size: int,
                 progress: Progress | None = None) -> list[str]:
        """Greedy continuation of each prompt (lowest id on a tie), stopping at ``<|end|>``."""
        self._require_loaded()
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be non-negative; got {max_new_tokens!r}.")
        out = []
        for chunk in _chunks(len(prompts), max(1, batch_size)):
            for prompt in _check_ids(prompts[chunk], "prompts"):
                out.append(self.tokenizer.decode(self._greedy(list(prompt), max_new_tokens)))
            if progress is not None:
                progress.update(chunk.stop - chunk.start)
        return out

    def _greedy(self, history: list[int], max_new_tokens: int) -> list[int]:
        new: list[int] = []
        while len(new) < max_new_tokens:
            token = int(np.argmax(self.next_distribution(history)))
            if token == END_ID:
                break
            new.append(token)
            history.append(token)
        return new

    def fit(self, request: TrainRequest) -> dict[str, Any]:
        """Count each decision's target candidate, after its context and prefix, as a fresh adapter; see the class notes."""
        self._require_loaded()
        if request.objective != "answer":
            raise ValueError(f"The reference engine trains only objective='answer' (maximum likelihood); "
                             f"got objective={request.objective!r}.")
        # every decision as (history, continuation, weight), per example
        pairs = [[(list(map(int, example.context)) + list(map(int, decision.prefix)),
                   list(map(int, decision.candidates[decision.target])), float(decision.weight))
                  for decision in example.decisions] for example in request.examples]
        n = len(pairs)
        n_steps = request.n_steps() if n else 0
        self._set_adapter(_zero_tables() if n_steps else None)
        history: dict[str, Any] = {"n_steps": 0, "n_examples": n, "steps": []}
        monitor = _Monitor(self, request, n_steps)
        order = _example_order(n, request.seed)
        per_step = min(n, request.batch_size * request.gradient_accumulation_steps)
        for step in range(1, n_steps + 1):
            batch = [pair for _ in range(per_step) for pair in pairs[next(order)]]
            losses = np.array([-self._pair(context, continuation) for context, continuation, _ in batch])
            weights = np.array([weight for _, _, weight in batch])
            total = weights.sum()
            loss = float(np.dot(weights, losses) / total) if total > 0 else 0.0
            for context, continuation, weight in batch:
                count_tokens(self._adapter, context, continuation, weight)
            self._probabilities = None
            history["steps"].append({"step": step, "epoch": step * per_step / n, "loss": loss})
            history["n_steps"] = step
            if monitor.due(step) and monitor.evaluate(step):
                break
        history.update(monitor.finish())
        return history

    def _pair(self, context: Sequence[int], continuation: Sequence[int]) -> float:
        return float(self._block([np.asarray(context, dtype=np.int64)], [np.asarray(continuation, dtype=np.int64)])[0, 0])

    def state(self) -> EngineState:
        """The base's name and fingerprint and the adapter's count arrays (copies)."""
        self._require_loaded()
        adapter = None if self._adapter is None else {name: array.copy() for name, array in self._adapter.items()}
        config = None if adapter is None else {"vocab_size": VOCAB_SIZE, "alpha": ALPHA, "mix": list(MIX)}
        return EngineState(engine=self.name, model=str(self.model), fingerprint=self.fingerprint, adapter=adapter,
                           adapter_config=config)  # zero-shot: no adapter, so no adapter description

    def load_state(self, state: EngineState, *, model: str | None = None, **options: Any) -> None:
        """Load the base of ``state`` (or ``model``, which must have the same content) and its adapter."""
        _check_no_options("load_state", options)
        if state.engine != self.name:
            raise IncompatibleArtifactError(f"This state was saved by the {state.engine!r} engine, not {self.name!r}.")
        self.load(state.model if model is None else model)
        if self.fingerprint != state.fingerprint:
            raise IncompatibleArtifactError(
                f"The base model {self.model!r} differs from the one the classifier was fitted on ({state.model!r}): "
                f"fingerprint {self.fingerprint[:12]} instead of {state.fingerprint[:12]}."
            )
        self._set_adapter(None if state.adapter is None else _checked_adapter(state.adapter))


class _Monitor:
    """Score the validation slice during :meth:`ReferenceEngine.fit`, keep the best adapter, stop early.

    The slice is the core's :data:`~llm_classifier.engines.base.Validation`: it is called with
    :meth:`ReferenceEngine.score` (the adapter as trained so far) and returns the loss and the scores.
    """

    #: evaluations over a run, as the Hugging Face engine's default
    N_EVALUATIONS = 10

    def __init__(self, engine: ReferenceEngine, request: TrainRequest, n_steps: int) -> None:
        self.engine, self.request = engine, request
        self.every = max(1, -(-n_steps // self.N_EVALUATIONS))
        self.n_steps = n_steps
        self.records: list[dict[str, float]] = []
        self.best: tuple[float, int, dict[str, np.ndarray], np.ndarray] | None = None

    def due(self, step: int) -> bool:
        return self.request.validation is not None and (step % self.every == 0 or step == self.n_steps)

    def evaluate(self, step: int) -> bool:
        """Record the validation loss after ``step``; True when ``patience`` evaluations brought no new best."""
        loss, scores = self.request.validation(self.engine.score)  # type: ignore[misc]
        self.records.append({"step": step, "log_loss": float(loss)})
        if self.best is None or loss <= self.best[0]:
            adapter = {name: array.copy() for name, array in (self.engine._adapter or _zero_tables()).items()}
            self.best = (float(loss), step, adapter, scores)
        patience = self.request.patience
        return patience is not None and len(self.records) - 1 - self._best_index() >= patience

    def _best_index(self) -> int:
        return [record["step"] for record in self.records].index(self.best[1])  # type: ignore[index]

    def finish(self) -> dict[str, Any]:
        """Restore the best adapter; the history entries of the validation slice."""
        if self.request.validation is None:
            return {}
        if self.best is None:  # no step was made: score the model as it is
            return {"validation": [], "best_step": None, "stopped_early": False,
                    "validation_scores": self.request.validation(self.engine.score)[1]}
        _, best_step, adapter, scores = self.best
        self.engine._set_adapter(adapter)
        stopped = self.records[-1]["step"] < self.n_steps
        return {"validation": self.records, "best_step": best_step, "stopped_early": stopped, "validation_scores": scores}


def _example_order(n: int, seed: int) -> Iterator[int]:
    """Example indices, one seeded permutation per epoch, endlessly."""
    rng = np.random.default_rng(seed)
    while n:
        yield from (int(i) for i in rng.permutation(n))


def _check_no_options(method: str, options: dict[str, Any]) -> None:
    if options:
        raise TypeError(f"ReferenceEngine.{method}() takes no engine options (capabilities.options is empty); "
                        f"got {sorted(options)}.")


def _resolve(model: str) -> tuple[str, str]:
    """``(name, corpus)`` of a ``model`` value: the built-in corpus or a text file's content."""
    if model == BUILTIN:
        return BUILTIN, BUILTIN_CORPUS
    if isinstance(model, (str, os.PathLike)) and os.path.isfile(model):
        path = os.path.abspath(model)
        with open(path, encoding="utf-8") as handle:
            return path, handle.read()
    raise ModelNotFoundError(
        f"The 'model' parameter of the reference engine must be {BUILTIN!r} or the path of a UTF-8 text "
        f"file (its base corpus). Got {model!r} instead."
    )


def _fingerprint(corpus: str) -> str:
    """sha256 of the base model's content: its corpus and the model's constants."""
    content = json.dumps({"corpus": corpus, "alpha": ALPHA, "mix": MIX, "special_tokens": SPECIAL_TOKENS})
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def _checked_adapter(adapter: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A copy of a saved adapter, after checking it has the reference tables' names and shapes."""
    if set(adapter) != set(TABLES):
        raise IncompatibleArtifactError(f"The adapter has arrays {sorted(adapter)}; the reference engine needs {sorted(TABLES)}.")
    checked = {}
    for name, shape in TABLES.items():
        array = np.asarray(adapter[name], dtype=np.float64)
        if array.shape != shape:
            raise IncompatibleArtifactError(f"The adapter's {name!r} array has shape {array.shape}; expected {shape}.")
        checked[name] = array.copy()
    return checked
