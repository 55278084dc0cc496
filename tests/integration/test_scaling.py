"""Scaling out on the engines users already have: accelerate/torchrun data-parallel training,
joblib-parallel model selection, and prediction that streams its input in chunks."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import warnings

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, cross_val_score, cross_validate

from llm_classifier import LLMClassifier

SCRIPT = Path(__file__).with_name("ddp_fit_script.py")


def _run(command, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.mark.skipif(shutil.which("accelerate") is None, reason="needs the accelerate CLI")
def test_accelerate_launch_two_processes_matches_one_process(tiny_model, tmp_path):
    """2 CPU processes (gloo) x batch 4 train the same model as 1 process x batch 8."""
    args = [str(SCRIPT), tiny_model]
    _run([sys.executable, *args, str(tmp_path / "single"), "8", "2e-2", "1"], tmp_path)
    launch = ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    _run([*launch, *args, str(tmp_path / "ddp"), "4", "2e-2", "1"], tmp_path)
    single = json.loads((tmp_path / "single" / "rank0.json").read_text())
    ranks = [json.loads((tmp_path / "ddp" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["adapter_sha256"] == ranks[1]["adapter_sha256"]  # DDP kept the ranks in sync
    assert ranks[0]["predictions"] == ranks[1]["predictions"]  # predict works on every rank
    assert ranks[0]["n_steps"] == single["n_steps"]  # max_steps follows WORLD_SIZE
    assert ranks[0]["train_loss"] == pytest.approx(single["train_loss"], abs=1e-3)
    agreement = np.mean(np.asarray(ranks[0]["predictions"]) == np.asarray(single["predictions"]))
    assert agreement >= 0.95
    np.testing.assert_allclose(ranks[0]["proba"], single["proba"], atol=1e-3)
    saved = list((tmp_path / "ddp").iterdir())
    assert sorted(p.name for p in saved) == ["model", "rank0.json", "rank1.json"]  # one artifact, from rank 0


def test_grid_search_and_cross_val_score_with_two_jobs(tiny_params, sentiment):
    X, y = sentiment
    grid = GridSearchCV(LLMClassifier(**tiny_params), {"max_steps": [0, 2]}, cv=2, n_jobs=2).fit(X, y)
    assert len(grid.cv_results_["mean_test_score"]) == 2 and hasattr(grid.best_estimator_, "classes_")
    assert set(grid.predict(X)) <= {"negative", "positive"}
    scores = cross_val_score(LLMClassifier(**tiny_params), X, y, cv=2, n_jobs=2)
    # the same seed gives the same fits in a worker as in this process
    np.testing.assert_allclose(scores, cross_val_score(LLMClassifier(**tiny_params), X, y, cv=2))


def test_joblib_workers_share_the_cores(tiny_params, sentiment):
    """loky sets OMP_NUM_THREADS=cpu_count()//n_jobs in its workers; the backend follows it."""
    result = cross_validate(LLMClassifier(**{**tiny_params, "max_steps": 0}), *sentiment, cv=2, n_jobs=2, return_estimator=True)
    limit = int(os.environ.get("OMP_NUM_THREADS") or max(1, (os.cpu_count() or 1) // 2))
    assert [est.backend_.n_threads_ for est in result["estimator"]] == [limit, limit]


def test_explicit_num_threads(tiny_params, sentiment):
    import torch

    from llm_classifier.engines.hf.engine import TransformersBackend

    before = torch.get_num_threads()
    try:
        clf = LLMClassifier(**{**tiny_params, "max_steps": 0, "backend": TransformersBackend(num_threads=1)}).fit(*sentiment)
        assert clf.backend_.n_threads_ == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def fitted(tiny_params, sentiment):
    return LLMClassifier(**tiny_params).fit(*sentiment)


def test_predict_streams_generators_and_dataset_columns(fitted, sentiment):
    from datasets import Dataset

    X = sentiment[0] * 3
    expected = fitted.predict_proba(X)
    fitted.predict_chunk_size = 5  # chunks that do not divide the input
    np.testing.assert_allclose(fitted.predict_proba(text for text in X), expected, atol=1e-6)
    np.testing.assert_allclose(fitted.predict_proba(Dataset.from_dict({"text": X})["text"]), expected, atol=1e-6)
    np.testing.assert_allclose(fitted.predict_proba(np.asarray(X, dtype=object)[:, None]), expected, atol=1e-6)
    assert list(fitted.predict(iter(X))) == list(fitted.classes_[expected.argmax(axis=1)])
    assert len(fitted.generate(iter(X[:7]))) == 7


def test_streamed_errors_name_the_row_in_the_whole_input(fitted):
    fitted.predict_chunk_size = 4
    with pytest.raises(TypeError, match=r"X\[6\]"):
        fitted.predict(iter(["a", "b", "c", "d", "e", "f", 7]))
    with pytest.raises(ValueError, match="empty"):
        fitted.predict(text for text in [])


def test_truncation_warns_once_across_chunks(fitted):
    fitted.predict_chunk_size = 2
    with pytest.warns(UserWarning, match="5 of 5 texts") as record:
        fitted.predict_proba(["word " * 2000] * 5)
    assert len([w for w in record if "truncated" in str(w.message)]) == 1


def test_generate_mode_counts_unparseable_over_chunks(tiny_params, sentiment):
    clf = LLMClassifier(**{**tiny_params, "inference": "generate", "max_new_tokens": 2}).fit(*sentiment)
    with warnings.catch_warnings(record=True) as whole_record:
        warnings.simplefilter("always")
        whole = clf.predict(sentiment[0])
    clf.predict_chunk_size = 3
    with warnings.catch_warnings(record=True) as chunked_record:
        warnings.simplefilter("always")
        assert list(clf.predict(iter(sentiment[0]))) == list(whole)
    counts = [[str(w.message) for w in record if "matched no class" in str(w.message)] for record in (whole_record, chunked_record)]
    assert counts[0] == counts[1] and len(counts[0]) <= 1  # one warning over all chunks, with the same count
