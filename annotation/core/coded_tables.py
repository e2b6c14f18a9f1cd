"""CodedTables cut and joined by column: sets renumbered as `table_from_labels` numbers them, in numpy."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from annotation.core.agreement import CodedTable, dense_sorted


def renumbered(items: np.ndarray[Any, Any], annotators: list[str], codes: np.ndarray[Any, Any],
               values: Sequence[frozenset[str]]) -> CodedTable:
    """A CodedTable whose codes (indexes into `values`, -1 for none) are renumbered by first appearance
    reading row by row, as `table_from_labels` and a RatingTable's encoding number them, so every statistic
    adds up in the same order; only the sets that appear are kept."""
    flat = codes.reshape(-1)
    rated = flat >= 0
    # factorize numbers values in order of first appearance (hashing, no sort).
    code, first = pd.factorize(flat[rated])
    new = np.full(len(flat), -1, dtype=np.int64)
    new[rated] = code
    return CodedTable(items, annotators, new.reshape(codes.shape), [values[v] for v in first.tolist()])


def joined_by_column(parts: Sequence[CodedTable]) -> CodedTable:
    """Tables of different annotators as one: every part's items (sorted), every annotator (sorted by name),
    the same cells. This is the table `table_from_labels` builds from all the parts' label rows together,
    provided no annotator is in two parts (their cells would merge there)."""
    parts = [part for part in parts if len(part.items)]
    if len(parts) <= 1:
        return parts[0] if parts else CodedTable(np.zeros(0, dtype=np.int64), [], np.zeros((0, 0), dtype=np.int64), [])
    annotators = sorted(name for part in parts for name in part.annotators)
    if len(set(annotators)) < len(annotators):
        raise ValueError("an annotator is in two of the tables: their cells would have to be merged")
    # Every part's items together: the distinct ones sorted, and each one's row among them.
    items, row = dense_sorted(np.concatenate([part.items for part in parts]))
    ends = np.cumsum([len(part.items) for part in parts]).tolist()
    column = {name: j for j, name in enumerate(annotators)}
    code: dict[frozenset[str], int] = {}
    codes = np.full((len(items), len(annotators)), -1, dtype=np.int64)
    for part, start, end in zip(parts, [0, *ends], ends):
        remap = np.array([code.setdefault(value, len(code)) for value in part.values] + [-1], dtype=np.int64)
        columns = np.array([column[name] for name in part.annotators], dtype=np.int64)
        codes[np.ix_(row[start:end], columns)] = remap[part.codes]
    return renumbered(items, annotators, codes, list(code))


# Ids spanning fewer values than this are looked up in an array over their span (one access per id)
# instead of by sorting or binary search, which at a million ids in random order is the slower part.
_SPAN_LIMIT = 1 << 22  # a 32 MB lookup array at most, beyond 4 x the ids


def rows_of(items: np.ndarray[Any, Any], ids: np.ndarray[Any, Any]
            ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """For sorted distinct integer `items` (a table's): which of `ids` they hold (a mask over `ids`) and
    those ids' rows in `items`, in the order of `ids`."""
    if not len(items) or not len(ids):
        return np.zeros(len(ids), dtype=bool), np.zeros(0, dtype=np.int64)
    low, high = int(items[0]), int(items[-1])
    if low < 0 or high - low >= max(_SPAN_LIMIT, 4 * len(items)):
        pos = np.searchsorted(items, ids)
        found = pos < len(items)
        found[found] = items[pos[found]] == ids[found]
        return found, pos[found].astype(np.int64)
    rank = np.full(high - low + 1, -1, dtype=np.int64)
    rank[items - low] = np.arange(len(items))
    row = np.full(len(ids), -1, dtype=np.int64)
    inside = (ids >= low) & (ids <= high)
    row[inside] = rank[ids[inside] - low]
    found = row >= 0
    return found, row[found]
