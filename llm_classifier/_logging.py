"""Keep third-party chatter out of the user's console."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' / bitsandbytes' progress bars and info warnings inside the block."""
    from transformers.utils import logging as hf_logging

    previous_level = hf_logging.get_verbosity()
    previous_bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    bnb_logger = logging.getLogger("bitsandbytes")
    bnb_level = bnb_logger.level
    bnb_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*gemm_4bit.*")
            warnings.filterwarnings("ignore", category=UserWarning, module="bitsandbytes")
            warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
            warnings.filterwarnings("ignore", category=FutureWarning, module="peft")
            yield
    finally:
        hf_logging.set_verbosity(previous_level)
        if previous_bars:
            hf_logging.enable_progress_bar()
        bnb_logger.setLevel(bnb_level)


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _is_internal(filename: str) -> bool:
    """A frame of this package, or of scikit-learn's ``fit`` wrapper around it."""
    return filename.startswith(_PACKAGE_DIR) or filename.endswith(os.path.join("sklearn", "base.py"))


def warn_caller(message: str, category: type[Warning] = UserWarning) -> None:
    """Warn at the first frame outside this package: the user's line, however deep the call."""
    frame, level = sys._getframe(1), 2
    while frame is not None and _is_internal(frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def disable_hub_telemetry() -> None:
    """Never phone home from library code."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
