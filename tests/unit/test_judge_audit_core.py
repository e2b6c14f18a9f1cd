"""Judge-vs-reference metrics on small hand-checked cases (no database)."""
from __future__ import annotations

import pytest

from annotation.core.judge_audit import (
    JudgedItem,
    calibration,
    classification_report,
    majority_set,
    per_category_scores,
)

A, B, C = frozenset({"A"}), frozenset({"B"}), frozenset({"C"})


def test_majority_needs_more_than_half_of_the_annotators() -> None:
    assert majority_set([A, A, B]) == A
    assert majority_set([A, B, C]) == frozenset()
    assert majority_set([A, B]) == frozenset()  # 1 of 2 is not more than half
    assert majority_set([frozenset({"A", "B"}), A, B]) == frozenset({"A", "B"})


def test_accuracy_kappa_and_confusion_on_a_small_case() -> None:
    items = [JudgedItem(A, A), JudgedItem(A, A), JudgedItem(A, B), JudgedItem(B, B)]
    report = classification_report(items)
    # 3 of 4 exact matches. Kappa: p_o = 3/4; judge A 2/4, B 2/4; ref A 3/4, B 1/4;
    # p_e = 2/4 x 3/4 + 2/4 x 1/4 = 1/2; kappa = (3/4 - 1/2) / (1/2) = 0.5.
    assert report["accuracy"] == pytest.approx(0.75)
    assert report["cohen_kappa"] == pytest.approx(0.5)
    assert report["confusion"] == {"A": {"A": 2, "B": 1}, "B": {"B": 1}}


def test_per_category_precision_recall_f1() -> None:
    items = [JudgedItem(A, A), JudgedItem(A, B), JudgedItem(B, B), JudgedItem(B, A)]
    scores = per_category_scores(items)
    # A: tp 1, fp 1, fn 1 -> P = R = F1 = 0.5; support 2.
    assert scores["A"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2, "predicted": 2}
    # C never appears: no row for it.
    assert "C" not in scores


def test_a_category_never_predicted_has_no_precision() -> None:
    scores = per_category_scores([JudgedItem(C, A)])
    assert scores["C"]["precision"] is None and scores["C"]["recall"] == 0.0


def test_calibration_bins_accuracy_by_confidence_and_ece() -> None:
    items = [JudgedItem(A, A, 0.9), JudgedItem(A, B, 0.9), JudgedItem(A, A, 1.0),
             JudgedItem(A, A, 0.1), JudgedItem(A, B, None)]
    result = calibration(items)
    top = result["bins"][-1]
    # [0.8, 1.0]: three items (0.9, 0.9, 1.0), 2 correct -> accuracy 2/3, mean confidence 14/15.
    assert top["n"] == 3 and top["accuracy"] == pytest.approx(2 / 3, abs=1e-6)
    assert top["mean_confidence"] == pytest.approx(2.8 / 3, abs=1e-6)
    # ECE = 3/4 x |2/3 - 0.9333| + 1/4 x |1 - 0.1| = 0.2 + 0.225 = 0.425.
    assert result["expected_calibration_error"] == pytest.approx(0.425, abs=1e-6)
    assert result["n_without_confidence"] == 1


def test_empty_audit_is_undefined_with_a_reason() -> None:
    report = classification_report([])
    assert report["accuracy"] is None and "no item" in report["reason"]
