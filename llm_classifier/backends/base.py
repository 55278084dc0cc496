"""The contract between :class:`~llm_classifier.LLMClassifier` and a model engine.

The estimator owns everything model-independent (validation, classes, prompt
templates, verbalizers, parsing); a backend owns the model: loading it, tokenising,
fine-tuning adapters, scoring answers and generating text. A new engine (llama.cpp,
vLLM, ...) is one new module implementing :class:`Backend`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Backend(Protocol):
    """What a model engine provides. Token ids are lists of ints from ``tokenizer``."""

    tokenizer: Any
    """A Hugging Face-compatible tokenizer: ``__call__``, ``eos_token_id``, ``apply_chat_template``."""

    def load(self, model: str, *, quantization: str | None, dtype: str, device: str) -> None:
        """Load the base model and tokenizer named by ``model`` (no adapter)."""
        ...

    def fit(
        self,
        prompts: Sequence[Sequence[int]],
        answers: Sequence[Sequence[int]],
        codes: np.ndarray,
        config: Any,
        validation: tuple[Any, ...] | None = None,
        sample_weight: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """Train adapters on ``prompt + answers[code]`` with the loss on the answer; return the history.

        With ``config.direction == "channel"`` the roles swap: ``prompts`` are the encoded
        texts, ``answers`` the class prompts, and the loss is on the text after
        ``answers[code]``.

        ``validation = (prompts, codes)``, when given, is a held-out slice to monitor:
        keep the adapter with the lowest validation log-loss (and stop early if
        ``config.patience`` says so).

        ``sample_weight`` (one positive weight per prompt) scales each example's loss, on
        top of ``config.class_weights``; the estimator passes it, and a third element
        ``sample_weight`` of ``validation`` weighing the slice's log-loss, only when
        ``LLMClassifier.fit`` was given weights, so a backend without weights still
        serves every other fit.
        """
        ...

    def score(self, prompts: Sequence[Sequence[int]], answers: Sequence[Sequence[int]], *, batch_size: int) -> np.ndarray:
        """``log p(answer_k | prompt_i)`` as an array of shape ``(n_prompts, n_answers)``."""
        ...

    def score_channel(self, texts: Sequence[Sequence[int]], class_prompts: Sequence[Sequence[int]], *, batch_size: int) -> np.ndarray:
        """``log p(text_i | class_prompt_k)`` as an array of shape ``(n_texts, n_classes)``
        (only needed for ``LLMClassifier(direction="channel")``)."""
        ...

    def generate(self, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, batch_size: int) -> list[str]:
        """Greedy continuation of each prompt, stopping at the end-of-answer token."""
        ...

    def get_adapter(self) -> dict[str, np.ndarray] | None:
        """The trained adapter weights (``None`` for an untuned base model)."""
        ...

    def set_adapter(self, state: dict[str, np.ndarray] | None, config: Any) -> None:
        """Install adapter weights produced by :meth:`get_adapter` (``None`` removes them)."""
        ...
