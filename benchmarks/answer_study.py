"""Zero-shot accuracy of answer forms on a task (raw and prior-calibrated scores).

    python3 -m benchmarks.answer_study languages label space-label

How the scored answer starts decides how it tokenises after the chat template's
``assistant\\n``: the default answer is the label itself (SmolLM2 splits "Danish" into
``D`` ``anish``); with a leading space most labels are one word token (`` Danish``).
Each form is scored on the suite's test texts, with the prior correction fitted on 200
training texts, by the untrained default model; every answer ends with the end-of-turn
token as always.
"""

from __future__ import annotations

import sys

import numpy as np

from benchmarks.prompt_study import report, untrained_predictions
from benchmarks.tasks import load_task
from llm_classifier import LLMClassifier

FORMS = {
    "label": None,  # the default verbalizer: str(label)
    "space-label": lambda label: f" {label}",
}


def main() -> None:
    task, names = sys.argv[1], sys.argv[2:] or list(FORMS)
    X_train, y_train, X_test, y_test, _ = load_task(task, n_train=500, n_test=200)
    sample = np.random.default_rng(0).choice(len(X_train), size=200, replace=False)
    for name in names:
        clf = LLMClassifier(verbalizer=FORMS[name], max_steps=0, calibration=None, random_state=0).fit(X_train, y_train)
        tokens = [len(ids) - 1 for ids in clf.answer_ids_]  # without the end-of-turn token
        print(f"ANSWER {task} {name} tokens per answer: {tokens}", flush=True)
        report(f"ANSWER {task} {name}", clf, y_test, untrained_predictions(clf, X_test, [X_train[i] for i in sample], y_train))


if __name__ == "__main__":
    main()
