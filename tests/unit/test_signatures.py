"""Failure signature statistics: hand-checked arithmetic."""
import numpy as np
import pytest

from taxonomy.core.signatures import (
    TEST_CHI2,
    TEST_FISHER,
    LabelRecord,
    Signature,
    _frame_item_category_weights,
    _frame_weighted_counts,
    build_tree,
    compare_signatures,
    failure_signatures,
    heatmap,
    holm,
    item_category_weights,
    signature_from_counts,
    two_proportion_test,
    weighted_counts,
    wilson_interval,
)


def test_wilson_interval_matches_hand_arithmetic():
    # k=3, n=10, z^2=3.8415: centre = (0.3 + 0.19207)/1.38415 = 0.35550,
    # half = 1.96 * sqrt(0.021 + 0.0096037)/1.38415 = 0.24772  ->  (0.1078, 0.6032)
    low, high = wilson_interval(3, 10)
    assert low == pytest.approx(0.1078, abs=1e-4)
    assert high == pytest.approx(0.6032, abs=1e-4)


def test_wilson_interval_narrows_with_more_errors():
    # same share 0.25, 12 vs 12,000 errors: the small group's interval is much wider
    small = wilson_interval(3, 12)
    large = wilson_interval(3000, 12000)
    assert small[1] - small[0] > 10 * (large[1] - large[0])
    assert wilson_interval(0, 0) == (0.0, 0.0)
    assert wilson_interval(0, 5)[0] == 0.0


def test_pooled_human_labels_split_one_failure_between_annotators_and_categories():
    records = [
        # failure 1: annotator X says A/a; annotator Y says {A/b, B}
        LabelRecord("m1", 1, "X", "A / a"),
        LabelRecord("m1", 1, "Y", "A / b"),
        LabelRecord("m1", 1, "Y", "B"),
        # failure 2: annotator X says B
        LabelRecord("m1", 2, "X", "B"),
    ]
    # weights: failure 1 -> A/a 1/2, A/b 1/4, B 1/4; failure 2 -> B 1
    (depth1,) = failure_signatures(records, depth=1)
    assert depth1.n_errors == 2
    assert {s.category: s.count for s in depth1.shares} == pytest.approx({"B": 1.25, "A": 0.75})
    assert sum(s.share for s in depth1.shares) == pytest.approx(1.0)
    (depth2,) = failure_signatures(records, depth=2)
    assert {s.category: s.share for s in depth2.shares} == pytest.approx(
        {"B": 0.625, "A / a": 0.25, "A / b": 0.125}
    )


def test_holm_adjustment_is_step_down_and_monotone():
    # sorted p: 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> kept monotone at 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_chi_square_used_when_expected_counts_are_large():
    # [[30, 70], [10, 90]], expected 20/80 in each row: chi2 = 2*(100/20) + 2*(100/80) = 12.5
    test, p = two_proportion_test(30, 100, 10, 100)
    assert test == TEST_CHI2
    assert p == pytest.approx(0.000407, rel=1e-2)


def test_fisher_exact_used_for_small_counts():
    # [[3, 1], [0, 4]]: hypergeometric probabilities 4/56, 24/56, 24/56, 4/56 -> p = 8/56
    test, p = two_proportion_test(3, 4, 0, 4)
    assert test == TEST_FISHER
    assert p == pytest.approx(8 / 56)


def test_comparison_flags_only_the_category_that_differs():
    a = signature_from_counts("a", {"Reasoning": 30, "Knowledge": 35, "Format": 35}, 100, 1)
    b = signature_from_counts("b", {"Reasoning": 10, "Knowledge": 45, "Format": 45}, 100, 1)
    comparison = compare_signatures(a, b)
    by_name = {d.category: d for d in comparison.categories}
    assert by_name["Reasoning"].significant
    assert by_name["Reasoning"].difference == pytest.approx(0.20)
    assert not by_name["Knowledge"].significant
    assert comparison.omnibus_p is not None and comparison.omnibus_p < 0.01
    assert comparison.omnibus_df == 2


def test_heatmap_orders_columns_by_pooled_count_and_fills_zeros():
    a = signature_from_counts("a", {"X": 1, "Y": 3}, 4, 1)
    b = signature_from_counts("b", {"Z": 2}, 2, 1)
    grid = heatmap([a, b])
    assert grid.categories == ("Y", "Z", "X")
    assert grid.shares == ((0.75, 0.0, 0.25), (0.0, 1.0, 0.0))
    assert grid.n_errors == (4, 2)


def test_tree_adds_leaf_counts_to_every_ancestor():
    tree = build_tree({"A / a": 2, "A / b": 1, "B": 1}, 4, descriptions={"A": "desc A"}, all_paths=["C"])
    assert tree.count == 4
    a = tree.children[0]
    assert (a.name, a.count, a.share, a.description) == ("A", 3, 0.75, "desc A")
    assert [c.share_of_parent for c in a.children] == pytest.approx([2 / 3, 1 / 3])
    assert tree.children[-1].name == "C" and tree.children[-1].count == 0


def test_share_of_missing_category_is_zero_with_interval():
    sig = Signature("g", 1, 10, ())
    share = sig.share_of("nothing")
    assert share.share == 0 and share.ci_high == pytest.approx(wilson_interval(0, 10)[1])


def _random_labels(seed: int) -> list[np.ndarray]:
    """Label columns with repeats: groups, items, annotators and category ids (sets of 1 up to many)."""
    rng = np.random.default_rng(seed)
    n = 5000
    return [rng.integers(0, 7, n) * 1000 + 3, rng.integers(0, 800, n) * 17, rng.integers(0, 5 + seed, n),
            rng.integers(10**9, 10**9 + 23, n)]


@pytest.mark.parametrize("seed", range(6))
def test_coded_counts_equal_the_frames_to_the_bit(seed):
    """Ids read in bulk are counted on packed integer keys; the frame grouped by columns is the reference:
    the failures and every summed weight must be equal, not just close, and in the same order."""
    columns = _random_labels(seed)
    framed = _frame_weighted_counts(*columns, None)
    for coded in (weighted_counts(*columns), weighted_counts(*(c.tolist() for c in columns))):
        assert coded == framed
        assert list(coded[0]) == list(framed[0])
        assert [list(v) for v in coded[1].values()] == [list(v) for v in framed[1].values()]
    groups, items = columns[0].tolist(), columns[1].tolist()
    assert sum(framed[0].values()) == len(set(zip(groups, items, strict=True)))
    # Paths as strings (as the corrected signatures pass them) take the coded way too.
    paths = [f"top {c % 5} / leaf {c}" for c in columns[3].tolist()]
    assert weighted_counts(groups, items, columns[2], paths) == _frame_weighted_counts(
        groups, items, columns[2], paths, None)


@pytest.mark.parametrize("seed", range(4))
def test_coded_item_weights_equal_the_pivot_tables_to_the_bit(seed):
    columns = _random_labels(seed)
    paths = [f"c{c}" for c in columns[3].tolist()]
    coded = item_category_weights(columns[0], columns[1], columns[2], paths)
    framed = _frame_item_category_weights(columns[0], columns[1], columns[2], paths)
    assert list(coded) == list(framed)
    for group, (items, categories, matrix) in framed.items():
        assert coded[group][0] == items and coded[group][1] == categories
        assert coded[group][2].dtype == matrix.dtype and np.array_equal(coded[group][2], matrix)


def test_mixed_or_missing_values_stay_with_the_frame():
    """1 and "1" are different items; a mix of types is never coerced to one (the frame keeps them apart)."""
    groups, annotators, paths = ["g", "g", "g"], ["a", "b", "a"], ["x", "y", "y"]
    items = [1, "1", 1]
    assert weighted_counts(groups, items, annotators, paths) == ({"g": 2}, {"g": {"x": 0.5, "y": 1.5}})
    assert weighted_counts(groups, [1.0, None, 1.0], annotators, paths) == _frame_weighted_counts(
        groups, [1.0, None, 1.0], annotators, paths, None)
