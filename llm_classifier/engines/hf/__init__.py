"""The transformers + peft + bitsandbytes engine (``backend="transformers"``); see :mod:`.engine`.

Nothing is imported here: torch and transformers load only when the engine loads a model.
"""
