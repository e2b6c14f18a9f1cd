"""Inter-annotator agreement statistics (Krippendorff's alpha, kappas, AC1) with bootstrap CIs.

Plain Python + numpy + the `krippendorff` package; no Django. Data come as coders x units
("reliability data", None for a missing rating) or as a RatingTable (items x annotators of
category sets). Undefined statistics are an `Estimate` with value None and a reason.
"""
from __future__ import annotations

import functools
import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar, cast

import krippendorff
import numpy as np
import pandas as pd
from scipy import sparse
from threadpoolctl import ThreadpoolController

from taxonomy.core.paths import PATH_SEPARATOR

V = TypeVar("V", bound=Hashable)  # a rated value: a category set, or any value in reliability data
W = TypeVar("W", bound=Hashable)
F = TypeVar("F", bound=Callable[..., Any])

Level = Literal["nominal", "ordinal", "interval", "ratio", "masi"]
CiMethod = Literal["units", "kalpha"]

CI_METHODS: dict[str, str] = {
    "units": (
        "percentile bootstrap over items (Efron): items are resampled with replacement and every "
        "statistic is recomputed, so the interval reflects which items happened to be labelled"
    ),
    "kalpha": (
        "Krippendorff/Hayes bootstrap (Hayes & Krippendorff 2007; algorithm as in Stata kalpha): "
        "pairs are redrawn from the coincidence matrix with D_e held fixed; narrower than the "
        "items bootstrap and only for alpha"
    ),
}
NO_PAIRS = "fewer than two ratings on every item: nothing can be compared"
NO_SHARED_ITEMS = "the two raters share no item"
NO_VARIATION = "no variation: every compared rating has the same value, so chance disagreement is 0"


@dataclass(frozen=True)
class Estimate:
    """A statistic's value, or None with the reason it is undefined."""

    value: float | None
    reason: str | None = None

    @staticmethod
    def undefined(reason: str) -> Estimate:
        """An undefined estimate with its reason."""
        return Estimate(None, reason)


@dataclass(frozen=True)
class BootstrapResult:
    """A bootstrap distribution of alpha (or another statistic) summarised."""

    method: str
    description: str
    reps: int
    seed: int
    ci95: tuple[float, float] | None
    mean: float | None = None
    sd: float | None = None
    q_below: dict[float, float] = field(default_factory=dict)
    draws: int | None = None
    n_undefined: int = 0
    reason: str | None = None




@functools.cache
def _thread_pools() -> ThreadpoolController:
    # Found once: looking the loaded libraries up took 30 ms a call.
    return ThreadpoolController()


def _one_blas_thread(function: F) -> F:
    """Run `function` with BLAS on one thread. Every product here is small (resamples x patterns, values x
    values): OpenBLAS's extra threads only spin on them, which doubled the CPU of a MASI report on two
    busy cores. The results are the same bits (checked on the benchmark tables)."""
    @functools.wraps(function)
    def limited(*args: Any, **kwargs: Any) -> Any:
        with _thread_pools().limit(limits=1, user_api="blas"):
            return function(*args, **kwargs)
    return cast(F, limited)


# ---------------------------------------------------------------------------------------------
# Encoding


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _as_value(value: Any) -> Hashable:
    # Lists/sets/tuples are label sets; everything else is a nominal value.
    if isinstance(value, (list, set, tuple, frozenset)):
        return frozenset(value)
    nominal: Hashable = value
    return nominal


@dataclass(frozen=True)
class _Coded(Generic[V]):
    """Ratings as integer codes: units x coders, -1 where missing; values[i] is code i (category sets
    for tables of labels, any hashable value for reliability data)."""

    codes: np.ndarray
    values: Sequence[V]

    @functools.cached_property
    def entries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ratings as (unit, coder, code) arrays, row by row (found once: the report needs them thrice)."""
        return _entries(self.codes)

    @functools.cached_property
    def rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Each rated unit's codes in ascending order, -1 padded, and the unit of each row."""
        units, _, values = self.entries
        return _sorted_rows(units, values)


def _encode(reliability_data: Sequence[Sequence[Any]]) -> _Coded:
    """Coders x units with None for missing -> units x coders integer codes."""
    lookup: dict[Hashable, int] = {}
    values: list[Hashable] = []
    n_coders = len(reliability_data)
    n_units = max((len(row) for row in reliability_data), default=0)
    codes = np.full((n_units, n_coders), -1, dtype=np.int64)
    for coder, row in enumerate(reliability_data):
        for unit, raw in enumerate(row):
            if _is_missing(raw):
                continue
            value = _as_value(raw)
            code = lookup.get(value)
            if code is None:
                code = lookup[value] = len(values)
                values.append(value)
            codes[unit, coder] = code
    return _Coded(codes, values)


def masi_distance(a: Iterable[Hashable], b: Iterable[Hashable]) -> float:
    """MASI distance (Passonneau 2006): 1 - Jaccard x M, M = 1, 2/3, 1/3, 0 (exact thirds)."""
    set_a, set_b = frozenset(a), frozenset(b)
    union = set_a | set_b
    if not union:
        return 0.0
    inter = set_a & set_b
    if set_a == set_b:
        monotonicity = 1.0
    elif inter == set_a or inter == set_b:
        monotonicity = 2 / 3
    elif inter:
        monotonicity = 1 / 3
    else:
        monotonicity = 0.0
    return 1.0 - (len(inter) / len(union)) * monotonicity


def _membership(values: Sequence[Hashable]) -> tuple[np.ndarray, list[Hashable]]:
    """Values x elements boolean matrix (a nominal value is a one-element set)."""
    elements: dict[Hashable, int] = {}
    rows, cols = [], []
    for i, value in enumerate(values):
        members = value if isinstance(value, frozenset) else (value,)
        for element in members:
            rows.append(i)
            cols.append(elements.setdefault(element, len(elements)))
    matrix = np.zeros((len(values), len(elements)), dtype=bool)
    matrix[rows, cols] = True
    return matrix, list(elements)


def _masi_matrix(values: Sequence[Hashable]) -> np.ndarray:
    """MASI distances between every pair of (set) values, vectorised."""
    member, _ = _membership(values)
    m = member.astype(np.float64)
    inter = m @ m.T
    size = m.sum(axis=1)
    union = size[:, None] + size[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        jaccard = np.where(union > 0, inter / np.where(union > 0, union, 1), 1.0)
    equal = (inter == size[:, None]) & (inter == size[None, :])
    subset = (inter == size[:, None]) | (inter == size[None, :])
    monotonicity = np.where(equal, 1.0, np.where(subset, 2 / 3, np.where(inter > 0, 1 / 3, 0.0)))
    distance: np.ndarray = 1.0 - jaccard * monotonicity
    np.fill_diagonal(distance, 0.0)
    return distance


# ---------------------------------------------------------------------------------------------
# Per-item patterns: every statistic here is a ratio of sums over items of per-item quantities,
# so items with the same multiset of values are grouped into one pattern with a count. A
# bootstrap over items then only redraws pattern counts (a multinomial), which is what makes
# 100,000 items x 1,000 resamples take well under a second.


@dataclass(frozen=True)
class _Patterns:
    packed: np.ndarray  # patterns x max ratings, value codes sorted, -1 padding
    counts: np.ndarray  # how many items have each pattern
    n_values: int

    @property
    def n_ratings(self) -> np.ndarray:
        rated: np.ndarray = (self.packed >= 0).sum(axis=1)
        return rated


def _entries(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ratings of a units x coders code matrix as (unit, coder, code) arrays, row by row."""
    units, coders = np.nonzero(codes >= 0)
    return units, coders, codes[units, coders]


def _patterns(codes: np.ndarray, n_values: int) -> _Patterns:
    return _patterns_of_rows(_Coded(codes, range(n_values)).rows[0], n_values)


def _sorted_rows(units: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ratings given as (unit, value code) entries -> each rated unit's codes in ascending order,
    -1 padded, and the unit of each row.

    Works on the ratings alone, never on units x coders: with many annotators and few ratings per
    item, that matrix is mostly empty. Entries come grouped by unit (as `_entries` gives them), so
    only each row is sorted, which is 5x cheaper than sorting every entry.
    """
    if len(units) == 0:
        return np.zeros((0, 0), dtype=np.int64), np.zeros(0, dtype=np.int64)
    units = units.astype(np.int64)
    if (units[1:] < units[:-1]).any():
        order = np.argsort(units, kind="stable")
        units, values = units[order], values[order]
    starts = np.flatnonzero(np.r_[True, units[1:] != units[:-1]])
    m = np.diff(np.r_[starts, len(units)])
    rows = np.full((len(starts), int(m.max())), -1, dtype=np.int64)
    rows[np.repeat(np.arange(len(starts)), m), np.arange(len(units)) - np.repeat(starts, m)] = values
    return _sort_each_row(rows), units[starts]


def _sort_each_row(rows: np.ndarray) -> np.ndarray:
    """Rows of codes, -1 where none, sorted in place: codes ascending, then the -1 padding."""
    missing = np.iinfo(np.int64).max  # sorts after every code
    rows[rows < 0] = missing
    rows.sort(axis=1)
    rows[rows == missing] = -1
    return rows


def _without_one(rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Sorted, -1 padded rows with one occurrence of values[i] taken out of row i (still sorted)."""
    width = rows.shape[1]
    out = np.full_like(rows, -1)
    if len(rows) == 0 or width == 0:
        return out
    at = np.argmax(rows == values[:, None], axis=1)
    for k in range(width - 1):  # left of the removed value unchanged, right of it moved one left
        out[:, k] = np.where(at > k, rows[:, k], rows[:, k + 1])
    return out


def _patterns_of_rows(rows: np.ndarray, n_values: int) -> _Patterns:
    """Patterns of sorted, -1 padded rows of codes; rows without a rating are left out."""
    m = (rows >= 0).sum(axis=1)
    width = int(m.max()) if len(m) else 0
    if _keys_fit(width, n_values):
        return _patterns_of_keys(_row_keys(rows[:, :width], n_values), None, width, n_values)
    unique, counts = np.unique(rows[m > 0][:, :width], axis=0, return_counts=True)
    return _Patterns(unique, counts.astype(np.int64), n_values)


def _keys_fit(width: int, n_values: int) -> bool:
    return width * math.log2(n_values + 1) < 62


def _row_keys(rows: np.ndarray, n_values: int) -> np.ndarray:
    """One integer per sorted, -1 padded row (digits base n_values + 1): sorting keys sorts rows,
    and far faster than unique rows. An all-missing row is key 0."""
    base = n_values + 1
    key = np.zeros(len(rows), dtype=np.int64)
    for i in range(rows.shape[1]):
        key = key * base + (rows[:, i] + 1)
    return key


def _patterns_of_keys(keys: np.ndarray, weights: np.ndarray | None, width: int,
                      n_values: int) -> _Patterns:
    """Patterns from row keys, each row counted `weights` times (default once); keys whose count
    comes to 0, and key 0 (no rating), are left out. The distinct keys decode back into the rows."""
    if len(keys) == 0:
        return _Patterns(np.zeros((0, 0), dtype=np.int64), np.zeros(0, dtype=np.int64), n_values)
    # Grouped by hashing, then only the distinct keys sorted: a sort of every row was most of the cost.
    code, distinct = pd.factorize(keys)
    counts = (np.bincount(code) if weights is None
              else np.bincount(code, weights=weights, minlength=len(distinct)).round().astype(np.int64))
    order = np.argsort(distinct)
    keys, counts = distinct[order], counts[order]
    keep = (counts > 0) & (keys != 0)
    keys, counts = keys[keep], counts[keep]
    unique = _decode_keys(keys, width, n_values)
    used = int((unique >= 0).sum(axis=1).max()) if len(unique) else 0
    return _Patterns(unique[:, :used], counts.astype(np.int64), n_values)


def _decode_keys(keys: np.ndarray, width: int, n_values: int) -> np.ndarray:
    """The sorted, -1 padded rows that `_row_keys` made these keys from."""
    rows = np.empty((len(keys), width), dtype=np.int64)
    for i in reversed(range(width)):
        keys, digit = np.divmod(keys, n_values + 1)
        rows[:, i] = digit - 1
    return rows


def _value_counts(pat: _Patterns) -> sparse.csr_matrix:
    """Patterns x values: how often each value occurs in each pattern."""
    rows = np.repeat(np.arange(len(pat.packed)), pat.packed.shape[1])
    cols = pat.packed.reshape(-1)
    valid = cols >= 0
    return sparse.csr_matrix(
        (np.ones(valid.sum()), (rows[valid], cols[valid])),
        shape=(len(pat.packed), pat.n_values),
    )


def _pair_sums(pat: _Patterns, distance: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per pattern: sum of distances over rating pairs, and number of exactly agreeing pairs."""
    width = pat.packed.shape[1]
    dist_sum = np.zeros(len(pat.packed))
    equal_pairs = np.zeros(len(pat.packed))
    for i in range(width):
        for j in range(i + 1, width):
            a, b = pat.packed[:, i], pat.packed[:, j]
            both = (a >= 0) & (b >= 0)
            same = both & (a == b)
            equal_pairs += same
            if distance is None:  # nominal: distance 1 unless equal
                dist_sum += both & ~same
            else:
                dist_sum += np.where(both, distance[np.maximum(a, 0), np.maximum(b, 0)], 0.0)
    return dist_sum, equal_pairs


@dataclass(frozen=True)
class _Sums:
    """Per-pattern columns whose weighted sums give every chance-corrected statistic."""

    pairable: np.ndarray  # m_u when m_u >= 2 else 0
    disagreement: np.ndarray  # 2 * sum of pair distances / (m_u - 1)
    agreement: np.ndarray  # share of agreeing rating pairs (m_u >= 2)
    rated_twice: np.ndarray  # 1 when m_u >= 2
    rated: np.ndarray  # 1 when m_u >= 1
    pair_counts: sparse.csr_matrix  # patterns x values, pairable items only
    share_counts: sparse.csr_matrix  # patterns x values, counts / m_u (Fleiss/Gwet pi)


def _sums(pat: _Patterns, distance: np.ndarray | None) -> _Sums:
    m = pat.n_ratings.astype(np.float64)
    twice = m >= 2
    dist_sum, equal_pairs = _pair_sums(pat, distance)
    safe = np.where(twice, m - 1, 1.0)
    counts = _value_counts(pat)
    return _Sums(
        pairable=np.where(twice, m, 0.0),
        disagreement=np.where(twice, 2 * dist_sum / safe, 0.0),
        agreement=np.where(twice, equal_pairs / np.where(twice, m * (m - 1) / 2, 1.0), 0.0),
        rated_twice=twice.astype(np.float64),
        rated=(m >= 1).astype(np.float64),
        pair_counts=sparse.diags(twice.astype(np.float64)) @ counts,
        share_counts=sparse.diags(1.0 / np.maximum(m, 1.0)) @ counts,
    )


def _weighted(matrix: sparse.csr_matrix, weights: np.ndarray) -> np.ndarray:
    """weights (reps x patterns) @ matrix (patterns x values), sparse-aware."""
    return np.asarray((matrix.T @ weights.T).T)


def _alpha_from(
    weights: np.ndarray, sums: _Sums, distance: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Alpha for each row of pattern weights; returns (alpha, defined mask)."""
    return _alpha_of_totals(weights @ sums.pairable, weights @ sums.disagreement,
                            _weighted(sums.pair_counts, weights), distance)


def _alpha_of_totals(n_total: np.ndarray, observed: np.ndarray, n_c: np.ndarray,
                     distance: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Alpha from each weighting's pairable values, summed disagreement and pairable values per value."""
    if distance is None:
        chance = n_total**2 - (n_c**2).sum(axis=1)
    else:
        chance = np.einsum("bi,ij,bj->b", n_c, distance, n_c)
    defined = (n_total >= 2) & (chance > 1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):
        d_o = observed / np.where(defined, n_total, 1)
        d_e = chance / np.where(defined, n_total * (n_total - 1), 1)
        alpha = np.where(defined, 1 - d_o / np.where(defined, d_e, 1), np.nan)
    return alpha, defined


def _chance_corrected(
    weights: np.ndarray, sums: _Sums, n_categories: int | None
) -> dict[str, np.ndarray]:
    """Percent agreement, Fleiss' kappa, Gwet's AC1 and Brennan-Prediger for each weight row."""
    n_twice = weights @ sums.rated_twice
    n_rated = weights @ sums.rated
    with np.errstate(divide="ignore", invalid="ignore"):
        p_a = (weights @ sums.agreement) / n_twice
        pi = _weighted(sums.share_counts, weights) / n_rated[:, None]
        q = n_categories if n_categories is not None else sums.share_counts.shape[1]
        pe_fleiss = (pi**2).sum(axis=1)
        pe_gwet = (pi * (1 - pi)).sum(axis=1) / (q - 1) if q > 1 else np.full_like(p_a, np.nan)
        pe_bp = np.full_like(p_a, 1 / q if q > 1 else np.nan)
        out = {"percent_agreement": p_a}
        for name, p_e in (("fleiss_kappa", pe_fleiss), ("gwet_ac1", pe_gwet),
                          ("brennan_prediger", pe_bp)):
            out[name] = np.where(1 - p_e > 1e-12, (p_a - p_e) / (1 - p_e), np.nan)
    return out


def _prepare(reliability_data: Sequence[Sequence[Any]] | _Coded, level: str
             ) -> tuple[_Coded, _Patterns, np.ndarray | None, _Sums]:
    coded = reliability_data if isinstance(reliability_data, _Coded) else _encode(reliability_data)
    distance = None if level == "nominal" else _masi_matrix(coded.values)
    pat = _patterns_of_rows(coded.rows[0], len(coded.values))
    return coded, pat, distance, _sums(pat, distance)


def _alpha_estimate(coded: _Coded, level: str) -> Estimate:
    """Alpha from pattern sums (nominal or MASI); agrees with the package (tested)."""
    _, pat, distance, sums = _prepare(coded, level)
    return _alpha_of(pat, sums, distance)


def _alpha_of(pat: _Patterns, sums: _Sums, distance: np.ndarray | None) -> Estimate:
    alpha, defined = _alpha_from(pat.counts[None, :].astype(float), sums, distance)
    return Estimate(float(alpha[0])) if defined[0] else Estimate.undefined(_alpha_reason(pat, sums))


# The package builds items x values x values arrays; above this many cells (160 MB of float64)
# the pattern sums are used instead (they equal the package's value; tests check both).
PACKAGE_MAX_CELLS = 20_000_000


def _package_fits(coded: _Coded) -> bool:
    return bool(coded.codes.shape[0] * len(coded.values) ** 2 <= PACKAGE_MAX_CELLS)


def _package_nominal_alpha(coded: _Coded) -> float:
    """Nominal alpha computed by the `krippendorff` package from value counts."""
    value_counts = np.zeros((coded.codes.shape[0], len(coded.values)))
    rows, cols = np.nonzero(coded.codes >= 0)
    np.add.at(value_counts, (rows, coded.codes[rows, cols]), 1)
    return float(krippendorff.alpha(value_counts=value_counts, level_of_measurement="nominal"))


def _alpha_reason(pat: _Patterns, sums: _Sums) -> str:
    return NO_PAIRS if float(pat.counts @ sums.pairable) < 2 else NO_VARIATION


# ---------------------------------------------------------------------------------------------
# Public statistics on reliability data (coders x units)


def krippendorff_alpha(reliability_data: Sequence[Sequence[Any]], level: Level = "nominal") -> Estimate:
    """Krippendorff's alpha; nominal/ordinal/interval/ratio via the `krippendorff` package, MASI for sets."""
    if level == "masi":
        return _alpha_estimate(_encode(reliability_data), "masi")
    if level == "nominal":
        coded = _encode(reliability_data)
        estimate = _alpha_estimate(coded, "nominal")
        # Defined-ness from our sums; the value itself from the reference package when it fits.
        if estimate.value is None or not _package_fits(coded):
            return estimate
        return Estimate(_package_nominal_alpha(coded))
    data = np.array([[np.nan if _is_missing(v) else float(v) for v in row]
                     for row in reliability_data], dtype=float)
    pairable = (~np.isnan(data)).sum(axis=0) >= 2
    observed = data[:, pairable]
    observed = observed[~np.isnan(observed)]
    if observed.size < 2:
        return Estimate.undefined(NO_PAIRS)
    if np.unique(observed).size < 2:
        return Estimate.undefined(NO_VARIATION)
    return Estimate(float(krippendorff.alpha(reliability_data=data, level_of_measurement=level)))


def _coefficient(reliability_data: Sequence[Sequence[Any]], name: str,
                 n_categories: int | None = None) -> Estimate:
    _, pat, _, sums = _prepare(reliability_data, "nominal")
    if float(pat.counts @ sums.rated_twice) == 0:
        return Estimate.undefined(NO_PAIRS)
    q = n_categories if n_categories is not None else sums.share_counts.shape[1]
    if name in ("gwet_ac1", "brennan_prediger") and q < 2:
        return Estimate.undefined("fewer than two categories: chance agreement is undefined")
    value = _chance_corrected(pat.counts[None, :].astype(float), sums, n_categories)[name][0]
    return Estimate(float(value)) if not np.isnan(value) else Estimate.undefined(NO_VARIATION)


def percent_agreement(reliability_data: Sequence[Sequence[Any]]) -> Estimate:
    """Share of agreeing rating pairs per item, averaged over items rated at least twice."""
    return _coefficient(reliability_data, "percent_agreement")


def fleiss_kappa(reliability_data: Sequence[Sequence[Any]]) -> Estimate:
    """Fleiss' kappa, with Gwet's generalisation to items rated by different numbers of raters."""
    return _coefficient(reliability_data, "fleiss_kappa")


def gwet_ac1(reliability_data: Sequence[Sequence[Any]], n_categories: int | None = None) -> Estimate:
    """Gwet's AC1; chance agreement uses n_categories (default: the values observed)."""
    return _coefficient(reliability_data, "gwet_ac1", n_categories)


def brennan_prediger(reliability_data: Sequence[Sequence[Any]],
                     n_categories: int | None = None) -> Estimate:
    """Brennan-Prediger kappa: chance agreement 1/q."""
    return _coefficient(reliability_data, "brennan_prediger", n_categories)


def fleiss_kappa_per_category(reliability_data: Sequence[Sequence[Any]]) -> dict[Hashable, Estimate]:
    """Fleiss' per-category kappa: Fleiss' kappa of 'this category' vs 'any other'."""
    coded = _encode(reliability_data)
    out: dict[Hashable, Estimate] = {}
    for code, value in enumerate(coded.values):
        binary = [[None if c < 0 else c == code for c in coder] for coder in coded.codes.T.tolist()]
        out[value] = fleiss_kappa(binary)
    return out


def cohen_kappa(rater_a: Sequence[Any], rater_b: Sequence[Any]) -> Estimate:
    """Cohen's kappa of two raters over the items both rated."""
    coded = _encode([rater_a, rater_b])
    return cohen_kappa_of_codes(coded.codes[:, 0], coded.codes[:, 1], len(coded.values))


def cohen_kappa_of_codes(a: np.ndarray, b: np.ndarray, n_values: int) -> Estimate:
    """Cohen's kappa of two raters given as integer codes (-1 where missing) over n_values values."""
    both = (a >= 0) & (b >= 0)
    n = int(both.sum())
    if n == 0:
        return Estimate.undefined(NO_SHARED_ITEMS)
    a, b = a[both], b[both]
    p_o = float((a == b).mean())
    p_e = float((np.bincount(a, minlength=n_values) * np.bincount(b, minlength=n_values)).sum()) / n**2
    if 1 - p_e <= 1e-12:
        return Estimate.undefined(NO_VARIATION)
    return Estimate((p_o - p_e) / (1 - p_e))


def pairwise_cohen_kappa(reliability_data: Sequence[Sequence[Any]],
                         coders: Sequence[str]) -> dict[tuple[str, str], Estimate]:
    """Cohen's kappa for every pair of coders (exact match of values)."""
    return _pairwise(_encode(reliability_data), coders)


# ---------------------------------------------------------------------------------------------
# Bootstrap


@_one_blas_thread
def krippendorff_alpha_bootstrap(
    reliability_data: Sequence[Sequence[Any]],
    *,
    level: Literal["nominal", "masi"] = "nominal",
    method: CiMethod = "units",
    reps: int = 1000,
    seed: int = 0,
    min_alphas: Sequence[float] = (0.667, 0.8),
) -> BootstrapResult:
    """Bootstrap distribution of alpha: 'units' (items resampled) or 'kalpha' (Krippendorff/Hayes)."""
    coded, pat, distance, sums = _prepare(reliability_data, level)
    if method == "units":
        alpha = _units_bootstrap(pat, sums, distance, reps, seed)["krippendorff_alpha"]
        return _summarise(alpha, method, reps, seed, min_alphas)
    if method != "kalpha":
        raise ValueError(f"unknown bootstrap method {method!r}")
    return _kalpha_bootstrap(coded, pat, sums, distance, reps, seed, min_alphas)


def _unit_weights(pat: _Patterns, reps: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Resamples of the items as pattern counts, in chunks of rows (bounded memory).

    Few patterns: a multinomial over patterns. Many patterns (set values): drawing item indices and
    counting their patterns is cheaper than one binomial per pattern. Both are the same bootstrap.
    """
    n_items = int(pat.counts.sum())
    n_patterns = len(pat.counts)
    if n_items == 0:
        yield np.zeros((reps, 0))
        return
    if n_patterns * 20 <= n_items:
        chunk = max(1, min(reps, 4_000_000 // n_patterns))
        p = pat.counts / n_items
        for start in range(0, reps, chunk):
            yield rng.multinomial(n_items, p, size=min(chunk, reps - start)).astype(np.float64)
        return
    # Items in pattern order: pattern k is items edges[k] to edges[k + 1] - 1. Each drawn item is
    # counted, and a pattern's count is the running total's rise over its items (cheaper than looking
    # up every draw's pattern; the draws are the same, so the counts are too).
    edges = np.r_[0, np.cumsum(pat.counts)]
    chunk = max(1, min(reps, 16))
    for start in range(0, reps, chunk):
        size = min(chunk, reps - start)
        drawn = rng.integers(0, n_items, (size, n_items), dtype=np.int32)
        weights = np.empty((size, n_patterns))
        for row in range(size):
            running = np.r_[0, np.cumsum(np.bincount(drawn[row], minlength=n_items))]
            weights[row] = np.diff(running[edges])
        yield weights


def _units_bootstrap(pat: _Patterns, sums: _Sums, distance: np.ndarray | None, reps: int, seed: int,
                     exact: _Sums | None = None, q: int | None = None) -> dict[str, np.ndarray]:
    """Alpha (and, given `exact`, the kappas, AC1 and percent agreement) for each resample of the items."""
    parts: dict[str, list[np.ndarray]] = defaultdict(list)
    for weights in _unit_weights(pat, reps, np.random.default_rng(seed)):
        parts["krippendorff_alpha"].append(_alpha_from(weights, sums, distance)[0])
        if exact is not None:
            for name, values in _chance_corrected(weights, exact, q).items():
                parts[name].append(values)
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def _summarise(values: np.ndarray, method: str, reps: int, seed: int,
               min_alphas: Sequence[float] = ()) -> BootstrapResult:
    ok = values[~np.isnan(values)]
    if ok.size == 0:
        return BootstrapResult(method, CI_METHODS[method], reps, seed, None,
                               n_undefined=reps, reason="undefined in every resample")
    low, high = np.quantile(ok, [0.025, 0.975])
    return BootstrapResult(
        method, CI_METHODS[method], reps, seed, (float(low), float(high)),
        mean=float(ok.mean()), sd=float(ok.std(ddof=1)) if ok.size > 1 else 0.0,
        q_below={a: float((ok < a).mean()) for a in min_alphas},
        n_undefined=int(reps - ok.size),
    )


def _kalpha_bootstrap(coded: _Coded, pat: _Patterns, sums: _Sums, distance: np.ndarray | None,
                      reps: int, seed: int, min_alphas: Sequence[float]) -> BootstrapResult:
    """Krippendorff's (2006/2011) algorithm, following Stata kalpha (Klein & Reckmann)."""
    weights = pat.counts[None, :].astype(float)
    alpha, defined = _alpha_from(weights, sums, distance)
    if not defined[0]:
        return BootstrapResult("kalpha", CI_METHODS["kalpha"], reps, seed, None,
                               reason=_alpha_reason(pat, sums))
    if alpha[0] in (0.0, 1.0):
        return BootstrapResult("kalpha", CI_METHODS["kalpha"], reps, seed, None,
                               reason="alpha is exactly 0 or 1: the algorithm does not apply")
    n_values = len(coded.values)
    delta = 1.0 - np.eye(n_values) if distance is None else distance
    # Coincidence matrix o_ck = sum_u (n_uc n_uk - [c=k] n_uc) / (m_u - 1), pairable items only.
    m = pat.n_ratings.astype(float)
    scale = np.where(m >= 2, pat.counts / np.maximum(m - 1, 1), 0.0)
    counts = _value_counts(pat)
    coincidence = np.asarray((counts.T @ sparse.diags(scale) @ counts).todense())
    coincidence -= np.diag(np.asarray(counts.T @ scale).reshape(-1))
    n_total = coincidence.sum()
    n_c = coincidence.sum(axis=1)
    d_e = float(n_c @ delta @ n_c) / (n_total * (n_total - 1))
    n_coders = int((coded.codes >= 0).any(axis=0).sum())
    draws = int(min(25 * (coincidence > 1e-12).sum(), round(n_total * (n_coders - 1) / 2)))
    lower = np.tril_indices(n_values)
    cell_p = np.where(lower[0] == lower[1], 1.0, 2.0) * coincidence[lower] / n_total
    cell_p = np.clip(cell_p, 0, None)
    rng = np.random.default_rng(seed)
    drawn = rng.multinomial(draws, cell_p / cell_p.sum(), size=reps)
    boot = 1.0 - drawn @ (delta[lower] / (draws * d_e))
    boot = np.maximum(boot, -1.0)
    # Correction for draws that happen to contain no disagreement at all (alpha* = 1).
    ones = boot == 1.0
    if ones.any():
        diagonal = np.diag(coincidence) / n_total
        if (diagonal > 0).sum() == 1:
            boot[ones] = 0.0
        else:
            n_expected = round(reps * float((diagonal**draws).sum()))
            if n_expected >= ones.sum():
                boot[ones] = 0.0
            else:
                boot = np.sort(boot)
                boot[len(boot) - n_expected:] = 0.0
    boot = np.sort(boot)
    low = boot[max(int(0.025 * reps), 1) - 1]
    high = boot[min(math.floor(0.975 * reps + 1), reps) - 1]
    return BootstrapResult(
        "kalpha", CI_METHODS["kalpha"], reps, seed, (float(low), float(high)),
        mean=float(boot.mean()), sd=float(boot.std(ddof=1)),
        q_below={a: float((boot < a).mean()) for a in min_alphas}, draws=draws,
    )


# ---------------------------------------------------------------------------------------------
# The full report on a table of label sets


@dataclass(frozen=True)
class RatingTable:
    """Items x annotators; a cell is the set of categories one annotator gave one item, or None."""

    items: Sequence[Hashable]
    annotators: list[str]
    cells: list[list[frozenset[str] | None]]

    @property
    def is_nominal(self) -> bool:
        """True when every rating is exactly one category."""
        return all(cell is None or len(cell) == 1 for row in self.cells for cell in row)

    def reliability_data(self) -> list[list[Hashable | None]]:
        """Coders x units; single categories unwrapped when the table is nominal."""
        nominal = self.is_nominal
        return [
            [None if cell is None else (next(iter(cell)) if nominal else cell)
             for cell in (row[j] for row in self.cells)]
            for j in range(len(self.annotators))
        ]

    def at_depth(self, depth: int, separator: str = PATH_SEPARATOR) -> RatingTable:
        """The same table with every category path cut to its ancestor at `depth` (1 = top level)."""
        def cut(cell: frozenset[str] | None) -> frozenset[str] | None:
            if cell is None:
                return None
            return frozenset(separator.join(c.split(separator)[:depth]) for c in cell)
        return RatingTable(self.items, self.annotators, [[cut(c) for c in row] for row in self.cells])


def _value(estimate: Estimate, name: str, undefined: dict[str, str]) -> float | None:
    if estimate.value is None:
        undefined[name] = estimate.reason or "undefined"
        return None
    return round(estimate.value, 6)


def _rounded_pair(pair: tuple[float, float] | None) -> list[float] | None:
    return None if pair is None else [round(pair[0], 6), round(pair[1], 6)]


@dataclass(frozen=True)
class CodedTable:
    """A RatingTable as arrays: codes[i, j] is annotator j's category set on item i as an index
    into `values`, -1 where they gave none. Built from label rows by `table_from_labels`."""

    items: np.ndarray
    annotators: list[str]
    codes: np.ndarray
    values: list[frozenset[str]]

    def cells(self) -> Iterator[tuple[Any, dict[str, frozenset[str]]]]:
        """(item, annotator -> category set) for each item, in item order (items as `items.tolist()` gives
        them: Python numbers for the label tables' prediction ids)."""
        for item, row in zip(self.items.tolist(), self.codes.tolist()):
            yield item, {self.annotators[j]: self.values[c] for j, c in enumerate(row) if c >= 0}

    @functools.cached_property
    def coded(self) -> _Coded[frozenset[str]]:
        """The codes as the statistics take them, kept so that the report and the disagreement list
        find the ratings and each item's sorted row once."""
        return _Coded(self.codes, self.values)


def disagreeing_items(table: CodedTable) -> np.ndarray:
    """Items (in table order) that at least two annotators labelled with different category sets."""
    if not len(table.items):
        return table.items
    rows, row_units = table.coded.rows  # each item's set codes in ascending order, -1 padded
    n_rated = (rows >= 0).sum(axis=1)
    highest = rows[np.arange(len(rows)), n_rated - 1]
    disagreeing: np.ndarray = table.items[row_units[(n_rated >= 2) & (rows[:, 0] != highest)]]
    return disagreeing


def accuracy_against_reference(table: CodedTable, reference: Mapping[Any, frozenset[str]]
                               ) -> dict[str, dict[str, Any]]:
    """Per annotator, on the items they labelled that have a reference (gold): how many, the share whose
    set equals the reference exactly, and Cohen's kappa of their sets against it (sets as labels)."""
    # Table items are sorted ids: each reference item is looked up, not every item put in a dict.
    keys = np.asarray(list(reference))
    found = np.searchsorted(table.items, keys) if len(keys) else np.zeros(0, dtype=np.int64)
    inside = found < len(table.items)
    inside[inside] = table.items[found[inside]] == keys[inside]  # compared in numpy, not item by item
    rows = found[inside].astype(np.int64)
    values = list(reference.values())
    shared = [values[k] for k in np.flatnonzero(inside).tolist()]  # the reference's sets on those rows
    # Sets as codes over one numbering of their names (the table's sets first), so equal names are
    # equal codes and the comparison runs in numpy; each distinct set is named once.
    names: dict[str, int] = {}
    named: dict[frozenset[str], int] = {}

    def name_code(value: frozenset[str]) -> int:
        if value not in named:
            named[value] = names.setdefault(" + ".join(sorted(value)), len(names))
        return named[value]

    table_code = np.array([name_code(v) for v in table.values] + [-1], dtype=np.int64)
    reference_code = np.array([name_code(v) for v in shared], dtype=np.int64)
    sets = {v: k for k, v in enumerate(table.values)}  # exact match compares sets, not names
    same_set = np.array([sets.get(v, -2) for v in shared], dtype=np.int64)
    out: dict[str, dict[str, Any]] = {}
    for j, annotator in enumerate(table.annotators):
        codes = table.codes[rows, j] if len(rows) else np.zeros(0, dtype=np.int64)
        rated = codes >= 0
        if not rated.any():
            out[annotator] = {"n_items": 0, "accuracy": None, "cohen_kappa": None,
                              "reason": "no gold on the items this annotator labelled"}
            continue
        given, gold = table_code[codes[rated]], reference_code[rated]
        kappa = cohen_kappa_of_codes(given, gold, len(names))
        n = int(rated.sum())
        out[annotator] = {"n_items": n,
                          "accuracy": round(int((codes[rated] == same_set[rated]).sum()) / n, 6),
                          "cohen_kappa": None if kappa.value is None else round(kappa.value, 6),
                          "reason": kappa.reason}
    return out


_BITS = 63  # category bits per int64 word of a set's bit mask (the sign bit is left alone)
_DENSE_LIMIT = 1 << 26  # ids spanning fewer values than this are ranked with a presence array, not a sort


def table_from_labels(items: np.ndarray, annotators: np.ndarray, categories: np.ndarray, *,
                      annotator_names: Mapping[int, str],
                      category_paths: Mapping[int, str]) -> CodedTable:
    """Label rows (item id, annotator id, category id; one row per category of a set) -> a CodedTable.

    Items are sorted by id and annotators by name; ids naming the same annotator or the same path are
    merged. Sets are numbered in order of first appearance reading row by row, as `_encode_table`
    numbers a RatingTable's cells, so every statistic and bootstrap draw is the same for both. All in
    numpy: a set is a bit mask over the categories, so a million rows never become Python sets, and
    ids are ranked by presence arrays over their span and sets numbered by hashing (no sort of the
    rows, which was a third of a judge page at a million labels).
    """
    items = np.asarray(items, dtype=np.int64)
    if len(items) == 0:
        return CodedTable(items, [], np.zeros((0, 0), dtype=np.int64), [])
    item_ids, row = dense_sorted(items)
    column, names = _dense_by_name(np.asarray(annotators, dtype=np.int64), annotator_names)
    element, paths = _dense_by_name(np.asarray(categories, dtype=np.int64), category_paths)
    n_columns, n_elements = len(names), len(paths)
    # One entry per (cell, category), sorted: cells in row-major order, a cell's categories together.
    key = _distinct_sorted((row * n_columns + column) * n_elements + element, len(item_ids) * n_columns * n_elements)
    cell, element = np.divmod(key, n_elements)
    starts = np.flatnonzero(np.r_[True, cell[1:] != cell[:-1]])
    bit = np.left_shift(np.int64(1), element % _BITS)
    word = element // _BITS
    masks = np.stack([np.bitwise_or.reduceat(np.where(word == w, bit, 0), starts)
                      for w in range(-(-n_elements // _BITS))], axis=1)
    # Sets numbered by the first cell holding them (cells are in row-major order).
    if masks.shape[1] == 1:
        code_of_cell, _ = pd.factorize(masks[:, 0])
    else:
        code_of_cell, _ = pd.factorize(pd.MultiIndex.from_arrays(list(masks.T)))
    code_of_cell = code_of_cell.astype(np.int64)
    # Codes count up from 0 in first-appearance order: a set's first cell is where the running maximum rises.
    first = np.flatnonzero(code_of_cell > np.maximum.accumulate(np.r_[-1, code_of_cell[:-1]]))
    codes = np.full(len(item_ids) * n_columns, -1, dtype=np.int64)
    codes[cell[starts]] = code_of_cell
    ends = np.r_[starts[1:], len(cell)]
    values = [frozenset(paths[e] for e in element[starts[c]:ends[c]].tolist()) for c in first.tolist()]
    return CodedTable(item_ids, names, codes.reshape(len(item_ids), n_columns), values)


def dense_sorted(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`np.unique(ids, return_inverse=True)` (non-negative ids): by a presence array over their span when
    it is small, as it is for database ids; by a sort otherwise."""
    low = int(ids.min())
    span = int(ids.max()) - low + 1
    if low < 0 or span > max(_DENSE_LIMIT, 4 * len(ids)):
        distinct, inverse = np.unique(ids, return_inverse=True)
        return distinct, inverse.reshape(-1)
    present = np.zeros(span, dtype=bool)
    present[ids - low] = True
    rank = np.cumsum(present) - 1
    return np.flatnonzero(present) + low, rank[ids - low]


def _distinct_sorted(keys: np.ndarray, span: int) -> np.ndarray:
    """`np.unique(keys)` for keys in [0, span): a presence array when the span is small, else a sort."""
    if span > max(_DENSE_LIMIT, 4 * len(keys)):
        distinct: np.ndarray = np.unique(keys)
        return distinct
    present = np.zeros(span, dtype=bool)
    present[keys] = True
    return np.flatnonzero(present)


def _dense_by_name(ids: np.ndarray, name_of: Mapping[int, str]) -> tuple[np.ndarray, list[str]]:
    """ids -> indexes into the sorted distinct names they stand for."""
    distinct, inverse = dense_sorted(ids)
    id_names = [name_of[int(i)] for i in distinct.tolist()]
    names = sorted(set(id_names))
    position = {name: k for k, name in enumerate(names)}
    return np.array([position[n] for n in id_names], dtype=np.int64)[inverse], names


def _encode_table(table: RatingTable | CodedTable) -> _Coded[frozenset[str]]:
    """Items x annotators of category sets -> integer codes (one code per distinct set)."""
    if isinstance(table, CodedTable):
        return table.coded
    lookup: dict[frozenset[str], int] = {}
    flat = [lookup.setdefault(cell, len(lookup)) if cell is not None else -1
            for row in table.cells for cell in row]
    codes = np.array(flat, dtype=np.int64).reshape(len(table.cells), len(table.annotators))
    return _Coded(codes, list(lookup))


def _recoding(values: Sequence[V], mapping: Mapping[V, W]) -> tuple[np.ndarray, list[W]]:
    """Every distinct value mapped through `mapping`, values that become equal merged: old code -> new
    code (with a trailing -1, so -1 maps to -1), and the new values."""
    lookup: dict[W, int] = {}
    remap = np.array([lookup.setdefault(mapping[v], len(lookup)) for v in values] + [-1], dtype=np.int64)
    return remap, list(lookup)


def _recoded_patterns(pat: _Patterns, remap: np.ndarray, n_values: int) -> _Patterns | None:
    """The patterns of the items after recoding their values, from the patterns alone: items with equal
    patterns stay equal, so each pattern is recoded once and counted as often as it occurred. The same
    patterns in the same order as from the recoded items (None when the rows are too wide for keys)."""
    width = pat.packed.shape[1]
    if not _keys_fit(width, n_values):
        return None
    rows = _sort_each_row(remap[pat.packed])
    return _patterns_of_keys(_row_keys(rows, n_values), pat.counts, width, n_values)


def _is_nominal(coded: _Coded[frozenset[str]]) -> bool:
    return all(len(v) == 1 for v in coded.values)


def _depth_of(value: frozenset[str], separator: str) -> int:
    return max((len(c.split(separator)) for c in value), default=0)


def _cut(value: frozenset[str], depth: int, separator: str) -> frozenset[str]:
    return frozenset(separator.join(c.split(separator)[:depth]) for c in value)


def per_category_alpha(table: RatingTable | CodedTable) -> dict[str, Estimate]:
    """Alpha of 'category present' vs 'absent' for each category, all categories at once."""
    return _per_category(_encode_table(table))


def _per_category(coded: _Coded, pat: _Patterns | None = None) -> dict[str, Estimate]:
    pat = pat if pat is not None else _patterns_of_rows(coded.rows[0], len(coded.values))
    member, elements = _membership(coded.values)
    counts = _value_counts(pat)
    m = pat.n_ratings.astype(float)
    weight = np.where(m >= 2, pat.counts, 0.0)
    present = np.asarray((counts @ sparse.csr_matrix(member.astype(float))).todense())
    absent = m[:, None] - present
    n_total = float(weight @ m)
    if n_total < 2:
        return {str(e): Estimate.undefined(NO_PAIRS) for e in sorted(elements, key=str)}
    # Binary alpha: D_o = sum_u 2 n1 n0 / (m_u - 1) / n..,  D_e = 2 N1 N0 / (n.. (n.. - 1)).
    observed = (weight / np.maximum(m - 1, 1)) @ (2 * present * absent) / n_total
    n_present = weight @ present
    expected = 2 * n_present * (n_total - n_present) / (n_total * (n_total - 1))
    out: dict[str, Estimate] = {}
    for k, element in enumerate(elements):
        if expected[k] <= 1e-12:
            out[str(element)] = Estimate.undefined(NO_VARIATION)
        else:
            out[str(element)] = Estimate(float(1 - observed[k] / expected[k]))
    return dict(sorted(out.items()))


def alpha_by_depth(table: RatingTable | CodedTable,
                   separator: str = PATH_SEPARATOR) -> dict[int, Estimate]:
    """Alpha after cutting every category path to its ancestor at depth d, for each depth."""
    return _alpha_by_depth(_encode_table(table), separator)


def _alpha_by_depth(coded: _Coded[frozenset[str]], separator: str,
                    uncut: Estimate | None = None, pat: _Patterns | None = None) -> dict[int, Estimate]:
    """`uncut`: the table's own alpha from pattern sums, reused at depths that cut no path; `pat`: the
    table's patterns, when already found."""
    max_depth = max((_depth_of(v, separator) for v in coded.values), default=0)
    out = {}
    for depth in range(1, max_depth + 1):
        mapping = {v: _cut(v, depth, separator) for v in coded.values}
        if uncut is not None and all(cut == v for v, cut in mapping.items()):
            out[depth] = uncut  # the same codes, so the same computation
            continue
        remap, values = _recoding(coded.values, mapping)
        if pat is None:
            pat = _patterns_of_rows(coded.rows[0], len(coded.values))
        cut = _recoded_patterns(pat, remap, len(values))
        if cut is None:
            cut = _patterns_of_rows(_Coded(remap[coded.codes], values).rows[0], len(values))
        distance = None if all(len(v) == 1 for v in values) else _masi_matrix(values)
        out[depth] = _alpha_of(cut, _sums(cut, distance), distance)
    return out


@_one_blas_thread
def agreement_report(
    table: RatingTable | CodedTable,
    *,
    reps: int = 1000,
    seed: int = 0,
    ci_method: CiMethod = "units",
    n_categories: int | None = None,
    separator: str = PATH_SEPARATOR,
) -> dict[str, Any]:
    """Every agreement statistic for a table, as one JSON-ready dict (undefined -> null + reason)."""
    coded = _encode_table(table)
    nominal = _is_nominal(coded)
    level: Level = "nominal" if nominal else "masi"
    _, pat, distance, sums = _prepare(coded, level)
    exact = sums if distance is None else _sums(pat, None)  # exact match of whole values
    undefined: dict[str, str] = {}
    alpha = pattern_alpha = _alpha_of(pat, sums, distance)
    computed_by = "pattern sums (MASI distance)" if not nominal else "pattern sums (large table)"
    if nominal and alpha.value is not None and _package_fits(coded):
        alpha = Estimate(_package_nominal_alpha(coded))
        computed_by = "krippendorff package"
    q = n_categories if nominal else None
    point = _chance_corrected(pat.counts[None, :].astype(float), exact, q)
    rated_twice = float(pat.counts @ exact.rated_twice) if len(pat.counts) else 0.0

    def chance(name: str) -> Estimate:
        if rated_twice == 0:
            return Estimate.undefined(NO_PAIRS)
        value = point[name][0]
        return Estimate(float(value)) if not np.isnan(value) else Estimate.undefined(NO_VARIATION)

    report: dict[str, Any] = {
        "level": level,
        "value_note": ("each rating is one category" if nominal else
                       "ratings are category sets: alpha uses MASI distance; the kappas, AC1 and "
                       "percent agreement count two sets as agreeing only when equal"),
        "krippendorff_alpha": _value(alpha, "krippendorff_alpha", undefined),
        "alpha_computed_by": computed_by,
    }
    intervals: dict[str, list[float] | None] = {}
    if ci_method == "units":
        for name, values in _units_bootstrap(pat, sums, distance, reps, seed, exact, q).items():
            intervals[name] = _rounded_pair(_summarise(values, "units", reps, seed).ci95)
    else:
        boot = _kalpha_bootstrap(coded, pat, sums, distance, reps, seed, ())
        intervals["krippendorff_alpha"] = _rounded_pair(boot.ci95)
    report["ci95"] = intervals["krippendorff_alpha"]
    report["ci_method"] = f"{ci_method}: {CI_METHODS[ci_method]}"
    report["bootstrap"] = {"reps": reps, "seed": seed}
    report["confidence_intervals"] = intervals
    for name in ("fleiss_kappa", "gwet_ac1", "brennan_prediger", "percent_agreement"):
        report[name] = _value(chance(name), name, undefined)
    n_ratings = pat.n_ratings
    report["n_items"] = int(pat.counts @ (n_ratings >= 2)) if len(pat.counts) else 0
    report["n_items_with_labels"] = int(pat.counts.sum())
    report["n_annotators"] = int((coded.codes >= 0).any(axis=0).sum())
    report["n_ratings"] = int(pat.counts @ n_ratings) if len(pat.counts) else 0
    report["n_categories"] = len(_membership(coded.values)[1])
    # The q in Gwet's and Brennan-Prediger's chance agreement (distinct sets when values are sets).
    report["n_categories_for_chance"] = q if q is not None else exact.share_counts.shape[1]
    report["per_category"] = {
        name: _value(est, f"per_category[{name}]", undefined)
        for name, est in _per_category(coded, pat).items()
    }
    pairs = _pair_statistics(coded, distance)
    report["per_annotator"] = _per_annotator(table.annotators, coded, alpha, distance, pairs,
                                             undefined)
    names = [f"{table.annotators[i]} | {table.annotators[j]}" for i, j in pairs]
    report["pairwise_cohen_kappa"] = {
        name: _value(pair.kappa, f"pairwise_cohen_kappa[{name}]", undefined)
        for name, pair in zip(names, pairs.values())
        if pair.kappa.reason != NO_SHARED_ITEMS
    }
    report["per_depth"] = {
        str(d): _value(est, f"per_depth[{d}]", undefined)
        for d, est in _alpha_by_depth(coded, separator, pattern_alpha, pat).items()
    }
    report["undefined"] = undefined
    return report


def _coder_pairs(coded: _Coded) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """(i, j, coder i's codes, coder j's codes) on the items both rated, in item order, for every i < j
    (empty arrays for coders who share no item).

    One grouped pass over the ratings: each item's rating pairs, sorted by (coder pair, item). The cost
    follows the rating pairs, never items x coders^2; with 30 coders the pairs of columns took 0.3 s.
    """
    n_coders = coded.codes.shape[1]
    units, coders, values = coded.entries  # row by row: coders ascend within an item
    if len(units):
        starts = np.flatnonzero(np.r_[True, units[1:] != units[:-1]])
        m = np.diff(np.r_[starts, len(units)])
        # Entry e at place p of an item rated m times pairs with the m - 1 - p entries after it: all pairs in
        # item order, then grouped by coder pair by a stable sort (radix on 16 bits when the ids fit).
        after = np.repeat(m, m) - (np.arange(len(units)) - np.repeat(starts, m)) - 1
        a_entry = np.repeat(np.arange(len(units)), after)
        b_entry = a_entry + 1 + np.arange(len(a_entry)) - np.repeat(np.cumsum(after) - after, after)
    else:
        a_entry = b_entry = np.zeros(0, dtype=np.int64)
    pair = coders[a_entry].astype(np.int64) * n_coders + coders[b_entry]
    order = np.argsort(pair.astype(np.int16) if n_coders * n_coders <= np.iinfo(np.int16).max else pair,
                       kind="stable")
    pair, a_values, b_values = pair[order], values[a_entry[order]], values[b_entry[order]]
    bounds = np.searchsorted(pair, np.arange(n_coders * n_coders + 1))
    for i in range(n_coders):
        for j in range(i + 1, n_coders):
            k = i * n_coders + j
            yield i, j, a_values[bounds[k]:bounds[k + 1]], b_values[bounds[k]:bounds[k + 1]]


def _pairwise(coded: _Coded, coders: Sequence[str]) -> dict[tuple[str, str], Estimate]:
    return {(coders[i], coders[j]): cohen_kappa_of_codes(a, b, len(coded.values))
            for i, j, a, b in _coder_pairs(coded)}


@dataclass(frozen=True)
class _PairStatistic:
    kappa: Estimate
    n_shared: int  # items both coders rated
    agreement: float  # sum over those items of 1 - distance (exact matches if nominal)


def _pair_statistics(coded: _Coded,
                     distance: np.ndarray | None) -> dict[tuple[int, int], _PairStatistic]:
    """Cohen's kappa and summed agreement of every pair of coders (i < j), in one pass over the pairs."""
    out = {}
    for i, j, a, b in _coder_pairs(coded):
        agreement = float((a == b).sum()) if distance is None else float((1 - distance[a, b]).sum())
        out[(i, j)] = _PairStatistic(cohen_kappa_of_codes(a, b, len(coded.values)), len(a), agreement)
    return out


def _per_annotator(annotators: list[str], coded: _Coded, alpha: Estimate,
                   distance: np.ndarray | None, pairs: dict[tuple[int, int], _PairStatistic],
                   undefined: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Each annotator against the others: items, pair agreement, mean Cohen's kappa, alpha without."""
    _, coders, _ = coded.entries
    by_coder = np.argsort(coders, kind="stable")
    bounds = np.searchsorted(coders[by_coder], np.arange(len(annotators) + 1))
    withouts = (_alphas_without_each(coded, [by_coder[bounds[j]:bounds[j + 1]] for j in range(len(annotators))],
                                     distance)
                if len(annotators) > 2 else [Estimate.undefined("only two annotators")] * len(annotators))
    out = {}
    for j, name in enumerate(annotators):
        agree_sum, n_pairs = 0.0, 0
        for k in range(len(annotators)):
            if k == j:
                continue
            pair = pairs[(min(j, k), max(j, k))]
            n_pairs += pair.n_shared
            agree_sum += pair.agreement
        own_kappas = [pair.kappa.value for (a, b), pair in pairs.items()
                      if j in (a, b) and pair.kappa.value is not None]
        without = withouts[j]
        out[name] = {
            "n_items": int(bounds[j + 1] - bounds[j]),
            "n_pairs_with_others": n_pairs,
            # Mean of 1 - distance over this annotator's pairs (share of exact matches if nominal).
            "agreement_with_others": round(agree_sum / n_pairs, 6) if n_pairs else None,
            "mean_cohen_kappa": round(float(np.mean(own_kappas)), 6) if own_kappas else None,
            "alpha_without": _value(without, f"per_annotator[{name}].alpha_without", undefined),
            # Positive: alpha is higher with this annotator than without.
            "alpha_change_from_annotator": (
                round(alpha.value - without.value, 6)
                if alpha.value is not None and without.value is not None else None),
        }
    return out


def _alphas_without_each(coded: _Coded, entries_of: list[np.ndarray],
                         distance: np.ndarray | None) -> list[Estimate]:
    """Alpha of the table without each coder's column; `entries_of[j]` indexes coder j's ratings in
    `coded.entries`.

    Deleting a column only changes the items that coder rated: each loses one value. So every rating's
    item is reduced once, the full and reduced rows are numbered together as pattern keys, each distinct
    pattern's sums are computed once, and a coder's alpha is the full table's pattern counts with their
    items moved from the full pattern to the reduced one. The sums are taken over the same patterns in
    the same order as for the table without the column, so the alphas are the same bits.
    """
    n_values = len(coded.values)
    units, _, values = coded.entries
    rows, row_units = coded.rows
    row_of_unit = np.full(coded.codes.shape[0], -1, dtype=np.int64)
    row_of_unit[row_units] = np.arange(len(row_units))
    entry_rows = row_of_unit[units]
    width = rows.shape[1]
    if not _keys_fit(width, n_values):  # wide rows of many distinct values: compare rows, coder by coder
        out = []
        for mine in entries_of:
            rest = rows.copy()
            rest[entry_rows[mine]] = _without_one(rows[entry_rows[mine]], values[mine])
            pat = _patterns_of_rows(rest, n_values)
            out.append(_alpha_of(pat, _sums(pat, distance), distance))
        return out
    # Every full row's key, then every rating's item without that rating.
    keys = np.concatenate([_row_keys(rows, n_values),
                           _row_keys(_without_one(rows[entry_rows], values), n_values)])
    code, distinct = pd.factorize(keys)
    order = np.argsort(distinct)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    index, distinct = rank[code], distinct[order]  # keys as positions among the sorted distinct keys
    full_index, reduced_index = index[:len(rows)], index[len(rows):]
    full = np.bincount(full_index, minlength=len(distinct))
    sums = _sums(_Patterns(_decode_keys(distinct, width, n_values), full, n_values), distance)
    out = []
    for mine in entries_of:
        counts = (full - np.bincount(full_index[entry_rows[mine]], minlength=len(distinct))
                  + np.bincount(reduced_index[mine], minlength=len(distinct)))
        keep = (counts > 0) & (distinct != 0)
        weights = counts[keep][None, :].astype(float)
        # Pair counts are whole numbers, so summing them over every key (zeros included) changes nothing.
        alpha, defined = _alpha_of_totals(weights @ sums.pairable[keep], weights @ sums.disagreement[keep],
                                          _weighted(sums.pair_counts, counts[None, :].astype(float)), distance)
        out.append(Estimate(float(alpha[0])) if defined[0] else
                   Estimate.undefined(NO_PAIRS if float(counts[keep] @ sums.pairable[keep]) < 2 else NO_VARIATION))
    return out


def table_alpha(table: RatingTable | CodedTable) -> Estimate:
    """Alpha of a table: nominal when every rating is one category, else MASI."""
    coded = _encode_table(table)
    return _alpha_estimate(coded, "nominal" if _is_nominal(coded) else "masi")
