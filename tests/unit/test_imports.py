"""Importing the library and its light modules loads no deep-learning stack (docs/design.md)."""

import subprocess
import sys

HEAVY = ("torch", "transformers", "peft", "bitsandbytes", "trl", "datasets")


def test_import_loads_no_deep_learning_stack():
    code = (
        "import sys, llm_classifier, llm_classifier.engines.hf.early_stopping, llm_classifier.plugins.prompts, "
        "llm_classifier.plugins.calibration, llm_classifier.plugins.labels, llm_classifier.encoding; "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"
