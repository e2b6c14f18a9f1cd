"""Tables built from label rows (CodedTable) and the per-annotator figures on sparse tables."""
from __future__ import annotations

import numpy as np
import pytest

from annotation.core import agreement
from annotation.core.agreement import RatingTable, agreement_report, table_alpha, table_from_labels


def crowd(seed: int, *, n_items: int, n_annotators: int, per_item: int, n_categories: int,
          extra: float) -> RatingTable:
    """Each item labelled by `per_item` annotators of the pool; a share `extra` of the ratings are
    two categories. Annotator names sort in column order, as the service's tables do."""
    rng = np.random.default_rng(seed)
    names = [f"P{c % 4} / C{c:02d}" for c in range(n_categories)]
    cells: list[list[frozenset[str] | None]] = []
    for _ in range(n_items):
        row: list[frozenset[str] | None] = [None] * n_annotators
        for a in rng.choice(n_annotators, per_item, replace=False):
            k = 2 if rng.random() < extra else 1
            row[a] = frozenset(rng.choice(names, k).tolist())
        cells.append(row)
    return RatingTable(list(range(n_items)), [f"a{j:02d}" for j in range(n_annotators)], cells)


def label_rows(table: RatingTable, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict, dict]:
    """The table as shuffled label rows with database-like ids (one row per category of a set)."""
    paths = sorted({c for row in table.cells for cell in row if cell for c in cell})
    category_id = {p: 500 + 3 * k for k, p in enumerate(paths)}
    rows = [(10_000 + 7 * table.items[i], 90 - j, category_id[c])
            for i, row in enumerate(table.cells) for j, cell in enumerate(row) if cell for c in cell]
    rows = [rows[k] for k in np.random.default_rng(seed).permutation(len(rows))]
    items, annotators, categories = (np.array(col) for col in zip(*rows))
    return (items, annotators, categories, {90 - j: a for j, a in enumerate(table.annotators)},
            {v: k for k, v in category_id.items()})


@pytest.mark.parametrize("n_categories", [12, 70])  # 70: a set's bit mask takes two words
def test_a_table_from_label_rows_gives_the_rating_tables_report(n_categories):
    table = crowd(1, n_items=300, n_annotators=7, per_item=3, n_categories=n_categories, extra=0.3)
    items, annotators, categories, names, paths = label_rows(table, seed=2)
    coded = table_from_labels(items, annotators, categories, annotator_names=names, category_paths=paths)
    assert coded.annotators == table.annotators and len(coded.items) == 300
    assert dict(coded.cells())[10_000 + 7 * 5] == {
        a: cell for a, cell in zip(table.annotators, table.cells[5]) if cell is not None}
    # Same set codes, so the same bootstrap draws: the reports are equal, not just close.
    assert agreement_report(coded, reps=50) == agreement_report(table, reps=50)


def test_ids_naming_the_same_path_become_one_category():
    # Two categories cut to the same ancestor (depth 1) and an annotator listed under two ids.
    coded = table_from_labels(
        np.array([1, 1, 1, 2]), np.array([7, 7, 8, 9]), np.array([30, 31, 30, 32]),
        annotator_names={7: "ann", 8: "bob", 9: "ann"}, category_paths={30: "A", 31: "A", 32: "B"})
    assert coded.annotators == ["ann", "bob"]
    assert dict(coded.cells()) == {1: {"ann": frozenset({"A"}), "bob": frozenset({"A"})},
                                   2: {"ann": frozenset({"B"})}}


@pytest.mark.parametrize("per_item, n_categories, extra", [
    (3, 20, 0.2),  # few ratings per item: the fast path over pattern keys
    (12, 70, 0.5),  # many distinct sets on wide rows: the keys would overflow, rows are compared
])
def test_alpha_without_each_annotator_equals_alpha_of_the_table_without_their_column(
        per_item, n_categories, extra):
    table = crowd(3, n_items=400, n_annotators=12, per_item=per_item, n_categories=n_categories,
                  extra=extra)
    report = agreement_report(table, reps=10)
    for j, name in enumerate(table.annotators):
        rest = RatingTable(table.items, table.annotators[:j] + table.annotators[j + 1:],
                           [row[:j] + row[j + 1:] for row in table.cells])
        assert report["per_annotator"][name]["alpha_without"] == round(table_alpha(rest).value, 6)
        assert report["per_annotator"][name]["n_items"] == sum(row[j] is not None for row in table.cells)


def test_item_ids_spread_too_wide_for_a_presence_array_give_the_same_table():
    # Ids 10**12 apart cannot be ranked through an array over their span: the sort path must agree.
    table = crowd(4, n_items=200, n_annotators=5, per_item=3, n_categories=12, extra=0.3)
    items, annotators, categories, names, paths = label_rows(table, seed=5)
    close = table_from_labels(items, annotators, categories, annotator_names=names, category_paths=paths)
    wide = table_from_labels(items * 10**12, annotators, categories, annotator_names=names, category_paths=paths)
    assert np.array_equal(wide.items, close.items * 10**12)
    assert np.array_equal(wide.codes, close.codes) and wide.values == close.values


def random_sets(seed: int, *, n_items: int, n_annotators: int, n_categories: int, rated: float,
                empty: float) -> RatingTable:
    """Each annotator rates each item with probability `rated` (so some items have one rating or none and
    some annotator pairs share few items); a share `empty` of the ratings are the empty set, others one or
    two of few categories (many ties)."""
    rng = np.random.default_rng(seed)
    names = [f"P{c % 2} / C{c}" for c in range(n_categories)]
    cells: list[list[frozenset[str] | None]] = []
    for _ in range(n_items):
        row: list[frozenset[str] | None] = []
        for _ in range(n_annotators):
            if rng.random() >= rated:
                row.append(None)
            elif rng.random() < empty:
                row.append(frozenset())
            else:
                row.append(frozenset(rng.choice(names, rng.integers(1, 3)).tolist()))
        cells.append(row)
    return RatingTable(list(range(n_items)), [f"a{j:02d}" for j in range(n_annotators)], cells)


CASES = [  # (seed, items, annotators, categories, rated, empty)
    (0, 300, 3, 3, 0.9, 0.1),  # dense, few categories: many equal sets
    (1, 400, 12, 6, 0.25, 0.05),  # sparse: items rated once or not at all, pairs sharing few items
    (2, 200, 5, 2, 0.6, 0.3),  # mostly empty or tied sets
    (3, 150, 4, 1, 0.7, 0.0),  # one category: nominal, and no variation without some annotators
    (4, 120, 9, 40, 0.95, 0.1),  # wide rows of many distinct sets: the keys would overflow
]


@pytest.mark.parametrize("case", CASES)
def test_alpha_without_each_annotator_is_the_same_bits_as_deleting_their_column(case):
    from annotation.core.agreement import _alpha_estimate, _alphas_without_each, _encode_table, _is_nominal

    seed, n_items, n_annotators, n_categories, rated, empty = case
    table = random_sets(seed, n_items=n_items, n_annotators=n_annotators, n_categories=n_categories,
                        rated=rated, empty=empty)
    coded = _encode_table(table)
    level = "nominal" if _is_nominal(coded) else "masi"
    distance = None if level == "nominal" else agreement._masi_matrix(coded.values)
    coders = coded.entries[1]
    got = _alphas_without_each(coded, [np.flatnonzero(coders == j) for j in range(n_annotators)],
                               distance)
    for j in range(n_annotators):
        # Straightforward: the table with column j deleted, its alpha from scratch (same value numbering).
        rest = agreement._Coded(np.delete(coded.codes, j, axis=1), coded.values)
        assert got[j] == _alpha_estimate(rest, level), j  # value and reason, exactly


@pytest.mark.parametrize("case", CASES)
def test_grouped_coder_pairs_are_each_pair_of_columns_on_their_shared_items(case):
    from annotation.core.agreement import _coder_pairs, _encode_table

    seed, n_items, n_annotators, n_categories, rated, empty = case
    coded = _encode_table(random_sets(seed, n_items=n_items, n_annotators=n_annotators,
                                      n_categories=n_categories, rated=rated, empty=empty))
    got = [(i, j, a.tolist(), b.tolist()) for i, j, a, b in _coder_pairs(coded)]
    expected = []
    for i in range(n_annotators):
        for j in range(i + 1, n_annotators):
            both = (coded.codes[:, i] >= 0) & (coded.codes[:, j] >= 0)
            expected.append((i, j, coded.codes[both, i].tolist(), coded.codes[both, j].tolist()))
    assert got == expected


def test_taking_one_value_out_of_sorted_rows_is_list_removal():
    from annotation.core.agreement import _without_one

    rng = np.random.default_rng(9)
    lists = [sorted(rng.integers(0, 4, rng.integers(1, 6)).tolist()) for _ in range(500)]  # repeats: ties
    rows = np.array([row + [-1] * (5 - len(row)) for row in lists])
    values = np.array([row[rng.integers(len(row))] for row in lists])
    expected = []
    for row, value in zip(lists, values.tolist()):
        row = list(row)
        row.remove(value)
        expected.append(row + [-1] * (5 - len(row)))
    assert _without_one(rows, values).tolist() == expected


@pytest.mark.parametrize("case", CASES)
def test_patterns_recoded_from_patterns_are_the_recoded_items_patterns(case):
    from annotation.core.agreement import _Coded, _encode_table, _patterns, _recoded_patterns, _recoding

    seed, n_items, n_annotators, n_categories, rated, empty = case
    coded = _encode_table(random_sets(seed, n_items=n_items, n_annotators=n_annotators,
                                      n_categories=n_categories, rated=rated, empty=empty))
    pat = _patterns(coded.codes, len(coded.values))
    # Cut to the parent, and merge every set into its size: many patterns become one.
    for mapping in ({v: frozenset(c.split(" / ")[0] for c in v) for v in coded.values},
                    {v: len(v) for v in coded.values}):
        remap, values = _recoding(coded.values, mapping)
        got = _recoded_patterns(pat, remap, len(values))
        expected = _patterns(_Coded(remap[coded.codes], values).codes, len(values))  # straightforward
        if got is None:  # rows too wide for keys: the caller recodes the items
            assert not agreement._keys_fit(pat.packed.shape[1], len(values))
            continue
        assert np.array_equal(got.packed, expected.packed) and np.array_equal(got.counts, expected.counts)


def test_rows_of_entries_not_grouped_by_unit_are_sorted_the_same():
    from annotation.core.agreement import _sorted_rows

    rng = np.random.default_rng(3)
    units, values = rng.integers(0, 50, 400), rng.integers(0, 7, 400)
    rows, row_units = _sorted_rows(units, values)
    expected = {u: sorted(values[units == u].tolist()) for u in np.unique(units).tolist()}
    assert row_units.tolist() == sorted(expected)
    assert [[v for v in row if v >= 0] for row in rows.tolist()] == list(expected.values())


def coded_table(table: RatingTable) -> agreement.CodedTable:
    coded = agreement._encode_table(table)
    return agreement.CodedTable(np.array(table.items) * 3 + 5, table.annotators, coded.codes, list(coded.values))


@pytest.mark.parametrize("case", CASES)
def test_disagreeing_items_are_those_with_two_different_sets(case):
    seed, n_items, n_annotators, n_categories, rated, empty = case
    table = random_sets(seed, n_items=n_items, n_annotators=n_annotators, n_categories=n_categories,
                        rated=rated, empty=empty)
    expected = [item * 3 + 5 for item, row in zip(table.items, table.cells)
                if len({cell for cell in row if cell is not None}) >= 2]
    assert agreement.disagreeing_items(coded_table(table)).tolist() == expected


def test_accuracy_against_a_reference_looks_up_only_the_reference_items():
    table = random_sets(6, n_items=300, n_annotators=4, n_categories=3, rated=0.7, empty=0.1)
    coded = coded_table(table)
    rng = np.random.default_rng(6)
    # Gold on some items, one item not in the table; gold sets drawn from the table's sets and one new set.
    items = rng.choice(table.items, 120, replace=False).tolist()
    reference = {item * 3 + 5: coded.values[rng.integers(len(coded.values))] for item in items}
    reference[10**6] = frozenset({"P0 / C0"})
    reference[items[0] * 3 + 5] = frozenset({"nowhere"})
    got = agreement.accuracy_against_reference(coded, reference)
    for j, name in enumerate(table.annotators):
        pairs = [(table.cells[item][j], reference[item * 3 + 5]) for item in table.items
                 if item * 3 + 5 in reference and table.cells[item][j] is not None]
        assert got[name]["n_items"] == len(pairs)
        assert got[name]["accuracy"] == round(sum(a == b for a, b in pairs) / len(pairs), 6)
        labels = {v: k for k, v in enumerate({v for pair in pairs for v in pair})}
        kappa = agreement.cohen_kappa_of_codes(np.array([labels[a] for a, _ in pairs]),
                                               np.array([labels[b] for _, b in pairs]), len(labels))
        assert got[name]["cohen_kappa"] == (None if kappa.value is None else round(kappa.value, 6))
