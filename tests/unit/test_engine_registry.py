"""The engine registry: kind names each engine class declares, register_engine for third-party engines."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llm_classifier.engines import (BACKENDS, ENGINES, engine_class, register_engine, registered_name,
                                    resolve_backend)
from llm_classifier.engines.reference import ReferenceEngine


@pytest.fixture
def registry() -> Iterator[dict[str, str]]:
    """The registry, restored after the test."""
    saved = dict(ENGINES)
    yield ENGINES
    ENGINES.clear()
    ENGINES.update(saved)


class ThirdPartyEngine(ReferenceEngine):
    """An engine a user ships (here the reference engine under another kind name)."""

    name = "third-party"


class Undeclared(ReferenceEngine):
    name = "reference"  # inherits the parent's kind name instead of declaring its own


def test_built_in_engines_declare_the_name_they_are_registered_under() -> None:
    assert BACKENDS == ("transformers", "reference", "vllm")
    for name in BACKENDS:
        cls = engine_class(name)  # the vLLM engine's class imports without vLLM
        assert cls.name == name and ENGINES[name] == f"{cls.__module__}:{cls.__qualname__}"


def test_a_registered_engine_is_a_backend_value_and_known_by_its_objects(registry) -> None:
    register_engine("third-party", ThirdPartyEngine)
    assert registry["third-party"] == f"{__name__}:ThirdPartyEngine"
    assert type(resolve_backend("third-party")) is ThirdPartyEngine
    assert registered_name(ThirdPartyEngine()) == "third-party"
    assert registered_name(ReferenceEngine()) == "reference"
    assert registered_name(Undeclared()) is None  # declares "reference", but "reference" is another class
    register_engine("third-party", f"{__name__}:ThirdPartyEngine")  # the same target again: nothing changes
    assert registry["third-party"] == f"{__name__}:ThirdPartyEngine"


def test_a_string_target_is_imported_on_first_use(registry) -> None:
    register_engine("third-party", f"{__name__}:ThirdPartyEngine")
    assert engine_class("third-party") is ThirdPartyEngine


@pytest.mark.parametrize("name, target, message", [
    ("", ThirdPartyEngine, r"'name' parameter of register_engine must be a non-empty str. Got '' instead"),
    ("reference", ThirdPartyEngine, r"declares the name 'third-party', but is registered as 'reference'"),
    ("third-party", "no colon here", r"'target' parameter of register_engine must be a class or a 'module:Class'"),
    ("vllm", f"{__name__}:ThirdPartyEngine", r"engine name 'vllm' is already registered to "
                                             r"'llm_classifier.engines.vllm.engine:VLLMEngine'"),
])
def test_register_engine_refuses_what_it_cannot_keep(registry, name, target, message) -> None:
    before = dict(registry)
    with pytest.raises(ValueError, match=message):
        register_engine(name, target)
    assert registry == before


def test_a_class_that_declares_another_name_is_refused_when_imported(registry) -> None:
    register_engine("renamed", f"{__name__}:ThirdPartyEngine")  # a string target is checked on import
    with pytest.raises(ValueError, match=r"declares the name 'third-party', but is registered as 'renamed'"):
        engine_class("renamed")


def test_an_unknown_name_names_the_registered_ones() -> None:
    with pytest.raises(KeyError, match=r"No engine is registered as 'nope'; the registered engines are \['reference'"):
        engine_class("nope")
