"""The ErrorMap failure rule: a prediction fails when its score is below its dataset's threshold."""
from __future__ import annotations

import math

DEFAULT_THRESHOLD_FACTOR = 0.7
# Scores beyond this are refused at ingest: no benchmark metric comes near it, and bounded scores
# keep every dataset's mean (and so its threshold) finite on any database, where 1e308 made the
# mean overflow (an Inf threshold on SQLite, an overflow error on PostgreSQL).
MAX_ABS_SCORE = 1e15

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
    """The dataset's threshold: explicit > known per-dataset value > factor x mean score (None if no
    scores); never infinite or NaN."""
    if explicit is not None and math.isfinite(explicit):
        return explicit
    known = KNOWN_THRESHOLDS.get(dataset.lower())
    if known is not None:
        return known
    if mean_score is None or not math.isfinite(mean_score):
        return None  # no scores, or (only from rows stored before scores were bounded) no finite mean
    threshold = factor * mean_score
    return threshold if math.isfinite(threshold) else None


def is_failure(score: float, threshold: float) -> bool:
    """Strictly below the threshold fails, as in the reference code."""
    return score < threshold
