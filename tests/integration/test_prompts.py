import pytest

from llm_classifier.plugins.prompts import (
    LISTED_INSTRUCTION,
    MAX_LISTED_TOKENS,
    TEXT_MARKER,
    UNLISTED_INSTRUCTION,
    AlpacaTemplate,
    CallableTemplate,
    ChatTemplate,
    FormatTemplate,
    resolve_instruction,
    resolve_template,
    split_template,
)


def test_alpaca_matches_seed_format():
    prompt = AlpacaTemplate(instruction="Classify: {labels}").render("Nice.", ["neg", "pos"])
    assert prompt == "### Instruction:\nClassify: neg, pos\n\n### Input:\nNice.\n\n### Response:\n"


def test_alpaca_few_shot_examples_precede_input():
    prompt = AlpacaTemplate(examples=[("good", "pos")]).render("bad", ["neg", "pos"])
    assert prompt.index("### Response:\npos") < prompt.index("### Input:\nbad")


def test_chat_template_uses_tokenizer(tiny_model):
    from transformers import AutoTokenizer

    from llm_classifier.engines.hf_tokenizer import HFTokenizer

    tokenizer = HFTokenizer(AutoTokenizer.from_pretrained(tiny_model))
    prompt = ChatTemplate(system="Be brief.", examples=[("good", "pos")]).render("bad", ["neg", "pos"], tokenizer)
    assert prompt.startswith("<|im_start|>system\nBe brief.")
    assert prompt.endswith("<|im_start|>assistant\n")
    assert "<|im_start|>assistant\npos<|im_end|>" in prompt


def test_chat_demonstrations_carry_the_instruction_once_unless_repeated(tiny_model):
    from transformers import AutoTokenizer

    from llm_classifier.engines.hf_tokenizer import HFTokenizer

    tokenizer = HFTokenizer(AutoTokenizer.from_pretrained(tiny_model))
    shots = [("good", "pos"), ("awful", "neg"), ("fine", "pos")]
    instruction = "Sentiment? {labels}"
    once = ChatTemplate(instruction=instruction, examples=shots).render("bad", ["neg", "pos"], tokenizer)
    assert once.count("Sentiment? neg, pos") == 2  # the first demonstration and the text's own turn
    assert "<|im_start|>user\nawful<|im_end|>" in once
    assert once.endswith("Sentiment? neg, pos\n\nbad<|im_end|>\n<|im_start|>assistant\n")
    every = ChatTemplate(instruction=instruction, examples=shots, repeat_instruction=True).render("bad", ["neg", "pos"], tokenizer)
    assert every.count("Sentiment? neg, pos") == 4
    # without demonstrations the two render the same
    assert ChatTemplate(repeat_instruction=True).render("x", ["a", "b"], tokenizer) == ChatTemplate().render("x", ["a", "b"], tokenizer)


def test_auto_instruction_lists_a_short_label_set_only(tiny_model):
    from transformers import AutoTokenizer

    from llm_classifier.engines.hf_tokenizer import HFTokenizer

    tokenizer = HFTokenizer(AutoTokenizer.from_pretrained(tiny_model))
    few = ["negative", "positive"]
    many = [f"comp.sys.topic{i}" for i in range(20)]
    assert len(tokenizer.encode_text(", ".join(many))) > MAX_LISTED_TOKENS
    assert resolve_instruction("auto", few, tokenizer) == LISTED_INSTRUCTION.replace("{labels}", "negative, positive")
    assert resolve_instruction("auto", many, tokenizer) == UNLISTED_INSTRUCTION
    # without a tokenizer the list's length is estimated (4 characters a token)
    assert resolve_instruction("auto", few) == resolve_instruction("auto", few, tokenizer)
    assert resolve_instruction("auto", many) == UNLISTED_INSTRUCTION
    # an explicit instruction is used as given, however long the list
    assert resolve_instruction("Pick: {labels}", many, tokenizer) == "Pick: " + ", ".join(many)
    assert "comp.sys.topic7" not in ChatTemplate().render("x", many, tokenizer)
    assert "comp.sys.topic7" not in AlpacaTemplate().render("x", many, tokenizer)
    assert "negative, positive" in ChatTemplate().render("x", few, tokenizer)


def test_chat_template_without_tokenizer_template_errors():
    with pytest.raises(ValueError, match="chat template"):
        ChatTemplate().render("x", ["a", "b"], tokenizer=None)


def test_format_and_callable_templates():
    assert FormatTemplate("T: {text} L: {labels}").render("x", ["a", "b"]) == "T: x L: a, b"
    assert CallableTemplate(lambda text, labels: f"{text}|{len(labels)}").render("x", ["a", "b"]) == "x|2"


def test_resolve_template_variants():
    assert isinstance(resolve_template("alpaca"), AlpacaTemplate)
    assert isinstance(resolve_template("auto", tokenizer=None), AlpacaTemplate)
    assert isinstance(resolve_template("Text: {text}\nAnswer:"), FormatTemplate)
    assert isinstance(resolve_template(lambda t, l: t), CallableTemplate)
    template = AlpacaTemplate()
    assert resolve_template(template) is template


@pytest.mark.parametrize("bad", ["no placeholder here", "{text} and {other}", 42])
def test_resolve_template_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="'prompt' parameter"):
        resolve_template(bad)


def test_split_template_around_text():
    prefix, suffix = split_template(FormatTemplate("Q: {text}\nA:"), ["a", "b"])
    assert (prefix, suffix) == ("Q: ", "\nA:")


def test_split_template_requires_exactly_one_text():
    with pytest.raises(ValueError, match="exactly once"):
        split_template(CallableTemplate(lambda text, labels: "no text"), ["a", "b"])
    with pytest.raises(ValueError, match="exactly once"):
        split_template(CallableTemplate(lambda text, labels: text + text), ["a", "b"])
    assert TEXT_MARKER not in "ordinary user text"
