"""A plugin's parameters: one check (:func:`llm_classifier.plugins.base.check_plugin`), used by fit and load."""

from __future__ import annotations

import re

import pytest
from sklearn.utils._param_validation import InvalidParameterError

from llm_classifier import AlpacaTemplate, ChatTemplate, FormatTemplate
from llm_classifier.plugins.base import check_plugin
from llm_classifier.plugins.channel_template import ChannelTemplate
from llm_classifier.plugins.labels import DefaultParser, DefaultVerbalizer, ExactParser, MappingVerbalizer
from llm_classifier.plugins.prompts import check_format_fields


@pytest.mark.parametrize("plugin", [
    AlpacaTemplate(), AlpacaTemplate("Say {labels}", examples=[("a", "b")]), ChatTemplate(system="s", examples=[["a", "b"]]),
    FormatTemplate("{{x}} {labels}: {text}"), ChannelTemplate(), DefaultVerbalizer(), MappingVerbalizer({"a": "b"}),
    DefaultParser(0.0), DefaultParser(1), ExactParser(False),
])
def test_valid_plugins_pass(plugin):
    check_plugin(plugin)


@pytest.mark.parametrize("plugin, pattern", [
    (DefaultParser(cutoff=1.5), r"'cutoff' parameter of DefaultParser must be a float in the range \[0.0, 1.0\]"),
    (DefaultParser(cutoff="0.8"), r"'cutoff' parameter of DefaultParser must be a float"),
    (DefaultParser(cutoff=False), r"'cutoff' parameter of DefaultParser must be a number, not a bool"),
    (ExactParser(case_sensitive=1), r"'case_sensitive' parameter of ExactParser must be an instance of 'bool'"),
    (ChatTemplate(system=3), r"'system' parameter of ChatTemplate"),
    (ChatTemplate(examples=[("a", "b", "c")]), r"'examples' parameter of ChatTemplate .* examples\[0\] is \('a', 'b', 'c'\)"),
    (AlpacaTemplate(examples="ab"), r"'examples' parameter of AlpacaTemplate must be an instance of"),
    (ChannelTemplate(instruction="Write:"), r"'instruction' parameter of ChannelTemplate must be a str containing '\{label\}'"),
    (MappingVerbalizer(mapping="ab"), r"'mapping' parameter of MappingVerbalizer"),
    (FormatTemplate(template=b"{text}"), r"'template' parameter of FormatTemplate must be an instance of 'str'"),
    (FormatTemplate("{text.upper}"), r"'template' parameter of FormatTemplate holds the format field '\{text.upper\}'"),
    (FormatTemplate("Pick one of {labels}:"), r"'template' parameter of FormatTemplate has no '\{text\}' placeholder"),
])
def test_invalid_plugin_parameters_are_named(plugin, pattern):
    with pytest.raises(InvalidParameterError, match=pattern):
        check_plugin(plugin)


class _Varargs(AlpacaTemplate):  # a user's subclass: its parameters are its author's, as sklearn's get_params cannot read
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)


class _Unstored(AlpacaTemplate):
    def __init__(self, prefix="Note: "):
        super().__init__()


class _OwnSyntax(FormatTemplate):  # renders "<T>", not str.format: "{0}" is literal text to it
    def render(self, text, labels, tokenizer=None):
        return self.template.replace("<T>", text)


class _OwnCutoff(DefaultParser):  # its cutoff means something else, and it parses on its own
    def __init__(self, cutoff=5):
        self.cutoff = cutoff

    def parse(self, text, answers):
        return 0


@pytest.mark.parametrize("plugin", [_Varargs(instruction="hi"), _Unstored(), _OwnSyntax("Text: <T> {0}"), _OwnCutoff()])
def test_a_users_subclass_is_left_to_its_author(plugin):
    """Only llm_classifier's own plugin classes are checked (they are the ones a file can hold); a user's subclass
    is never saved. Checking it crashed in sklearn's get_params (RuntimeError on varargs, AttributeError on an
    unstored parameter) or refused parameters that mean something else to it."""
    check_plugin(plugin)


def test_the_channel_template_renders_only_through_the_check():
    with pytest.raises(InvalidParameterError, match=r"'instruction' parameter of ChannelTemplate must be a str containing"):
        ChannelTemplate(instruction="Write:").render_class("a")


@pytest.mark.parametrize("template, fields", [
    ("{text}", ["text"]), ("{labels}: {text}", ["labels", "text"]), ("{{text}} {{0}}", []), ("{text}{text}", ["text", "text"]),
])
def test_plain_fields_are_returned(template, fields):
    assert check_format_fields(template, "prompt", "LLMClassifier") == fields


@pytest.mark.parametrize("template, message", [
    ("{text.__init__.__globals__}", "holds the format field '{text.__init__.__globals__}'"),
    ("{text[-1]}", "holds the format field '{text[-1]}'"),
    ("{text!s:{labels}}", "holds the format field '{text!s:{labels}}'"),
    ("{text} }", "is not a valid format string (Single '}' encountered in format string)"),
    ("{text", "is not a valid format string"),
])
def test_other_fields_are_refused_naming_the_parameter_and_the_field(template, message):
    with pytest.raises(InvalidParameterError, match=re.escape(f"The 'prompt' parameter of LLMClassifier {message}")):
        check_format_fields(template, "prompt", "LLMClassifier")


def test_a_format_template_never_walks_attributes():
    """Rendering goes through the same check: no attribute of the text (or of anything it reaches) is shown."""
    with pytest.raises(InvalidParameterError, match=r"\{text.__class__\}"):
        FormatTemplate("{text.__class__}").render("a text", ["a", "b"])
    assert FormatTemplate("{{text.__class__}} {text}").render("a text", ["a", "b"]) == "{text.__class__} a text"
