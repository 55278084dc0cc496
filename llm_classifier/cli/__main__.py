"""``python -m llm_classifier.cli``."""

import sys

from .main import main

sys.exit(main())
