"""LLMClassifier: a scikit-learn classifier that QLoRA-tunes a decoder LLM and scores labels."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils.validation import check_is_fitted

from ._logging import warn_caller
from ._params import PARAMETER_CONSTRAINTS, check_params
from ._process import is_main_process
from .exceptions import UnparseableAnswerWarning
from .formulations.multilabel import is_multilabel_target, targets_in_order
from .inputs import show_value
from .pipeline import fit as fitting
from .pipeline import predict as predicting
from .pipeline.plan import Plan, plan_of

DEFAULT_MODEL = "smollm2-135m-instruct"



def _fitted(field: str, doc: str) -> property:
    """A fitted attribute, read from the one fitted record ``state_`` (AttributeError before ``fit``)."""

    def read(self: LLMClassifier) -> Any:
        try:
            state = self.__dict__["state_"]
        except KeyError:
            raise AttributeError(f"This {type(self).__name__} instance is not fitted yet.") from None
        return getattr(state, field)

    return property(read, doc=doc)


class LLMClassifier(ClassifierMixin, BaseEstimator):
    """A text classifier made of a decoder LLM, fine-tuned with QLoRA.

    ``fit`` renders each text into an instruction prompt, names each class with an
    answer (the verbalizer) and trains LoRA adapters on a 4-bit base with the loss on
    the answer only. ``predict_proba`` scores every class's answer under the model,
    ``log p(answer | prompt)``, and normalises over the classes, so predictions are
    always one of ``classes_`` and probabilities sum to one. docs/parameters.md
    describes every parameter at length.

    Parameters
    ----------
    model : str, default="smollm2-135m-instruct"
        Packaged model alias, local checkpoint directory, ``.gguf`` file or hub id.
    prompt : str, callable or PromptTemplate, default="auto"
        "auto" (the model's chat template, else Alpaca), "chat", "alpaca", a format string
        with ``{text}``, a callable ``f(text, labels)`` or a template object.
    direction : {"direct", "channel"}, default="direct"
        "direct" scores each class's answer after the text's prompt; "channel" scores the
        text after each class's prompt (the noisy channel; :mod:`llm_classifier.formulations.base`).
    few_shot : int, default=0
        Demonstrations per class drawn from the training texts into every prompt.
    verbalizer : None, dict, callable or Verbalizer, default=None
        Class -> answer text; None uses ``str(label)``.
    label_parser : None, str, callable or LabelParser, default=None
        Generated text -> class for ``inference="generate"``; None is the forgiving parser.
    backend : str or Engine, default="transformers"
        The model engine (:class:`~llm_classifier.engines.base.Engine`).
    inference : {"score", "generate"}, default="score"
        Score every label, or generate an answer and parse it.
    on_unparseable : "score", "raise" or a class label, default="score"
        Generate mode: what an answer the parser cannot map becomes.
    quantization : {"4bit", "8bit"} or None, default="4bit"
        Storage of the frozen base weights in training (NF4 with double quantisation).
    lora_r, lora_alpha, lora_dropout : int, float, float, default=16, 16, 0.0
        LoRA rank, scale numerator and dropout.
    target_modules : list of str, str or None, default=None
        Modules to adapt; None means the q/k/v/o/gate/up/down projections present.
    learning_rate : float or "auto", default="auto"
        Peak learning rate; "auto" is 2e-4 x 4096 / hidden size, within [2e-4, 1e-3].
    max_steps : int or None, default=None
        Optimizer steps; None trains for ``num_train_epochs``; 0 is zero-shot.
    num_train_epochs : float or "auto", default="auto"
        Epochs when ``max_steps`` is None; "auto" is 4 with early stopping, else 2.
    batch_size, gradient_accumulation_steps, warmup_steps : int, default=8, 1, 5
    weight_decay : float, default=0.01
    optimizer : str, default="adamw"
        "adamw", "adamw_8bit", "paged_adamw_8bit", "adafactor" or "sgd".
    lr_scheduler : str, default="linear"
    ema_decay : float or None, default=0.95
        Keep a moving average of the adapter weights instead of the last ones.
    objective : {"answer", "class", "answer+class"}, default="answer"
        Loss on the answer tokens, over the label set, or their sum.
    calibration : {"auto", "prior", "affine"} or None, default="auto"
        Correction of the class scores fitted after training ("auto": "prior" for zero-shot;
        multi-label: the correction of ``positive_weight``, so that ``predict_proba`` estimates
        how often a label applies, not the weighted odds; None leaves the scores as trained).
    class_weight : "balanced", dict or None, default=None
        Weights of the classes in the training loss.
    gradient_checkpointing : bool, default=False
        Recompute activations in the backward pass: less memory for more time.
    early_stopping : bool or "auto", default="auto"
        Hold out ``validation_fraction`` of the texts, keep the best adapter, stop when it stalls.
    validation_fraction : float, default=0.1
    n_iter_no_change : int or None, default=3
    max_length : int, default=512
        Maximum tokens of prompt plus answer; longer texts are cut as ``truncation`` says.
    truncation : {"head", "tail", "head+tail"}, default="head"
    long_text : {"truncate", "mean", "max"}, default="truncate"
        A text longer than ``max_length`` allows: cut as ``truncation`` says, or split into
        overlapping windows that are all scored, their class log-probabilities pooled by
        mean or max, and that all train with the text's label (see docs/parameters.md).
    window_overlap : float in [0, 1), default=0.25
        Share of the text budget consecutive windows have in common.
    max_windows : int or None, default=8
        Most windows read per text (spread evenly over longer texts); None for no limit.
    eval_batch_size : int, default=16
        Texts per forward pass in prediction.
    max_new_tokens : int or None, default=None
        Generation length; None is the longest answer plus 8 tokens.
    confidence_threshold : float or None, default=None
        ``predict`` treats a text whose top calibrated probability is below this as low
        confidence, as ``on_low_confidence`` says (score mode); None predicts every text.
    on_low_confidence : "warn", "raise" or any value, default=None
        For low-confidence texts: predict anyway with one warning, raise
        :class:`~llm_classifier.exceptions.LowConfidenceError`, or return this value (the
        reject value, e.g. "unknown" or -1) instead of a class.
    dtype : {"auto", "bfloat16", "float16", "float32"}, default="auto"
    device : str, default="auto"
    random_state : int, RandomState or None, default=None
        Seeds adapter initialisation and data order; the caller's global random state is kept.
    verbose : bool or int, default=False
        Progress bars for training and prediction.
    multilabel_threshold : float in (0, 1) or "auto", default="auto"
        Multi-label targets only: the probability (as ``predict_proba`` gives it) from which a
        label is predicted, for every label; "auto" fits one threshold per label maximising F1
        on early stopping's held-out slice when the fit has one (a label with fewer than 20
        positive texts there gets the one threshold best over all labels), and is otherwise the point of
        even odds under the training's weighting, ``1 / (1 + w_j)`` for a "yes" weight ``w_j``
        (0.5 without weighting) (:mod:`llm_classifier.formulations.multilabel`).
    positive_weight : "balanced", float > 0 or None, default="balanced"
        Multi-label targets only (ignored otherwise): the loss weight of a label's "yes"
        decisions relative to its "no" decisions, so that rare labels are not learnt as
        "always no". "balanced": per label, its number of "no" training texts over its
        "yes" texts, at most 10; a float: that weight for every label; None: 1. Each
        label's weights are then scaled to average 1 over its texts.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels, sorted.
    answers_ : list of str
        The answer text of each class.
    layout_ : PromptLayout
        The prompt as the direction laid it out (template, demonstrations, class prompts,
        text before and after); ``template_``, ``demonstrations_``, ``class_prompts_``,
        ``prompt_prefix_`` and ``prompt_suffix_`` read from it.
    label_parser_ : LabelParser
    backend_ : Engine
        The loaded model engine (holds the trained adapter).
    history_ : dict
        Per-step training loss (``history_["steps"]``) and the run's figures.
    calibration_ : Calibration or None
        The fitted correction of the class log-scores, or None.
    thresholds_ : ndarray of shape (n_classes,) or None
        Multi-label targets: each label's probability threshold; None otherwise.

    Notes
    -----
    ``fit(X, Y)`` with a multi-label ``Y`` (an indicator matrix, a DataFrame of 0/1
    columns or a list of label sets) asks one yes/no question per label;
    ``predict`` then returns the 0/1 indicator matrix and ``predict_proba`` one
    independent probability per label (:mod:`llm_classifier.formulations.multilabel`).

    Examples
    --------
    >>> from llm_classifier import LLMClassifier
    >>> clf = LLMClassifier(max_steps=20, random_state=0)  # doctest: +SKIP
    >>> clf.fit(["great fun", "dull and long"], ["pos", "neg"]).predict(["what fun"])  # doctest: +SKIP
    array(['pos'], dtype='<U3')
    """

    _parameter_constraints: dict = PARAMETER_CONSTRAINTS

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        prompt: Any = "auto",
        direction: str = "direct",
        few_shot: int = 0,
        verbalizer: Any = None,
        label_parser: Any = None,
        backend: Any = "transformers",
        inference: str = "score",
        on_unparseable: Any = "score",
        quantization: str | None = "4bit",
        lora_r: int = 16,
        lora_alpha: float = 16,
        lora_dropout: float = 0.0,
        target_modules: Sequence[str] | str | None = None,
        learning_rate: float | str = "auto",
        max_steps: int | None = None,
        num_train_epochs: float | str = "auto",
        batch_size: int = 8,
        gradient_accumulation_steps: int = 1,
        warmup_steps: int = 5,
        weight_decay: float = 0.01,
        optimizer: str = "adamw",
        lr_scheduler: str = "linear",
        ema_decay: float | None = 0.95,
        objective: str = "answer",
        calibration: str | None = "auto",
        class_weight: str | dict | None = None,
        gradient_checkpointing: bool = False,
        early_stopping: bool | str = "auto",
        validation_fraction: float = 0.1,
        n_iter_no_change: int | None = 3,
        max_length: int = 512,
        truncation: str = "head",
        long_text: str = "truncate",
        window_overlap: float = 0.25,
        max_windows: int | None = 8,
        eval_batch_size: int = 16,
        max_new_tokens: int | None = None,
        confidence_threshold: float | None = None,
        on_low_confidence: Any = None,
        dtype: str = "auto",
        device: str = "auto",
        random_state: Any = None,
        verbose: bool | int = False,
        multilabel_threshold: float | str = "auto",
        positive_weight: float | str | None = "balanced",
    ):
        self.model = model
        self.prompt = prompt
        self.direction = direction
        self.few_shot = few_shot
        self.verbalizer = verbalizer
        self.label_parser = label_parser
        self.backend = backend
        self.inference = inference
        self.on_unparseable = on_unparseable
        self.quantization = quantization
        self.lora_r = lora_r
        self.lora_alpha = lora_alpha
        self.lora_dropout = lora_dropout
        self.target_modules = target_modules
        self.learning_rate = learning_rate
        self.max_steps = max_steps
        self.num_train_epochs = num_train_epochs
        self.batch_size = batch_size
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self.warmup_steps = warmup_steps
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.ema_decay = ema_decay
        self.objective = objective
        self.calibration = calibration
        self.class_weight = class_weight
        self.gradient_checkpointing = gradient_checkpointing
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.max_length = max_length
        self.truncation = truncation
        self.long_text = long_text
        self.window_overlap = window_overlap
        self.max_windows = max_windows
        self.eval_batch_size = eval_batch_size
        self.max_new_tokens = max_new_tokens
        self.confidence_threshold = confidence_threshold
        self.on_low_confidence = on_low_confidence
        self.dtype = dtype
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.multilabel_threshold = multilabel_threshold
        self.positive_weight = positive_weight

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.non_deterministic = self.random_state is None
        return tags

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> LLMClassifier:
        """Fine-tune the model on texts ``X`` with labels ``y``.

        Parameters
        ----------
        X : sequence of str of length n_samples
            Training texts (list, array, Series, one-column DataFrame).
        y : sequence of hashable labels of length n_samples
        sample_weight : sequence of float of length n_samples, optional
            Weight of each text in the training loss, in early stopping's validation
            log-loss and in a calibration fitted after training; weight 0 leaves a text out.

        Returns
        -------
        self : LLMClassifier
            Refitting starts again from the base model. If fitting fails (or is
            interrupted), a previously fitted estimator is left exactly as it was, and
            the caller's global random state (Python, NumPy, torch) is as it was.
        """
        with fitting.kept_global_random():  # outside _fit_context: scikit-learn's own fit bookkeeping draws too
            return self._fit(X, y, sample_weight)

    @_fit_context(prefer_skip_nested_validation=True)
    def _fit(self, X: Any, y: Any, sample_weight: Any) -> LLMClassifier:
        check_params(self)
        plan = plan_of(self)
        if is_multilabel_target(y):  # the targets choose the formulation
            plan = plan.for_formulation("multilabel")
        self.state_ = fitting.fit(plan, X, y, sample_weight)
        return self

    # The fitted attributes, read from the one fitted record ``state_`` (:class:`~llm_classifier.state.FittedState`).
    classes_ = _fitted("classes", "ndarray of the class labels, sorted.")
    answers_ = _fitted("answers", "The answer text of each class.")
    layout_ = _fitted("layout", "The prompt as the formulation laid it out at fit (PromptLayout).")
    label_parser_ = _fitted("label_parser", "The label parser of generate mode.")
    backend_ = _fitted("engine", "The loaded model engine (holds the trained adapter).")
    history_ = _fitted("history", "Per-step training loss and the run's figures.")
    random_seed_ = _fitted("random_seed", "The seed the fit ran with.")
    calibration_ = _fitted("calibration", "The fitted correction of the class log-scores, or None.")
    thresholds_ = _fitted("thresholds", "Multi-label: each label's probability threshold; None otherwise.")
    choice_ids_ = _fitted("choice_ids", "The token ids that stand for each class (answers, class prompts or yes/no "
                                        "continuations, as the formulation lays them out).")
    template_ = property(lambda self: self.layout_.template, doc="The resolved prompt template.")
    class_prompts_ = property(lambda self: self.layout_.class_prompts, doc="Channel direction: each class's prompt.")
    prompt_prefix_ = property(lambda self: self.layout_.prefix, doc="The rendered prompt before the text.")
    prompt_suffix_ = property(lambda self: self.layout_.suffix, doc="The rendered prompt after the text.")

    @property
    def demonstrations_(self) -> list[tuple[str, Any]]:
        """The few-shot demonstrations in the prompt, as (shortened text, class), in prompt order."""
        return [(text, self.classes_[code]) for text, code in self.layout_.demonstrations]

    # -- prediction ------------------------------------------------------------------------
    #: Texts validated, encoded and scored at a time by predict, predict_proba and generate:
    #: memory holds one chunk's token ids, whatever the number of texts (lists, arrays,
    #: generators and ``datasets`` columns are read lazily, chunk by chunk).
    predict_chunk_size: int = 2048

    def _plan(self) -> Plan:
        """The current parameters as a plan (prediction settings changed after fit apply at once, if the
        fitted formulation can serve them: :func:`~llm_classifier.pipeline.predict.check_prediction_settings`)."""
        plan = plan_of(self)
        predicting.check_prediction_settings(self.state_, plan)
        return plan

    def answer_scores(self, X: Any) -> np.ndarray:
        """Log-probability of each class's answer given the prompt, as the model scores it.

        The raw scores behind every prediction: ``log p(answer_k | prompt(x))`` summed over
        the answer's tokens (ending token included), before calibration and normalisation;
        with ``direction="channel"``, ``log p(text | class prompt_k)``. With ``long_text="mean"``
        or ``"max"`` a text read as several windows gets its windows' class log-probabilities
        pooled (:mod:`llm_classifier.formulations.windows`).

        Parameters
        ----------
        X : iterable of str
            Read in chunks, like :meth:`predict_log_proba`.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Columns follow ``classes_``; values are <= 0 and rows do not sum to 1.
            Multi-label: each label's ``log p(yes) - log p(no)`` (a logit).
        """
        check_is_fitted(self, "classes_")
        return self._answer_scores(X, self._plan())

    def _answer_scores(self, X: Any, plan: Plan) -> np.ndarray:
        return predicting.answer_scores(self.state_, plan, X, self.predict_chunk_size)

    def decision_function(self, X: Any) -> np.ndarray:
        """The calibrated answer scores, before normalisation (scikit-learn's convention).

        Parameters
        ----------
        X : iterable of str

        Returns
        -------
        ndarray of shape (n_samples,) for two classes (score of ``classes_[1]`` minus that
        of ``classes_[0]``), else (n_samples, n_classes)
        """
        check_is_fitted(self, "classes_")
        return self.state_.formulation.decision(self._calibrated_scores(X, self._plan()))

    def _calibrated_scores(self, X: Any, plan: Plan) -> np.ndarray:
        scores = self._answer_scores(X, plan)
        return scores if self.calibration_ is None else self.calibration_.apply(scores)

    def _log_proba(self, X: Any, plan: Plan) -> np.ndarray:
        return self.state_.formulation.log_probabilities(self._calibrated_scores(X, plan))

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log-probabilities of the classes, normalised over ``classes_``.

        Parameters
        ----------
        X : iterable of str
            A sequence, array, Series, generator or ``datasets`` column; it is read in
            chunks of :attr:`predict_chunk_size` texts, so memory does not grow with it.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self, "classes_")
        return self._log_proba(X, self._plan())

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probability of each class: the answers' scores normalised over ``classes_``.

        Parameters
        ----------
        X : iterable of str

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Rows sum to 1; columns follow ``classes_``. Multi-label: each label's own
            probability, ``sigmoid(log p(yes) - log p(no))``; rows do not sum to 1.
        """
        return np.exp(self.predict_log_proba(X))

    def generate(self, X: Any) -> list[str]:
        """The model's free-text answer to each prompt (greedy, stops at the end of the answer).

        Parameters
        ----------
        X : iterable of str

        Returns
        -------
        list of str
        """
        check_is_fitted(self, "classes_")
        return [text for _, _, generated in predicting.generate(self.state_, self._plan(), X, self.predict_chunk_size)
                for text in generated]

    def predict(self, X: Any) -> np.ndarray:
        """Predict the class of each text (one of ``classes_``, or the reject value of a low-confidence policy).

        In ``inference="score"`` mode this is the argmax of :meth:`predict_proba` (texts under
        ``confidence_threshold`` follow ``on_low_confidence``, which may return a reject value); in
        ``"generate"`` mode the generated answer is parsed with ``label_parser`` and
        unparseable answers follow ``on_unparseable`` (with "score" or a class, one
        :class:`~llm_classifier.exceptions.UnparseableAnswerWarning` says how many there
        were). Prediction never changes the estimator.

        Parameters
        ----------
        X : iterable of str

        Returns
        -------
        ndarray of shape (n_samples,), or (n_samples, n_classes) of 0/1 for multi-label
            targets (``predict_proba(X) >= thresholds_``)
        """
        check_is_fitted(self, "classes_")
        plan = self._plan()
        if plan.inference == "score":
            return predicting.decide(self.state_, plan, np.exp(self._log_proba(X, plan)))  # predict_proba's values
        indices: list[int] = []
        n_unparseable = 0
        for start, texts, generated in predicting.generate(self.state_, plan, X, self.predict_chunk_size):
            chunk, missing = predicting.parse_generated(self.state_, plan, start, generated)
            if missing:
                fallback = self._unparseable_fallback(plan, [texts[i] for i, index in enumerate(chunk) if index is None])
                chunk = [next(fallback) if index is None else index for index in chunk]
            indices += chunk
            n_unparseable += missing
        if n_unparseable:
            policy = show_value(self.on_unparseable)
            fallback_text = "scored" if self.on_unparseable == "score" else f"predicted as {policy}"
            warn_caller(f"{n_unparseable} of {len(indices)} generated answers matched no class and were {fallback_text} "
                        f"(on_unparseable={policy}).", UnparseableAnswerWarning)
        return self.classes_[np.asarray(indices, dtype=int)]

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean accuracy of :meth:`predict` on ``(X, y)``; for multi-label targets the subset accuracy.

        Multi-label ``y`` may take any form ``fit`` accepts: label collections are matched to
        ``classes_`` by label and a DataFrame's columns by name (whatever their order); a plain
        indicator matrix is read in ``classes_`` order. A label outside ``classes_`` is one the
        classifier never predicts.

        Parameters
        ----------
        X : iterable of str
        y : array-like of shape (n_samples,), or multi-label targets
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        float
        """
        from sklearn.metrics import accuracy_score

        check_is_fitted(self, "classes_")
        if self.state_.formulation.name != "multilabel":
            return super().score(X, y, sample_weight)
        truth, n_unknown = targets_in_order(y, self.classes_)
        predicted = self.predict(X)
        if len(truth) != len(predicted):
            raise ValueError(f"X and y have different lengths: {len(predicted)} texts but {len(truth)} label rows.")
        predicted = np.hstack([predicted, np.zeros((len(predicted), n_unknown), dtype=predicted.dtype)])
        return float(accuracy_score(truth, predicted, sample_weight=sample_weight))

    def _unparseable_fallback(self, plan: Plan, texts: list[str]) -> Iterator[int]:
        """Class indices for unparseable answers: scored (``on_unparseable="score"``) or the class named."""
        if isinstance(plan.on_unparseable, str) and plan.on_unparseable == "score":
            return iter(np.argmax(self._log_proba(texts, plan), axis=1).tolist())
        index = int(np.flatnonzero(self.classes_ == plan.on_unparseable)[0])
        return iter([index] * len(texts))

    def predict_from_proba(self, proba: Any) -> np.ndarray:
        """Turn :meth:`predict_proba`'s output into predictions: the one decision rule.

        ``predict`` (score mode), the command line and any server decide through this
        method: the most probable class, with ``confidence_threshold`` and
        ``on_low_confidence`` applied (single-label), or ``proba >= thresholds_`` per label
        (multi-label).

        Parameters
        ----------
        proba : array-like of shape (n_samples, n_classes)
            Probabilities as :meth:`predict_proba` returns them, columns in ``classes_`` order (a DataFrame whose
            columns name the classes, or the command line's ``p_<class>`` columns, in another order is refused);
            single-label rows sum to 1 (within 0.01).

        Returns
        -------
        ndarray of shape (n_samples,), or (n_samples, n_classes) of 0/1 for multi-label targets

        Raises
        ------
        ValueError
            For probabilities ``predict_proba`` cannot give (shape, range, rows off 1, columns reordered or named
            twice), and with
            ``inference="generate"``, where the generated answer, not the probabilities, decides.
        """
        check_is_fitted(self, "classes_")
        names = [str(name) for name in getattr(proba, "columns", ())]
        classes = [str(label) for label in self.classes_.tolist()]
        repeated = [name for name, count in Counter(names).items() if count > 1]
        if repeated:  # a frame is read by position: a column named twice hides which class each column is
            raise ValueError(f"proba's columns name {', '.join(map(repr, repeated))} more than once: got {names!r}; "
                             f"pass one column per class, in the order of classes_ {classes!r}.")
        for named in (classes, [f"p_{c}" for c in classes]):  # the classes, or the command line's p_<class> columns
            if sorted(names) == sorted(named) and names != named:  # a frame is read by position: refuse a reordering
                raise ValueError(f"proba's columns name the classes in another order than classes_ {classes!r}: got "
                                 f"{names!r}; pass the columns in the order of classes_.")
        try:
            proba = np.asarray(proba, dtype=float)
        except (TypeError, ValueError) as exc:  # ragged rows, complex or other non-numbers
            raise ValueError(f"proba must be a 2-D array of probabilities, one column per class ({exc}).") from None
        if proba.ndim != 2 or proba.shape[1] != len(self.classes_):
            raise ValueError(f"proba must have shape (n_samples, {len(self.classes_)}), one column per class. "
                             f"Got shape {proba.shape} instead.")
        if not np.all(np.isfinite(proba)) or (proba < 0).any() or (proba > 1).any():
            raise ValueError("proba must hold probabilities in [0, 1].")
        self.state_.formulation.check_proba(proba)
        plan = self._plan()
        if plan.inference == "generate":  # there the generated answer decides, not the probabilities
            raise ValueError("predict_from_proba is the decision rule of inference='score'; with inference='generate' "
                             "the generated answer decides, so predict(X) and predict_from_proba(predict_proba(X)) "
                             "would differ. Call predict, or set_params(inference='score') first.")
        return predicting.decide(self.state_, plan, proba)

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: Any) -> None:
        """Save the fitted classifier to a directory: JSON and safetensors, data only.

        The base model is referenced by name and content fingerprint, not copied. Writing
        is atomic: a crash leaves the old artifact or the new one, never a mix (see
        :mod:`llm_classifier.io.artifact`). In a multi-process launch only rank 0 writes.
        """
        from .io.artifact import save_state

        check_is_fitted(self, "classes_")
        if is_main_process():
            save_state(path, self.get_params(deep=False), self.state_)

    @classmethod
    def load(cls, path: Any, *, model: str | None = None, trust_remote_code: bool = False,
             backend: Any = None) -> LLMClassifier:
        """Load a classifier saved with :meth:`save`; never executes code from the artifact.

        Parameters
        ----------
        path : path-like
            The artifact directory.
        model : str, optional
            Where the base model is now (a moved copy; its content must be the same).
        trust_remote_code : bool, default=False
            Let the engine run the base model folder's own code. Never taken from the artifact.
        backend : str or Engine, optional
            Predict through this engine instead of the saved one (e.g. ``"vllm"`` for a
            classifier fitted with ``"transformers"``); it becomes the ``backend`` parameter.
        """
        from .io.artifact import load_state

        params, state = load_state(path, defaults=cls().get_params(deep=False), model=model,
                                   trust_remote_code=trust_remote_code, backend=backend)
        estimator = cls(**params)  # the parameters passed fit's checks as they were read (io.artifact)
        estimator.state_ = state
        return estimator

    def with_backend(self, backend: Any) -> LLMClassifier:
        """A copy of this fitted classifier that predicts through another engine.

        The fitted adapter, prompt, answers, calibration and thresholds are handed over as the
        engine's saved state (data only), so ``clf.with_backend("vllm")`` predicts what ``clf``
        predicts (within the engines' numerical agreement) without saving to disk. This
        classifier is not changed.

        Parameters
        ----------
        backend : str or Engine
            The engine to predict with (a kind name registered in ``llm_classifier.engines``).

        Returns
        -------
        LLMClassifier
            Fitted, with ``backend`` as its parameter.
        """
        from sklearn.base import clone

        from .engines import restore_engine

        check_is_fitted(self, "classes_")
        engine_state = self.backend_.state()
        copy = clone(self).set_params(backend=backend, model=engine_state.model)
        engine = restore_engine(engine_state, backend, plan_of(copy).engine_options,
                                trust_remote_code=bool(getattr(self.backend_, "trust_remote_code", False)))
        copy.state_ = self.state_.with_engine(engine)
        return copy
