"""The trainable (adapter) weights of a model: read them by name, write a saved copy back.

Shared by :mod:`~llm_classifier.averaging` (the moving average put in and taken out of the
model) and :mod:`~llm_classifier.early_stopping` (the best adapter put back after training).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["load_weights", "snapshot", "trainable_parameters"]


def trainable_parameters(model: Any) -> dict[str, Any]:
    """The model's parameters that train (``requires_grad``), by name: the LoRA weights of a peft model."""
    return {name: param for name, param in model.named_parameters() if param.requires_grad}


def snapshot(weights: Mapping[str, Any]) -> dict[str, Any]:
    """A detached copy of ``weights`` (tensors by name)."""
    return {name: weight.detach().clone() for name, weight in weights.items()}


def load_weights(params: Mapping[str, Any], values: Mapping[str, Any]) -> None:
    """Copy ``values[name]`` into each of ``params`` in place (without recording gradients)."""
    import torch

    with torch.no_grad():
        for name, param in params.items():
            param.copy_(values[name])
