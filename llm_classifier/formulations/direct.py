"""The direct direction: score each class's answer after the text's prompt, ``log p(answer_k | prompt(text))``."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..encoding import encode_answers, escape
from ..engines.base import Decision, Engine, Progress, Tokenizer, TrainExample
from ..plugins.demonstrations import add_demonstrations
from ..plugins.prompts import FormatTemplate, resolve_template, split_template
from .base import Direction, PromptLayout

__all__ = ["Direct"]


class Direct(Direction):
    """Score each class's answer after the text's prompt: ``log p(answer_k | prompt(text))``."""

    name = "direct"
    start_token = True

    def check_prompt(self, prompt: Any) -> None:
        template = resolve_template(prompt, None)  # unknown names, format strings without {text}
        if isinstance(prompt, str) and isinstance(template, FormatTemplate):
            split_template(template, ["a", "b"])  # {text} exactly once

    def layout(self, prompt: Any, tokenizer: Tokenizer, answers: list[str], demonstrations: tuple[list[str], np.ndarray],
               max_length: int) -> PromptLayout:
        template = resolve_template(prompt, tokenizer)
        rendered = [escape(tokenizer, answer) for answer in answers]  # user data in the template stays plain text
        texts, codes = demonstrations
        shown: list[tuple[str, int]] = []
        if len(texts):
            template, shortened = add_demonstrations(template, texts, codes, rendered, tokenizer, max_length)
            shown = [(text, int(code)) for text, code in zip(shortened, codes)]
        prefix, suffix = split_template(template, rendered, tokenizer)
        return PromptLayout(self.name, template, shown, [], prefix, suffix)

    def choice_ids(self, tokenizer: Tokenizer, answers: list[str], layout: PromptLayout) -> list[list[int]]:
        return encode_answers(tokenizer, answers)

    def example(self, ids: list[int], code: int, choice_ids: list[list[int]], weight: float) -> TrainExample:
        """The text's prompt, then one decision among every class's answer."""
        return TrainExample(list(ids), [Decision([], choice_ids, code, weight)])

    def score(self, engine: Engine, inputs: list[list[int]], choice_ids: list[list[int]], *, batch_size: int,
              progress: Progress | None = None) -> np.ndarray:
        return engine.score(inputs, choice_ids, batch_size=batch_size, progress=progress)
