"""One-off studies behind the defaults: each is ``python -m benchmarks.studies.<name> --help``.

They use only the public API of ``llm_classifier`` (the names in its ``__all__`` and the
estimator's public methods and fitted attributes) and the suite's own modules; what they
need beyond that (calibration maps fitted offline, the held-out slice) is written out in
:mod:`benchmarks.studies.offline` from its definition. One exception: ``multilabel_thresholds``
replays the library's multi-label threshold rule itself, the thing it measures.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["write_result"]


def write_result(result: dict, path: Path | None) -> None:
    """Write a study's ``result`` as indented JSON to ``path`` (its folder created); nothing when ``path`` is None."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2))
