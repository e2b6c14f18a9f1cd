"""The ErrorMap failure rule: a prediction fails when its score is below its dataset's threshold."""
from __future__ import annotations

import math

DEFAULT_THRESHOLD_FACTOR = 0.7

# Thresholds the ErrorMap reference code fixes per dataset (matched case-insensitively on the name).
KNOWN_THRESHOLDS: dict[str, float] = {
    "mmlu-pro": 1.0,
    "mmlu_pro": 1.0,
    "gpqa": 1.0,
    "omni-math": 0.5,
    "omni_math": 0.5,
    "medec": 0.7,
}


def failure_threshold(
    *,
    dataset: str,
    mean_score: float | None,
    explicit: float | None = None,
    factor: float = DEFAULT_THRESHOLD_FACTOR,
) -> float | None:
    """The dataset's threshold: explicit > known per-dataset value > factor x mean score (None if no scores)."""
    if explicit is not None:
        return explicit
    known = KNOWN_THRESHOLDS.get(dataset.lower())
    if known is not None:
        return known
    if mean_score is None or math.isnan(mean_score):
        return None
    return factor * mean_score


def is_failure(score: float, threshold: float) -> bool:
    """Strictly below the threshold fails, as in the reference code."""
    return score < threshold
