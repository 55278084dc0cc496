"""Keep third-party chatter out of the user's console."""

from __future__ import annotations

import os
import sys
import warnings


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
