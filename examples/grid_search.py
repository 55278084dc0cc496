"""Pipeline + GridSearchCV over two parameters on the real default model.

    python3 examples/grid_search.py            # 80 movie-review sentences, 2-fold CV, ~10 minutes on 2 cores

Searches the training length (zero-shot vs 20 QLoRA steps) and the prompt template
(the model's chat template vs Alpaca) inside a Pipeline that normalises whitespace.
"""

from __future__ import annotations

import sys
from pathlib import Path
import time

from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's data loaders
from benchmarks.tasks import load_task  # noqa: E402
from llm_classifier import LLMClassifier  # noqa: E402


def normalise_whitespace(texts):
    return [" ".join(text.split()) for text in texts]


def main() -> None:
    X_train, y_train, X_test, y_test, _ = load_task("sentiment", n_train=80, n_test=100)
    pipe = Pipeline([
        ("clean", FunctionTransformer(normalise_whitespace)),
        ("clf", LLMClassifier(random_state=0, batch_size=8)),
    ])
    grid = {"clf__max_steps": [0, 20], "clf__prompt": ["chat", "alpaca"]}
    search = GridSearchCV(pipe, grid, cv=2, scoring="accuracy", verbose=2)
    start = time.perf_counter()
    search.fit(X_train, y_train)
    print(f"search: {time.perf_counter() - start:.0f} s")
    for params, score in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"]):
        print(f"  {params}: CV accuracy {score:.3f}")
    print("best:", search.best_params_, f"test accuracy {search.score(X_test, y_test):.3f}")


if __name__ == "__main__":
    main()
