"""anchoring_report on the WMT23 MQM ratings in a mixed project, each number recomputed here."""
from __future__ import annotations

import io
import json
import random
from collections import Counter
from pathlib import Path

import krippendorff
import numpy as np
import pytest
from django.core.management import CommandError, call_command

from annotation.models import (
    LabelStudioProject,
    LabelStudioTask,
    Prediction,
    WorkSet,
    WorkSetFailure,
)
from annotation.services.ingest import ingest_results
from annotation.services.label_import import import_labels
from taxonomy.services.versions import resolve_version
from tests.integration.mqm_measurement import DATASET, MQM, mqm_rater_sets, write_label_table
from tests.module_data import committed_for_module

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def mixed_mqm(django_db_setup, django_db_blocker, tmp_path_factory):
    """People = each item's first two raters (by name); judge = the third rater; gold = the set two of
    the three share when two do. A mixed project over every item, a seeded half assisted. Loaded once
    for the module; each test's own changes are rolled back."""
    yield from committed_for_module(django_db_blocker, lambda: _mixed_mqm(tmp_path_factory.mktemp("labels")))


def _mixed_mqm(tmp_path: Path) -> tuple[dict, dict]:
    ingest_results(paths=[MQM])
    sets = mqm_rater_sets()
    rows = []
    for (system, seg), by_rater in sorted(sets.items()):
        first, second, third = sorted(by_rater)
        for rater in (first, second):
            rows += [(system, seg, rater, c, "human") for c in sorted(by_rater[rater])]
        rows += [(system, seg, "judge:third-rater", c, "judge") for c in sorted(by_rater[third])]
        shared = [v for v, n in Counter(by_rater.values()).items() if n >= 2]
        if shared:
            rows += [(system, seg, "adjudicator", c, "gold") for c in sorted(shared[0])]
    import_labels(path=write_label_table(tmp_path / "labels.csv", rows), taxonomy="wmt23-mqm")
    version = resolve_version("wmt23-mqm")
    work_set = WorkSet.objects.create(name="mqm-mixed", ratio=1.0, seed=0)
    predictions = list(Prediction.objects.filter(example__dataset__name=DATASET)
                       .select_related("model", "example").order_by("pk"))
    WorkSetFailure.objects.bulk_create(WorkSetFailure(work_set=work_set, prediction=p) for p in predictions)
    project = LabelStudioProject.objects.create(labelstudio_id=900, title="mixed", work_set=work_set,
                                                taxonomy_version=version, mode="mixed", overlap=2)
    rng = random.Random(5)
    assisted = {p.pk: rng.random() < 0.5 for p in predictions}
    LabelStudioTask.objects.bulk_create(
        LabelStudioTask(project=project, prediction=p, labelstudio_id=10_000 + i, assisted=assisted[p.pk])
        for i, p in enumerate(predictions))
    keyed = {(p.model.name, p.example.example_id): assisted[p.pk] for p in predictions}
    return sets, keyed


def expected(sets, keyed, arm: bool) -> dict[str, float]:
    """The three statistics straight from the ratings: rates over labels, alpha with the package."""
    match = judged = correct = with_gold = 0
    values: dict[frozenset, int] = {}
    data = []
    for key, by_rater in sets.items():
        if keyed[key] != arm:
            continue
        first, second, third = sorted(by_rater)
        people = [by_rater[first], by_rater[second]]
        judged += 2
        match += sum(p == by_rater[third] for p in people)
        shared = [v for v, n in Counter(by_rater.values()).items() if n >= 2]
        if shared:
            with_gold += 2
            correct += sum(p == shared[0] for p in people)
        data.append([values.setdefault(p, len(values)) for p in people])
    alpha = krippendorff.alpha(reliability_data=np.array(data, dtype=float).T, level_of_measurement="nominal")
    return {"judge_match": match / judged, "gold_accuracy": correct / with_gold, "alpha": alpha,
            "n_labels": judged, "n_gold_labels": with_gold}


def report(*args: str) -> dict:
    out = io.StringIO()
    call_command("anchoring_report", "--work-set", "mqm-mixed", "--json", "--reps", "500", *args, stdout=out)
    return json.loads(out.getvalue())


def test_arms_and_differences_equal_a_computation_from_the_ratings(mixed_mqm):
    sets, keyed = mixed_mqm
    data = report()
    assert data["tasks"]["assisted"] + data["tasks"]["blind"] == len(sets) == 1040
    assert data["tasks"]["assisted"] == sum(keyed.values())
    for arm, flag in (("assisted", True), ("blind", False)):
        want = expected(sets, keyed, flag)
        stats = data["arms"][arm]["statistics"]
        assert data["arms"][arm]["n_labels"] == want["n_labels"]
        assert stats["judge_match"]["n"] == want["n_labels"]
        assert stats["gold_accuracy"]["n"] == want["n_gold_labels"]
        for name in ("judge_match", "gold_accuracy", "alpha"):
            assert stats[name]["value"] == pytest.approx(want[name]), (arm, name)
            low, high = stats[name]["ci95"]
            assert low < stats[name]["value"] < high and high - low < 0.2
    assisted, blind = expected(sets, keyed, True), expected(sets, keyed, False)
    for name in ("judge_match", "gold_accuracy", "alpha"):
        difference = data["differences"][name]
        assert difference["value"] == pytest.approx(assisted[name] - blind[name])
        # The raters never saw a judge: the arms are a random split, so 0 should sit inside the interval.
        assert difference["ci95"][0] < 0 < difference["ci95"][1], name


def test_same_seed_same_intervals_and_the_table_prints_them(mixed_mqm):
    first, second = report("--seed", "4"), report("--seed", "4")
    assert first == second
    out = io.StringIO()
    call_command("anchoring_report", "--work-set", "mqm-mixed", "--reps", "500", "--seed", "4", stdout=out)
    text = out.getvalue()
    match = first["arms"]["assisted"]["statistics"]["judge_match"]
    assert f"{match['value']:.3f} [{match['ci95'][0]:.3f}, {match['ci95'][1]:.3f}]" in text
    diff = first["differences"]["alpha"]
    assert f"{diff['value']:.3f} [{diff['ci95'][0]:.3f}, {diff['ci95'][1]:.3f}]" in text


def test_a_work_set_without_a_mixed_project_is_a_clear_error(mixed_mqm):
    LabelStudioProject.objects.update(mode="blind")
    with pytest.raises(CommandError, match="no mixed Label Studio project.*--mode mixed"):
        report()
    with pytest.raises(CommandError, match="unknown work set"):
        call_command("anchoring_report", "--work-set", "nope")


def test_agreement_page_shows_the_anchoring_section_with_the_command_numbers(mixed_mqm, admin_client):
    from annotation.pages import PAGE_REPS
    data = report("--reps", str(PAGE_REPS), "--taxonomy", "wmt23-mqm@1")
    page = admin_client.get("/agreement/", {"taxonomy": "wmt23-mqm@1"}).content.decode()
    section = page.split('class="anchoring" data-work-set="mqm-mixed"')[1].split("</section>")[0]
    for name in ("judge_match", "gold_accuracy", "alpha"):
        row = section.split(f'data-statistic="{name}"')[1].split("</tr>")[0]
        for statistic in (data["arms"]["assisted"]["statistics"][name], data["arms"]["blind"]["statistics"][name],
                          data["differences"][name]):
            assert f"{statistic['value']:.3f}" in row
            assert f"[{statistic['ci95'][0]:.3f}, {statistic['ci95'][1]:.3f}]" in row
