"""The noisy-channel direction: score ``log p(text | class)`` instead of ``log p(class | text)``.

With ``LLMClassifier(direction="channel")`` every class has a short prompt of its own
("Write a text of this class: Danish") and the model is asked how likely the text is
as the continuation of each (Min et al., 2022, "Noisy Channel Language Model Prompting
for Few-Shot Text Classification"). Fine-tuning then trains the model to write the
texts of each class, with the loss on every text token rather than on one answer
token, so each example carries far more training signal; prediction costs one pass
over the text per class instead of one pass in all.
"""

from __future__ import annotations

from typing import Any

from sklearn.utils._param_validation import InvalidParameterError

from ..exceptions import invalid
from .base import Plugin

#: The user turn that introduces a text of one class (``{label}`` is the class's answer text).
CHANNEL_INSTRUCTION = "Write a text of this class: {label}"


class ChannelTemplate(Plugin):
    """The prompt a text of one class follows, for ``direction="channel"``.

    With a tokenizer that has a chat template, the instruction is the user turn and
    the text is the assistant's reply; otherwise the Alpaca layout
    (``### Instruction:`` / ``### Response:``) is used. The text is followed by the
    end-of-text token, which is scored too.

    Parameters
    ----------
    instruction : str, default="Write a text of this class: {label}"
        Must contain ``{label}``, replaced by the class's answer text (the verbalizer's).
    system : str or None, default=None
        A system message (chat templates only); ``None`` keeps the model's default.

    Examples
    --------
    >>> ChannelTemplate().render_class("Danish")
    '### Instruction:\\nWrite a text of this class: Danish\\n\\n### Response:\\n'
    """

    _parameter_constraints = {"instruction": [str], "system": [str, None]}

    def __init__(self, instruction: str = CHANNEL_INSTRUCTION, system: str | None = None):
        self.instruction = instruction
        self.system = system

    def _check_rules(self) -> None:
        if "{label}" not in self.instruction:
            raise invalid(self, "instruction", "a str containing '{label}'", self.instruction)

    def render_class(self, label: str, tokenizer: Any = None) -> str:
        """The prompt that precedes a text of the class answered by ``label``."""
        self._check_rules()
        instruction = self.instruction.replace("{label}", label)
        if tokenizer is None or not tokenizer.has_chat_template:
            return f"### Instruction:\n{instruction}\n\n### Response:\n"
        messages = [] if self.system is None else [{"role": "system", "content": self.system}]
        messages.append({"role": "user", "content": instruction})
        return tokenizer.render_chat(messages)


def resolve_channel_template(prompt: Any) -> ChannelTemplate:
    """Turn a ``prompt=`` value into a channel template (``direction="channel"``).

    ``"auto"`` is :class:`ChannelTemplate`; a string containing ``{label}`` becomes its
    instruction; an object with a ``render_class(label, tokenizer)`` method is used as is.
    """
    if prompt is None or (isinstance(prompt, str) and prompt == "auto"):
        return ChannelTemplate()
    if isinstance(prompt, str) and "{label}" in prompt and "{text}" not in prompt:
        return ChannelTemplate(instruction=prompt)
    if callable(getattr(prompt, "render_class", None)):
        return prompt
    raise InvalidParameterError(
        "With direction='channel' the 'prompt' parameter of LLMClassifier must be 'auto', an instruction "
        "containing '{label}' (the text follows it, so no '{text}'), or an object with a "
        f"render_class(label, tokenizer) method such as ChannelTemplate. Got {prompt!r} instead."
    )
