"""No gold leaks into a judgement of itself: on the WMT23 MQM gold, the offline judge's stored labels
are no better against gold than its cross-fitted figure, which a leaky judge would beat easily."""
from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from annotation.core.judge_audit import JudgedItem, classification_report
from annotation.core.offline_labelling import label_offline
from annotation.services.gold_learning import load_gold_set
from taxonomy.services.versions import resolve_version
from tests.integration.mqm_gold import TAXONOMY, load_mqm_gold

pytestmark = pytest.mark.django_db


def test_offline_judge_audit_against_gold_is_no_better_than_its_cross_fitted_figure():
    load_mqm_gold()
    out = io.StringIO()
    call_command("judge_audit", "--json", "--taxonomy", TAXONOMY, "--judge", "judge:offline", stdout=out)
    vs_gold = json.loads(out.getvalue())["judges"]["judge:offline"]["vs_gold"]
    crossfit = vs_gold["cross_fitting"]
    gold = load_gold_set(resolve_version(TAXONOMY))
    # The report says which folds: 5 folds dealt over the distinct gold texts (sizes within one);
    # duplicates of a text (systems that gave the same translation) go with it.
    assert crossfit["folds"] == 5 and sum(crossfit["items_per_fold"]) == len(gold.items)
    assert sum(crossfit["texts_per_fold"]) == len(set(gold.keys)) < len(gold.items)
    assert max(crossfit["texts_per_fold"]) - min(crossfit["texts_per_fold"]) <= 1
    assert crossfit["n_items"] == vs_gold["n_items"] > 50
    assert vs_gold["accuracy"] <= crossfit["accuracy"]
    assert vs_gold["cohen_kappa"] <= crossfit["cohen_kappa"]

    # What the audit would say if items could see their own gold (no folds): far better, i.e.
    # circular; the stored labels above stay well below it.
    leaky = label_offline([g.request for g in gold.items], gold.items, gold.leaves, other=gold.other, fold_of={})
    leaky_report = classification_report(
        [JudgedItem(g.categories, frozenset({path})) for g, (path, _) in zip(gold.items, leaky)])
    assert leaky_report["accuracy"] > 0.8  # sets of several categories cannot be matched by one
    assert vs_gold["accuracy"] < leaky_report["accuracy"] - 0.3
