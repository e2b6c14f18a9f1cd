"""Anchoring statistics: alpha against the krippendorff package, rates by hand, a simulated population."""
from __future__ import annotations

import krippendorff
import numpy as np
import pytest

from annotation.core.anchoring import AnchoringItem, compare_arms

A, B, C = frozenset({"A"}), frozenset({"B"}), frozenset({"C"})


def test_rates_and_difference_by_hand():
    items = [
        # assisted: 4 labels on judged items, 3 equal the judge -> 3/4; gold on item 1: 2 labels, 1 right -> 1/2
        AnchoringItem(1, True, {"p": A, "q": B}, judge=[A], gold=B),
        AnchoringItem(2, True, {"p": A, "q": A}, judge=[A]),
        # blind: 4 labels, 1 equals the judge -> 1/4; gold on both: 4 labels, 3 right -> 3/4
        AnchoringItem(3, False, {"p": B, "q": B}, judge=[A], gold=B),
        AnchoringItem(4, False, {"p": A, "q": C}, judge=[A], gold=C),
    ]
    report = compare_arms(items, reps=200, seed=1)
    assisted, blind = report.arms["assisted"].statistics, report.arms["blind"].statistics
    assert assisted["judge_match"].value == pytest.approx(3 / 4) and assisted["judge_match"].n == 4
    assert assisted["gold_accuracy"].value == pytest.approx(1 / 2) and assisted["gold_accuracy"].n == 2
    assert blind["judge_match"].value == pytest.approx(1 / 4)
    assert blind["gold_accuracy"].value == pytest.approx(3 / 4)
    assert report.differences["judge_match"].value == pytest.approx(1 / 2)
    assert report.differences["gold_accuracy"].value == pytest.approx(-1 / 4)
    low, high = report.differences["judge_match"].ci95
    assert low <= 0.5 <= high


def test_alpha_equals_the_krippendorff_package():
    rng = np.random.default_rng(3)
    raters = ["r1", "r2", "r3", "r4"]
    values = [A, B, C, A | B]
    items, data = [], np.full((4, 60), np.nan)
    for u in range(60):
        chosen = rng.choice(4, size=rng.integers(1, 5), replace=False)  # 1..4 raters, some items unpairable
        truth = rng.integers(0, 4)
        humans = {}
        for r in chosen:
            v = truth if rng.random() < 0.6 else rng.integers(0, 4)
            humans[raters[r]] = values[v]
            data[r, u] = v
        items.append(AnchoringItem(u, False, humans))
    report = compare_arms(items, reps=100, seed=0)
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    assert report.arms["blind"].statistics["alpha"].value == pytest.approx(expected)
    assert report.arms["assisted"].statistics["alpha"].value is None  # no assisted items
    assert report.differences["alpha"].value is None


def simulated_population(seed: int, n_items: int = 400, anchoring: float = 0.3, accuracy: float = 0.7,
                         judge_accuracy: float = 0.75, k: int = 5):
    """Three annotators per item; half the items assisted (seeded). On an assisted item each person
    copies the judge with probability `anchoring`, else labels as on a blind item: right with
    probability `accuracy`, otherwise a uniformly random wrong category."""
    rng = np.random.default_rng(seed)
    categories = [frozenset({f"c{i}"}) for i in range(k)]

    def noisy(truth: int, p: float) -> int:
        return truth if rng.random() < p else (truth + rng.integers(1, k)) % k

    items = []
    assisted = rng.permutation(np.arange(n_items) < n_items // 2)
    for u in range(n_items):
        truth = int(rng.integers(0, k))
        judge = noisy(truth, judge_accuracy)
        humans = {}
        for person in ("p1", "p2", "p3"):
            copy = assisted[u] and rng.random() < anchoring
            humans[person] = categories[judge if copy else noisy(truth, accuracy)]
        items.append(AnchoringItem(u, bool(assisted[u]), humans, judge=[categories[judge]],
                                   gold=categories[truth] if u % 2 == 0 else None))
    return items


def test_simulated_anchoring_effect_is_recovered_and_its_interval_covers_it():
    # Blind: P(person = judge) = pa*pj + (1-pa)(1-pj)/(k-1) = 0.7*0.75 + 0.3*0.25/4 = 0.54375;
    # assisted: 0.3 + 0.7 * 0.54375 = 0.680625; effect on judge match = 0.3 * (1 - 0.54375) = 0.136875.
    # Accuracy vs gold: blind 0.7; assisted 0.3*0.75 + 0.7*0.7 = 0.715 -> +0.015.
    true_match_effect, true_accuracy_effect = 0.136875, 0.015
    covered_match = covered_accuracy = 0
    estimates = []
    for seed in range(200):
        report = compare_arms(simulated_population(seed), reps=400, seed=seed)
        match = report.differences["judge_match"]
        estimates.append(match.value)
        covered_match += match.ci95[0] <= true_match_effect <= match.ci95[1]
        accuracy = report.differences["gold_accuracy"]
        covered_accuracy += accuracy.ci95[0] <= true_accuracy_effect <= accuracy.ci95[1]
    assert np.mean(estimates) == pytest.approx(true_match_effect, abs=0.01)
    # 95 % nominal; binomial sd over 200 replications is 1.5 points.
    assert 0.90 <= covered_match / 200 <= 0.99
    assert 0.90 <= covered_accuracy / 200 <= 0.99
