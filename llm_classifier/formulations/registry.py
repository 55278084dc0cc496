"""Every formulation by name: the two directions and multi-label.

A fitted classifier records its formulation's name (``layout_.formulation``); this is where the
name turns back into the object. The ``direction`` parameter chooses among
:data:`llm_classifier.formulations.base.DIRECTIONS` only; multi-label is chosen by the targets.
"""

from __future__ import annotations

from .base import DIRECTIONS, Direction
from .multilabel import MULTILABEL

FORMULATIONS: dict[str, Direction] = {**DIRECTIONS, MULTILABEL.name: MULTILABEL}


def get_formulation(name: str) -> Direction:
    """The formulation a fitted classifier was laid out by (a key of :data:`FORMULATIONS`)."""
    return FORMULATIONS[name]
