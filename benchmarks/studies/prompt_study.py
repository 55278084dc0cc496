"""Zero-shot accuracy of prompt wordings on a task (raw and prior-calibrated scores).

    python3 -m benchmarks.studies.prompt_study languages current text-first text-above

Each wording is scored on the suite's test texts (and 200 training texts for the
prior correction) with the untrained default model.
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from benchmarks.studies.offline import label_frequencies, prior_correction
from benchmarks.tasks import load_task
from llm_classifier import LLMClassifier

WORDINGS = {
    "current": "Classify the text into one of these categories: {labels}. Answer with the category only.\n\n{text}",
    "text-first": "Text: {text}\n\nWhich of these categories does the text belong to: {labels}? Answer with the category only.",
    "text-above": "{text}\n\nClassify the text above into one of these categories: {labels}. Answer with the category only.",
    "delimited": "Classify the text into one of these categories: {labels}.\n\nText: \"\"\"{text}\"\"\"\n\nAnswer with the category only.",
}


class Wording:
    """A chat-template user turn with ``{text}`` and ``{labels}`` anywhere in it
    (``ChatTemplate`` always puts the instruction before the text)."""

    def __init__(self, user: str):
        self.user = user

    def render(self, text, labels, tokenizer=None):
        content = self.user.replace("{labels}", ", ".join(labels)).replace("{text}", text)
        return tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True)


def untrained_predictions(clf, X_test, prior_texts, y_train) -> dict[str, np.ndarray]:
    """Class codes predicted by a fitted, untrained ``clf`` from raw scores and after the prior
    correction fitted on ``prior_texts`` (the label frequencies of ``y_train``)."""
    raw_test = clf.answer_scores(list(X_test))
    raw_prior = clf.answer_scores(list(prior_texts))
    frequencies = label_frequencies(np.searchsorted(clf.classes_, y_train), len(clf.classes_))
    calibrated = prior_correction(raw_prior, frequencies).apply(raw_test)
    return {"raw": raw_test.argmax(axis=1), "prior": calibrated.argmax(axis=1)}


def report(tag: str, clf, y_test, predictions: dict[str, np.ndarray]) -> None:
    """Print accuracy and macro-F1 of each kind of prediction, one line each."""
    codes = np.searchsorted(clf.classes_, y_test)
    for kind, pred in predictions.items():
        print(f"{tag} {kind} acc={accuracy_score(codes, pred):.3f} macro_f1={f1_score(codes, pred, average='macro'):.3f} "
              f"top={np.bincount(pred).argmax()}", flush=True)


def compare_untrained(task: str, tag: str, variants: dict[str, dict], describe=None) -> None:
    """Fit an untrained ``LLMClassifier(**kwargs)`` per variant on ``task``'s 500 / 200 split and
    report raw and prior-calibrated predictions (prior from the same 200 training texts for all);
    ``describe(clf)``, if given, adds a line about each fitted classifier."""
    X_train, y_train, X_test, y_test, _ = load_task(task, n_train=500, n_test=200)
    prior_texts = [X_train[i] for i in np.random.default_rng(0).choice(len(X_train), size=200, replace=False)]
    for name, kwargs in variants.items():
        clf = LLMClassifier(**kwargs, max_steps=0, calibration=None, random_state=0).fit(X_train, y_train)
        if describe is not None:
            print(f"{tag} {task} {name} {describe(clf)}", flush=True)
        report(f"{tag} {task} {name}", clf, y_test, untrained_predictions(clf, X_test, prior_texts, y_train))


def variant_parser(prog: str, doc: str, choices: list[str]) -> argparse.ArgumentParser:
    """``TASK [NAME ...]``: the arguments of the studies that compare named variants."""
    parser = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", help="a suite task (see python -m benchmarks --help)")
    parser.add_argument("names", nargs="*", type=lambda name: _choice(name, choices), metavar="NAME",
                        help=f"variants to compare (default: all of {', '.join(choices)})")
    return parser


def _choice(name: str, choices: list[str]) -> str:
    # argparse's ``choices`` rejects an empty ``nargs="*"`` on Python 3.11
    if name not in choices:
        raise argparse.ArgumentTypeError(f"invalid choice: {name!r} (choose from {', '.join(choices)})")
    return name


def main(argv: list[str] | None = None) -> None:
    args = variant_parser("python -m benchmarks.studies.prompt_study", __doc__, list(WORDINGS)).parse_args(argv)
    compare_untrained(args.task, "PROMPT", {name: {"prompt": Wording(WORDINGS[name])} for name in args.names or WORDINGS})


if __name__ == "__main__":
    main()
