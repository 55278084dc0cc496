"""One-off studies behind the defaults: each is ``python -m benchmarks.studies.<name> --help``.

They use only the public API of ``llm_classifier`` (the names in its ``__all__`` and the
estimator's public methods and fitted attributes) and the suite's own modules; what they
need beyond that (calibration maps fitted offline, the held-out slice) is written out in
:mod:`benchmarks.studies.offline` from its definition.
"""

__all__: list[str] = []
