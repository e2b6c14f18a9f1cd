"""The feedback loop end to end on real data (WMT23 MQM, human labels as gold): proposals of every
kind, one of each accepted into @2 with the right mapping, and @2 read through the mapping by
signatures, agreement, judge_audit, adjudicate and export_gold; refine_judge and the learning curve."""
from __future__ import annotations

import io
import json
from collections import defaultdict

import pytest
from django.core.management import call_command

from annotation.models import Label
from taxonomy.core.verdicts import NOT_AN_ERROR
from tests.integration.mqm_gold import TAXONOMY, load_mqm_gold

pytestmark = pytest.mark.django_db


def run(command: str, *args: str) -> dict:
    out = io.StringIO()
    call_command(command, *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def mapped_sets(mapping: dict[str, dict]) -> dict[tuple[str, int, str], frozenset[str]]:
    """(model, item, annotator) -> category set of @1's human labels on failures, mapped to @2 by hand:
    each category to its one target; a set holding a split category is left out."""
    sets: dict = defaultdict(set)
    rows = Label.objects.filter(taxonomy_version__number=1, source="human", prediction__is_failure=True).values_list(
        "prediction__model__name", "prediction_id", "annotator__name", "category__path")
    for model, item, annotator, path in rows:
        sets[(model, item, annotator)].add(path)
    out = {}
    for key, paths in sets.items():
        if any(len(mapping[p]["targets"]) > 1 for p in paths):
            continue
        out[key] = frozenset(mapping[p]["targets"][0] for p in paths)
    return out


def signature_counts(sets: dict) -> dict[str, dict[str, float]]:
    """model -> category -> summed weight: a failure's 1 split evenly between its annotators, then
    between the categories of each one's set (the rule in taxonomy/core/signatures.py). Verdicts
    (MQM's No-error is imported as Not an error) are counted apart: left out of the sets first."""
    sets = {key: paths - {NOT_AN_ERROR} for key, paths in sets.items() if paths - {NOT_AN_ERROR}}
    annotators: dict = defaultdict(set)
    for model, item, annotator in sets:
        annotators[(model, item)].add(annotator)
    counts: dict = defaultdict(lambda: defaultdict(float))
    for (model, item, annotator), paths in sets.items():
        for path in paths:
            counts[model][path] += 1 / (len(paths) * len(annotators[(model, item)]))
    return counts


def test_the_loop_on_mqm_proposals_accepted_and_version_two_read_through_the_mapping():
    load_mqm_gold()
    human = run("propose_taxonomy_changes", "--taxonomy", TAXONOMY)["proposals"]
    gold = run("propose_taxonomy_changes", "--taxonomy", TAXONOMY, "--source", "gold")["proposals"]
    kinds: dict[str, list] = defaultdict(list)
    for p in human + [p for p in gold if p["kind"] == "retire"]:
        kinds[p["kind"]].append(p)
    assert set(kinds) == {"add", "merge", "split", "rewrite", "retire"}
    assert all(p["evidence"] for ps in kinds.values() for p in ps)
    merge, split, retire, add = kinds["merge"][0], kinds["split"][0], kinds["retire"][0], kinds["add"][0]
    taken = set(merge["categories"]) | set(split["categories"]) | set(retire["categories"])
    rewrite = next(p for p in kinds["rewrite"] if not set(p["categories"]) & taken)
    accepted = run("accept_proposals", "wmt23-mqm", *[str(p["id"]) for p in (add, merge, split, rewrite, retire)],
                   "--by", "lead")
    assert accepted["taxonomy_version"] == "wmt23-mqm@2"
    mapping = accepted["mapping"]
    keep, drop = merge["categories"]
    assert mapping[keep] == mapping[drop] == {"kind": "merged", "targets": [keep]}
    assert mapping[split["categories"][0]] == {"kind": "split", "targets": sorted(split["evidence"]["targets"])}
    assert mapping[retire["categories"][0]] == {"kind": "retired", "targets": ["Other"]}
    assert all(m == {"kind": "kept", "targets": [p]} for p, m in mapping.items()
               if p not in {keep, drop, split["categories"][0], retire["categories"][0]})
    assert accepted["relabel_items"] > 0 and accepted["added"] == [add["new_name"]]

    # signatures on @2 count @1's labels exactly as the mapping says (computed here by hand).
    expected_sets = mapped_sets(mapping)
    expected = signature_counts(expected_sets)
    report = run("signatures", "--taxonomy", "wmt23-mqm@2", "--source", "human", "--depth", "2")
    assert report["taxonomy_version"] == "wmt23-mqm@2"
    for signature in report["signatures"]:
        got = {s["category"]: s["count"] for s in signature["shares"]}
        want = {c: w for c, w in expected[signature["group"]].items() if w}
        assert got.keys() == want.keys()
        assert all(got[c] == pytest.approx(want[c], abs=1e-9) for c in want)
    # A merge counts its parts: every set that named either part names the merged category
    # (a set that named both names it once: sets, not rows).
    before = mapped_sets({p: {"targets": [p]} if p not in mapping or mapping[p]["kind"] != "split" else mapping[p]
                          for p in mapping})
    with_keep = sum(keep in s for s in before.values())
    with_drop = sum(drop in s for s in before.values())
    both = sum(keep in s and drop in s for s in before.values())
    assert sum(keep in s for s in expected_sets.values()) == with_keep + with_drop - both
    assert drop not in {c for s in expected_sets.values() for c in s}

    # agreement, judge_audit, adjudicate and export_gold on @2 read @1's labels through the mapping.
    agreement = run("agreement", "--taxonomy", "wmt23-mqm@2", "--reps", "50")
    assert agreement["taxonomy_version"] == "wmt23-mqm@2" and agreement["n_items"] > 900
    audit = run("judge_audit", "--taxonomy", "wmt23-mqm@2", "--judge", "judge:offline")
    judged_v1 = set(Label.objects.filter(taxonomy_version__number=1, source="judge").values_list(
        "prediction_id", flat=True))
    split_items = set(Label.objects.filter(taxonomy_version__number=1, source="judge",
                                           category__path=split["categories"][0]).values_list("prediction_id",
                                                                                              flat=True))
    assert audit["judges"]["judge:offline"]["n_items_judged"] == len(judged_v1 - split_items)
    adjudicated = run("adjudicate", "--taxonomy", "wmt23-mqm@2", "--rule", "two-thirds")
    assert adjudicated["taxonomy_version"] == "wmt23-mqm@2" and adjudicated["auto_gold"] > 300
    assert not Label.objects.filter(taxonomy_version__number=2, source="gold", category__path=drop).exists()


def test_refine_and_learning_curve_of_the_offline_judge_on_mqm(tmp_path):
    load_mqm_gold(judge=False)
    report = run("refine_judge", "--taxonomy", TAXONOMY, "--reps", "300")
    # The decision follows the printed numbers.
    assert report["accepted"] == (report["difference"]["kappa"] > 0 and report["difference"]["ci95"][0] > 0)
    assert report["difference"]["kappa"] == pytest.approx(
        report["candidate"]["kappa"] - report["current"]["kappa"], abs=2e-6)
    curve = run("judge_learning_curve", "--taxonomy", TAXONOMY, "--reps", "100")
    kappas = [p["kappa"] for p in curve["points"]]
    assert curve["points"][0]["n_gold"] == 0 and kappas[-1] > kappas[0] + 0.2
    # With all gold, the curve's last point is the cross-fitted figure of judge_audit's re-judging.
    assert kappas[-1] == pytest.approx(report["current"]["kappa"], abs=1e-6)
