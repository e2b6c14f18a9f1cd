"""Prediction-powered category shares: the authors' package's intervals, and coverage under a biased judge."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from taxonomy.core.prediction_powered import (
    Z95,
    ItemShares,
    clt_mean,
    corrected_signature,
    power_tuning,
    ppi_mean,
)
from taxonomy.core.signatures import wilson_interval

REFERENCE = json.loads((Path(__file__).resolve().parents[1] / "data" / "reference" / "ppi_mean_ci.json").read_text())


@pytest.mark.parametrize("case", REFERENCE["cases"], ids=[c["name"] for c in REFERENCE["cases"]])
def test_intervals_equal_those_of_ppi_python(case):
    y, yhat, yhat_u = (np.array(case[k]) for k in ("gold", "judge_labelled", "judge_unlabelled"))
    tuned = ppi_mean(y, yhat, yhat_u)
    assert (tuned.ci_low, tuned.ci_high) == pytest.approx(tuple(case["tuned"]), abs=1e-12)
    plain = ppi_mean(y, yhat, yhat_u, lam=1.0)
    assert (plain.ci_low, plain.ci_high) == pytest.approx(tuple(case["lam1"]), abs=1e-12)
    assert plain.estimate == pytest.approx(case["point_lam1"], abs=1e-12)


def test_worked_example_by_hand():
    # gold 1,0,1,1 ; judge on them 1,0,0,1 ; judge on 4 unlabelled 1,1,0,0. With lam = 1:
    # rectifier Y - Yhat = 0,0,1,0 -> mean 1/4, population variance 3/16;
    # theta = mean(unlabelled) 1/2 + 1/4 = 3/4; se^2 = var(unlabelled)/N + var(rectifier)/n
    # = (1/4)/4 + (3/16)/4 = 7/64.
    estimate = ppi_mean([1, 0, 1, 1], [1, 0, 0, 1], [1, 1, 0, 0], lam=1.0)
    assert estimate.estimate == pytest.approx(0.75)
    assert estimate.ci_high - estimate.estimate == pytest.approx(Z95 * math.sqrt(7 / 64))
    # Tuned: cov_n(Y, Yhat) = mean((Y - 3/4)(Yhat - 1/2)) = (1/8 + 3/8 - 1/8 + 1/8) / 4 = 1/8;
    # var of all 8 judge values (four 1s, four 0s), ddof 1 = 2/7; lam = (1/8) / ((1 + 4/4) * 2/7) = 7/32.
    assert power_tuning(np.array([1., 0, 1, 1]), np.array([1., 0, 0, 1]), np.array([1., 1, 0, 0])) \
        == pytest.approx(7 / 32)


def test_lam_zero_is_the_gold_only_interval():
    rng = np.random.default_rng(5)
    y = (rng.random(30) < 0.4).astype(float)
    estimate = ppi_mean(y, rng.random(30), rng.random(200), lam=0.0)
    mean, low, high = clt_mean(y)
    assert (estimate.estimate, estimate.ci_low, estimate.ci_high) == pytest.approx((mean, low, high))


def test_too_little_gold_is_refused():
    with pytest.raises(ValueError, match="at least 2 gold"):
        ppi_mean([1.0], [1.0], [0.0, 1.0])


# --- simulation: a judge that systematically confuses two categories -------------------------------

CATEGORIES = ("Accuracy", "Fluency", "Style", "Terminology")
TRUE_SHARES = np.array([0.40, 0.30, 0.20, 0.10])


def simulated_signature(seed: int, n_judged: int = 1000, n_gold: int = 100):
    """True categories drawn from TRUE_SHARES; the judge calls 40 % of Accuracy errors Fluency
    (systematic) and 10 % of the rest a uniformly random other category; gold on a random sample."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(len(CATEGORIES), size=n_judged, p=TRUE_SHARES)
    judged = truth.copy()
    confused = (truth == 0) & (rng.random(n_judged) < 0.4)
    judged[confused] = 1
    noisy = ~confused & (rng.random(n_judged) < 0.1)
    judged[noisy] = (truth[noisy] + rng.integers(1, len(CATEGORIES), noisy.sum())) % len(CATEGORIES)
    gold_items = np.sort(rng.choice(n_judged, size=n_gold, replace=False))
    items = tuple(range(n_judged))
    judge = ItemShares(items, CATEGORIES, np.eye(len(CATEGORIES))[judged])
    gold = ItemShares(tuple(int(i) for i in gold_items), CATEGORIES, np.eye(len(CATEGORIES))[truth[gold_items]])
    return corrected_signature("model", judge, gold, interval=wilson_interval), truth


def test_corrected_intervals_cover_the_truth_where_the_raw_judge_misses_it():
    # The estimand is the share in these judged failures (the finite population), which the
    # replication's truth gives; the raw judge's Accuracy share sits near 0.4*0.6*0.9 + 0.1*0.6/3
    # = 0.236 (the truth 0.4), so its interval misses nearly always.
    replications = 300
    covered = {c: 0 for c in CATEGORIES}
    judge_missed = {c: 0 for c in CATEGORIES}
    width = {c: [] for c in CATEGORIES}
    gold_width = {c: [] for c in CATEGORIES}
    for seed in range(replications):
        signature, truth = simulated_signature(seed)
        assert signature.reason is None and signature.n_gold == 100 and signature.n_judged == 1000
        for share in signature.shares:
            c = CATEGORIES.index(share.category)
            true_share = float(np.mean(truth == c))
            covered[share.category] += share.corrected.ci_low <= true_share <= share.corrected.ci_high
            judge_missed[share.category] += not share.judge.ci_low <= true_share <= share.judge.ci_high
            width[share.category].append(share.corrected.width)
            gold_width[share.category].append(share.gold.width)
    for category in CATEGORIES:
        # Nominal 95 %; with 300 replications the binomial sd is 1.3 points: 0.91..0.99 is +-3 sd.
        assert 0.91 <= covered[category] / replications <= 0.99, (category, covered[category])
        assert np.mean(width[category]) < np.mean(gold_width[category]), category
    assert judge_missed["Accuracy"] / replications > 0.95
    assert judge_missed["Fluency"] / replications > 0.95


def test_corrected_signature_numbers_equal_a_direct_computation():
    signature, truth = simulated_signature(7, n_judged=200, n_gold=30)
    rng = np.random.default_rng(7)  # same draws as simulated_signature, recomputed here by hand
    truth2 = rng.choice(len(CATEGORIES), size=200, p=TRUE_SHARES)
    assert (truth2 == truth).all()
    share = next(s for s in signature.shares if s.category == "Style")
    # Raw judge: Wilson over all 200; gold-only: Wilson over the 30 gold items.
    judge_k = round(share.judge.share * 200)
    assert (share.judge.ci_low, share.judge.ci_high) == pytest.approx(wilson_interval(judge_k, 200))
    gold_k = round(share.gold.share * 30)
    assert (share.gold.ci_low, share.gold.ci_high) == pytest.approx(wilson_interval(gold_k, 30))


def test_no_corrected_estimate_without_two_gold_items():
    judge = ItemShares((1, 2, 3), ("A", "B"), np.array([[1.0, 0], [0, 1], [0.5, 0.5]]))
    gold = ItemShares((1, 9), ("A",), np.array([[1.0], [1.0]]))
    signature = corrected_signature("m", judge, gold, interval=wilson_interval)
    assert signature.reason.startswith("1 judged failure(s) with gold")
    assert signature.n_gold_without_judge == 1
    assert all(s.corrected is None for s in signature.shares)
    a = next(s for s in signature.shares if s.category == "A")
    assert a.judge.share == pytest.approx(1.5 / 3) and a.gold.share == 1.0
