"""CodedTables cut and joined by column: sets renumbered as `table_from_labels` numbers them, in numpy."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from annotation.core.agreement import CodedTable


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
    items = np.unique(np.concatenate([part.items for part in parts]))
    column = {name: j for j, name in enumerate(annotators)}
    code: dict[frozenset[str], int] = {}
    codes = np.full((len(items), len(annotators)), -1, dtype=np.int64)
    for part in parts:
        remap = np.array([code.setdefault(value, len(code)) for value in part.values] + [-1], dtype=np.int64)
        columns = np.array([column[name] for name in part.annotators], dtype=np.int64)
        codes[np.ix_(np.searchsorted(items, part.items), columns)] = remap[part.codes]
    return renumbered(items, annotators, codes, list(code))
