"""The vLLM engine: predict with (and serve) a classifier fitted by another engine.

Importing this package imports no vLLM; :class:`~llm_classifier.engines.vllm.engine.VLLMEngine`
imports it when it first runs the model. Install it with ``pip install "llm-label-classifier[vllm]"``.
"""

from .engine import VLLMEngine

__all__ = ["VLLMEngine"]
