"""llm_classifier: turn a decoder LLM into a scikit-learn classifier.

>>> from llm_classifier import LLMClassifier
>>> clf = LLMClassifier()  # packaged SmolLM2-135M-Instruct, QLoRA defaults

Heavy libraries (torch, transformers, peft, bitsandbytes) are imported only when a
model is loaded, so importing this package is quick.
"""

from ._logging import disable_hub_telemetry
from .engines import Backend, Capabilities, Engine, EngineState, Tokenizer, TrainRequest
from .plugins.channel_template import ChannelTemplate
from .estimator import LLMClassifier
from .exceptions import (IncompatibleArtifactError, LowConfidenceError, LowConfidenceWarning, ModelNotFoundError,
                         TrainingDivergedError, UnparseableAnswerError, UnparseableAnswerWarning)
from .plugins.labels import DefaultParser, DefaultVerbalizer, ExactParser, FunctionVerbalizer, LabelParser, MappingVerbalizer, Verbalizer
from .plugins.prompts import AlpacaTemplate, CallableTemplate, ChatTemplate, FormatTemplate, PromptTemplate

from ._version import __version__

disable_hub_telemetry()

__all__ = [
    "LLMClassifier",
    "AlpacaTemplate",
    "ChatTemplate",
    "FormatTemplate",
    "CallableTemplate",
    "ChannelTemplate",
    "PromptTemplate",
    "DefaultVerbalizer",
    "MappingVerbalizer",
    "FunctionVerbalizer",
    "Verbalizer",
    "DefaultParser",
    "ExactParser",
    "LabelParser",
    "Backend",
    "Engine",
    "Capabilities",
    "EngineState",
    "Tokenizer",
    "TrainRequest",
    "ModelNotFoundError",
    "TrainingDivergedError",
    "LowConfidenceError",
    "LowConfidenceWarning",
    "UnparseableAnswerWarning",
    "IncompatibleArtifactError",
    "UnparseableAnswerError",
    "__version__",
]
