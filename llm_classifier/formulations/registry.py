"""Every formulation by name: the two directions and multi-label.

A fitted classifier records its formulation's name (``layout_.formulation``); this is where the
name turns back into the object. The ``direction`` parameter chooses among :data:`DIRECTIONS`
only; multi-label is chosen by the targets.
"""

from __future__ import annotations

from .base import Direction
from .channel import Channel
from .direct import Direct
from .multilabel import MULTILABEL

__all__ = ["DIRECTIONS", "FORMULATIONS", "get_direction", "get_formulation"]

DIRECTIONS: dict[str, Direction] = {direction.name: direction for direction in (Direct(), Channel())}
FORMULATIONS: dict[str, Direction] = {**DIRECTIONS, MULTILABEL.name: MULTILABEL}


def get_direction(name: str) -> Direction:
    """The direction named ``name`` (a key of :data:`DIRECTIONS`)."""
    return DIRECTIONS[name]


def get_formulation(name: str) -> Direction:
    """The formulation a fitted classifier was laid out by (a key of :data:`FORMULATIONS`)."""
    return FORMULATIONS[name]
