"""An exponential moving average of the adapter weights during fine-tuning.

``LLMClassifier(ema_decay=d)`` keeps a shadow copy of the trainable (LoRA) weights,
updated after every optimizer step as ``shadow = d * shadow + (1 - d) * weights``
(Polyak averaging; the decay is warmed up as ``min(d, (1 + t) / (10 + t))`` so the first
steps are not dominated by the initial weights). Early stopping scores the averaged
weights, and the averaged weights are what the fitted model keeps.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .adapter_weights import load_weights, snapshot, trainable_parameters

__all__ = ["AdapterEMA", "ema_callback"]


class AdapterEMA:
    """Exponential moving average of a model's trainable weights.

    Parameters
    ----------
    model : torch.nn.Module
        The model being trained; its parameters with ``requires_grad`` are averaged.
    decay : float
        Weight of the running average at each update, in ``[0, 1)``.
    """

    def __init__(self, model: Any, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1); got {decay!r}")
        self.decay = float(decay)
        self.params = trainable_parameters(model)
        self.shadow = snapshot(self.params)
        self.n_updates = 0

    def current_decay(self) -> float:
        """The decay of the next update (warmed up over the first steps)."""
        return min(self.decay, (1 + self.n_updates) / (10 + self.n_updates))

    def update(self) -> None:
        """Fold the current weights into the average."""
        import torch

        weight = 1.0 - self.current_decay()
        self.n_updates += 1
        with torch.no_grad():
            for name, param in self.params.items():
                self.shadow[name].lerp_(param.detach().to(self.shadow[name].dtype), weight)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Put the averaged weights in the model; the trained ones come back on exit."""
        trained = snapshot(self.params)
        load_weights(self.params, self.shadow)
        try:
            yield
        finally:
            load_weights(self.params, trained)

    def copy_to_model(self) -> None:
        """Replace the model's trainable weights by the average, for good."""
        load_weights(self.params, self.shadow)


def ema_callback(ema: AdapterEMA) -> Any:
    """A :class:`transformers.TrainerCallback` that updates ``ema`` after each optimizer step.

    Add it before the early-stopping callback, so an evaluation sees the step's update.
    """
    from transformers import TrainerCallback

    class AdapterEMACallback(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            ema.update()
            return control

    return AdapterEMACallback()
