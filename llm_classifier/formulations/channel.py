"""The channel direction (the noisy channel of Min et al., 2022): score the text after each class's
own prompt, ``log p(text | prompt(class))``."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..encoding import PromptEncoder, encode_class_prompts, escape
from ..engines.base import Decision, Engine, Progress, Tokenizer, TrainExample
from ..plugins.channel_template import resolve_channel_template
from .base import Direction, PromptLayout

__all__ = ["Channel"]


class Channel(Direction):
    """Score the text after each class's prompt: ``log p(text | prompt(class))``.

    Fine-tuning learns to write each class's texts, with the loss on every text token;
    the text is closed by the end token, which is scored too.
    """

    name = "channel"
    start_token = False

    def check_params(self, plan: Any) -> list[tuple[str, str]]:
        conflicts = [
            ("inference", plan.inference != "score", "'score' (a channel model writes texts, not answers)"),
            ("few_shot", plan.few_shot != 0, "0 (demonstrations are not supported in the channel direction)"),
            ("objective", plan.objective != "answer",
             "'answer' (the loss is on the text; the class objectives score answers)"),
        ]
        return [(name, f"{allowed} when direction='channel'") for name, conflicting, allowed in conflicts if conflicting]

    def check_prompt(self, prompt: Any) -> None:
        resolve_channel_template(prompt)

    def layout(self, prompt: Any, tokenizer: Tokenizer, answers: list[str], demonstrations: tuple[list[str], np.ndarray],
               max_length: int) -> PromptLayout:
        template = resolve_channel_template(prompt)
        class_prompts = [template.render_class(escape(tokenizer, answer), tokenizer) for answer in answers]
        return PromptLayout(self.name, template, [], class_prompts, "", "")

    def choice_ids(self, tokenizer: Tokenizer, answers: list[str], layout: PromptLayout) -> list[list[int]]:
        return encode_class_prompts(tokenizer, layout.class_prompts)

    def encoder(self, tokenizer: Tokenizer, layout: PromptLayout, choice_ids: list[list[int]], max_length: int,
                truncation: str) -> PromptEncoder:
        # The text is closed by the end token, which is scored too.
        return PromptEncoder(tokenizer, layout.prefix, "", max_length, max(map(len, choice_ids)), truncation,
                             start_token=False, suffix_ids=[int(tokenizer.end_id)])

    def example(self, ids: list[int], code: int, choice_ids: list[list[int]], weight: float) -> TrainExample:
        """The class's prompt, then the text as the only candidate (the loss is on the text)."""
        return TrainExample(list(choice_ids[code]), [Decision([], [list(ids)], 0, weight)])

    def score(self, engine: Engine, inputs: list[list[int]], choice_ids: list[list[int]], *, batch_size: int,
              progress: Progress | None = None) -> np.ndarray:
        return np.asarray(engine.score(choice_ids, inputs, batch_size=batch_size, progress=progress)).T
