"""Taxonomy proposals from labels: confusion shares by hand, alpha gains by the krippendorff package."""
from __future__ import annotations

import krippendorff
import numpy as np
import pytest

from taxonomy.core.proposals import CategoryInfo, LabelText, Settings, confusions, propose_changes

A, B, C = "R / Arithmetic", "R / Algebra", "K / Fact"
# Two annotators; they confuse A with B twice, A with C once, and agree on three items.
SETS = {
    1: {"x": frozenset({A}), "y": frozenset({B})},
    2: {"x": frozenset({A}), "y": frozenset({B})},
    3: {"x": frozenset({C}), "y": frozenset({C})},
    4: {"x": frozenset({A}), "y": frozenset({A})},
    5: {"x": frozenset({C}), "y": frozenset({A})},
    6: {"x": frozenset({B}), "y": frozenset({B})},
}
CATEGORIES = [CategoryInfo(A, "sums"), CategoryInfo(B, "equations"), CategoryInfo(C, "facts"),
              CategoryInfo("Other", "anything else"), CategoryInfo("K / Unused", "never chosen")]


def nominal_alpha(rename: dict[str, str]) -> float:
    codes = {A: 0, B: 1, C: 2}
    data = [[codes[rename.get(next(iter(SETS[i][r])), next(iter(SETS[i][r])))] for i in sorted(SETS)]
            for r in ("x", "y")]
    return krippendorff.alpha(reliability_data=np.array(data, dtype=float), level_of_measurement="nominal")


def test_confusions_count_each_opposite_pair_once_per_annotator_pair():
    pairs, total, items = confusions(SETS)
    assert pairs[tuple(sorted((A, B)))] == 2 and pairs[tuple(sorted((A, C)))] == 1
    assert total == 3 and items[tuple(sorted((A, B)))] == [1, 2]


def test_merge_evidence_is_computed_by_rerunning_alpha_with_the_pair_merged():
    proposals = propose_changes(categories=CATEGORIES, sets=SETS, labels=[], settings=Settings(merge_min_share=0.1))
    merges = [p for p in proposals if p.kind == "merge"]
    best = merges[0]
    # A is used 5 times, B 4: B merges into A. Share 2/3 of the 3 disagreements.
    assert best.categories == (A, B) and best.new_name == A
    e = best.evidence
    assert e["share_of_disagreements"] == pytest.approx(2 / 3, abs=1e-6)
    assert e["alpha"] == pytest.approx(nominal_alpha({}), abs=1e-6)
    assert e["alpha_if_merged"] == pytest.approx(nominal_alpha({B: A}), abs=1e-6)
    assert e["alpha_gain"] == pytest.approx(nominal_alpha({B: A}) - nominal_alpha({}), abs=1e-6) and e["alpha_gain"] > 0
    assert list(best.examples) == [1, 2]


def test_add_names_a_cluster_from_the_proposed_words_and_retire_needs_enough_labels():
    labels = [LabelText(10 + i, f"h{i % 3}", "Other", note=note, proposed=proposed) for i, (note, proposed) in
              enumerate([("units missing", "Unit Error"), ("forgot the unit", "Unit Error"),
                         ("no unit given", ""), ("cites a fake paper", "Fabricated Source"),
                         ("fake paper reference", "Fabricated Source"), ("paper does not exist", "")])]
    labels += [LabelText(i, "h0", A) for i in range(200)]
    proposals = propose_changes(categories=CATEGORIES, sets=SETS, labels=labels)
    adds = {p.new_name: p for p in proposals if p.kind == "add"}
    assert set(adds) == {"Unit Error", "Fabricated Source"}
    assert adds["Unit Error"].evidence["labels"] == 3 and adds["Unit Error"].categories == ("Other",)
    retired = [p.categories for p in proposals if p.kind == "retire"]
    # Nobody used B, C or K / Unused in these 206 labels; Other is never retired.
    assert retired == [(C,), ("K / Unused",), (B,)]  # by path
    few = propose_changes(categories=CATEGORIES, sets=SETS, labels=labels[:150])
    assert not [p for p in few if p.kind == "retire"]


def test_split_finds_two_clearly_separate_groups_and_states_the_rule():
    words = ["carry digit dropped in addition"] * 6 + ["decimal point misplaced shifted"] * 5
    labels = [LabelText(i, "h", A, text=w) for i, w in enumerate(words)]
    split = [p for p in propose_changes(categories=CATEGORIES, sets=SETS, labels=labels) if p.kind == "split"]
    assert len(split) == 1 and split[0].categories == (A,)
    sides = split[0].evidence["sides"]
    assert sorted(s["members"] for s in sides) == [5, 6] and split[0].evidence["silhouette"] > 0.9
    assert all(t.startswith("R / Arithmetic (") for t in split[0].evidence["targets"])
    assert "nearer" in split[0].evidence["rule"]
