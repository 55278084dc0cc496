import numpy as np
import pandas as pd

from llm_classifier.inputs import check_labels, check_texts


def test_check_texts_accepts_common_containers():
    expected = ["a", "b"]
    assert check_texts(["a", "b"]) == expected
    assert check_texts(("a", "b")) == expected
    assert check_texts(np.array(["a", "b"])) == expected
    assert check_texts(np.array([["a"], ["b"]], dtype=object)) == expected
    assert check_texts(pd.Series(["a", "b"])) == expected
    assert check_texts(pd.DataFrame({"text": ["a", "b"]})) == expected
    assert check_texts(iter(["a", "b"])) == expected
    assert check_texts([b"a", "b"]) == expected
    assert check_texts(["", "   "]) == ["", "   "]


def test_check_labels_keeps_type():
    assert check_labels([1, 0, 1], 3).dtype.kind == "i"
    assert check_labels([True, False], 2).dtype == bool
    assert check_labels(pd.Series(["x", "y"]), 2).tolist() == ["x", "y"]
