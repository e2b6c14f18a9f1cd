"""How good is the judge against a reference (human majority or gold): plain Python, no Django.

Values are sets of category paths; a nominal label is a one-element set.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

from annotation.core.agreement import cohen_kappa_of_codes

DEFAULT_BINS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass(frozen=True)
class JudgedItem:
    """One item: the reference set, the judge's set and the judge's confidence (if it gave one)."""

    reference: frozenset[str]
    judged: frozenset[str]
    confidence: float | None = None


def majority_set(values: Sequence[frozenset[str]]) -> frozenset[str]:
    """Categories chosen by more than half of the annotators (empty when none reaches a majority)."""
    counts = Counter(c for value in values for c in value)
    return frozenset(c for c, n in counts.items() if n * 2 > len(values))


def value_name(value: frozenset[str]) -> str:
    """A set as one readable label: its categories sorted and joined with ' + '."""
    return " + ".join(sorted(value))


def classification_report(items: Sequence[JudgedItem], bins: Sequence[float] = DEFAULT_BINS
                          ) -> dict[str, Any]:
    """Accuracy, Cohen's kappa, per-category P/R/F1, confusion matrix and calibration."""
    values: dict[frozenset[str], int] = {}
    reference = np.array([values.setdefault(i.reference, len(values)) for i in items], dtype=np.int64)
    judged = np.array([values.setdefault(i.judged, len(values)) for i in items], dtype=np.int64)
    confidence = np.array([np.nan if i.confidence is None else i.confidence for i in items], dtype=np.float64)
    return coded_classification_report(reference, judged, list(values), confidence, bins)


def coded_classification_report(reference: np.ndarray, judged: np.ndarray, values: Sequence[frozenset[str]],
                                confidence: np.ndarray | None = None, bins: Sequence[float] = DEFAULT_BINS
                                ) -> dict[str, Any]:
    """`classification_report` of items given as arrays: reference[i] and judged[i] index `values` (distinct
    sets), confidence[i] is NaN where the judge gave none. Counts come from the (reference, judged) pair
    table, so a million items never become Python objects."""
    n = len(reference)
    if not n:
        return {"n_items": 0, "accuracy": None, "cohen_kappa": None,
                "reason": "no item has both a judge label and a reference"}
    n_values = len(values)
    pairs = np.bincount(reference * n_values + judged, minlength=n_values * n_values).reshape(n_values, n_values)
    correct = reference == judged
    names: dict[str, int] = {}
    name_code = np.array([names.setdefault(value_name(v), len(names)) for v in values], dtype=np.int64)
    kappa = cohen_kappa_of_codes(name_code[reference], name_code[judged], len(names))
    if confidence is None:
        confidence = np.full(n, np.nan)
    return {
        "n_items": n,
        "accuracy": round(int(correct.sum()) / n, 6),
        "accuracy_note": "exact match of the judge's category set with the reference set",
        "cohen_kappa": None if kappa.value is None else round(kappa.value, 6),
        "cohen_kappa_reason": kappa.reason,
        "per_category": _per_category_from_pairs(pairs, values),
        "confusion": _confusion_from_pairs(pairs, values),
        "calibration": _calibration(correct, confidence, bins),
    }


def per_category_scores(items: Sequence[JudgedItem]) -> dict[str, dict[str, Any]]:
    """Per category: precision, recall, F1 and support, counting membership in the sets."""
    scores: dict[str, dict[str, Any]] = classification_report(items).get("per_category", {})
    return scores


def _per_category_from_pairs(pairs: np.ndarray, values: Sequence[frozenset[str]]) -> dict[str, dict[str, Any]]:
    used = np.flatnonzero(pairs.sum(axis=1) + pairs.sum(axis=0))
    categories = sorted({c for v in used.tolist() for c in values[v]})
    member = np.array([[c in v for c in categories] for v in values], dtype=np.int64).reshape(len(values), -1)
    out = {}
    for k, category in enumerate(categories):
        in_ref, in_judged = member[:, k][:, None], member[:, k][None, :]
        tp = int((pairs * in_ref * in_judged).sum())
        fp = int((pairs * (1 - in_ref) * in_judged).sum())
        fn = int((pairs * in_ref * (1 - in_judged)).sum())
        precision = tp / (tp + fp) if tp + fp else None
        recall = tp / (tp + fn) if tp + fn else None
        f1 = (2 * precision * recall / (precision + recall)
              if precision is not None and recall is not None and precision + recall > 0
              else (0.0 if precision is not None and recall is not None else None))
        out[category] = {
            "precision": _round(precision), "recall": _round(recall), "f1": _round(f1),
            "support": tp + fn, "predicted": tp + fp,
        }
    return out


def confusion_matrix(items: Sequence[JudgedItem]) -> dict[str, dict[str, int]]:
    """reference value -> judge value -> count (sets written as 'A + B')."""
    matrix: dict[str, dict[str, int]] = classification_report(items).get("confusion", {})
    return matrix


def _confusion_from_pairs(pairs: np.ndarray, values: Sequence[frozenset[str]]) -> dict[str, dict[str, int]]:
    matrix: dict[str, Counter] = {}
    for ref, judged in np.argwhere(pairs).tolist():
        matrix.setdefault(value_name(values[ref]), Counter())[value_name(values[judged])] += int(pairs[ref, judged])
    return {ref: dict(sorted(row.items())) for ref, row in sorted(matrix.items())}


def calibration(items: Sequence[JudgedItem], bins: Sequence[float] = DEFAULT_BINS) -> dict[str, Any]:
    """Accuracy by confidence bin, and the expected calibration error over items with a confidence."""
    correct = np.array([i.reference == i.judged for i in items], dtype=bool)
    confidence = np.array([np.nan if i.confidence is None else i.confidence for i in items], dtype=np.float64)
    return _calibration(correct, confidence, bins)


def _calibration(correct: np.ndarray, confidence: np.ndarray, bins: Sequence[float]) -> dict[str, Any]:
    rated = ~np.isnan(confidence)
    n_rated = int(rated.sum())
    rows = []
    ece = 0.0
    for k, (low, high) in enumerate(pairwise(bins)):
        last = k == len(bins) - 2  # the last bin includes its upper edge (confidence 1.0)
        with np.errstate(invalid="ignore"):
            members = rated & (((low <= confidence) & (confidence < high)) | (last & (confidence == high)))
        n = int(members.sum())
        if n:
            accuracy = int(correct[members].sum()) / n
            mean_conf = sum(confidence[members].tolist()) / n  # summed in item order, as floats add
            ece += n / n_rated * abs(accuracy - mean_conf)
        rows.append({
            "bin": f"[{low:.1f}, {high:.1f}{']' if last else ')'}",
            "low": low,
            "high": high,
            "n": n,
            "mean_confidence": _round(mean_conf) if n else None,
            "accuracy": _round(accuracy) if n else None,
        })
    return {
        "bins": rows,
        "n_with_confidence": n_rated,
        "n_without_confidence": len(correct) - n_rated,
        "expected_calibration_error": _round(ece) if n_rated else None,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


# --- comparing two judges on the same held-out items (the refinement gate) ----------------------

BOOTSTRAP_REPS = 1000


def agreement_scores(reference: Sequence[frozenset[str]], judged: Sequence[frozenset[str]]) -> dict[str, Any]:
    """Cohen's kappa, accuracy (exact set match) and macro F1 (over categories with support)."""
    items = [JudgedItem(r, j) for r, j in zip(reference, judged)]
    report = classification_report(items)
    f1s = [s["f1"] for s in report.get("per_category", {}).values() if s["support"] and s["f1"] is not None]
    return {"kappa": report["cohen_kappa"], "accuracy": report["accuracy"],
            "macro_f1": round(sum(f1s) / len(f1s), 6) if f1s else None, "n_items": len(items)}


def _kappas(ref: np.ndarray, judged: np.ndarray, n_values: int) -> np.ndarray:
    """Cohen's kappa of each row pair of (replicates x items) code arrays."""
    n = ref.shape[1]
    p_o = (ref == judged).mean(axis=1)
    offsets = (np.arange(ref.shape[0]) * n_values)[:, None]
    count_ref = np.bincount((ref + offsets).ravel(), minlength=ref.shape[0] * n_values).reshape(-1, n_values)
    count_judged = np.bincount((judged + offsets).ravel(), minlength=ref.shape[0] * n_values).reshape(-1, n_values)
    p_e = (count_ref * count_judged).sum(axis=1) / n**2
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(1 - p_e > 1e-12, (p_o - p_e) / (1 - p_e), np.nan)


def kappa_interval(reference: Sequence[frozenset[str]], judged: Sequence[frozenset[str]], *,
                   reps: int = BOOTSTRAP_REPS, seed: int = 0) -> list[float] | None:
    """95% percentile bootstrap interval of one judge's kappa with the reference (items resampled)."""
    return paired_bootstrap(reference, judged, judged, reps=reps, seed=seed)["current"]


def paired_bootstrap(reference: Sequence[frozenset[str]], current: Sequence[frozenset[str]],
                     candidate: Sequence[frozenset[str]], *, reps: int = BOOTSTRAP_REPS, seed: int = 0
                     ) -> dict[str, list[float] | None]:
    """95% percentile intervals of each judge's kappa and of their difference (candidate - current),
    resampling the same items for both (paired: the items' difficulty cancels out of the difference)."""
    values: dict[frozenset[str], int] = {}
    codes = [np.array([values.setdefault(v, len(values)) for v in seq], dtype=np.int64)
             for seq in (reference, current, candidate)]
    n = len(codes[0])
    if n == 0:
        return {"current": None, "candidate": None, "difference": None}
    draws = np.random.default_rng(seed).integers(0, n, size=(reps, n))
    ref, cur, cand = (c[draws] for c in codes)
    k_cur, k_cand = _kappas(ref, cur, len(values)), _kappas(ref, cand, len(values))

    def interval(x: np.ndarray) -> list[float] | None:
        x = x[~np.isnan(x)]
        return [round(float(np.quantile(x, 0.025)), 6), round(float(np.quantile(x, 0.975)), 6)] if len(x) else None

    return {"current": interval(k_cur), "candidate": interval(k_cand), "difference": interval(k_cand - k_cur)}
