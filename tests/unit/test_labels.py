import pytest

from llm_classifier.plugins.labels import (
    DefaultParser,
    DefaultVerbalizer,
    ExactParser,
    FunctionVerbalizer,
    MappingVerbalizer,
    check_answers,
    resolve_parser,
    resolve_verbalizer,
)


def test_default_verbalizer_normalises_whitespace():
    assert DefaultVerbalizer().answers(["a  b", 3, True]) == ["a b", "3", "True"]


def test_mapping_verbalizer_and_missing_class():
    assert MappingVerbalizer({0: "negative", 1: "positive"}).answers([0, 1]) == ["negative", "positive"]
    with pytest.raises(ValueError, match=r"no answer for the classes \[2\]"):
        MappingVerbalizer({0: "negative", 1: "positive"}).answers([0, 1, 2])


@pytest.mark.parametrize("verbalizer", [
    {"a": "yes", "b": None},  # a dict.get that missed: trained the model to answer "None"
    {"a": "yes", "b": ["no"]},  # answered "['no']"
    {"a": "yes", "b": 2},
    lambda label: None if label == "b" else label,
])
def test_a_verbalizer_answer_that_is_not_a_str_is_refused_not_stringified(verbalizer):
    answers = resolve_verbalizer(verbalizer).answers(["a", "b"])
    with pytest.raises(ValueError, match=r"The verbalizer gave the class 'b' the answer .* \(\w+\); an answer is a "
                                         r"non-empty str"):
        check_answers(answers, ["a", "b"])


def test_resolve_verbalizer_variants():
    assert isinstance(resolve_verbalizer(None), DefaultVerbalizer)
    assert isinstance(resolve_verbalizer({1: "x"}), MappingVerbalizer)
    assert isinstance(resolve_verbalizer(str.upper), FunctionVerbalizer)
    with pytest.raises(ValueError, match="'verbalizer' parameter"):
        resolve_verbalizer(12)


def test_check_answers_rejects_collisions_and_empty():
    with pytest.raises(ValueError, match="same answer text"):
        check_answers(["yes", "yes"], ["a", "b"])
    with pytest.raises(ValueError, match="empty answer"):
        check_answers(["yes", " "], ["a", "b"])


@pytest.mark.parametrize(
    "text, expected",
    [
        ("positive", 1),
        ("Positive.", 1),
        ("  NEGATIVE\nbecause ...", 0),
        ("The answer is positive", 1),
        ("positiv", 1),
        ("no idea", None),
        ("", None),
        ("positive or negative", None),
    ],
)
def test_default_parser(text, expected):
    assert DefaultParser().parse(text, ["negative", "positive"]) == expected


def test_default_parser_prefers_longest_prefix():
    assert DefaultParser().parse("money-fx news", ["money", "money-fx"]) == 1


def test_exact_parser_case_sensitivity():
    assert ExactParser().parse("Pos", ["Pos", "Neg"]) == 0
    assert ExactParser().parse("pos", ["Pos", "Neg"]) is None
    assert ExactParser(case_sensitive=False).parse("pos", ["Pos", "Neg"]) == 0


def test_resolve_parser_variants():
    assert isinstance(resolve_parser(None), DefaultParser)
    assert resolve_parser("exact-ci").case_sensitive is False
    assert resolve_parser(lambda text, answers: 0).parse("x", ["a"]) == 0
    with pytest.raises(ValueError, match="'label_parser' parameter"):
        resolve_parser("fuzzy-magic")
