"""The annotation planner: category needs by hand, reasons and overlaps, and greedy picks recomputed naively."""
from __future__ import annotations

import math
import random

import pytest

from annotation.core.planning import (
    Candidate,
    PlanSettings,
    binary_kappa,
    category_needs,
    plan,
    wilson_width,
)

A, B, C = frozenset({"A / x"}), frozenset({"B / y"}), frozenset({"C"})


def test_binary_kappa_by_hand():
    # judge yes/no vs gold yes/no over 10 items: both yes 4, judge only 1, gold only 1, neither 4.
    # p_o = 0.8; p_judge = p_gold = 0.5; p_e = 0.5; kappa = (0.8 - 0.5) / 0.5 = 0.6.
    judge = [True] * 4 + [True] + [False] + [False] * 4
    gold = [True] * 4 + [False] + [True] + [False] * 4
    assert binary_kappa(judge, gold) == pytest.approx(0.6)
    assert binary_kappa([True, True], [True, True]) is None


GOLD = [(A, A)] * 50 + [(C, C)] * 50 + [(B, A)] * 20 + [(B, B)] * 20  # 140 gold items


def test_category_needs_follow_kappa_interval_width_and_few_gold():
    d = frozenset({"D"})
    needs = category_needs(GOLD + [(d, d)], ["A", "B", "C", "D"], PlanSettings(min_gold=4))
    assert needs["D"].need == 1.0 and needs["D"].n_gold == 1 and "fewer than 4" in needs["D"].why
    # B over 141 items: judge B on 40, gold B on 20, both 20 -> p_o = (20 + 101) / 141,
    # p_j = 40/141, p_g = 20/141, p_e = p_j p_g + (1 - p_j)(1 - p_g).
    p_o, p_j, p_g = 121 / 141, 40 / 141, 20 / 141
    p_e = p_j * p_g + (1 - p_j) * (1 - p_g)
    kappa_b = (p_o - p_e) / (1 - p_e)
    assert needs["B"].kappa == pytest.approx(kappa_b)
    assert needs["B"].need == pytest.approx(1 - kappa_b) and "kappa for 'B'" in needs["B"].why
    # C: the judge says C exactly when gold does (kappa 1), so its need is its share interval's width.
    assert needs["C"].kappa == pytest.approx(1.0)
    assert needs["C"].need == pytest.approx(2 * wilson_width(50, 141)) and "interval" in needs["C"].why
    assert needs["B"].need > needs["C"].need


def test_disputed_and_low_confidence_items_come_first_with_three_people_and_their_reasons():
    candidates = [Candidate(1, (A,), 0.9), Candidate(2, (A, B), 0.9), Candidate(3, (A,), 0.1),
                  Candidate(4, (A,), None)]
    picks, _ = plan(candidates, [(A, A)] * 20, budget=3)
    assert [p.item for p in picks[:2]] == [2, 3]
    assert picks[0].overlap == 3 and any("disagree: A | B" in r for r in picks[0].reasons)
    assert picks[1].overlap == 3 and any("confidence 0.10" in r for r in picks[1].reasons)
    assert picks[2].overlap == 2
    assert all(p.reasons for p in picks)
    # Doubt multiplies the category's gain: confidence 0.1 gives 1 + (0.5 - 0.1) / 0.5 = 1.8 times.
    alone = plan([Candidate(4, (A,), None)], [(A, A)] * 20, 1)[0][0].score
    assert plan([Candidate(3, (A,), 0.1)], [(A, A)] * 20, 1)[0][0].score == pytest.approx(1.8 * alone)


def test_doubtful_items_do_not_starve_other_categories():
    # 30 low-confidence items judged B and 30 confident ones judged C, no gold yet: B items come
    # first (doubt up to 2x), but C's turn comes once B's gain has fallen by half.
    candidates = [Candidate(i, (B,), 0.0) for i in range(30)] + [Candidate(100 + i, (C,), 0.9) for i in range(30)]
    picks, _ = plan(candidates, [], budget=20)
    assert picks[0].categories == ("B",) and any(p.categories == ("C",) for p in picks)


def test_unreliable_categories_are_picked_before_reliable_ones_then_picks_spread():
    candidates = [Candidate(i, (B if i % 2 else C,)) for i in range(80)]
    picks, _ = plan(candidates, GOLD, budget=30)
    assert picks[0].categories == ("B",)
    assert {p.categories for p in picks} == {("B",), ("C",)}  # B's gain falls until C's turn comes
    assert sum(p.categories == ("B",) for p in picks) > sum(p.categories == ("C",) for p in picks)


def naive_plan(candidates, gold_pairs, budget, settings=None):
    """Greedy by full recomputation of every value at every step (what the lazy heap must equal)."""
    settings = settings or PlanSettings()
    needs = category_needs(gold_pairs, sorted({c.split(" / ")[0] for cand in candidates
                                               for s in cand.judge_sets for c in s}), settings)
    planned = {c: n.n_gold for c, n in needs.items()}

    def gain(n):
        return (1 / math.sqrt(n + 1) - 1 / math.sqrt(n + 2)) / (1 - 1 / math.sqrt(2))

    def score(cand):
        cats = {c.split(" / ")[0] for s in cand.judge_sets for c in s}
        doubt = 1.0
        if len({frozenset(c.split(" / ")[0] for c in s) for s in cand.judge_sets}) > 1:
            doubt += 1
        if cand.confidence is not None and cand.confidence < 0.5:
            doubt += (0.5 - cand.confidence) / 0.5
        return max(needs[c].need * gain(planned[c]) for c in cats) * doubt, cats

    left, order = list(candidates), []
    for _ in range(budget):
        best = max(left, key=lambda c: (score(c)[0], -c.item))
        left.remove(best)
        for c in score(best)[1]:
            planned[c] += 1
        order.append(best.item)
    return order


def test_lazy_greedy_equals_naive_greedy_on_random_instances():
    for seed in range(5):
        rng = random.Random(seed)
        cats = [frozenset({c}) for c in ("A / a", "B / b", "C / c", "D / d", "E")]
        candidates = [Candidate(i, tuple(rng.sample(cats, rng.choice([1, 1, 1, 2]))),
                                rng.choice([None, rng.random()])) for i in range(120)]
        gold = [(rng.choice(cats), rng.choice(cats)) for _ in range(rng.randint(5, 60))]
        picks, _ = plan(candidates, gold, budget=25)
        assert [p.item for p in picks] == naive_plan(candidates, gold, 25)
