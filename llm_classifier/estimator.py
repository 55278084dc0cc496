"""LLMClassifier: a scikit-learn classifier that QLoRA-tunes a decoder LLM and scores labels."""

from __future__ import annotations

import copy
import os
import random
from collections.abc import Iterator, Sequence
from numbers import Integral, Real
from typing import Any, NamedTuple

import numpy as np
from scipy.special import log_softmax
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, check_random_state

from ._logging import warn_caller
from .backends import check_backend_takes_weights, resolve_backend
from .calibration import fit_calibration
from .channel import encode_class_prompts, resolve_channel_template
from .demonstrations import add_demonstrations, draw_demonstrations
from ._process import is_main_process
from .exceptions import ModelNotFoundError, UnparseableAnswerError
from .labels import check_answers, resolve_parser, resolve_verbalizer
from .backends.hf.checkpoints import DEFAULT_MODEL
from .prompts import resolve_template, split_template
from .tokenization import TRUNCATIONS, PromptEncoder, encode_answers
from .backends.hf.training import OBJECTIVES, OPTIMIZERS, SCHEDULERS, TrainConfig
from .validation import check_labels, check_texts, iter_text_chunks
from .validation import canonical_order, check_classes, check_on_unparseable, check_params, check_predict_params, resolve_class_weights
from .validation import check_sample_weight


class _PromptSetup(NamedTuple):
    """What ``fit`` builds from the template and the answers, and ``predict`` reuses."""

    template: Any
    demonstrations: list[tuple[str, Any]]
    class_prompts: list[str]  # direction="channel": one prompt per class; else empty
    answer_ids: list[list[int]]  # the token ids scored per class (answers, or class prompts)
    prefix: str  # the prompt before the text
    suffix: str  # the prompt after the text


def _score(backend: Any, prompts: list[list[int]], targets: list[list[int]], channel: bool, batch_size: int,
           progress: Any = None) -> np.ndarray:
    """``[n, n_classes]`` class log-scores: ``log p(answer_k | prompt)``, or with ``channel``
    ``log p(text | class prompt_k)`` (``prompts`` then hold the texts, ``targets`` the class prompts)."""
    if channel:
        return backend.score_channel(prompts, targets, batch_size=batch_size, progress=progress)
    return backend.score(prompts, targets, batch_size=batch_size, progress=progress)


def _progress(total: int | None, verbose: bool, desc: str) -> Any:
    if not verbose:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="text")


class LLMClassifier(ClassifierMixin, BaseEstimator):
    """A text classifier made of a decoder LLM, fine-tuned with QLoRA.

    ``fit`` renders each text into an instruction prompt, names each class with an
    answer (the verbalizer) and trains LoRA adapters on a 4-bit base with the loss on
    the answer only. ``predict_proba`` scores every class's answer under the model,
    ``log p(answer | prompt)``, and normalises over the classes, so predictions are
    always one of ``classes_`` and probabilities sum to one.

    Parameters
    ----------
    model : str, default="smollm2-135m-instruct"
        Packaged model alias, local checkpoint directory, ``.gguf`` file or hub id.
    prompt : str, callable or PromptTemplate, default="auto"
        ``"auto"`` (the model's chat template, else Alpaca), ``"chat"``, ``"alpaca"``, a
        format string with ``{text}`` (and optionally ``{labels}``), a callable
        ``f(text, labels) -> str`` or a template object.
    direction : {"direct", "channel"}, default="direct"
        What the model scores. "direct": each class's answer after the text's prompt,
        ``log p(answer | prompt(text))``. "channel" (the noisy channel of Min et al.,
        2022): the text after each class's own prompt, ``log p(text | prompt(class))``;
        fine-tuning then learns to write the texts of each class, with the loss on every
        text token instead of on the answer, and prediction makes one pass over the text
        per class. ``prompt`` is then "auto" (:class:`~llm_classifier.channel.ChannelTemplate`),
        an instruction containing ``{label}`` or a template with ``render_class``; it
        needs ``inference="score"``, ``few_shot=0`` and ``objective="answer"``.
    few_shot : int, default=0
        Demonstrations per class drawn from the training texts (seeded; never from the
        validation slice) and placed in every prompt as earlier turns of the template,
        which must take ``examples`` (the built-in chat and Alpaca templates do). They
        are cut so that together they take at most half of ``max_length``; they stay
        training texts. Mostly for untrained use (``max_steps=0``); see ``demonstrations_``.
    verbalizer : None, dict, callable or Verbalizer, default=None
        Class -> answer text; None uses ``str(label)``.
    label_parser : None, str, callable or LabelParser, default=None
        Generated text -> class, for ``inference="generate"``; None is the forgiving
        :class:`~llm_classifier.labels.DefaultParser`; ``"exact"``, ``"exact-ci"``.
    backend : str or Backend, default="transformers"
        The model engine.
    inference : {"score", "generate"}, default="score"
        How ``predict`` decides: score every label, or generate an answer and parse it.
    on_unparseable : "score", "raise" or a class label, default="score"
        In generate mode, what to do with an answer the parser cannot map: fall back to
        scoring, raise :class:`~llm_classifier.exceptions.UnparseableAnswerError`, or
        predict the given class (which must be one of ``classes_``).
    quantization : {"4bit", "8bit"} or None, default="4bit"
        How the frozen base weights are stored during training (NF4 with double
        quantisation for "4bit"). Prediction uses the same weights, dequantised once.
    lora_r : int, default=16
        LoRA rank.
    lora_alpha : float, default=16
        LoRA scaling numerator (the update is scaled by ``lora_alpha / lora_r``).
    lora_dropout : float, default=0.0
        Dropout on the LoRA input.
    target_modules : list of str, str or None, default=None
        Modules to adapt; None means q/k/v/o/gate/up/down projections where present.
    learning_rate : float or "auto", default="auto"
        Peak AdamW learning rate. "auto" takes the seed recipe's 2e-4 at hidden size
        4096 (Llama-3.1-8B) and scales it by ``4096 / hidden_size``, kept within
        [2e-4, 1e-3]: 1e-3 for SmolLM2-135M and gemma-3-270m. The rate used is in
        ``history_["learning_rate"]``.
    max_steps : int or None, default=None
        Optimizer steps; None trains for ``num_train_epochs``; 0 means zero-shot
        (``fit`` only learns the classes).
    num_train_epochs : float or "auto", default="auto"
        Epochs over the training texts, when ``max_steps`` is None. "auto" is 4 when
        early stopping is on (a cap: the best adapter is kept) and 2 otherwise.
    batch_size : int, default=8
        Texts per device per training micro-batch.
    gradient_accumulation_steps : int, default=1
    warmup_steps : int, default=5
    weight_decay : float, default=0.01
    optimizer : str, default="adamw"
        "adamw", "adamw_8bit" (bitsandbytes), "paged_adamw_8bit", "adafactor" or "sgd".
    lr_scheduler : str, default="linear"
        "linear", "cosine", "constant", "constant_with_warmup", ...
    ema_decay : float or None, default=0.95
        Keep an exponential moving average of the adapter weights, updated after every
        optimizer step with this decay (in [0, 1); warmed up over the first steps), and
        use it instead of the last weights: early stopping scores and keeps the averaged
        adapter, and without early stopping the average is what ``fit`` leaves. None:
        the weights as trained (the seed recipe).
    calibration : {"auto", "prior", "affine"} or None, default="auto"
        A correction of the class log-scores fitted after training on scored texts:
        the held-out validation slice when ``early_stopping`` is on (its scores under
        the restored adapter, at no extra cost), else up to 256 training texts.
        "prior" shifts them so that the mean prediction matches the training label
        frequencies (removes the model's bias towards some answers); "affine" fits a
        temperature and a per-class shift by maximum likelihood (see
        :mod:`llm_classifier.calibration`). "auto" is "prior" for zero-shot
        classifiers and nothing after fine-tuning (on a slice of ~50 texts neither map
        improved macro-F1 on average; see docs/benchmarks.md).
    objective : {"answer", "class", "answer+class"}, default="answer"
        The training loss. "answer": mean cross-entropy of the answer tokens (the seed's
        completion-only loss). "class": cross-entropy over the label set of the answers'
        sequence log-probabilities, the quantity ``predict_proba`` normalises (all classes
        are scored in the same tree-masked pass). "answer+class": their sum.
    class_weight : "balanced", dict or None, default=None
        Weights of the classes in the training loss (and in the held-out log-loss that
        early stopping watches). None: every text counts the same. "balanced":
        ``n / (n_classes * n_c)`` over the texts that train, so that rare classes count
        as much as common ones (as in scikit-learn). A dict ``{label: weight}``; classes
        it omits weigh 1.
    gradient_checkpointing : bool, default=False
        Recompute activations in the backward pass instead of storing them: less
        training memory for more time (on 512-token texts here: peak RSS x0.48,
        tokens/s x0.75; docs/performance.md). Worth it for long texts, large models or
        large batches; the trained adapter is the same.
    early_stopping : bool or "auto", default="auto"
        Hold out ``validation_fraction`` of the training texts (stratified), score them
        10 times during training as ``predict_proba`` would, keep the adapter with the
        lowest validation log-loss and stop after ``n_iter_no_change`` evaluations
        without improvement. ``num_train_epochs``/``max_steps`` then cap the run.
        The scores are in ``history_["validation"]``. "auto" turns it on when there are
        at least 200 training texts (a slice of about 20 or more) and some class large
        enough to be held out; ``history_["early_stopping"]`` says whether it ran.
    validation_fraction : float, default=0.1
        Share of each class held out when ``early_stopping`` is on (in (0, 0.5]),
        rounded half up: classes under 5 examples at 0.1 are not held out.
    n_iter_no_change : int or None, default=3
        Evaluations without improvement before stopping; None trains to the end and
        still restores the best adapter.
    max_length : int, default=512
        Maximum tokens of prompt plus answer; longer texts are cut as ``truncation``
        says (one warning per call).
    truncation : {"head", "tail", "head+tail"}, default="head"
        What an over-long text keeps: its beginning, its end, or the first quarter of
        the room and its end for the rest (Sun et al., 2019). The instruction and the
        answer are never cut.
    eval_batch_size : int, default=16
        Texts per forward pass in ``predict``/``predict_proba``/``generate``.
    max_new_tokens : int or None, default=None
        Generation length in generate mode; None is the longest answer plus 8 tokens.
    dtype : {"auto", "bfloat16", "float16", "float32"}, default="auto"
        Compute dtype; "auto" is bfloat16 on hardware that computes it natively.
    device : str, default="auto"
        "auto" (CUDA if available, else CPU), "cpu", "cuda", "cuda:1", ...
    random_state : int, RandomState or None, default=None
        Seeds Python, NumPy and torch for adapter initialisation and data order.
    verbose : bool or int, default=False
        Progress bars for training and prediction.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels, sorted.
    answers_ : list of str
        The answer text of each class.
    template_ : PromptTemplate
        The resolved prompt template (with the demonstrations when ``few_shot`` > 0).
    demonstrations_ : list of (str, label) tuples
        The few-shot demonstrations in the prompt, as shortened text and class, in
        prompt order; empty when ``few_shot=0``.
    class_prompts_ : list of str
        With ``direction="channel"``, the prompt each class's texts are scored after;
        empty for the direct direction.
    label_parser_ : LabelParser
    backend_ : Backend
        The loaded model engine (holds the trained adapter).
    history_ : dict
        Per-step training loss (``history_["steps"]``) and the run's figures
        (``train_runtime``, ``train_samples_per_second``, ``total_flos``, ``train_loss``...).
    calibration_ : Calibration or None
        The fitted correction of the class log-scores (``calibration``), or None.

    Examples
    --------
    >>> from llm_classifier import LLMClassifier
    >>> clf = LLMClassifier(max_steps=20, random_state=0)  # doctest: +SKIP
    >>> clf.fit(["great fun", "dull and long"], ["pos", "neg"]).predict(["what fun"])  # doctest: +SKIP
    array(['pos'], dtype='<U3')
    """

    _parameter_constraints: dict = {
        "model": [str, os.PathLike],
        "prompt": [object],
        "direction": [StrOptions({"direct", "channel"})],
        "few_shot": [Interval(Integral, 0, None, closed="left")],
        "verbalizer": [object, None],
        "label_parser": [object, None],
        "backend": [object],
        "inference": [StrOptions({"score", "generate"})],
        "on_unparseable": [object],
        "quantization": [StrOptions({"4bit", "8bit"}), None],
        "lora_r": [Interval(Integral, 1, None, closed="left")],
        "lora_alpha": [Interval(Real, 0, None, closed="neither")],
        "lora_dropout": [Interval(Real, 0, 1, closed="left")],
        "target_modules": [list, tuple, str, None],
        "learning_rate": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "max_steps": [Interval(Integral, 0, None, closed="left"), None],
        "num_train_epochs": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "gradient_accumulation_steps": [Interval(Integral, 1, None, closed="left")],
        "warmup_steps": [Interval(Integral, 0, None, closed="left")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "optimizer": [StrOptions(set(OPTIMIZERS))],
        "lr_scheduler": [StrOptions(set(SCHEDULERS))],
        "ema_decay": [Interval(Real, 0, 1, closed="left"), None],
        "objective": [StrOptions(set(OBJECTIVES))],
        "calibration": [StrOptions({"auto", "prior", "affine"}), None],
        "class_weight": [StrOptions({"balanced"}), dict, None],
        "gradient_checkpointing": ["boolean"],
        "early_stopping": ["boolean", StrOptions({"auto"})],
        "validation_fraction": [Interval(Real, 0, 0.5, closed="right")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), None],
        "max_length": [Interval(Integral, 8, None, closed="left")],
        "truncation": [StrOptions(set(TRUNCATIONS))],
        "eval_batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_new_tokens": [Interval(Integral, 1, None, closed="left"), None],
        "dtype": [StrOptions({"auto", "bfloat16", "float16", "float32"})],
        "device": [str],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

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
        eval_batch_size: int = 16,
        max_new_tokens: int | None = None,
        dtype: str = "auto",
        device: str = "auto",
        random_state: Any = None,
        verbose: bool | int = False,
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
        self.eval_batch_size = eval_batch_size
        self.max_new_tokens = max_new_tokens
        self.dtype = dtype
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.non_deterministic = self.random_state is None
        return tags

    # -- fitting ---------------------------------------------------------------------------
    def _seed(self) -> int:
        random_state = self.random_state
        if isinstance(random_state, Integral) and not isinstance(random_state, bool):
            seed = int(random_state)
        else:
            seed = int(check_random_state(random_state).randint(0, 2**31 - 1))
        import torch

        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        return seed

    #: ``early_stopping="auto"`` holds out a validation slice from this many training texts on.
    early_stopping_min_texts: int = 200

    def _early_stopping_rows(self, codes: np.ndarray, seed: int) -> np.ndarray | None:
        """The held-out validation rows when early stopping runs, else None."""
        if self.max_steps == 0 or self.early_stopping is False:
            return None
        if self.early_stopping == "auto" and len(codes) < self.early_stopping_min_texts:
            return None
        from .holdout import smallest_held_out_class, stratified_holdout

        held = stratified_holdout(codes, self.validation_fraction, seed)
        if held.any():
            return held
        if self.early_stopping == "auto":
            return None
        smallest = smallest_held_out_class(self.validation_fraction)
        raise ValueError(
            f"early_stopping=True needs a validation slice, but validation_fraction={self.validation_fraction} "
            f"of {len(codes)} training texts holds out none (a class gives validation texts from {smallest} "
            "examples on); add examples, raise validation_fraction or set early_stopping=False."
        )

    def _train_config(self, seed: int, early_stopping: bool = False, class_weights: list[float] | None = None) -> TrainConfig:
        return TrainConfig(
            lora_r=self.lora_r,
            lora_alpha=self.lora_alpha,
            lora_dropout=self.lora_dropout,
            ema_decay=self.ema_decay,
            target_modules=copy.copy(self.target_modules),
            learning_rate=self.learning_rate,
            max_steps=self.max_steps,
            num_train_epochs=(4.0 if early_stopping else 2.0) if self.num_train_epochs == "auto" else self.num_train_epochs,
            batch_size=self.batch_size,
            gradient_accumulation_steps=self.gradient_accumulation_steps,
            warmup_steps=self.warmup_steps,
            weight_decay=self.weight_decay,
            optimizer=self.optimizer,
            lr_scheduler=self.lr_scheduler,
            objective=self.objective,
            direction=self.direction,
            class_weights=class_weights,
            gradient_checkpointing=self.gradient_checkpointing,
            patience=self.n_iter_no_change,
            eval_batch_size=self.eval_batch_size,
            seed=seed,
            verbose=bool(self.verbose),
        )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> LLMClassifier:
        """Fine-tune the model on texts ``X`` with labels ``y``.

        Parameters
        ----------
        X : sequence of str of length n_samples
            Training texts (list, array, Series, one-column DataFrame).
        y : sequence of hashable labels of length n_samples
        sample_weight : sequence of float of length n_samples or float, optional
            Weight of each text in the training loss (scaled to average 1, multiplied by
            ``class_weight``), in early stopping's validation log-loss and in a calibration
            fitted after training. A text of weight 0 is left out of training as if it were
            not there (its label still counts as a class). Weights do not change the number
            of steps: a weight of 2 is not the same as repeating a text.

        Returns
        -------
        self : LLMClassifier
            Refitting starts again from the base model. If fitting fails (or is
            interrupted), a previously fitted estimator is left exactly as it was.
        """
        check_params(self)
        texts = check_texts(X, "X")
        labels = check_labels(y, len(texts))
        weights = check_sample_weight(sample_weight, len(texts))
        classes = check_classes(labels)
        parser = resolve_parser(self.label_parser)
        verbalizer = resolve_verbalizer(self.verbalizer)
        answers = check_answers(verbalizer.answers(list(classes)), list(classes))
        check_on_unparseable(self, classes)
        seed = self._seed()
        codes = np.searchsorted(classes, labels)
        if weights is not None:  # a text of weight 0 is left out, as if it were not there
            kept = np.flatnonzero(weights > 0)
            texts, codes, weights = [texts[i] for i in kept], codes[kept], weights[kept]
        order = canonical_order(texts, codes)  # row order does not change the model
        texts, codes = [texts[i] for i in order], codes[order]
        weights = None if weights is None else weights[order]
        held = self._early_stopping_rows(codes, seed)
        class_weights = resolve_class_weights(self, classes, codes if held is None else codes[~held])
        config = self._train_config(seed, early_stopping=held is not None, class_weights=class_weights)
        backend = resolve_backend(self.backend)
        check_backend_takes_weights(backend, weights)
        backend.load(self.model, quantization=self.quantization, dtype=self.dtype, device=self.device)
        demo_rows = draw_demonstrations(codes, self.few_shot, seed, exclude=held)
        setup = self._build_prompts(backend, answers, classes, texts, codes, demo_rows)
        encoder = self._prompt_encoder(backend.tokenizer, setup.prefix, setup.suffix, setup.answer_ids,
                                       channel=bool(setup.class_prompts))
        history = self._train(backend, encoder, texts, codes, weights, held, setup.answer_ids, config)
        validation_scores = history.pop("validation_scores", None)
        history["early_stopping"] = validation_scores is not None
        history["class_weights"] = class_weights  # per class, in the order of classes_ (None: equal)
        history["num_train_epochs"] = None if config.max_steps is not None else config.num_train_epochs
        calibration = None
        method = self._calibration_method(history)
        if method is not None:
            if validation_scores is not None:
                scores, scored = validation_scores, np.flatnonzero(held)
            else:
                scores, scored = self._score_sample(backend, encoder, texts, setup.answer_ids, seed, demo_rows,
                                                    channel=bool(setup.class_prompts))
            calibration = fit_calibration(method, scores, codes[scored], codes, len(classes),
                                          weights=weights, scored_weights=None if weights is None else weights[scored])
        # Everything above works on locals: only now does the estimator change.
        self.classes_ = classes
        self.answers_ = answers
        self.template_ = setup.template
        self.demonstrations_ = setup.demonstrations
        self.class_prompts_ = setup.class_prompts
        self.label_parser_ = parser
        self.backend_ = backend
        self.answer_ids_ = setup.answer_ids
        self.prompt_prefix_ = setup.prefix
        self.prompt_suffix_ = setup.suffix
        self.history_ = history
        self.random_seed_ = seed
        self.calibration_ = calibration
        return self

    def _build_prompts(self, backend: Any, answers: list[str], classes: np.ndarray, texts: list[str],
                       codes: np.ndarray, demo_rows: np.ndarray) -> _PromptSetup:
        """The template, the token ids scored per class, and the text's prefix and suffix in the prompt."""
        if self.direction == "channel":
            # The roles swap: each class has a prompt (scored against, like an answer) and the
            # text, closed by the end token, is what the model scores after it.
            template = resolve_channel_template(self.prompt)
            class_prompts = [template.render_class(answer, backend.tokenizer) for answer in answers]
            return _PromptSetup(template, [], class_prompts, encode_class_prompts(backend.tokenizer, class_prompts),
                                "", str(backend.tokenizer.eos_token))
        template = resolve_template(self.prompt, backend.tokenizer)
        demonstrations: list[tuple[str, Any]] = []
        if len(demo_rows):
            template, shortened = add_demonstrations(template, [texts[i] for i in demo_rows], codes[demo_rows],
                                                     answers, backend.tokenizer, self.max_length)
            demonstrations = [(text, classes[code]) for text, code in zip(shortened, codes[demo_rows])]
        prefix, suffix = split_template(template, answers, backend.tokenizer)
        return _PromptSetup(template, demonstrations, [], encode_answers(backend.tokenizer, answers), prefix, suffix)

    def _train(self, backend: Any, encoder: PromptEncoder, texts: list[str], codes: np.ndarray,
               weights: np.ndarray | None, held: np.ndarray | None, answer_ids: list[list[int]],
               config: TrainConfig) -> dict[str, Any]:
        """Fine-tune through the backend (on the rows not ``held`` out for validation); its history."""
        if config.n_steps(len(texts)) == 0:
            return {"n_steps": 0, "n_examples": len(texts), "steps": []}
        if held is None:
            weighted = {} if weights is None else {"sample_weight": weights}
            return backend.fit(encoder.encode(texts).ids, answer_ids, codes, config, **weighted)
        validation = (encoder.encode([t for t, h in zip(texts, held) if h], warn=False).ids, codes[held])
        prompts = encoder.encode([t for t, h in zip(texts, held) if not h]).ids
        weighted = {}
        if weights is not None:  # passed only when given, so backends without weights serve every other fit
            validation, weighted = (*validation, weights[held]), {"sample_weight": weights[~held]}
        return backend.fit(prompts, answer_ids, codes[~held], config, validation=validation, **weighted)

    #: Training texts scored to fit the calibration when there is no validation slice.
    calibration_size: int = 256

    def _calibration_method(self, history: dict[str, Any]) -> str | None:
        """The calibration to fit: ``calibration``, with "auto" resolved for this run."""
        if self.calibration != "auto":
            return self.calibration
        if history["n_steps"] == 0:
            return "prior"
        return None

    def _score_sample(self, backend: Any, encoder: Any, texts: list[str], answer_ids: list,
                      seed: int, exclude: np.ndarray, channel: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Class log-scores of up to :attr:`calibration_size` training texts, and their rows.

        The rows in ``exclude`` (the demonstrations, which would see their own answer in
        the prompt) are not drawn unless nothing else is left.
        """
        rng = np.random.default_rng(seed)
        rows = np.setdiff1d(np.arange(len(texts)), exclude)
        if len(rows) == 0:
            rows = np.arange(len(texts))
        sample = np.sort(rng.choice(rows, size=min(self.calibration_size, len(rows)), replace=False))
        prompts = encoder.encode([texts[i] for i in sample], warn=False).ids
        return _score(backend, prompts, answer_ids, channel, self.eval_batch_size), sample

    # -- prediction ------------------------------------------------------------------------
    #: Texts validated, encoded and scored at a time by predict, predict_proba and generate:
    #: memory holds one chunk's token ids, whatever the number of texts (lists, arrays,
    #: generators and ``datasets`` columns are read lazily, chunk by chunk).
    predict_chunk_size: int = 2048

    def _prompt_encoder(self, tokenizer: Any, prefix: str, suffix: str, answer_ids: list[list[int]],
                        channel: bool) -> PromptEncoder:
        """The encoder of texts into prompts, the same at fit and predict (room kept for the longest answer)."""
        return PromptEncoder(tokenizer, prefix, suffix, self.max_length, max(map(len, answer_ids)), self.truncation,
                             start_token=not channel)

    def _encoder(self) -> PromptEncoder:
        check_predict_params(self)  # parameters may have been set_params'ed since fit
        return self._prompt_encoder(self.backend_.tokenizer, self.prompt_prefix_, self.prompt_suffix_,
                                    self.answer_ids_, channel=self._is_channel())

    def _is_channel(self) -> bool:
        """Whether the fitted classifier scores texts after class prompts (``direction="channel"``)."""
        return bool(getattr(self, "class_prompts_", None))

    def _encode(self, X: Any) -> list[list[int]]:
        check_is_fitted(self, "classes_")
        texts = check_texts(X, "X")
        return self._encoder().encode(texts).ids

    def _encoded_chunks(self, X: Any) -> Iterator[tuple[int, list[str], list[list[int]]]]:
        """``(start, texts, prompt_ids)`` per chunk of ``X``; warns once about truncation at the end."""
        check_is_fitted(self, "classes_")
        encoder = self._encoder()
        start = n_truncated = 0
        for texts in iter_text_chunks(X, "X", self.predict_chunk_size):
            encoded = encoder.encode(texts, warn=False)
            n_truncated += encoded.n_truncated
            yield start, texts, encoded.ids
            start += len(texts)
        if n_truncated:
            warn_caller(encoder.truncation_message(n_truncated, start))

    def _per_chunk(self, X: Any, desc: str, work: Any) -> list[Any]:
        """Apply ``work(start, texts, prompt_ids, progress_bar)`` to each encoded chunk of ``X``."""
        check_is_fitted(self, "classes_")
        bar = self._bar(X, desc)
        try:
            return [work(start, texts, prompts, bar) for start, texts, prompts in self._encoded_chunks(X)]
        finally:
            if bar is not None:
                bar.close()

    def _bar(self, X: Any, desc: str) -> Any:
        total = len(X) if hasattr(X, "__len__") else None
        return _progress(total, bool(self.verbose) and is_main_process(), desc)

    def answer_scores(self, X: Any) -> np.ndarray:
        """Log-probability of each class's answer given the prompt, as the model scores it.

        The raw scores behind every prediction: ``log p(answer_k | prompt(x))`` summed over
        the answer's tokens (ending token included), before any calibration map and before
        normalisation over ``classes_``. Use them to study or fit calibration yourself.
        With ``direction="channel"`` they are ``log p(text | class prompt_k)`` summed over
        the text's tokens (its end token included).

        Parameters
        ----------
        X : iterable of str
            Read in chunks, like :meth:`predict_log_proba`.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Columns follow ``classes_``; values are <= 0 and rows do not sum to 1.
        """
        channel = self._is_channel()
        parts = self._per_chunk(X, "Scoring", lambda start, texts, prompts, bar: _score(
            self.backend_, prompts, self.answer_ids_, channel, self.eval_batch_size, progress=bar))
        return np.concatenate(parts)

    def _calibrated_scores(self, X: Any) -> np.ndarray:
        scores = self.answer_scores(X)
        calibration = getattr(self, "calibration_", None)
        return scores if calibration is None else calibration.apply(scores)

    def decision_function(self, X: Any) -> np.ndarray:
        """Confidence scores: the calibrated answer scores, before normalisation.

        Follows scikit-learn's convention: for two classes, one column, the score of
        ``classes_[1]`` minus that of ``classes_[0]`` (positive means ``classes_[1]``).

        Parameters
        ----------
        X : iterable of str
            Read in chunks, like :meth:`predict_log_proba`.

        Returns
        -------
        ndarray of shape (n_samples,) for two classes, else (n_samples, n_classes)
        """
        scores = self._calibrated_scores(X)
        return scores[:, 1] - scores[:, 0] if scores.shape[1] == 2 else scores

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
        return log_softmax(self._calibrated_scores(X), axis=1)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probability of each class: the answers' scores normalised over ``classes_``.

        Parameters
        ----------
        X : iterable of str
            Read in chunks, like :meth:`predict_log_proba`.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Rows sum to 1; columns follow ``classes_``.
        """
        return np.exp(self.predict_log_proba(X))

    def generate(self, X: Any) -> list[str]:
        """The model's free-text answer to each prompt (greedy, stops at end of answer).

        Parameters
        ----------
        X : iterable of str
            Read in chunks, like :meth:`predict_log_proba`.

        Returns
        -------
        list of str
        """
        parts = self._per_chunk(X, "Generating", lambda start, texts, prompts, bar: self._generate_ids(prompts, bar))
        return [text for part in parts for text in part]

    def _generate_ids(self, prompts: list[list[int]], bar: Any) -> list[str]:
        max_new = self.max_new_tokens or max(map(len, self.answer_ids_)) + 8
        return self.backend_.generate(prompts, max_new_tokens=max_new, batch_size=self.eval_batch_size, progress=bar)

    def predict(self, X: Any) -> np.ndarray:
        """Predict the class of each text (always one of ``classes_``).

        In ``inference="score"`` mode this is the argmax of :meth:`predict_proba`; in
        ``"generate"`` mode the generated answer is parsed with ``label_parser`` and
        unparseable answers follow ``on_unparseable``.

        Parameters
        ----------
        X : iterable of str
            Read in chunks, like :meth:`predict_log_proba`.

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        check_is_fitted(self, "classes_")
        if self.inference == "score":
            return self.classes_[np.argmax(self.predict_log_proba(X), axis=1)]
        parts = self._per_chunk(X, "Generating", lambda start, texts, prompts, bar: self._parse_generated(
            start, texts, self._generate_ids(prompts, bar)))
        self.n_unparseable_ = sum(missing for part in parts for _, missing in part)
        return self.classes_[np.asarray([index for part in parts for index, _ in part], dtype=int)]

    def _parse_generated(self, start: int, texts: list[str], generated: list[str]) -> list[tuple[int, bool]]:
        """Class index of each generated answer (and whether it was unparseable), per ``on_unparseable``."""
        indices = [self.label_parser_.parse(text, self.answers_) for text in generated]
        missing = [i for i, index in enumerate(indices) if index is None]
        if missing:
            if self.on_unparseable == "raise":
                raise UnparseableAnswerError(
                    f"{len(missing)} of {len(texts)} generated answers match no class, e.g. row {start + missing[0]}: "
                    f"{generated[missing[0]]!r}. Set on_unparseable='score' to fall back to label scoring."
                )
            if self.on_unparseable == "score":
                fallback = np.argmax(self.predict_log_proba([texts[i] for i in missing]), axis=1)
                for i, index in zip(missing, fallback):
                    indices[i] = int(index)
            else:
                fallback_index = int(np.flatnonzero(self.classes_ == self.on_unparseable)[0])
                for i in missing:
                    indices[i] = fallback_index
        missing_set = set(missing)
        return [(int(index), i in missing_set) for i, index in enumerate(indices)]

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: Any) -> None:
        """Save the fitted classifier to a directory (adapter in safetensors, the rest as JSON).

        The base model is referenced by name (local paths made absolute) and by the sha256
        of its files, not copied. Overwriting an artifact is atomic: a crash leaves the old
        or the new one, never a mix (see :mod:`llm_classifier.persistence`). In a
        multi-process launch (an initialised torch process group) only rank 0 writes; every
        rank holds the same model. A stray ``RANK`` variable does not stop a single process.

        Raises
        ------
        ValueError
            If the adapter holds NaN or inf (a diverged fit): such a model is not saved.
        """
        from .backends.hf.checkpoints import absolute_model_name
        from .persistence import FittedState, save

        check_is_fitted(self, "classes_")
        if not is_main_process():
            return
        resolved = getattr(self.backend_, "resolved", None)
        if resolved is None:
            raise TypeError(f"The backend {type(self.backend_).__name__} does not support save(); pickle the estimator instead.")
        params = self.get_params(deep=False)
        params["model"] = absolute_model_name(params["model"]) if isinstance(params["model"], str) else params["model"]
        state = FittedState(
            classes=self.classes_, answers=list(self.answers_), prompt_prefix=self.prompt_prefix_,
            prompt_suffix=self.prompt_suffix_, params=params,
            model={"name": absolute_model_name(resolved.name), "fingerprint": resolved.fingerprint,
                   "files": [list(pair) for pair in getattr(resolved, "files", ())]},
            class_prompts=list(getattr(self, "class_prompts_", [])), template=self.template_,
            demonstrations=list(getattr(self, "demonstrations_", [])), label_parser=self.label_parser_,
            history=self.history_, random_seed=int(self.random_seed_), calibration=getattr(self, "calibration_", None),
            adapter=self.backend_.get_adapter(), adapter_config=self.backend_.get_adapter_config(),
        )
        save(state, path)

    @classmethod
    def load(cls, path: Any, *, model: str | None = None, trust_remote_code: bool = False) -> LLMClassifier:
        """Load a classifier saved with :meth:`save`; never executes code from the artifact.

        Parameters
        ----------
        path : path-like
            The artifact directory.
        model : str, optional
            Where the base model is now (a moved copy): it must have the same content
            (checked file by file) as the one the classifier was trained on.
        trust_remote_code : bool, default=False
            Let transformers run the base model folder's own code. Never taken from the artifact.

        Raises
        ------
        IncompatibleArtifactError
            If the artifact is corrupt or inconsistent (the message names the field), or the
            base model found differs from the one trained on (the message names the changed files).
        """
        from .backends.hf.checkpoints import check_same_model, resolve_model
        from .backends.hf.engine import TransformersBackend
        from .channel import encode_class_prompts
        from .labels import DefaultParser
        from .persistence import load

        if not isinstance(trust_remote_code, bool):
            raise TypeError(f"The 'trust_remote_code' parameter of LLMClassifier.load must be a bool. Got {trust_remote_code!r} instead.")
        state = load(path, defaults=cls().get_params(deep=False))
        params = dict(state.params)
        if model is not None:
            params["model"] = model
        model_name = model if model is not None else state.model["name"]
        backend = params.get("backend", "transformers")
        if isinstance(backend, TransformersBackend):
            backend.trust_remote_code = trust_remote_code  # the file's value was dropped when it was read
        elif trust_remote_code:
            backend = TransformersBackend(trust_remote_code=True)
        params["backend"] = backend
        estimator = cls(**params)
        # The base is identified by content before anything (even its tokenizer) is loaded from it.
        try:
            resolved = resolve_model(model_name)
        except ModelNotFoundError as exc:
            raise ModelNotFoundError(f"{exc} The saved classifier needs its base model; if the model moved, pass "
                                     "LLMClassifier.load(path, model=<its new location>).") from None
        check_same_model(state.model, resolved, legacy=state.format_version == 1)
        backend = resolve_backend(estimator.backend)
        backend.load(model_name, quantization=estimator.quantization, dtype=estimator.dtype, device=estimator.device)
        backend.set_adapter(state.adapter, state.adapter_config)
        estimator.classes_ = state.classes
        estimator.answers_ = state.answers
        estimator.class_prompts_ = state.class_prompts
        if state.class_prompts:  # direction="channel": texts are scored after these prompts
            estimator.answer_ids_ = encode_class_prompts(backend.tokenizer, state.class_prompts)
        else:
            estimator.answer_ids_ = encode_answers(backend.tokenizer, state.answers)
        estimator.prompt_prefix_ = state.prompt_prefix
        estimator.prompt_suffix_ = state.prompt_suffix
        estimator.template_ = state.template
        estimator.demonstrations_ = state.demonstrations
        estimator.label_parser_ = state.label_parser or DefaultParser()
        estimator.history_ = state.history
        estimator.random_seed_ = state.random_seed
        estimator.calibration_ = state.calibration
        estimator.backend_ = backend
        return estimator
