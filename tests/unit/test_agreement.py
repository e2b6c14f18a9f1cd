"""Agreement statistics against published worked examples and hand arithmetic (no database)."""
from __future__ import annotations

import json
from pathlib import Path

import krippendorff
import numpy as np
import pytest

from annotation.core.agreement import (
    NO_PAIRS,
    NO_VARIATION,
    RatingTable,
    agreement_report,
    alpha_by_depth,
    brennan_prediger,
    cohen_kappa,
    fleiss_kappa,
    fleiss_kappa_per_category,
    gwet_ac1,
    krippendorff_alpha,
    krippendorff_alpha_bootstrap,
    masi_distance,
    pairwise_cohen_kappa,
    per_category_alpha,
    percent_agreement,
)

VECTORS = json.loads(
    (Path(__file__).resolve().parents[1] / "data" / "reference" / "agreement_vectors.json").read_text()
)
BY_NAME = {v["name"]: v for v in VECTORS}


def _compute(vector: dict):
    """Run one reference entry through the public function for its metric."""
    data, metric = vector["data"], vector["metric"]
    if metric == "krippendorff_alpha":
        return krippendorff_alpha(data, vector["level"]).value
    if metric == "fleiss_kappa":
        return fleiss_kappa(data).value
    if metric == "gwet_ac1":
        return gwet_ac1(data).value
    if metric == "brennan_prediger":
        return brennan_prediger(data).value
    if metric == "percent_agreement":
        return percent_agreement(data).value
    if metric == "cohen_kappa":
        return cohen_kappa(data[0], data[1]).value
    if metric == "masi_distance":
        return masi_distance(data[0][0], data[1][0])
    raise AssertionError(f"no test route for metric {metric}")


POINT_VECTORS = [v for v in VECTORS if v["metric"] != "krippendorff_alpha_bootstrap"]


def test_every_reference_entry_has_a_route() -> None:
    metrics = {v["metric"] for v in VECTORS}
    assert metrics <= {"krippendorff_alpha", "fleiss_kappa", "gwet_ac1", "brennan_prediger",
                       "percent_agreement", "cohen_kappa", "masi_distance",
                       "krippendorff_alpha_bootstrap"}
    assert len(POINT_VECTORS) + 1 == len(VECTORS)


@pytest.mark.parametrize("vector", POINT_VECTORS, ids=lambda v: v["name"])
def test_reference_value_is_reproduced(vector: dict) -> None:
    assert _compute(vector) == pytest.approx(vector["expected"], abs=vector["tolerance"])


def test_kalpha_bootstrap_reproduces_the_reference_distribution() -> None:
    vector = BY_NAME["krippendorff2011_C_nominal_bootstrap_kalpha_algorithm"]
    expected, tol = vector["expected"], vector["tolerance"]
    # M = min(25 x nonzero cells of o_ck, n.. (m - 1) / 2) = min(25 x 11, 40 x 3 / 2) = 60 draws.
    result = krippendorff_alpha_bootstrap(vector["data"], method="kalpha", reps=20000, seed=1,
                                          min_alphas=(0.667, 0.8))
    assert result.draws == expected["M_draws"]
    assert result.mean == pytest.approx(expected["mean"], abs=tol)
    assert result.sd == pytest.approx(expected["sd"], abs=tol)
    assert result.ci95[0] == pytest.approx(expected["ci95"][0], abs=tol)
    assert result.ci95[1] == pytest.approx(expected["ci95"][1], abs=tol)
    assert result.q_below[0.667] == pytest.approx(expected["q_alpha_below_0.667"], abs=tol)
    assert result.q_below[0.8] == pytest.approx(expected["q_alpha_below_0.800"], abs=tol)
    assert result.method == "kalpha" and "Krippendorff/Hayes" in result.description


def test_units_bootstrap_is_wider_than_kalpha_as_the_reference_note_says() -> None:
    vector = BY_NAME["krippendorff2011_C_nominal_bootstrap_kalpha_algorithm"]
    # The reference note: items bootstrap sd = 0.1434, CI95 = (0.4104, 1.0000).
    units = krippendorff_alpha_bootstrap(vector["data"], method="units", reps=20000, seed=1)
    assert units.sd == pytest.approx(0.1434, abs=0.01)
    assert units.ci95[0] == pytest.approx(0.4104, abs=0.02)
    assert units.ci95[1] == pytest.approx(1.0, abs=1e-9)
    assert "items" in units.description


def test_bootstrap_is_reproducible_with_a_seed() -> None:
    data = BY_NAME["krippendorff2011_C_nominal"]["data"]
    first = krippendorff_alpha_bootstrap(data, reps=500, seed=7)
    again = krippendorff_alpha_bootstrap(data, reps=500, seed=7)
    other = krippendorff_alpha_bootstrap(data, reps=500, seed=8)
    assert first.ci95 == again.ci95
    assert first.ci95 != other.ci95


def test_example_c_alpha_shows_its_arithmetic() -> None:
    # Krippendorff 2011 example C: n.. = 40 pairable values, D_o = 0.200, D_e = 0.779,
    # alpha = 1 - D_o / D_e = 1 - 0.2 / 0.7785 = 0.7434.
    data = BY_NAME["krippendorff2011_C_nominal"]["data"]
    assert krippendorff_alpha(data).value == pytest.approx(1 - 0.2 / (0.2 / (1 - 0.743421)), abs=1e-6)


def test_swapped_pair_alpha_is_minus_half() -> None:
    # Units (A,B) and (B,A): o_AB = o_BA = 2, n.. = 4, D_o = 4/4 = 1,
    # D_e = (2 x 2 + 2 x 2) / (4 x 3) = 2/3, alpha = 1 - 1 / (2/3) = -0.5.
    assert krippendorff_alpha([["A", "B"], ["B", "A"]]).value == pytest.approx(-0.5)


def test_cohen_kappa_two_by_two_arithmetic() -> None:
    # 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no: p_o = 35/50 = 0.7,
    # p_e = 0.5 x 0.6 + 0.5 x 0.4 = 0.5, kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4.
    a = ["y"] * 25 + ["n"] * 25
    b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert cohen_kappa(a, b).value == pytest.approx(0.4)


def test_gwet_chance_agreements_for_raw4raters() -> None:
    # irrCAC: p_a = 0.8181818; Fleiss p_e = 0.2387153, Gwet p_e = 0.1903212, BP p_e = 1/5.
    data = BY_NAME["gwet_raw4raters_fleiss_kappa"]["data"]
    p_a = 0.8181818
    assert fleiss_kappa(data).value == pytest.approx((p_a - 0.2387153) / (1 - 0.2387153), abs=1e-6)
    assert gwet_ac1(data).value == pytest.approx((p_a - 0.1903212) / (1 - 0.1903212), abs=1e-6)
    assert brennan_prediger(data).value == pytest.approx((p_a - 0.2) / 0.8, abs=1e-6)
    # With 10 possible categories instead of the 5 observed, BP p_e = 0.1.
    assert brennan_prediger(data, n_categories=10).value == pytest.approx((p_a - 0.1) / 0.9, abs=1e-6)


def test_fleiss_1971_per_category_kappas_match_the_published_ones() -> None:
    vector = BY_NAME["fleiss1971_kappa"]
    per_category = fleiss_kappa_per_category(vector["data"])
    for category, published in vector["extra"]["category_kappa"].items():
        # The reference note: published values are rounded; tolerance 0.005.
        assert per_category[int(category)].value == pytest.approx(published, abs=0.005)


def test_masi_alpha_agrees_with_the_krippendorff_package_given_the_same_distance() -> None:
    sets = [[{"a"}, {"a", "b"}, {"c"}, {"a"}, None, {"b", "c"}],
            [{"a"}, {"a"}, {"c"}, {"b"}, {"a"}, {"b"}],
            [{"a", "b"}, {"a", "b"}, None, {"b"}, {"a"}, {"c"}]]
    values = sorted({frozenset(s) for row in sets for s in row if s}, key=sorted)
    index = {v: i for i, v in enumerate(values)}
    numeric = [[np.nan if s is None else index[frozenset(s)] for s in row] for row in sets]
    table = np.array([[masi_distance(a, b) for b in values] for a in values])

    def masi_metric(v1, v2, i1, i2, n_v, dtype=np.float64):
        return table[np.asarray(v1, dtype=int), np.asarray(v2, dtype=int)]

    expected = krippendorff.alpha(reliability_data=numeric, value_domain=list(range(len(values))),
                                  level_of_measurement=masi_metric)
    assert krippendorff_alpha(sets, "masi").value == pytest.approx(expected, abs=1e-12)


def test_masi_alpha_equals_nominal_alpha_when_every_set_has_one_element() -> None:
    data = BY_NAME["wikipedia_alpha_nominal"]["data"]
    as_sets = [[None if v is None else [v] for v in row] for row in data]
    assert krippendorff_alpha(as_sets, "masi").value == pytest.approx(0.691358, abs=1e-6)


@pytest.mark.parametrize("function", [krippendorff_alpha, fleiss_kappa, percent_agreement])
def test_fewer_than_two_ratings_per_item_is_undefined_not_a_crash(function) -> None:
    estimate = function([[1, None, 3], [None, 2, None]])
    assert estimate.value is None
    assert estimate.reason == NO_PAIRS


@pytest.mark.parametrize("level", ["nominal", "interval", "masi"])
def test_no_variation_alpha_is_undefined_with_a_reason(level: str) -> None:
    data = [[[3], [3]], [[3], [3]]] if level == "masi" else [[3, 3, 3], [3, 3, 3]]
    estimate = krippendorff_alpha(data, level)
    assert estimate.value is None
    assert estimate.reason == NO_VARIATION


def test_no_variation_kappa_is_undefined_but_ac1_with_known_categories_is_one() -> None:
    data = [["x", "x", "x"], ["x", "x", "x"]]
    assert fleiss_kappa(data).value is None
    assert gwet_ac1(data).value is None  # one observed category: chance agreement undefined
    # With the taxonomy's 5 categories, p_e = 0 and AC1 = (1 - 0) / (1 - 0) = 1.
    assert gwet_ac1(data, n_categories=5).value == pytest.approx(1.0)


def test_bootstrap_of_undefined_alpha_gives_no_interval() -> None:
    result = krippendorff_alpha_bootstrap([[3, 3], [3, 3]], method="kalpha", reps=100)
    assert result.ci95 is None and result.reason == NO_VARIATION
    units = krippendorff_alpha_bootstrap([[3, 3], [3, 3]], method="units", reps=100)
    assert units.ci95 is None and units.n_undefined == 100


def test_pairwise_cohen_kappa_names_each_pair() -> None:
    kappas = pairwise_cohen_kappa([["a", "b", "a"], ["a", "b", "b"], [None, None, None]],
                                  ["ann", "bob", "cat"])
    # ann vs bob: p_o = 2/3, p_e = (2/3)(1/3) + (1/3)(2/3) = 4/9, kappa = (6/9 - 4/9) / (5/9) = 0.4.
    assert kappas[("ann", "bob")].value == pytest.approx(0.4)
    assert kappas[("ann", "cat")].value is None


def _table(rows: list[list[set[str] | None]], annotators=("a1", "a2", "a3")) -> RatingTable:
    return RatingTable(list(range(len(rows))), list(annotators),
                       [[None if c is None else frozenset(c) for c in row] for row in rows])


def test_per_category_alpha_is_binary_alpha_of_category_vs_rest() -> None:
    rows = [[{"X"}, {"X"}, {"Y"}], [{"Y"}, {"Y"}, {"Y"}], [{"X"}, {"X"}, {"X"}], [{"Z"}, {"Y"}, {"Z"}]]
    per_category = per_category_alpha(_table(rows))
    # X vs rest, 12 values (5 ones): o_01 = o_10 = 1 (item 1), so D_o = 2/12 = 1/6;
    # D_e = 2 * 7 * 5 / (12 * 11) = 70/132; alpha = 1 - (1/6) / (70/132) = 24/35.
    # Y vs rest (5 ones): items 1 and 4 each give o_01 = o_10 = 1, D_o = 4/12, alpha = 1 - (1/3)(132/70) = 13/35.
    # Z vs rest (2 ones, item 4): D_o = 2/12, D_e = 2 * 10 * 2 / 132 = 40/132, alpha = 1 - 22/40 = 9/20.
    # (Each equals the krippendorff package's nominal alpha on the same 0/1 data.)
    assert {c: round(e.value, 9) for c, e in per_category.items()} == {
        "X": round(24 / 35, 9), "Y": round(13 / 35, 9), "Z": round(9 / 20, 9)}


def test_hierarchy_alpha_counts_two_leaves_under_one_parent_as_agreement_at_depth_one() -> None:
    rows = [[{"Accuracy / Mistranslation"}, {"Accuracy / Omission"}],
            [{"Fluency / Grammar"}, {"Fluency / Spelling"}],
            [{"Accuracy / Addition"}, {"Accuracy / Addition"}]]
    by_depth = alpha_by_depth(_table(rows, ("a1", "a2")))
    # Depth 1: units (Acc,Acc), (Flu,Flu), (Acc,Acc): perfect agreement with variation, alpha = 1.
    assert by_depth[1].value == pytest.approx(1.0)
    # Depth 2: 6 values; units 1 and 2 disagree (o = 2 each), so D_o = 4/6; value counts 1,1,1,1,2 give
    # D_e = (36 - 8) / 30 = 28/30; alpha = 1 - (4/6) / (28/30) = 2/7.
    assert by_depth[2].value == pytest.approx(2 / 7)


def test_report_has_every_required_key_and_consistent_values() -> None:
    rng = np.random.default_rng(3)
    categories = ["A / a", "A / b", "B / c", "B / d"]
    truth = rng.integers(0, 4, 300)
    rows = [[{categories[t if rng.random() < 0.8 else rng.integers(0, 4)]} for _ in range(3)]
            for t in truth]
    table = _table(rows)
    report = agreement_report(table, reps=200, seed=1)
    for key in ("krippendorff_alpha", "ci95", "ci_method", "fleiss_kappa", "gwet_ac1",
                "percent_agreement", "n_items", "n_annotators", "per_category", "per_annotator",
                "per_depth", "pairwise_cohen_kappa", "undefined"):
        assert key in report, key
    data = table.reliability_data()
    assert report["krippendorff_alpha"] == pytest.approx(
        krippendorff.alpha(reliability_data=[[categories.index(v) for v in col] for col in data],
                           level_of_measurement="nominal"), abs=1e-6)
    assert report["ci95"][0] < report["krippendorff_alpha"] < report["ci95"][1]
    assert report["fleiss_kappa"] == pytest.approx(fleiss_kappa(data).value, abs=1e-6)
    assert report["n_items"] == 300 and report["n_annotators"] == 3
    assert report["level"] == "nominal" and report["ci_method"].startswith("units")
    assert set(report["per_depth"]) == {"1", "2"}
    # The leaves are at depth 2, so alpha at depth 2 is the overall alpha.
    assert report["per_depth"]["2"] == pytest.approx(report["krippendorff_alpha"], abs=1e-6)
    assert report["undefined"] == {}
    json.dumps(report)  # JSON-ready


def test_report_alpha_without_an_annotator_matches_recomputation() -> None:
    rows = [[{"A"}, {"A"}, {"B"}], [{"B"}, {"B"}, {"B"}], [{"A"}, {"A"}, {"A"}], [{"C"}, {"B"}, {"C"}],
            [{"A"}, {"C"}, None]]
    report = agreement_report(_table(rows), reps=50)
    # Without a3: units (A,A) (B,B) (A,A) (C,B) (A,C); 10 values A=5 B=3 C=2. Disagreements in units 4
    # and 5: D_o = 4/10; D_e = (100 - 25 - 9 - 4) / 90 = 62/90; alpha = 1 - 0.4 * 90/62 = 13/31.
    assert report["per_annotator"]["a3"]["alpha_without"] == pytest.approx(13 / 31, abs=1e-6)
    assert report["per_annotator"]["a3"]["n_items"] == 4


def test_report_on_set_values_uses_masi_and_says_so() -> None:
    rows = [[{"A", "B"}, {"A"}, {"A", "B"}], [{"B"}, {"B"}, {"C"}], [{"A"}, {"A"}, {"A"}]]
    report = agreement_report(_table(rows), reps=50)
    assert report["level"] == "masi"
    # MASI distance 1 - J*M: {A,B} vs {A} = 1 - (1/2)(2/3) = 2/3; disjoint sets 1. D_o per unit (ordered
    # pairs / (m-1)): unit 1: 4 x 2/3 / 2 = 4/3; unit 2: 4 x 1 / 2 = 2; unit 3: 0 -> D_o = (10/3)/9 = 10/27.
    # Values AB x2, A x4, B x2, C x1: D_e = 2 (2*4*2/3 + 2*2*2/3 + 2*1 + 4*2 + 4*1 + 2*1) / (9*8) = 2/3.
    # alpha = 1 - (10/27)/(2/3) = 4/9 (NLTK's AnnotationTask with masi_distance gives the same).
    assert report["krippendorff_alpha"] == pytest.approx(4 / 9, abs=1e-6)
    assert "MASI" in report["value_note"]


def test_report_on_constant_labels_is_null_with_reasons() -> None:
    report = agreement_report(_table([[{"A"}, {"A"}, {"A"}]] * 5), reps=20)
    assert report["krippendorff_alpha"] is None
    assert report["undefined"]["krippendorff_alpha"] == NO_VARIATION
    assert report["ci95"] is None


def test_large_tables_use_pattern_sums_that_equal_the_package(monkeypatch) -> None:
    from annotation.core import agreement

    rng = np.random.default_rng(5)
    data = rng.integers(0, 6, (3, 400)).tolist()
    data[0][:50] = [None] * 50
    by_package = krippendorff_alpha(data).value
    monkeypatch.setattr(agreement, "PACKAGE_MAX_CELLS", 0)
    by_patterns = krippendorff_alpha(data).value
    assert by_patterns == pytest.approx(by_package, abs=1e-12)
    table = RatingTable(list(range(400)), ["a", "b", "c"],
                        [[None if data[j][i] is None else frozenset([str(data[j][i])]) for j in range(3)]
                         for i in range(400)])
    assert agreement_report(table, reps=10)["alpha_computed_by"] == "pattern sums (large table)"
    monkeypatch.setattr(agreement, "PACKAGE_MAX_CELLS", 10**9)
    assert agreement_report(table, reps=10)["alpha_computed_by"] == "krippendorff package"


def test_both_item_resampling_paths_give_the_same_bootstrap_distribution() -> None:
    from annotation.core.agreement import _patterns, _unit_weights

    rng = np.random.default_rng(11)
    codes = rng.integers(0, 40, (2000, 3))  # ~2000 distinct patterns for 2000 items: index path
    pat = _patterns(codes, 40)
    assert len(pat.counts) * 20 > pat.counts.sum()
    index_draws = np.concatenate(list(_unit_weights(pat, 400, np.random.default_rng(1))))
    multinomial = np.random.default_rng(2).multinomial(2000, pat.counts / 2000, size=400)
    # Every resample has all 2000 items; each pattern's mean count is its count in the data.
    assert (index_draws.sum(axis=1) == 2000).all()
    assert np.abs(index_draws.mean(axis=0) - multinomial.mean(axis=0)).max() < 0.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_resampled_pattern_counts_are_the_drawn_items_patterns_counted(seed) -> None:
    from annotation.core.agreement import _patterns, _unit_weights

    rng = np.random.default_rng(seed)
    codes = rng.integers(-1, 30, (1500, 3))  # some items unrated or rated once, most patterns once
    pat = _patterns(codes, 30)
    assert len(pat.counts) * 20 > pat.counts.sum() and (pat.counts == 1).any() and (pat.counts > 1).any()
    n_items = int(pat.counts.sum())
    got = np.concatenate(list(_unit_weights(pat, 37, np.random.default_rng(seed))))  # 37: a short last chunk
    # Straightforward: the same draws (chunks of 16 resamples), each drawn item's pattern looked up and counted.
    item_pattern = np.repeat(np.arange(len(pat.counts)), pat.counts)
    draws = np.random.default_rng(seed)
    expected = np.concatenate([
        [np.bincount(item_pattern[row], minlength=len(pat.counts))
         for row in draws.integers(0, n_items, (min(16, 37 - start), n_items), dtype=np.int32)]
        for start in range(0, 37, 16)])
    assert got.shape == (37, len(pat.counts)) and np.array_equal(got, expected)
