"""signatures --source judge --correct-with gold on the WMT23 MQM ratings, checked by hand here."""
from __future__ import annotations

import io
import json
import math
import random
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from annotation.models import Prediction
from annotation.services.ingest import ingest_results
from annotation.services.label_import import import_labels
from tests.integration.mqm_measurement import (
    DATASET,
    MQM,
    mqm_rater_sets,
    wilson_by_hand,
    write_label_table,
)
from tests.module_data import committed_for_module

pytestmark = pytest.mark.django_db
Z = 1.959963984540054


@pytest.fixture(scope="module")
def judged_mqm(django_db_setup, django_db_blocker, tmp_path_factory):
    """Judge = each item's first rater (by name); gold = the second rater on a seeded 30 % of items
    (loaded once for the module; each test's own changes are rolled back)."""
    yield from committed_for_module(django_db_blocker, lambda: _judged_mqm(tmp_path_factory.mktemp("labels")))


def _judged_mqm(tmp_path: Path) -> tuple[dict, set]:
    ingest_results(paths=[MQM])
    sets = mqm_rater_sets()
    rng = random.Random(13)
    gold_items = set(rng.sample(sorted(sets), k=len(sets) * 3 // 10))
    rows = []
    for (system, seg), by_rater in sorted(sets.items()):
        first, second = sorted(by_rater)[:2]
        rows += [(system, seg, "judge:first-rater", c, "judge") for c in sorted(by_rater[first])]
        if (system, seg) in gold_items:
            rows += [(system, seg, "adjudicator", c, "gold") for c in sorted(by_rater[second])]
    import_labels(path=write_label_table(tmp_path / "labels.csv", rows), taxonomy="wmt23-mqm")
    return sets, gold_items


def depth1_weights(categories: frozenset[str]) -> dict[str, Fraction]:
    """A failure's weight 1 split evenly over its distinct depth-1 categories (as signatures count at depth 1)."""
    tops = {category.split(" / ")[0] for category in categories}
    return {top: Fraction(1, len(tops)) for top in tops}


def test_corrected_signature_of_every_mqm_system_matches_a_computation_from_the_ratings(judged_mqm):
    sets, gold_items = judged_mqm
    out = io.StringIO()
    call_command("signatures", "--source", "judge", "--correct-with", "gold", "--taxonomy", "wmt23-mqm",
                 "--json", stdout=out)
    report = json.loads(out.getvalue())
    failing = {(p.model.name, p.example.example_id) for p in
               Prediction.objects.filter(is_failure=True, example__dataset__name=DATASET)
               .select_related("model", "example")}
    assert report["correct_with"] == "gold" and report["depth"] == 1
    assert sorted(s["group"] for s in report["signatures"]) == sorted({system for system, _ in failing})
    checked = 0
    for signature in report["signatures"]:
        system = signature["group"]
        items = sorted(seg for s, seg in failing if s == system)
        judge_rows = {seg: depth1_weights(sets[(system, seg)][min(sets[(system, seg)])]) for seg in items}
        labelled = [seg for seg in items if (system, seg) in gold_items]
        unlabelled = [seg for seg in items if (system, seg) not in gold_items]
        gold_rows = {seg: depth1_weights(sets[(system, seg)][sorted(sets[(system, seg)])[1]]) for seg in labelled}
        assert (signature["n_judged"], signature["n_gold"]) == (len(items), len(labelled))
        for share in signature["shares"]:
            c = share["category"]
            judge_k = float(sum(w.get(c, 0) for w in judge_rows.values()))
            assert share["judge"]["share"] == pytest.approx(judge_k / len(items))
            assert [share["judge"]["ci_low"], share["judge"]["ci_high"]] == pytest.approx(
                wilson_by_hand(judge_k, len(items)))
            gold_k = float(sum(w.get(c, 0) for w in gold_rows.values()))
            assert [share["gold"]["ci_low"], share["gold"]["ci_high"]] == pytest.approx(
                wilson_by_hand(gold_k, len(labelled)))
            # PPI++ by hand (Angelopoulos et al. 2023; lam tuned, clipped to [0, 1]).
            y = np.array([float(gold_rows[s].get(c, 0)) for s in labelled])
            yhat = np.array([float(judge_rows[s].get(c, 0)) for s in labelled])
            yhat_u = np.array([float(judge_rows[s].get(c, 0)) for s in unlabelled])
            n, big_n = len(y), len(yhat_u)
            cov = sum((a - y.mean()) * (b - yhat.mean()) for a, b in zip(y, yhat)) / n
            allj = np.concatenate([yhat, yhat_u])
            var_all = sum((v - allj.mean()) ** 2 for v in allj) / (len(allj) - 1)
            lam = min(max(cov / ((1 + n / big_n) * var_all), 0.0), 1.0) if var_all > 0 else 0.0
            theta = lam * yhat_u.mean() + (y - lam * yhat).mean()
            se = math.sqrt(lam ** 2 * yhat_u.var() / big_n + (y - lam * yhat).var() / n)
            assert share["lam"] == pytest.approx(lam)
            assert share["corrected"]["share"] == pytest.approx(min(max(theta, 0), 1))
            assert share["corrected"]["ci_low"] == pytest.approx(max(theta - Z * se, 0.0))
            assert share["corrected"]["ci_high"] == pytest.approx(min(theta + Z * se, 1.0))
            assert share["corrected"]["width"] == pytest.approx(
                share["corrected"]["ci_high"] - share["corrected"]["ci_low"])
            checked += 1
    assert checked >= 30


def test_table_output_shows_the_three_estimates_with_widths(judged_mqm):
    out = io.StringIO()
    call_command("signatures", "--source", "judge", "--correct-with", "gold", "--taxonomy", "wmt23-mqm", stdout=out)
    text = out.getvalue()
    assert "judge corrected with gold" in text and "prediction-powered" in text
    data = io.StringIO()
    call_command("signatures", "--source", "judge", "--correct-with", "gold", "--taxonomy", "wmt23-mqm",
                 "--json", stdout=data)
    first = json.loads(data.getvalue())["signatures"][0]
    share = first["shares"][0]
    line = next(ln for ln in text.splitlines() if ln.strip().startswith(share["category"][:40]))
    assert (f"{share['judge']['share']:.1%} [{share['judge']['ci_low']:.1%}, {share['judge']['ci_high']:.1%}] "
            f"{share['judge']['width']:.3f}") in line
    assert f"{share['corrected']['width']:.3f}" in line


def test_correct_with_needs_judge_as_source(judged_mqm):
    with pytest.raises(CommandError, match="--source judge"):
        call_command("signatures", "--source", "human", "--correct-with", "gold")


def test_signatures_page_shows_the_corrected_table_beside_raw_and_gold(judged_mqm, admin_client):
    data = io.StringIO()
    call_command("signatures", "--source", "judge", "--correct-with", "gold", "--taxonomy", "wmt23-mqm",
                 "--json", stdout=data)
    report = json.loads(data.getvalue())
    page = admin_client.get("/signatures/", {"source": "judge", "taxonomy": "wmt23-mqm@1"}).content.decode()
    assert 'id="corrected"' in page
    for signature in report["signatures"]:
        section = page.split(f'class="corrected-signature" data-group="{signature["group"]}"')[1].split("</section>")[0]
        for share in signature["shares"]:
            row = section.split(f"<td>{share['category']}</td>")[1].split("</tr>")[0]
            for part in ("judge", "gold", "corrected"):
                assert f"{share[part]['width']:.4f}" in row
                assert f"[{share[part]['ci_low']:.4f}, {share[part]['ci_high']:.4f}]" in row


def test_signatures_page_has_no_corrected_section_without_gold(judged_mqm, admin_client):
    from annotation.models import Label
    Label.objects.filter(source="gold").delete()
    page = admin_client.get("/signatures/", {"source": "judge", "taxonomy": "wmt23-mqm@1"}).content.decode()
    assert 'id="corrected"' not in page and "GPT4-5shot" in page
