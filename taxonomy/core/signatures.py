"""Failure signatures (ErrorMap): each category's share of a group's analysed errors, with intervals,
two-group comparisons and heatmap data. Plain Python + numpy/scipy; no Django.

Counting unit: one *failure* (an analysed error). A failure's weight of 1 is split evenly between
the annotators who labelled it and, within one annotator's set, evenly between its categories; so
shares sum to 1 per group and pooling several human annotators never counts a failure twice.
At depth D a category deeper than D counts under its ancestor at depth D; one at depth < D counts
as itself (it has no finer label), so every failure is counted at every depth.

Intervals: Wilson score interval (95 %) for each share, with n = the number of failures in the
group; it is well behaved for small n and shares near 0 or 1 (a group with 12 errors gets a wide
interval, one with 12,000 a narrow one).

Comparison of two groups: per category a 2x2 table (in the category / not, group A / group B) is
tested with Pearson's chi-square (1 df, no continuity correction, equal to the two-proportion
z-test) when every expected count is >= 5, otherwise with Fisher's exact test (two-sided); the
p-values are Holm-corrected across categories. An omnibus chi-square test of homogeneity over all
categories says whether the two signatures differ at all. Fractional counts are rounded for tests.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from taxonomy.core.paths import PATH_SEPARATOR, ROOT_NAME, at_depth
from taxonomy.core.verdicts import NON_ERROR_VERDICTS, is_non_error_verdict

Column = Sequence[Any] | np.ndarray  # one column of label rows: a list, or an array read in bulk

Z95 = 1.959963984540054
INTERVAL_METHOD = "Wilson score interval, 95 %, n = failures in the group"
TEST_CHI2 = "Pearson chi-square (1 df, no continuity correction)"
TEST_FISHER = "Fisher exact (two-sided)"
TEST_RULE = "chi-square when every expected count >= 5, else Fisher exact; Holm-corrected across categories"


@dataclass(frozen=True)
class LabelRecord:
    """One label row: a group (model or dataset), a failure, who labelled it, and the category path."""

    group: str
    item: int | str
    annotator: int | str
    path: str


@dataclass(frozen=True)
class CategoryShare:
    category: str
    count: float
    share: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class Signature:
    """One group's failure signature at one depth; `shares` sorted by count, largest first."""

    group: str
    depth: int
    n_errors: int
    shares: tuple[CategoryShare, ...]

    def share_of(self, category: str) -> CategoryShare:
        for share in self.shares:
            if share.category == category:
                return share
        return CategoryShare(category, 0.0, 0.0, *wilson_interval(0, self.n_errors))


@dataclass(frozen=True)
class CategoryDifference:
    category: str
    count_a: float
    count_b: float
    share_a: float
    share_b: float
    difference: float  # share_a - share_b
    test: str
    p_value: float
    p_holm: float
    significant: bool


@dataclass(frozen=True)
class Comparison:
    group_a: str
    group_b: str
    depth: int
    n_a: int
    n_b: int
    alpha: float
    omnibus_chi2: float | None
    omnibus_df: int
    omnibus_p: float | None
    categories: tuple[CategoryDifference, ...]
    method: str = TEST_RULE


@dataclass(frozen=True)
class FalseFailureRate:
    """How much of a group's labelled failures were judged not to be model errors at all (a verdict:
    not an error, broken item), weighted like shares: `false_failures` / `labelled_failures`."""

    group: str
    labelled_failures: int  # failures with any label (error category or verdict) from the source
    false_failures: float  # summed weight on verdicts (a failure split 1 of 2 annotators counts 0.5)
    rate: float
    ci_low: float
    ci_high: float
    by_verdict: dict[str, float]


def false_failure_rate(group: str, counts: Mapping[str, float], labelled_failures: int) -> FalseFailureRate:
    """The false-failure rate of one group from its weighted counts over every label (verdicts included)."""
    by_verdict = {v: float(counts[v]) for v in NON_ERROR_VERDICTS if counts.get(v)}
    weight = sum(by_verdict.values())
    low, high = wilson_interval(weight, labelled_failures)
    return FalseFailureRate(group, labelled_failures, weight, weight / labelled_failures if labelled_failures else 0.0,
                            low, high, by_verdict)


def without_verdicts(counts: Mapping[str, float]) -> dict[str, float]:
    """Category counts with the verdicts left out: what remains are errors."""
    return {path: w for path, w in counts.items() if not is_non_error_verdict(path)}


@dataclass(frozen=True)
class Heatmap:
    """Groups x categories: shares and counts, columns ordered by pooled count."""

    depth: int
    groups: tuple[str, ...]
    categories: tuple[str, ...]
    n_errors: tuple[int, ...]
    shares: tuple[tuple[float, ...], ...]
    counts: tuple[tuple[float, ...], ...]


@dataclass
class TreeNode:
    """A node of the ErrorAtlas tree: count and share of all failures, share of its parent."""

    path: str
    name: str
    depth: int
    count: float = 0.0
    share: float = 0.0
    share_of_parent: float = 0.0
    description: str = ""
    children: list[TreeNode] = field(default_factory=list)


def wilson_interval(k: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes out of n (0, 0 when n is 0)."""
    if n <= 0:
        return (0.0, 0.0)
    p = k / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(max(p * (1 - p) / n + z * z / (4 * n * n), 0.0)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def signature_from_counts(group: str, counts: Mapping[str, float], n_errors: int, depth: int) -> Signature:
    """A signature from category counts and the number of failures they are spread over."""
    shares = []
    for category, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        share = count / n_errors if n_errors else 0.0
        low, high = wilson_interval(count, n_errors)
        shares.append(CategoryShare(category, count, share, low, high))
    return Signature(group=group, depth=depth, n_errors=n_errors, shares=tuple(shares))


def weighted_counts(
    groups: Column, items: Column, annotators: Column, paths: Column, depth: int | None = None
) -> tuple[dict[str, int], dict[str, dict[str, float]]]:
    """Vectorised failure weighting over parallel columns (fast on a million labels).

    Returns (group -> number of failures, group -> category at `depth` -> summed weight);
    depth None keeps full paths.
    """
    if depth is None:
        coded = _coded_weighted_counts(groups, items, annotators, paths)
        if coded is not None:
            return coded
    return _frame_weighted_counts(groups, items, annotators, paths, depth)


def _frame_weighted_counts(
    groups: Column, items: Column, annotators: Column, paths: Column, depth: int | None
) -> tuple[dict[str, int], dict[str, dict[str, float]]]:
    """`weighted_counts` by grouping a frame of the columns (any values; categories cut at `depth`)."""
    frame = _weighted_frame(groups, items, annotators, paths)
    if frame.empty:
        return {}, {}
    if depth is not None:
        frame["p"] = _truncate(frame["p"], depth)
    n_errors = {str(g): int(n) for g, n in frame.groupby("g")["i"].nunique().items()}
    counts: dict[str, dict[str, float]] = defaultdict(dict)
    for (g, p), w in frame.groupby(["g", "p"])["w"].sum().items():
        counts[str(g)][p] = float(w)
    return n_errors, dict(counts)


@dataclass(frozen=True)
class _CodedLabels:
    """Distinct labels as integer codes (the first of each, in row order) with their weights. Codes of
    groups and categories (items when sorted) follow the sorted order of their values (`groups`, `items`,
    `categories`)."""

    group: np.ndarray
    item: np.ndarray
    category: np.ndarray
    weight: np.ndarray
    labelled_items: np.ndarray  # group * len(items) + item, once per labelled failure
    groups: list[Any]
    items: list[Any]
    categories: list[Any]


def _coded_labels(groups: Column, items: Column, annotators: Column, paths: Column, *,
                  sort_items: bool = False) -> _CodedLabels | None:
    """`_weighted_frame` on packed integer keys and hash tables (pandas' factorize), several times faster
    than grouping a frame by several columns at a million labels; None unless every column is integers or
    strings (ids read in bulk, category paths) and the packed keys fit in 63 bits.

    The same weights to the bit (the same integer division per label), and the labels in the same order:
    a sum over them adds the same numbers in the same order as one over the frame."""
    columns = [_plain_column(column) for column in (groups, items, annotators, paths)]
    if any(column is None or not len(column) for column in columns):
        return None
    # Groups and categories (and items when asked) numbered in sorted order: results come out sorted.
    factorized = [pd.factorize(column, sort=n != 2 and (n != 1 or sort_items))
                  for n, column in enumerate(columns) if column is not None]
    sizes = [len(uniques) for _, uniques in factorized]
    if math.prod(sizes) >= 2**62:
        return None
    g, i, a, p = (np.asarray(codes, dtype=np.int64) for codes, _ in factorized)
    # One row per distinct label, the first of each in row order (as drop_duplicates keeps it).
    first = ~pd.Series(((g * sizes[1] + i) * sizes[2] + a) * sizes[3] + p).duplicated().to_numpy()
    g, i, a, p = g[first], i[first], a[first], p[first]
    set_of_row, label_sets = pd.factorize((g * sizes[1] + i) * sizes[2] + a)
    set_size = np.bincount(set_of_row)
    item_of_set, labelled_items = pd.factorize(label_sets // sizes[2])
    annotators_per_item = np.bincount(item_of_set)
    weight = 1.0 / (set_size[set_of_row] * annotators_per_item[item_of_set[set_of_row]])
    return _CodedLabels(g, i, p, weight, np.asarray(labelled_items, dtype=np.int64),
                        *(uniques.tolist() for n, (_, uniques) in enumerate(factorized) if n != 2))


def _plain_column(column: Column) -> np.ndarray | None:
    """The column as an array of integers or of strings only (None for anything else: floats, missing
    values, a mix of types, which the frame handles as it always has)."""
    if isinstance(column, np.ndarray) and column.dtype.kind in "iu":
        return column
    values = np.asarray(column, dtype=object)
    kind = pd.api.types.infer_dtype(values, skipna=False)
    if kind == "integer":
        return values.astype(np.int64)
    return values if kind == "string" else None


def _coded_weighted_counts(
    groups: Column, items: Column, annotators: Column, paths: Column
) -> tuple[dict[str, int], dict[str, dict[Any, float]]] | None:
    """`weighted_counts` (depth None) through `_coded_labels`; None where that is None."""
    coded = _coded_labels(groups, items, annotators, paths)
    if coded is None:
        return None
    n_items, n_categories = len(coded.items), len(coded.categories)
    n_per_group = np.bincount(coded.labelled_items // n_items, minlength=len(coded.groups))
    n_errors = {str(coded.groups[k]): int(n) for k, n in enumerate(n_per_group.tolist()) if n}
    counts: dict[str, dict[Any, float]] = defaultdict(dict)
    # pandas' grouped sum over one integer key adds each group's weights in row order, as over two columns.
    for key, total in pd.Series(coded.weight).groupby(coded.group * n_categories + coded.category).sum().items():
        counts[str(coded.groups[int(key) // n_categories])][coded.categories[int(key) % n_categories]] = float(total)
    return n_errors, dict(counts)


def _weighted_frame(groups: Column, items: Column, annotators: Column, paths: Column) -> pd.DataFrame:
    """One row per distinct label with its weight `w` (a failure's 1 split between annotators, then categories)."""
    frame = pd.DataFrame({"g": groups, "i": items, "a": annotators, "p": paths}).drop_duplicates()
    if frame.empty:
        return frame.assign(w=pd.Series(dtype=float))
    set_size = frame.groupby(["g", "i", "a"], sort=False)["p"].transform("size")
    annotators_per_item = frame.groupby(["g", "i"], sort=False)["a"].transform("nunique")
    frame["w"] = 1.0 / (set_size * annotators_per_item)
    return frame


def item_category_weights(
    groups: Column, items: Column, annotators: Column, paths: Column
) -> dict[str, tuple[list, list, np.ndarray]]:
    """group -> (items, categories, items x categories weights): each failure's row sums to 1,
    weighted exactly as the signatures count it."""
    coded = _coded_labels(groups, items, annotators, paths, sort_items=True)
    if coded is not None:
        return _coded_item_category_weights(coded)
    return _frame_item_category_weights(groups, items, annotators, paths)


def _frame_item_category_weights(groups: Column, items: Column, annotators: Column,
                                 paths: Column) -> dict[str, tuple[list, list, np.ndarray]]:
    """`item_category_weights` by a pivot table per group of a frame of the columns (any values)."""
    frame = _weighted_frame(groups, items, annotators, paths)
    result: dict[str, tuple[list, list, np.ndarray]] = {}
    for group, part in frame.groupby("g", sort=True):
        table = part.pivot_table(index="i", columns="p", values="w", aggfunc="sum", fill_value=0.0)
        result[str(group)] = (table.index.tolist(), [str(c) for c in table.columns],
                              table.to_numpy(dtype=np.float64))
    return result


def _coded_item_category_weights(coded: _CodedLabels) -> dict[str, tuple[list, list, np.ndarray]]:
    """`item_category_weights` from coded labels: each cell the same grouped sum (in row order) that the
    frame's pivot table adds, rows and columns sorted as it sorts them."""
    n_items, n_categories = len(coded.items), len(coded.categories)
    sums = pd.Series(coded.weight).groupby((coded.group * n_items + coded.item) * n_categories
                                           + coded.category).sum()
    keys, values = sums.index.to_numpy(dtype=np.int64), sums.to_numpy(dtype=np.float64)
    group_of_key = keys // (n_items * n_categories)
    result: dict[str, tuple[list, list, np.ndarray]] = {}
    for part in np.split(np.arange(len(keys)), np.flatnonzero(np.diff(group_of_key)) + 1):
        rows, row_of = np.unique(keys[part] // n_categories % n_items, return_inverse=True)
        columns, column_of = np.unique(keys[part] % n_categories, return_inverse=True)
        matrix = np.zeros((len(rows), len(columns)), dtype=np.float64)
        matrix[row_of, column_of] = values[part]
        result[str(coded.groups[int(group_of_key[part[0]])])] = (
            [coded.items[k] for k in rows.tolist()], [str(coded.categories[k]) for k in columns.tolist()], matrix)
    return result


def _truncate(paths: pd.Series, depth: int) -> pd.Series:
    unique = {p: at_depth(p, depth) for p in paths.unique()}
    return paths.map(unique)


def failure_signatures(records: Iterable[LabelRecord], depth: int = 1) -> list[Signature]:
    """One signature per group, groups sorted by name."""
    records = list(records)
    n_errors, counts = weighted_counts(
        [r.group for r in records], [r.item for r in records], [r.annotator for r in records],
        [r.path for r in records], depth,
    )
    return [signature_from_counts(g, counts.get(g, {}), n, depth) for g, n in sorted(n_errors.items())]


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (monotone, capped at 1), in the input order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def two_proportion_test(k_a: int, n_a: int, k_b: int, n_b: int) -> tuple[str, float]:
    """(test name, two-sided p) for k_a/n_a vs k_b/n_b; chi-square or Fisher by expected counts."""
    table = [[k_a, n_a - k_a], [k_b, n_b - k_b]]
    total = n_a + n_b
    col = (k_a + k_b, total - k_a - k_b)
    if total == 0 or 0 in col:
        return (TEST_FISHER, 1.0)
    expected = [n * c / total for n in (n_a, n_b) for c in col]
    if min(expected) >= 5:
        _, p, _, _ = stats.chi2_contingency(table, correction=False)
        return (TEST_CHI2, float(p))
    return (TEST_FISHER, float(stats.fisher_exact(table, alternative="two-sided")[1]))


def compare_signatures(a: Signature, b: Signature, *, alpha: float = 0.05) -> Comparison:
    """Which categories' shares differ between two groups beyond chance (Holm-corrected)."""
    categories = sorted({s.category for s in a.shares} | {s.category for s in b.shares})
    rows = []
    for category in categories:
        sa, sb = a.share_of(category), b.share_of(category)
        test, p = two_proportion_test(round(sa.count), a.n_errors, round(sb.count), b.n_errors)
        rows.append((category, sa, sb, test, p))
    adjusted = holm([r[4] for r in rows])
    differences = [
        CategoryDifference(
            category=category,
            count_a=sa.count,
            count_b=sb.count,
            share_a=sa.share,
            share_b=sb.share,
            difference=sa.share - sb.share,
            test=test,
            p_value=p,
            p_holm=p_holm,
            significant=p_holm < alpha,
        )
        for (category, sa, sb, test, p), p_holm in zip(rows, adjusted)
    ]
    differences.sort(key=lambda d: (d.p_holm, -abs(d.difference), d.category))
    chi2 = p_omni = None
    df = 0
    table = [
        [round(d.count_a) for d in differences if round(d.count_a) + round(d.count_b) > 0],
        [round(d.count_b) for d in differences if round(d.count_a) + round(d.count_b) > 0],
    ]
    if len(table[0]) >= 2 and sum(table[0]) > 0 and sum(table[1]) > 0:
        chi2_value, p_value, df, _ = stats.chi2_contingency(table, correction=False)
        chi2, p_omni = float(chi2_value), float(p_value)
    return Comparison(
        group_a=a.group,
        group_b=b.group,
        depth=a.depth,
        n_a=a.n_errors,
        n_b=b.n_errors,
        alpha=alpha,
        omnibus_chi2=chi2,
        omnibus_df=int(df),
        omnibus_p=p_omni,
        categories=tuple(differences),
    )


def heatmap(signatures: Sequence[Signature], *, max_categories: int | None = None) -> Heatmap:
    """Groups x categories matrix; columns by pooled count, optionally only the top ones."""
    pooled: dict[str, float] = defaultdict(float)
    for signature in signatures:
        for share in signature.shares:
            pooled[share.category] += share.count
    columns = [c for c, _ in sorted(pooled.items(), key=lambda kv: (-kv[1], kv[0]))]
    if max_categories is not None:
        columns = columns[:max_categories]
    shares, counts = [], []
    for signature in signatures:
        by_name = {s.category: s for s in signature.shares}
        shares.append(tuple(by_name[c].share if c in by_name else 0.0 for c in columns))
        counts.append(tuple(by_name[c].count if c in by_name else 0.0 for c in columns))
    return Heatmap(
        depth=signatures[0].depth if signatures else 1,
        groups=tuple(s.group for s in signatures),
        categories=tuple(columns),
        n_errors=tuple(s.n_errors for s in signatures),
        shares=tuple(shares),
        counts=tuple(counts),
    )


def build_tree(
    leaf_counts: Mapping[str, float],
    n_errors: int,
    *,
    descriptions: Mapping[str, str] | None = None,
    all_paths: Iterable[str] = (),
    root_name: str = ROOT_NAME,
) -> TreeNode:
    """The ErrorAtlas tree: each label path's count added to it and every ancestor."""
    descriptions = descriptions or {}
    root = TreeNode(path="", name=root_name, depth=0, count=0.0)
    nodes: dict[str, TreeNode] = {"": root}

    def node_for(path: str) -> TreeNode:
        if path in nodes:
            return nodes[path]
        parts = path.split(PATH_SEPARATOR)
        parent = node_for(PATH_SEPARATOR.join(parts[:-1]))
        node = TreeNode(path=path, name=parts[-1], depth=len(parts), description=descriptions.get(path, ""))
        parent.children.append(node)
        nodes[path] = node
        return node

    for path in all_paths:
        node_for(path)
    for path, count in leaf_counts.items():
        parts = path.split(PATH_SEPARATOR)
        node_for(path)
        for depth in range(1, len(parts) + 1):
            nodes[PATH_SEPARATOR.join(parts[:depth])].count += count
        root.count += count

    def finish(node: TreeNode) -> None:
        node.share = node.count / n_errors if n_errors else 0.0
        node.children.sort(key=lambda c: (-c.count, c.name))
        for child in node.children:
            child.share_of_parent = child.count / node.count if node.count else 0.0
            finish(child)

    root.share_of_parent = 1.0
    finish(root)
    return root
