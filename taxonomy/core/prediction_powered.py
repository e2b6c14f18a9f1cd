"""Prediction-powered inference for category shares: judge labels on every failure, corrected by gold.

Angelopoulos, Bates, Fannjiang, Jordan & Zrnic, "Prediction-powered inference", Science 382 (2023),
with the power tuning of PPI++ (Angelopoulos, Duchi & Zrnic 2023, arXiv:2311.01453). A category's
share is the mean of a per-failure value Y (its weight in the failure's gold label set, 0..1); the
judge gives the same value Yhat on every failure. With n gold failures (labelled) and N judged
failures without gold (unlabelled):

    theta = lam * mean(Yhat_unlabelled) + mean(Y - lam * Yhat_labelled)
    se^2  = lam^2 * var(Yhat_unlabelled) / N + var(Y - lam * Yhat_labelled) / n
    lam   = cov(Y, Yhat) / ((1 + n/N) * var(Yhat over all n + N)), clipped to [0, 1]

(variances with divisor n, the covariance too, var(Yhat over all) with n - 1, as `ppi_py.ppi_mean_ci`
computes them; lam = 0 is the gold-only CLT interval, lam = 1 plain PPI). The interval is
theta +- z * se. It is valid when the gold failures are a uniform random sample of the judged ones;
the judge's errors then shift the rectifier mean(Y - lam Yhat), not the coverage.

Written here rather than taken from the `ppi-python` package: for a mean it is the few lines above,
while that package pulls numba, llvmlite, statsmodels and gdown (about 280 MB) and silences every
warning of the process at import (`warnings.simplefilter("ignore")`). The results equal
`ppi_mean_ci(..., alpha=0.05)` of ppi-python 0.2.3 (tests/data/reference/ppi_mean_ci.json).
Plain numpy; no Django.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054
PPI_METHOD = ("prediction-powered inference (Angelopoulos et al., Science 2023) with PPI++ power tuning; "
              "95 % CLT interval; valid when the gold failures are a random sample of the judged ones")


@dataclass(frozen=True)
class PpiEstimate:
    """A prediction-powered estimate of one mean with its interval and the tuning weight used."""

    estimate: float
    ci_low: float
    ci_high: float
    lam: float
    n_labelled: int
    n_unlabelled: int

    @property
    def width(self) -> float:
        return self.ci_high - self.ci_low


def power_tuning(gold: np.ndarray, judge_labelled: np.ndarray, judge_unlabelled: np.ndarray) -> float:
    """The PPI++ weight on the judge that minimises the estimate's variance, clipped to [0, 1]."""
    n, big_n = len(gold), len(judge_unlabelled)
    covariance = float(np.mean((gold - gold.mean()) * (judge_labelled - judge_labelled.mean())))
    judge_all = np.concatenate([judge_labelled, judge_unlabelled])
    variance = float(np.var(judge_all, ddof=1)) if len(judge_all) > 1 else 0.0
    if variance <= 0.0:
        return 0.0  # the judge is constant: it carries no information about who differs
    return float(np.clip(covariance / ((1 + n / big_n) * variance), 0.0, 1.0))


def ppi_mean(gold: np.ndarray, judge_labelled: np.ndarray, judge_unlabelled: np.ndarray, *,
             lam: float | None = None, z: float = Z95) -> PpiEstimate:
    """Prediction-powered mean of `gold` using the judge's values on labelled and unlabelled items.

    gold[i] and judge_labelled[i] belong to the same (gold-labelled) item; judge_unlabelled holds the
    judge's values on items without gold. lam None tunes it (PPI++); lam=1 is plain PPI.
    """
    gold = np.asarray(gold, dtype=np.float64)
    judge_labelled = np.asarray(judge_labelled, dtype=np.float64)
    judge_unlabelled = np.asarray(judge_unlabelled, dtype=np.float64)
    n, big_n = len(gold), len(judge_unlabelled)
    if n != len(judge_labelled):
        raise ValueError("gold and judge_labelled must describe the same items")
    if n < 2 or big_n < 1:
        raise ValueError("prediction-powered inference needs at least 2 gold items and 1 item without gold")
    if lam is None:
        lam = power_tuning(gold, judge_labelled, judge_unlabelled)
    rectifier = gold - lam * judge_labelled
    estimate = float(lam * judge_unlabelled.mean() + rectifier.mean())
    se = math.sqrt(lam * lam * float(np.var(judge_unlabelled)) / big_n + float(np.var(rectifier)) / n)
    return PpiEstimate(estimate, estimate - z * se, estimate + z * se, float(lam), n, big_n)


def clt_mean(values: np.ndarray, *, z: float = Z95) -> tuple[float, float, float]:
    """Classical mean and CLT interval (the gold-only estimate that PPI improves on; lam = 0)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 1:
        raise ValueError("no values")
    mean = float(values.mean())
    half = z * math.sqrt(float(np.var(values)) / len(values))
    return mean, mean - half, mean + half


@dataclass(frozen=True)
class ItemShares:
    """Each failure's weight per category from one source: items x categories, rows summing to 1."""

    items: tuple[int, ...]
    categories: tuple[str, ...]
    matrix: np.ndarray


@dataclass(frozen=True)
class Interval:
    share: float
    ci_low: float
    ci_high: float

    @property
    def width(self) -> float:
        return self.ci_high - self.ci_low


@dataclass(frozen=True)
class CorrectedShare:
    """One category's share three ways: raw judge, gold only, and judge corrected by gold (PPI)."""

    category: str
    judge: Interval
    gold: Interval
    corrected: Interval | None
    lam: float | None


@dataclass(frozen=True)
class CorrectedSignature:
    group: str
    n_judged: int  # failures with a judge label: the population the shares describe
    n_gold: int  # of those, with gold (the labelled sample)
    n_gold_without_judge: int  # gold failures the judge never labelled: left out
    shares: tuple[CorrectedShare, ...]
    reason: str | None = None  # why there is no corrected estimate, when there is none


def corrected_signature(group: str, judge: ItemShares, gold: ItemShares, *,
                        interval: Callable[[float, int], tuple[float, float]], z: float = Z95) -> CorrectedSignature:
    """Category shares of the judged failures: raw judge, gold-only and prediction-powered.

    `interval(k, n)` gives the raw and gold-only intervals (the signatures' Wilson interval), so
    they read exactly like the uncorrected signatures beside them.
    """
    categories = sorted(set(judge.categories) | set(gold.categories))
    judge_matrix = _reindex(judge, categories)
    gold_matrix = _reindex(gold, categories)
    gold_row = {item: i for i, item in enumerate(gold.items)}
    labelled = np.array([item in gold_row for item in judge.items], dtype=bool)
    gold_rows = np.array([gold_row[item] for item in np.asarray(judge.items)[labelled]], dtype=np.int64)
    n_judged, n_gold = len(judge.items), int(labelled.sum())
    reason = None
    if n_gold < 2:
        reason = f"{n_gold} judged failure(s) with gold; prediction-powered inference needs at least 2"
    elif n_gold == n_judged:
        reason = "every judged failure has gold: the gold signature is the answer"
    shares = []
    for c, category in enumerate(categories):
        judge_k = float(judge_matrix[:, c].sum())
        gold_values = gold_matrix[gold_rows, c]
        gold_k = float(gold_values.sum())
        corrected = lam = None
        if reason is None:
            ppi = ppi_mean(gold_values, judge_matrix[labelled, c], judge_matrix[~labelled, c], z=z)
            corrected = Interval(min(max(ppi.estimate, 0.0), 1.0), max(ppi.ci_low, 0.0), min(ppi.ci_high, 1.0))
            lam = ppi.lam
        shares.append(CorrectedShare(
            category=category,
            judge=Interval(judge_k / n_judged if n_judged else 0.0, *interval(judge_k, n_judged)),
            gold=Interval(gold_k / n_gold if n_gold else 0.0, *interval(gold_k, n_gold)),
            corrected=corrected, lam=lam))
    shares.sort(key=lambda s: (-(s.corrected or s.judge).share, s.category))
    return CorrectedSignature(group, n_judged, n_gold, len(set(gold.items) - set(judge.items)),
                              tuple(shares), reason)


def _reindex(shares: ItemShares, categories: list[str]) -> np.ndarray:
    matrix = np.zeros((len(shares.items), len(categories)))
    column = {c: i for i, c in enumerate(categories)}
    for j, category in enumerate(shares.categories):
        matrix[:, column[category]] = shares.matrix[:, j]
    return matrix
