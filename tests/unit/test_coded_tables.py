"""CodedTables joined and cut by column are the tables `table_from_labels` builds from those label rows."""
from __future__ import annotations

import numpy as np
import pytest

from annotation.core.agreement import CodedTable, agreement_report, table_from_labels
from annotation.core.coded_tables import joined_by_column, renumbered, rows_of
from tests.unit.test_agreement_tables import crowd, label_rows


def same(a: CodedTable, b: CodedTable) -> None:
    assert a.items.dtype == b.items.dtype and np.array_equal(a.items, b.items)
    assert a.annotators == b.annotators and a.values == b.values
    assert a.codes.dtype == b.codes.dtype and np.array_equal(a.codes, b.codes)


def table(rows, names, paths, keep) -> CodedTable:
    items, annotators, categories = rows
    return table_from_labels(items[keep], annotators[keep], categories[keep], annotator_names=names,
                             category_paths=paths)


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_tables_of_disjoint_annotators_join_into_the_table_of_all_their_rows(seed):
    # Sparse: many items are labelled by one part's annotators only, some sets appear in one part only.
    crowded = crowd(seed, n_items=400, n_annotators=9, per_item=3, n_categories=15, extra=0.3)
    items, annotators, categories, names, paths = label_rows(crowded, seed=seed)
    rows = (items, annotators, categories)
    parts = [np.isin(annotators, ids) for ids in ([90, 85, 83], [89, 88], [87, 86, 84, 82])]
    joined = joined_by_column([table(rows, names, paths, keep) for keep in parts])
    whole = table(rows, names, paths, np.ones(len(items), dtype=bool))
    same(joined, whole)
    # The same codes, so the same report to the last bit (bootstrap draws included).
    assert agreement_report(joined, reps=30) == agreement_report(whole, reps=30)


def test_empty_parts_and_a_single_part_join_to_themselves():
    crowded = crowd(6, n_items=50, n_annotators=4, per_item=2, n_categories=5, extra=0.2)
    items, annotators, categories, names, paths = label_rows(crowded, seed=6)
    whole = table((items, annotators, categories), names, paths, np.ones(len(items), dtype=bool))
    empty = table((items, annotators, categories), names, paths, np.zeros(len(items), dtype=bool))
    same(joined_by_column([empty, whole, empty]), whole)
    same(joined_by_column([empty]), empty)


def test_an_annotator_in_two_tables_is_refused():
    crowded = crowd(7, n_items=30, n_annotators=3, per_item=2, n_categories=4, extra=0.0)
    items, annotators, categories, names, paths = label_rows(crowded, seed=7)
    whole = table((items, annotators, categories), names, paths, np.ones(len(items), dtype=bool))
    with pytest.raises(ValueError, match="two of the tables"):
        joined_by_column([whole, whole])


def test_columns_cut_from_a_table_and_renumbered_are_the_table_of_their_rows():
    crowded = crowd(8, n_items=300, n_annotators=6, per_item=3, n_categories=10, extra=0.4)
    items, annotators, categories, names, paths = label_rows(crowded, seed=8)
    rows = (items, annotators, categories)
    whole = table(rows, names, paths, np.ones(len(items), dtype=bool))
    keep = [name for name in whole.annotators if name in ("a01", "a03", "a04")]
    columns = [whole.annotators.index(name) for name in keep]
    rated = (whole.codes[:, columns] >= 0).any(axis=1)
    cut = renumbered(whole.items[rated], keep, whole.codes[rated][:, columns], whole.values)
    ids = [k for k, name in names.items() if name in keep]
    same(cut, table(rows, names, paths, np.isin(annotators, ids)))


@pytest.mark.parametrize("spread", [1, 10**9])  # ids close together (a lookup array) or far apart (a search)
def test_rows_of_finds_each_id_in_sorted_items_as_a_search_would(spread):
    rng = np.random.default_rng(9)
    items = np.unique(rng.integers(0, 5_000, 2_000)) * spread + 7
    ids = np.concatenate([rng.choice(items, 3_000), rng.integers(-10, 6_000 * spread, 1_000)])
    rng.shuffle(ids)
    found, rows = rows_of(items, ids)
    position = {item: k for k, item in enumerate(items.tolist())}
    assert found.tolist() == [i in position for i in ids.tolist()]
    assert rows.tolist() == [position[i] for i in ids.tolist() if i in position]
    assert rows_of(items[:0], ids)[0].sum() == 0 and len(rows_of(items, ids[:0])[1]) == 0
