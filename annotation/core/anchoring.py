"""Anchoring measured by randomisation: people's labels on tasks shown the judge's pre-label vs blind tasks.

In a mixed project a seeded random share of tasks is assisted (the judge's pre-label shown) and the
rest blind, so the two arms differ only in what annotators saw. Per arm, over human labels:
- judge match: share of (item, annotator) labels whose category set equals a judge set on the item;
- gold accuracy: share of labels equal to the item's gold set (items with gold only);
- Krippendorff's alpha (nominal, a label set as one value) among the annotators of the arm's items.
Intervals: percentile bootstrap over items (Efron), items resampled within each arm; the difference
(assisted - blind) is recomputed on the same resamples. Plain numpy; no Django.
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

ARMS = ("assisted", "blind")
STATISTICS = ("judge_match", "gold_accuracy", "alpha")
BOOTSTRAP_METHOD = ("percentile bootstrap over items, resampled within each arm; the difference is "
                    "assisted minus blind on the same resamples")


@dataclass(frozen=True)
class AnchoringItem:
    """One task's item: its arm, the judge's set(s), each person's set, and gold when there is some."""

    item: Hashable
    assisted: bool
    humans: Mapping[str, frozenset[str]]
    judge: Sequence[frozenset[str]] = ()
    gold: frozenset[str] | None = None


@dataclass(frozen=True)
class Statistic:
    value: float | None
    ci95: tuple[float, float] | None
    n: int  # labels (rates) or items with 2+ labels (alpha) it is computed over
    reason: str | None = None


@dataclass(frozen=True)
class ArmReport:
    arm: str
    n_items: int
    n_labels: int
    statistics: dict[str, Statistic]


@dataclass(frozen=True)
class AnchoringReport:
    arms: dict[str, ArmReport]
    differences: dict[str, Statistic]
    reps: int
    seed: int
    method: str = BOOTSTRAP_METHOD
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _ArmArrays:
    """Per item: numerators and denominators of both rates, and alpha's sufficient statistics."""

    match: np.ndarray
    judged: np.ndarray
    correct: np.ndarray
    with_gold: np.ndarray
    pairable: np.ndarray  # ratings on items with 2+ ratings (m_u), else 0
    disagreement: np.ndarray  # (m_u^2 - sum_v n_uv^2) / (m_u - 1), 0 for items with < 2 ratings
    value_counts: np.ndarray  # items x values: n_uv on pairable items


def _arrays(items: Sequence[AnchoringItem], values: dict[frozenset[str], int]) -> _ArmArrays:
    n = len(items)
    match, judged, correct, with_gold = (np.zeros(n) for _ in range(4))
    pairable, disagreement = np.zeros(n), np.zeros(n)
    counts = np.zeros((n, len(values)))
    for u, item in enumerate(items):
        sets = list(item.humans.values())
        if item.judge:
            judged[u] = len(sets)
            match[u] = sum(s in item.judge for s in sets)
        if item.gold is not None:
            with_gold[u] = len(sets)
            correct[u] = sum(s == item.gold for s in sets)
        if len(sets) >= 2:
            for s in sets:
                counts[u, values[s]] += 1
            m = len(sets)
            pairable[u] = m
            disagreement[u] = (m * m - float((counts[u] ** 2).sum())) / (m - 1)
    return _ArmArrays(match, judged, correct, with_gold, pairable, disagreement, counts)


def _statistics(arrays: _ArmArrays, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Each statistic for every row of `weights` (resamples x items: how often each item is drawn)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        match = (weights @ arrays.match) / (weights @ arrays.judged)
        accuracy = (weights @ arrays.correct) / (weights @ arrays.with_gold)
        # Nominal alpha = 1 - D_o / D_e with D_o = sum_u w_u d_u / n and
        # D_e = (n^2 - sum_v n_v^2) / (n (n - 1)), n = pairable ratings, n_v = ratings of value v.
        n = weights @ arrays.pairable
        n_v = weights @ arrays.value_counts
        observed = (weights @ arrays.disagreement) / n
        expected = (n * n - (n_v ** 2).sum(axis=1)) / (n * (n - 1))
        alpha = np.where(expected > 0, 1 - observed / expected, np.nan)
    return {"judge_match": match, "gold_accuracy": accuracy, "alpha": alpha}


_UNDEFINED = {
    "judge_match": "no human label on an item the judge labelled",
    "gold_accuracy": "no human label on an item with gold",
    "alpha": "no item with two or more annotators, or no variation among their labels",
}


def _summary(point: float, draws: np.ndarray, n: int, name: str) -> Statistic:
    if not np.isfinite(point):
        return Statistic(None, None, n, _UNDEFINED[name])
    finite = draws[np.isfinite(draws)]
    if len(finite) < 0.9 * len(draws):
        return Statistic(float(point), None, n, "the statistic is undefined in over 10 % of resamples")
    low, high = np.percentile(finite, [2.5, 97.5])
    return Statistic(float(point), (float(low), float(high)), n)


def compare_arms(items: Sequence[AnchoringItem], *, reps: int = 2000, seed: int = 0) -> AnchoringReport:
    """Assisted vs blind: judge match, gold accuracy and alpha per arm, and their differences."""
    values: dict[frozenset[str], int] = {}
    for item in items:
        for s in item.humans.values():
            values.setdefault(s, len(values))
    rng = np.random.default_rng(seed)
    arms, points, draws, sizes = {}, {}, {}, {}
    for arm in ARMS:
        arm_items = [i for i in items if i.assisted == (arm == "assisted")]
        arrays = _arrays(arm_items, values)
        n_items = len(arm_items)
        points[arm] = {k: v[0] for k, v in _statistics(arrays, np.ones((1, n_items))).items()}
        weights = rng.multinomial(n_items, np.full(n_items, 1 / n_items), size=reps) if n_items else \
            np.zeros((reps, 0))
        draws[arm] = _statistics(arrays, weights)
        sizes[arm] = {"judge_match": int(arrays.judged.sum()), "gold_accuracy": int(arrays.with_gold.sum()),
                      "alpha": int((arrays.pairable > 0).sum())}
        arms[arm] = ArmReport(arm, n_items, int(sum(len(i.humans) for i in arm_items)),
                              {k: _summary(points[arm][k], draws[arm][k], sizes[arm][k], k) for k in STATISTICS})
    differences = {}
    for name in STATISTICS:
        point = points["assisted"][name] - points["blind"][name]
        differences[name] = _summary(point, draws["assisted"][name] - draws["blind"][name],
                                     min(sizes["assisted"][name], sizes["blind"][name]), name)
    return AnchoringReport(arms, differences, reps, seed)
