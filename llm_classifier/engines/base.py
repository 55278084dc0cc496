"""The contract between :class:`~llm_classifier.LLMClassifier` and a model engine.

The core (estimator, prompts, verbalizers, directions, calibration, persistence) owns
everything that does not depend on the model; an engine owns the model: loading it,
its tokenizer, fine-tuning an adapter, scoring continuations and generating text. A new
engine is one new package that implements :class:`Engine` and passes the contract tests
(``tests/contract/test_engine_contract.py``); docs/extending.md has a worked example.

Everything crosses the boundary as plain Python and numpy: token ids are lists of ints,
scores are float64 arrays, an adapter is a dict of numpy arrays. The core never sees a
torch tensor, a transformers tokenizer or a peft model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Backend", "Capabilities", "Decision", "Engine", "EngineState", "Progress", "ScoreFunction", "Tokenizer",
           "TrainExample", "TrainRequest", "Validation"]


@runtime_checkable
class Tokenizer(Protocol):
    """The engine's tokenizer, as the core uses it.

    User data (texts, answers, demonstrations) goes through :meth:`encode_text` only, so
    no string a user writes can become a special or control token. Text the library
    renders itself (a template's prefix and suffix, a chat turn's markup) goes through
    :meth:`encode_prompt`, where the model's special tokens are real.
    """

    end_id: int
    """The token that ends an answer (end of turn); scored after every answer and every channel text."""

    has_chat_template: bool
    """Whether :meth:`render_chat` can render chat turns for this model."""

    special_strings: Sequence[str]
    """The strings :meth:`encode_prompt` turns into special tokens (the core escapes them in user
    data that a template renders into the prompt, see :func:`llm_classifier.encoding.escape`)."""

    def encode_text(self, text: str) -> list[int]:
        """``text`` as plain text: no begin token, and special-token strings stay text."""
        ...

    def encode_texts(self, texts: Sequence[str]) -> list[list[int]]:
        """:meth:`encode_text` of each text (an engine may batch it)."""
        ...

    def encode_prompt(self, text: str, *, start: bool) -> list[int]:
        """Library-rendered prompt text, special tokens parsed; ``start`` prepends the model's
        begin token when the model uses one and ``text`` does not already begin with it."""
        ...

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids``, special tokens left out."""
        ...

    def render_chat(self, messages: Sequence[dict[str, str]]) -> str:
        """The model's chat markup for ``messages`` (``role``/``content`` dicts), ending with the
        assistant's turn header. Only called when :attr:`has_chat_template` is true."""
        ...


class Progress(Protocol):
    """A progress bar (``tqdm``'s interface): engines call ``update(n)`` as work finishes."""

    def update(self, n: int = 1) -> Any: ...


@dataclass(frozen=True)
class Capabilities:
    """What an engine can do, declared instead of probed.

    Attributes
    ----------
    fit : bool
        Fine-tunes an adapter (:meth:`Engine.fit`); without it only ``max_steps=0`` works.
    sample_weight : bool
        :class:`Decision` ``weight`` values are honoured in training.
    generate : bool
        :meth:`Engine.generate` works (``inference="generate"``).
    state : bool
        :meth:`Engine.state` / :meth:`Engine.load_state` work, so the classifier can be saved.
    options : tuple of str
        The LLMClassifier parameters the engine takes (``quantization``, ``lora_r``, ...); the
        estimator passes exactly these, by name, to :meth:`Engine.load` and in
        :attr:`TrainRequest.options`.
    option_constraints : dict of str to list
        The values the engine allows for some of its options, in scikit-learn's declarative form
        (e.g. ``{"optimizer": [StrOptions({"adamw", "sgd"})]}``); checked once, before any model
        loads, with scikit-learn's message naming the parameter.
    """

    fit: bool = True
    sample_weight: bool = True
    generate: bool = True
    state: bool = True
    options: tuple[str, ...] = ()
    option_constraints: dict[str, list[Any]] = field(default_factory=dict)


#: An engine's scoring function under its current adapter, with :meth:`Engine.score`'s signature:
#: ``score(contexts, continuations, *, batch_size, progress=None) -> ndarray (n_contexts, n_continuations)``.
ScoreFunction = Callable[..., np.ndarray]
#: A held-out slice as the core scores it: called with the engine's :data:`ScoreFunction` under the
#: adapter being trained, it returns ``(loss, scores)``: the criterion to minimise (a float) and the
#: slice's scores (an array the core reads back from the history, e.g. to calibrate).
Validation = Callable[[ScoreFunction], tuple[float, np.ndarray]]


@dataclass
class Decision:
    """One choice the model learns to make after a :class:`TrainExample`'s context.

    Attributes
    ----------
    prefix : list of int
        Tokens after the context and before the candidates (context too: no loss on them). They
        belong to this decision only: another decision of the same example does not see them.
    candidates : list of list of int
        The possible continuations after ``context + prefix``; each has at least one token.
    target : int
        Index of the right candidate.
    weight : float, default=1.0
        Loss weight of this decision (class weight x sample weight, or a label's positive weight).
    """

    prefix: list[int]
    candidates: list[list[int]]
    target: int
    weight: float = 1.0


@dataclass
class TrainExample:
    """A context computed once, followed by one or more :class:`Decision` (each seeing the context only).

    Single-label direct: the text's prompt and one decision over every class's answer. Multi-label:
    the text's prompt and one decision per label (its question as ``prefix``, candidates yes/no).
    Channel: a class's prompt and one decision whose only candidate is the text.
    """

    context: list[int]
    decisions: list[Decision]


@dataclass
class TrainRequest:
    """One fine-tuning run, in token ids; the same for every formulation (no direction crosses it).

    Attributes
    ----------
    examples : list of TrainExample
        Each a context and its decisions. An engine computes the context once per example and each
        decision after it (the transformers engine: one tree-masked pass); the result equals one
        ``(context + prefix, candidate)`` sequence per decision.
    objective : {"answer", "class", "answer+class"}
        ``"answer"``: token cross-entropy on each decision's ``candidates[target]`` (only that
        candidate need be computed), averaged over those tokens, each token weighted by its
        decision's weight. ``"class"``: cross-entropy of ``target`` under the candidates' summed
        log-probabilities normalised over the decision's candidates, weighted mean over decisions.
        ``"answer+class"``: that plus the target's mean token negative log-likelihood, per decision.
    validation : callable or None
        A held-out slice (:data:`Validation`): the engine calls it with its scoring function under
        the current adapter, keeps the adapter with the lowest returned loss, may stop early, and
        returns the kept adapter's scores as ``validation_scores``.
    max_steps, num_train_epochs, batch_size, gradient_accumulation_steps, warmup_steps,
    learning_rate, weight_decay, patience, eval_batch_size, seed, verbose
        The training schedule (as LLMClassifier's parameters of the same names, resolved); epochs
        and batches count examples.
    options : dict
        The engine's own knobs (LoRA rank, optimizer, ...), those named in
        :attr:`Capabilities.options`.
    """

    examples: list[TrainExample]
    objective: str = "answer"
    validation: Validation | None = None
    max_steps: int | None = None
    num_train_epochs: float = 2.0
    batch_size: int = 8
    gradient_accumulation_steps: int = 1
    warmup_steps: int = 5
    learning_rate: float | str = "auto"
    weight_decay: float = 0.01
    patience: int | None = None
    eval_batch_size: int = 16
    seed: int = 0
    verbose: bool = False
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for i, example in enumerate(self.examples):
            if not example.context:
                raise ValueError(f"TrainRequest.examples[{i}] has an empty context; every example needs one token.")
            if not example.decisions:
                raise ValueError(f"TrainRequest.examples[{i}] has no decision.")
            for j, decision in enumerate(example.decisions):
                if not 0 <= decision.target < len(decision.candidates):
                    raise ValueError(f"TrainRequest.examples[{i}].decisions[{j}].target is {decision.target}; it must "
                                     f"index its {len(decision.candidates)} candidates.")
                if not all(len(candidate) for candidate in decision.candidates):
                    raise ValueError(f"TrainRequest.examples[{i}].decisions[{j}] has an empty candidate.")

    def n_steps(self, world_size: int = 1) -> int:
        """Optimizer steps this request makes (``max_steps``, or the epochs over the examples)."""
        if self.max_steps is not None:
            return int(self.max_steps)
        per_step = self.batch_size * self.gradient_accumulation_steps * world_size
        return max(1, math.ceil(self.num_train_epochs * len(self.examples) / per_step))


@dataclass
class EngineState:
    """What a fitted engine must save to predict again: data only, never code.

    Attributes
    ----------
    engine : str
        The engine's registry name (``"transformers"``, ``"reference"``).
    model : str
        The base model as the engine resolved it (an alias, an absolute path or a hub id).
    fingerprint : str
        A content hash of the base model's files; :meth:`Engine.load_state` refuses a base
        whose content differs.
    adapter : dict of str to ndarray, or None
        The trained adapter weights (None for an untrained classifier).
    adapter_config : dict or None
        JSON-able description of the adapter (LoRA rank, targets, ...).
    files : list of [str, str]
        ``[file name, sha256]`` of the base model's files, so that a refusal can name the
        file that changed (empty when the engine does not hash files).
    legacy_fingerprint : bool
        The fingerprint is an artifact format 1 one (config and weight sizes), which an
        engine may still accept.
    """

    engine: str
    model: str
    fingerprint: str
    adapter: dict[str, np.ndarray] | None = None
    adapter_config: dict[str, Any] | None = None
    files: list[list[str]] = field(default_factory=list)
    legacy_fingerprint: bool = False


@runtime_checkable
class Engine(Protocol):
    """A model engine. Create it unloaded; :meth:`load` (or :meth:`load_state`) loads a model."""

    name: str
    capabilities: Capabilities
    tokenizer: Tokenizer

    def load(self, model: str, **options: Any) -> None:
        """Load the base model ``model`` and its tokenizer, with no adapter.
        ``options`` are the LLMClassifier parameters named in ``capabilities.options``; options
        left out take the engine's defaults."""
        ...

    def fit(self, request: TrainRequest) -> dict[str, Any]:
        """Train an adapter as ``request`` says and keep it; return the run's history
        (``n_steps``, ``n_examples``, ``steps``, and when ``request.validation`` is given
        ``validation`` (``{"step", "log_loss"}`` per evaluation), ``best_step``, ``stopped_early``
        and ``validation_scores``: the scores it returned for the adapter kept)."""
        ...

    def score(self, contexts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]], *,
              batch_size: int, progress: Progress | None = None) -> np.ndarray:
        """``log p(continuation_k | context_i)`` summed over the continuation's tokens, shape
        ``(len(contexts), len(continuations))``, float64, every pair scored; an empty
        continuation scores 0.0.

        Serves both directions: direct scoring has many contexts (the texts' prompts) and a
        few short continuations (the answers); the channel direction has a few contexts
        (the class prompts) and many continuations (the texts). ``progress`` is advanced by
        the number of contexts or continuations finished, whichever axis is longer.
        """
        ...

    def generate(self, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, batch_size: int,
                 progress: Progress | None = None) -> list[str]:
        """Greedy continuation of each prompt as text, stopping at ``tokenizer.end_id``."""
        ...

    def state(self) -> EngineState:
        """The base model's identity and the adapter, for saving."""
        ...

    def load_state(self, state: EngineState, *, model: str | None = None, **options: Any) -> None:
        """Load the base named by ``state`` (or by ``model``, a moved copy that must have the
        same content) and install the adapter; raise
        :class:`~llm_classifier.exceptions.IncompatibleArtifactError` when the base differs.
        ``options`` (the LLMClassifier parameters in ``capabilities.options``, e.g. ``device``)
        apply to this load; ``state.options`` record how the state was fitted."""
        ...


#: The name the ``backend=`` parameter and earlier releases use for :class:`Engine`.
Backend = Engine
