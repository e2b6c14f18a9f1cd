"""plan_annotation on WMT23 MQM with the offline judge's real labels and two-thirds gold on a seeded
half of the gold items; kappas recomputed with scikit-learn, widths and needs by hand."""
from __future__ import annotations

import io
import json
import math
import random

import pytest
from django.core.management import CommandError, call_command
from sklearn.metrics import cohen_kappa_score

from annotation.models import Label, Prediction, WorkSet, WorkSetFailure
from annotation.services.planning import plan_annotation, save_plan
from tests.integration.mqm_gold import TAXONOMY, load_mqm_gold
from tests.integration.mqm_measurement import wilson_by_hand
from tests.module_data import committed_for_module

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def mqm_planned(django_db_setup, django_db_blocker):
    """Offline judge on every MQM failure; gold kept on a seeded half of the gold items."""
    def load() -> None:
        load_mqm_gold()
        gold_items = sorted(set(Label.objects.filter(source="gold").values_list("prediction_id", flat=True)))
        keep = set(random.Random(13).sample(gold_items, k=len(gold_items) // 2))
        Label.objects.filter(source="gold").exclude(prediction_id__in=keep).delete()
        work_set = WorkSet.objects.create(name="mqm-all", ratio=1.0, seed=0)
        WorkSetFailure.objects.bulk_create(WorkSetFailure(work_set=work_set, prediction=p)
                                           for p in Prediction.objects.filter(is_failure=True))

    yield from committed_for_module(django_db_blocker, load)


def sets(source: str) -> dict[int, dict[str, frozenset[str]]]:
    out: dict = {}
    for pid, who, path in Label.objects.filter(source=source).values_list("prediction_id", "annotator__name",
                                                                           "category__path"):
        out.setdefault(pid, {}).setdefault(who, set()).add(path.split(" / ")[0])
    return {p: {a: frozenset(s) for a, s in by.items()} for p, by in out.items()}


def wilson_width(k: int, n: int) -> float:
    low, high = wilson_by_hand(k, n)
    return high - low


def test_plan_on_mqm_needs_and_picks_match_an_independent_computation(mqm_planned):
    out = io.StringIO()
    call_command("plan_annotation", "--work-set", "mqm-all", "--budget", "40", "--taxonomy", TAXONOMY, "--json",
                 stdout=out)
    report = json.loads(out.getvalue())
    judge, gold = sets("judge"), sets("gold")
    pairs = [(j, next(iter(gold[p].values()))) for p in sorted(gold) if p in judge for j in judge[p].values()]
    failures = set(Prediction.objects.filter(is_failure=True).values_list("pk", flat=True))
    assert report["gold_items"] == len(gold) and report["candidates"] == len((set(judge) & failures) - set(gold))
    assert len(report["picks"]) == 40 and report["annotations"] == sum(p["overlap"] for p in report["picks"])
    needs = {c["category"]: c for c in report["categories"]}
    checked = 0
    for category, need in needs.items():
        judge_says = [category in j for j, _ in pairs]
        gold_says = [category in g for _, g in pairs]
        assert need["n_gold"] == sum(a or b for a, b in zip(judge_says, gold_says))
        assert need["gold_share_width"] == pytest.approx(wilson_width(sum(gold_says), len(pairs)))
        if need["n_gold"] >= 10 and len(set(judge_says)) > 1:
            kappa = cohen_kappa_score(judge_says, gold_says)
            assert need["kappa"] == pytest.approx(kappa)
            assert need["need"] == pytest.approx(max(1 - max(kappa, 0), min(1, 2 * need["gold_share_width"])))
            checked += 1
        elif need["n_gold"] < 10:
            assert need["need"] == 1.0
    assert checked >= 2  # Accuracy and Fluency have enough gold here
    # Every pick: in the work set, without gold, distinct; overlap 3 exactly when the judge's confidence < 0.5.
    confidence = dict(Label.objects.filter(source="judge").values_list("prediction_id", "confidence"))
    picked = [p["prediction_id"] for p in report["picks"]]
    assert len(set(picked)) == 40 and not set(picked) & set(gold)
    for pick in report["picks"]:
        low = confidence[pick["prediction_id"]] is not None and confidence[pick["prediction_id"]] < 0.5
        assert pick["overlap"] == (3 if low else 2)
        assert pick["reasons"] and (not low or any("confidence" in r for r in pick["reasons"]))
    # The first pick has the largest value over all candidates, computed here from the needs.
    def value(pid: int) -> float:
        cats = set().union(*judge[pid].values())
        v = max(needs[c]["need"] * (1 / math.sqrt(needs[c]["n_gold"] + 1) - 1 / math.sqrt(needs[c]["n_gold"] + 2))
                / (1 - 1 / math.sqrt(2)) for c in cats)
        c = confidence.get(pid)
        return v * (1 + ((0.5 - c) / 0.5 if c is not None and c < 0.5 else 0.0))
    best = max(value(p) for p in (set(judge) & failures) - set(gold))
    assert report["picks"][0]["score"] == pytest.approx(best, abs=1e-6)


def test_table_lists_each_pick_with_its_reasons(mqm_planned):
    out = io.StringIO()
    call_command("plan_annotation", "--work-set", "mqm-all", "--budget", "5", "--taxonomy", TAXONOMY, stdout=out)
    report = plan_annotation(work_set="mqm-all", budget=5, taxonomy=TAXONOMY)
    text = out.getvalue()
    for pick in report.picks:
        assert f"{pick.dataset}:{pick.example_id} {pick.model} · " + "; ".join(pick.reasons) in text


def test_saved_plan_work_sets_hold_the_picks_by_overlap_and_saving_again_reuses_them(mqm_planned):
    report = plan_annotation(work_set="mqm-all", budget=12, taxonomy=TAXONOMY)
    saved = save_plan(report)
    again = save_plan(report)
    assert saved == again
    for name, overlap in saved:
        members = set(WorkSet.objects.get(name=name).failures.values_list("prediction_id", flat=True))
        assert members == {p.prediction_id for p in report.picks if p.overlap == overlap}
    assert sum(len(WorkSet.objects.get(name=n).failures.all()) for n, _ in saved) == 12


def test_bad_budget_and_unknown_work_set_are_clear_errors(mqm_planned):
    with pytest.raises(CommandError, match="--budget must be at least 1"):
        call_command("plan_annotation", "--work-set", "mqm-all", "--budget", "0")
    with pytest.raises(CommandError, match="unknown work set"):
        call_command("plan_annotation", "--work-set", "nope", "--budget", "3")
