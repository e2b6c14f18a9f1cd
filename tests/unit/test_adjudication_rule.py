"""The auto-gold rule on hand-made items (no database)."""
from __future__ import annotations

from fractions import Fraction

from annotation.core.adjudication import RULES, AutoGoldRule, apply_rule

A, B = frozenset({"A"}), frozenset({"B"})


def test_unanimous_rule_needs_every_annotator() -> None:
    assert apply_rule([A, A, A], RULES["unanimous"]).gold == A
    outcome = apply_rule([A, A, B], RULES["unanimous"])
    assert outcome.gold is None and "2 of 3" in outcome.why


def test_two_thirds_rule_accepts_two_of_three_but_not_one_of_two() -> None:
    assert apply_rule([A, B, A], RULES["two-thirds"]).gold == A
    # 2/3 is exactly the threshold (Fraction, so no 0.667 rounding trap).
    assert apply_rule([A, A, B, B, A, A], RULES["two-thirds"]).gold == A
    assert apply_rule([A, B], RULES["two-thirds"]).gold is None  # 1 of 2 is below 2/3


def test_a_proposed_new_category_blocks_auto_gold_unless_allowed() -> None:
    outcome = apply_rule([A, A, A], RULES["unanimous"], proposals=["Unit error"])
    assert outcome.gold is None and "Unit error" in outcome.why
    lenient = AutoGoldRule(Fraction(1), 2, block_on_proposals=False)
    assert apply_rule([A, A, A], lenient, proposals=["Unit error"]).gold == A


def test_sets_must_be_identical_to_agree() -> None:
    assert apply_rule([A | B, A | B, A], RULES["two-thirds"]).gold == A | B
    assert apply_rule([A | B, A, B], RULES["two-thirds"]).gold is None


def test_rule_describes_itself() -> None:
    assert "2/3" in RULES["two-thirds"].describe()
    assert "all annotators" in RULES["unanimous"].describe()


def test_two_thirds_settles_a_unanimous_pair_and_says_which_criterion_did():
    # At overlap 2 (the demo's default) 2/3 of 2 annotators is both: a unanimous pair is gold.
    pair = apply_rule([A, A], RULES["two-thirds"])
    assert pair.gold == A and pair.settled_by == "unanimous" and "2 of 2" in pair.why
    three = apply_rule([A, A, B], RULES["two-thirds"])
    assert three.gold == A and three.settled_by == "share" and "2 of 3" in three.why


def test_an_item_that_cannot_settle_says_how_to_proceed():
    alone = apply_rule([A], RULES["two-thirds"])
    assert alone.gold is None and "push_labelstudio --overlap" in alone.why
    split = apply_rule([A, B], RULES["two-thirds"])
    assert split.gold is None and "adjudicate --resolve" in split.why
