"""Prompt templates: how an input text becomes the prompt the model answers.

Every template renders ``(text, labels)`` to a prompt string that ends right where the
answer begins. The protocol is :class:`PromptTemplate`; any object with a matching
``render`` method can be passed as ``LLMClassifier(prompt=...)``, and so can a format
string with a ``{text}`` placeholder (and optionally ``{labels}``) or a callable
``f(text, labels) -> str``.
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import InvalidParameterError

from ..encoding import unescape
from .base import Plugin, check_examples

#: The instruction that names the classes (``{labels}`` becomes the comma-separated answers).
LISTED_INSTRUCTION = "Classify the text into one of these categories: {labels}. Answer with the category only."
#: The instruction for label sets too long to list in every prompt.
UNLISTED_INSTRUCTION = "Classify the text. Answer with the category only."
#: ``instruction="auto"`` lists the answers when their list takes at most this many tokens
#: (an eighth of the default ``max_length``): a long list would crowd the text out of the
#: prompt and be paid for in every training and scoring pass.
MAX_LISTED_TOKENS = 64
DEFAULT_INSTRUCTION = "auto"

# A private-use-area marker: rendered in place of the text to find where the text sits.
TEXT_MARKER = "\ue000LLMC_TEXT\ue001"


@runtime_checkable
class PromptTemplate(Protocol):
    """Anything that turns a text and the label set into a prompt."""

    def render(self, text: str, labels: Sequence[str], tokenizer: Any = None) -> str:
        """Return the prompt for ``text``; the model's answer follows it directly."""
        ...


#: The fields a format-string prompt may hold, each only as a plain name (``{text}``, ``{labels}``).
FORMAT_FIELDS = ("text", "labels")


def check_format_fields(template: str, param: str, owner: str) -> list[str]:
    """Refuse a format string with a field other than a plain ``{text}`` or ``{labels}``.

    An attribute or index field (``{text.__class__}``, ``{text[0]}``) walks the objects
    ``str.format`` is given, a positional field (``{0}``, ``{}``) has no value, and a conversion
    or format spec (``{text!r}``, ``{text:>99999999}``) changes or inflates the text. The one
    check of a format string: at ``fit`` (the ``prompt`` parameter, a :class:`FormatTemplate`)
    and on a template read from a saved classifier.

    Returns
    -------
    list of str
        The fields, in order (``{{`` and ``}}`` are literal braces, not fields).

    Raises
    ------
    InvalidParameterError
        Naming ``param`` of ``owner`` and the field.
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise InvalidParameterError(
            f"The {param!r} parameter of {owner} is not a valid format string ({exc}); double the braces that "
            f"are not the fields {{text}} or {{labels}}. Got {template!r} instead."
        ) from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in FORMAT_FIELDS or spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise InvalidParameterError(
                f"The {param!r} parameter of {owner} holds the format field {shown!r}; a format string may hold "
                "only the plain fields {text} and {labels} (no attribute, index, positional field, conversion or "
                f"format spec); double other braces. Got {template!r} instead."
            )
    return [name for _, name, _, _ in parsed if name is not None]


def _format_labels(labels: Sequence[str]) -> str:
    return ", ".join(labels)


def _list_tokens(labels: Sequence[str], tokenizer: Any = None) -> int:
    """Tokens of the comma-separated answer list (about 4 characters a token without a tokenizer)."""
    listed = unescape(_format_labels(labels))
    if tokenizer is None:
        return math.ceil(len(listed) / 4)
    return len(tokenizer.encode_text(listed))


def resolve_instruction(instruction: str, labels: Sequence[str], tokenizer: Any = None) -> str:
    """The instruction text for ``labels``: ``"auto"`` resolved, ``{labels}`` filled in.

    ``"auto"`` is :data:`LISTED_INSTRUCTION` when the answer list takes at most
    :data:`MAX_LISTED_TOKENS` tokens, else :data:`UNLISTED_INSTRUCTION`.
    """
    if instruction == "auto":
        short = _list_tokens(labels, tokenizer) <= MAX_LISTED_TOKENS
        instruction = LISTED_INSTRUCTION if short else UNLISTED_INSTRUCTION
    return instruction.replace("{labels}", _format_labels(labels))


class AlpacaTemplate(Plugin):
    """The Alpaca instruction format of the seed recipe.

    ``### Instruction:`` / ``### Input:`` / ``### Response:``; works with base
    models that have no chat template.

    Parameters
    ----------
    instruction : str, default="auto"
        The instruction; ``{labels}`` is replaced by the comma-separated answers.
        ``"auto"`` lists the answers when the list is short (at most
        ``MAX_LISTED_TOKENS`` = 64 tokens) and asks for the category without
        listing them otherwise.
    examples : sequence of (text, answer) pairs, default=None
        Few-shot demonstrations placed before the input.

    Examples
    --------
    >>> AlpacaTemplate().render("Great film!", ["negative", "positive"]).splitlines()[0]
    '### Instruction:'
    """

    _parameter_constraints = {"instruction": [str], "examples": [list, tuple, None]}

    def __init__(self, instruction: str = DEFAULT_INSTRUCTION, examples: Sequence[tuple[str, str]] | None = None):
        self.instruction = instruction
        self.examples = examples

    def _check_rules(self) -> None:
        check_examples(self, self.examples)

    def render(self, text: str, labels: Sequence[str], tokenizer: Any = None) -> str:
        parts = [f"### Instruction:\n{resolve_instruction(self.instruction, labels, tokenizer)}\n\n"]
        for example_text, answer in self.examples or ():
            parts.append(f"### Input:\n{example_text}\n\n### Response:\n{answer}\n\n")
        parts.append(f"### Input:\n{text}\n\n### Response:\n")
        return "".join(parts)



class ChatTemplate(Plugin):
    """The model's own chat template (the engine tokenizer's ``render_chat``).

    The instruction and the text form the user turn; the prompt ends with the
    assistant turn's header, so the answer is the assistant's reply.

    Parameters
    ----------
    instruction : str, default="auto"
        Placed before the text in the user turn; ``{labels}`` lists the answers.
        ``"auto"`` lists them when the list is short (at most ``MAX_LISTED_TOKENS``
        = 64 tokens) and asks for the category without listing them otherwise.
    system : str or None, default=None
        A system message; ``None`` keeps the model's default.
    examples : sequence of (text, answer) pairs, default=None
        Few-shot demonstrations, rendered as earlier user/assistant turns.
    repeat_instruction : bool, default=False
        Whether every demonstration's user turn repeats the instruction. By default
        only the first demonstration and the text's own turn carry it (the turns
        between hold the bare texts), so demonstrations cost their text, not another
        copy of the instruction and its class list.
    """

    _parameter_constraints = {"instruction": [str], "system": [str, None], "examples": [list, tuple, None],
                              "repeat_instruction": ["boolean"]}

    def __init__(
        self,
        instruction: str = DEFAULT_INSTRUCTION,
        system: str | None = None,
        examples: Sequence[tuple[str, str]] | None = None,
        repeat_instruction: bool = False,
    ):
        self.instruction = instruction
        self.system = system
        self.examples = examples
        self.repeat_instruction = repeat_instruction

    def _check_rules(self) -> None:
        check_examples(self, self.examples)

    def render(self, text: str, labels: Sequence[str], tokenizer: Any = None) -> str:
        if tokenizer is None or not tokenizer.has_chat_template:
            raise ValueError(
                "ChatTemplate needs a tokenizer with a chat template; this model has none. "
                "Use prompt='alpaca' or a format string instead."
            )
        instruction = resolve_instruction(self.instruction, labels, tokenizer)
        messages: list[dict[str, str]] = []
        if self.system is not None:
            messages.append({"role": "system", "content": self.system})
        for i, (example_text, answer) in enumerate(self.examples or ()):
            instructed = i == 0 or self.repeat_instruction
            messages.append({"role": "user", "content": f"{instruction}\n\n{example_text}" if instructed else example_text})
            messages.append({"role": "assistant", "content": answer})
        messages.append({"role": "user", "content": f"{instruction}\n\n{text}"})
        return tokenizer.render_chat(messages)



class FormatTemplate(Plugin):
    """A user's format string with a ``{text}`` placeholder and optionally ``{labels}``.

    Parameters
    ----------
    template : str
        For example ``"Review: {text}\\nSentiment:"``. Other braces must be doubled; the
        fields are plain names only (no ``{text.attr}``, ``{text[0]}``, ``{0}``, ``{text!r}``
        or ``{text:>9}``: :func:`check_format_fields`).

    Examples
    --------
    >>> FormatTemplate("Review: {text}\\nLabels: {labels}\\nAnswer: ").render("ok", ["bad", "good"])
    'Review: ok\\nLabels: bad, good\\nAnswer: '
    """

    _parameter_constraints = {"template": [str]}

    def __init__(self, template: str):
        self.template = template

    def _check_rules(self) -> None:
        if "text" not in check_format_fields(self.template, "template", type(self).__name__):
            raise InvalidParameterError(
                f"The 'template' parameter of {type(self).__name__} has no '{{text}}' placeholder, so the input text "
                f"would not appear in the prompt. Got {self.template!r} instead."
            )

    def render(self, text: str, labels: Sequence[str], tokenizer: Any = None) -> str:
        check_format_fields(self.template, "template", type(self).__name__)  # never an attribute walk
        return self.template.format(text=text, labels=_format_labels(labels))



class CallableTemplate(BaseEstimator):
    """Wrap a function ``f(text, labels) -> str`` as a template."""

    def __init__(self, func: Callable[[str, Sequence[str]], str]):
        self.func = func

    def render(self, text: str, labels: Sequence[str], tokenizer: Any = None) -> str:
        return self.func(text, list(labels))



TEMPLATES: dict[str, Callable[[], PromptTemplate]] = {
    "alpaca": AlpacaTemplate,
    "chat": ChatTemplate,
}


def resolve_template(prompt: Any, tokenizer: Any = None) -> PromptTemplate:
    """Turn a ``prompt=`` value into a template object.

    ``"auto"`` picks the model's chat template when it has one, else Alpaca; other
    strings are registry names or format strings containing ``{text}``.
    """
    if prompt is None or (isinstance(prompt, str) and prompt == "auto"):
        has_chat = tokenizer is not None and tokenizer.has_chat_template
        return ChatTemplate() if has_chat else AlpacaTemplate()
    if isinstance(prompt, str):
        if prompt in TEMPLATES:
            return TEMPLATES[prompt]()
        if "{" in prompt or "}" in prompt:
            if "text" in check_format_fields(prompt, "prompt", "LLMClassifier"):
                return FormatTemplate(prompt)
            raise InvalidParameterError(
                f"The 'prompt' parameter of LLMClassifier is a format string without the '{{text}}' placeholder, "
                f"so the input text would not appear in the prompt. Got {prompt!r} instead."
            )
        raise InvalidParameterError(
            f"The 'prompt' parameter of LLMClassifier must be 'auto', one of {sorted(TEMPLATES)}, a "
            f"format string containing '{{text}}', a callable or a PromptTemplate. Got {prompt!r} instead."
        )
    if hasattr(prompt, "render") and callable(prompt.render):
        return prompt
    if callable(prompt):
        return CallableTemplate(prompt)
    raise InvalidParameterError(
        "The 'prompt' parameter of LLMClassifier must be a str, a callable or an object with a "
        f"render(text, labels, tokenizer) method. Got {prompt!r} instead."
    )


def split_template(template: PromptTemplate, labels: Sequence[str], tokenizer: Any = None) -> tuple[str, str]:
    """Render ``template`` around a marker and return the text before and after the input.

    The prompt of any text is then ``prefix + text + suffix``, which lets long texts be
    truncated without touching the instruction or the answer position.
    """
    for label in labels:
        if TEXT_MARKER in str(label):
            raise ValueError(
                f"The label answer {str(label)!r} contains the marker {TEXT_MARKER!r} (private-use characters) that "
                "llm_classifier renders in place of the text to find where the text goes in a prompt; rename the "
                "class or pass a verbalizer that maps it to an answer without it."
            )
    rendered = template.render(TEXT_MARKER, list(labels), tokenizer)
    if not isinstance(rendered, str):
        raise TypeError(f"The prompt template {template!r} returned {type(rendered).__name__}, expected str.")
    count = rendered.count(TEXT_MARKER)
    if count != 1:
        raise ValueError(
            f"The prompt template {template!r} must place the input text exactly once "
            f"(found {count} times). A format string needs one '{{text}}' placeholder."
        )
    prefix, suffix = rendered.split(TEXT_MARKER)
    return prefix, suffix
