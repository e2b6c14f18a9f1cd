"""The seeded draw of a mixed project's assisted tasks."""
from __future__ import annotations

import pytest

from annotation.core.assignment import draw_assisted


def test_draw_is_an_exact_share_and_repeats_for_the_same_seed_whatever_the_order():
    ids = list(range(100, 200))
    first = draw_assisted(ids, share=0.3, seed=7)
    assert len(first) == 30 and first <= set(ids)
    assert draw_assisted(reversed(ids), share=0.3, seed=7) == first
    assert draw_assisted(ids, share=0.3, seed=8) != first


def test_share_bounds_and_rounding():
    assert draw_assisted([1, 2, 3], share=0.0, seed=1) == set()
    assert draw_assisted([1, 2, 3], share=1.0, seed=1) == {1, 2, 3}
    assert len(draw_assisted([1, 2, 3], share=0.5, seed=1)) == 2  # round(1.5) = 2 (banker's rounding)
    with pytest.raises(ValueError):
        draw_assisted([1], share=1.5, seed=0)


def test_over_many_seeds_each_item_is_drawn_about_share_of_the_time():
    # Uniform: over 2,000 seeds each of 10 items is drawn ~ 0.4 x 2,000 = 800 times (sd ~ 22).
    counts = dict.fromkeys(range(10), 0)
    for seed in range(2000):
        for item in draw_assisted(range(10), share=0.4, seed=seed):
            counts[item] += 1
    assert all(700 < n < 900 for n in counts.values()), counts
