"""Zero-shot accuracy of answer forms on a task (raw and prior-calibrated scores).

    python3 -m benchmarks.studies.answer_study languages label space-label

How the scored answer starts decides how it tokenises after the chat template's
``assistant\\n``: the default answer is the label itself (SmolLM2 splits "Danish" into
``D`` ``anish``); with a leading space most labels are one word token (`` Danish``).
Each form is scored on the suite's test texts, with the prior correction fitted on 200
training texts, by the untrained default model; every answer ends with the end-of-turn
token as always.
"""

from __future__ import annotations

from benchmarks.studies.prompt_study import compare_untrained, variant_parser

FORMS = {
    "label": None,  # the default verbalizer: str(label)
    "space-label": lambda label: f" {label}",
}


def main(argv: list[str] | None = None) -> None:
    args = variant_parser("python -m benchmarks.studies.answer_study", __doc__, list(FORMS)).parse_args(argv)
    compare_untrained(args.task, "ANSWER", {name: {"verbalizer": FORMS[name]} for name in args.names or FORMS},
                      describe=lambda clf: f"tokens per answer: {[len(ids) - 1 for ids in clf.choice_ids_]}")  # without end of turn


if __name__ == "__main__":
    main()
