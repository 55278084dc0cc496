"""The one check of a plugin's parameters (templates, verbalizers, label parsers).

Each of llm_classifier's own plugins declares the constraints of its constructor
parameters (``_parameter_constraints``, scikit-learn's declarative form) and the rules a
constraint cannot express (``_check_rules``). :func:`check_plugin` applies both; ``fit``
runs it on the ``prompt``, ``verbalizer`` and ``label_parser`` parameters
(:func:`llm_classifier._params.check_param_values`), and loading a saved classifier on
every plugin it rebuilds from the file (:func:`llm_classifier.io.artifact.load`), so a
file cannot hold a plugin parameter that ``fit`` would refuse.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import validate_parameter_constraints

from ..exceptions import invalid


class Plugin(BaseEstimator):
    """A plugin whose parameters are declared and checked by :func:`check_plugin`.

    Like a scikit-learn estimator, the constructor only stores its parameters; they are
    checked when the plugin is used by ``fit`` and when it is read from a file.
    """

    _parameter_constraints: dict[str, list[Any]] = {}

    def _check_rules(self) -> None:
        """What the constraints cannot express; raise ``InvalidParameterError`` naming the parameter."""


def check_plugin(plugin: Any) -> None:
    """Check the parameters of one of llm_classifier's plugins; other objects are left to their authors.

    A user's subclass of a plugin is the user's object: it is never saved (stored by name only, so no file
    holds it), its parameters may mean something else to it, and its constructor need not follow
    scikit-learn's conventions (``*args``, a parameter not stored), so it is not checked.

    Raises
    ------
    InvalidParameterError
        Naming the plugin's class and parameter, in scikit-learn's wording.
    """
    if not isinstance(plugin, Plugin) or type(plugin).__module__.partition(".")[0] != __name__.partition(".")[0]:
        return
    validate_parameter_constraints(type(plugin)._parameter_constraints, plugin.get_params(deep=False),
                                   caller_name=type(plugin).__name__)
    plugin._check_rules()


def check_examples(plugin: Any, examples: Sequence[Any] | None) -> None:
    """Few-shot ``examples`` are None or (text, answer) pairs of strings."""
    if examples is None:
        return
    for index, pair in enumerate(examples):
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(part, str) for part in pair)):
            raise invalid(plugin, "examples", f"None or a sequence of (text, answer) pairs of str; examples[{index}] "
                          f"is {pair!r}", examples)
