"""The vLLM engine from the main suite: its tests run in their own environment, .venv-vllm.

vLLM pins an older transformers than the main environment, so .ci/setup installs it in
.venv-vllm; this test runs tests/vllm_engine there (the real vLLM CPU engine, no mocks) and fails
with their output when they fail.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from llm_classifier.engines.vllm.engine import vllm_installed

ROOT = Path(__file__).resolve().parents[1]
VENV_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"


@pytest.mark.skipif(not VENV_PYTHON.exists(), reason="no .venv-vllm (bash .ci/setup creates it); the vLLM engine's "
                                                     "tests run only there")
def test_vllm_engine_suite_passes_in_its_environment() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    result = subprocess.run([str(VENV_PYTHON), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/vllm_engine"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    summary = (result.stdout.strip().splitlines() or [""])[-1]
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert re.search(r"\d+ passed", summary), summary


@pytest.mark.skipif(vllm_installed(), reason="vLLM is installed here")
def test_missing_vllm_names_the_extra() -> None:
    from llm_classifier.engines import resolve_backend

    with pytest.raises(ImportError, match=re.escape('pip install "llm-label-classifier[vllm]"')):
        resolve_backend("vllm")
    import llm_classifier.engines.vllm  # noqa: F401  (the package itself imports without vLLM)

    assert "vllm" not in sys.modules
