"""The one fitted record of a classifier: :class:`FittedState`.

``fit`` returns it, ``load`` rebuilds it from an artifact, pickling keeps it, and
``with_backend`` copies it onto another engine; the estimator's fitted attributes
(``classes_``, ``backend_``, ``thresholds_``, ...) are read from it. Whatever a fit
produces is a field here, so no way of moving a classifier can forget one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .engines.base import Engine
from .formulations.base import PromptLayout
from .formulations.registry import get_formulation
from .plugins.calibration import Calibration

__all__ = ["FittedState"]


@dataclass(frozen=True)
class FittedState:
    """Everything a fitted classifier needs to predict.

    Attributes
    ----------
    classes : ndarray of shape (n_classes,)
        The sorted class labels (multi-label: the labels).
    answers : list of str
        The answer text of each class.
    layout : PromptLayout
        The prompt as the formulation laid it out at fit (``layout.formulation`` names it).
    label_parser : LabelParser
        Generated text -> class, for ``inference="generate"``.
    engine : Engine
        The loaded engine, holding the adapter; ``engine.state()`` is its saved form.
    history : dict
        The training run's figures.
    random_seed : int
        The seed the fit ran with.
    calibration : Calibration or None
        Single-label: the correction of the class log-scores.
    thresholds : ndarray of shape (n_classes,) or None
        Multi-label: each label's probability threshold.
    """

    classes: np.ndarray
    answers: list[str]
    layout: PromptLayout
    label_parser: Any
    engine: Engine
    history: dict[str, Any]
    random_seed: int
    calibration: Calibration | None = None
    thresholds: np.ndarray | None = None
    _choice_ids: list[list[int]] | None = field(default=None, repr=False, compare=False)

    @property
    def formulation(self) -> Any:
        """The formulation this classifier was fitted with."""
        return get_formulation(self.layout.formulation)

    @property
    def choice_ids(self) -> list[list[int]]:
        """The token ids standing for each class, as the formulation lays them out (answers, class
        prompts, or yes/no continuations), tokenised by this state's engine."""
        if self._choice_ids is None:
            ids = self.formulation.choice_ids(self.engine.tokenizer, self.answers, self.layout)
            object.__setattr__(self, "_choice_ids", ids)
        return self._choice_ids  # type: ignore[return-value]

    def with_engine(self, engine: Engine) -> FittedState:
        """The same fitted classifier served by ``engine`` (already holding this state's adapter)."""
        return replace(self, engine=engine, _choice_ids=None)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_choice_ids"] = None  # tokenised again by the engine that unpickles
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
