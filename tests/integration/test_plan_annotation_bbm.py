"""plan_annotation on BIG-Bench-Mistake: the offline judge's real labels (analyze + induce) and no gold yet,
so every category needs gold and the judge's confidence orders the picks; checked by hand here."""
from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
from django.core.management import call_command

from annotation.models import Label, Prediction, WorkSet, WorkSetFailure
from annotation.services.ingest import ingest_results

BBM = Path(__file__).resolve().parents[2] / "data" / "big-bench-mistake" / "multistep_arithmetic.jsonl"

pytestmark = pytest.mark.django_db


@pytest.fixture
def judged_bbm(settings):
    settings.OPENAI_BASE_URL = ""
    settings.OPENAI_API_KEY = ""
    settings.ERRORMAP_JUDGE = "offline"
    ingest_results(paths=[BBM])
    quiet = {"stdout": io.StringIO(), "stderr": io.StringIO()}
    call_command("analyze", **quiet)
    call_command("induce_taxonomy", "bbm", "--max-depth", "2", **quiet)
    work_set = WorkSet.objects.create(name="bbm-all", ratio=1.0, seed=0)
    WorkSetFailure.objects.bulk_create(WorkSetFailure(work_set=work_set, prediction=p)
                                       for p in Prediction.objects.filter(is_failure=True))


def test_plan_without_gold_spreads_over_the_judges_categories_doubtful_first(judged_bbm):
    out = io.StringIO()
    call_command("plan_annotation", "--work-set", "bbm-all", "--budget", "30", "--json", stdout=out)
    report = json.loads(out.getvalue())
    judge: dict[int, set[str]] = {}
    confidence: dict[int, float | None] = {}
    for pid, path, conf in Label.objects.filter(source="judge").values_list("prediction_id", "category__path",
                                                                           "confidence"):
        judge.setdefault(pid, set()).add(path.split(" / ")[0])
        confidence[pid] = conf if confidence.get(pid) is None else min(conf, confidence[pid])
    assert report["gold_items"] == 0 and report["candidates"] == len(judge)
    assert {c["category"] for c in report["categories"]} == set().union(*judge.values())
    assert all(c["need"] == 1.0 and c["n_gold"] == 0 for c in report["categories"])
    # No gold: a category's value is gain(planned picks so far) x doubt, gain(n) = (1/sqrt(n+1) -
    # 1/sqrt(n+2)) / (1 - 1/sqrt(2)); replay the picks and check each score and overlap by hand.
    def gain(n: int) -> float:
        return (1 / math.sqrt(n + 1) - 1 / math.sqrt(n + 2)) / (1 - 1 / math.sqrt(2))
    planned = {c["category"]: 0 for c in report["categories"]}
    for pick in report["picks"]:
        pid, cats = pick["prediction_id"], judge[pick["prediction_id"]]
        conf = confidence[pid]
        doubt = 1 + ((0.5 - conf) / 0.5 if conf is not None and conf < 0.5 else 0.0)
        assert pick["score"] == pytest.approx(max(gain(planned[c]) for c in cats) * doubt, abs=1e-6)
        assert pick["overlap"] == (3 if doubt > 1 else 2)
        assert any("only 0 gold item(s)" in r for r in pick["reasons"])
        for c in cats:
            planned[c] += 1
    # Spread: with no gold every category's first pick is worth more than any category's third.
    picked_categories = {c for pick in report["picks"] for c in judge[pick["prediction_id"]]}
    assert len(picked_categories) >= min(len(planned), 5)
