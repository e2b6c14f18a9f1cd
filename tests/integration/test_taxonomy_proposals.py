"""propose_taxonomy_changes and accept_proposals on the WMT23 MQM labels, through the command, the REST
API and the web page (staff only), with the mapping every category gets."""
from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from annotation.models import StageRun
from taxonomy.models import Category, CategoryMapping, TaxonomyProposal
from taxonomy.services.versions import resolve_version
from tests.integration.agreement_factories import add_label, make_prediction, make_version
from tests.integration.mqm_gold import TAXONOMY, load_mqm_gold

pytestmark = pytest.mark.django_db


def run(command: str, *args: str) -> dict:
    out = io.StringIO()
    call_command(command, *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def by_kind(report: dict) -> dict[str, list[dict]]:
    kinds: dict[str, list[dict]] = {}
    for p in report["proposals"]:
        kinds.setdefault(p["kind"], []).append(p)
    return kinds


def test_mqm_proposals_of_every_kind_with_evidence_and_one_of_each_accepted():
    load_mqm_gold(judge=False)
    human = run("propose_taxonomy_changes", "--taxonomy", TAXONOMY)
    gold = run("propose_taxonomy_changes", "--taxonomy", TAXONOMY, "--source", "gold")
    assert human["taxonomy"] == gold["taxonomy"] == "wmt23-mqm@1"
    assert set(human) == {"taxonomy", "proposals"}
    assert all(set(p) == {"id", "kind", "categories", "new_name", "description", "evidence"}
               for p in human["proposals"] + gold["proposals"])
    kinds = by_kind(human) | {"retire": by_kind(gold)["retire"]}
    assert set(kinds) == {"add", "merge", "split", "rewrite", "retire"}
    # add: from the raters' own notes on Other (the MQM file's metadata), with example items.
    add = kinds["add"][0]
    assert add["categories"] == ["Other"] and add["evidence"]["labels"] >= 2 and add["evidence"]["examples"]
    merge = kinds["merge"][0]["evidence"]
    assert merge["alpha_if_merged"] - merge["alpha"] == pytest.approx(merge["alpha_gain"], abs=2e-6)
    assert 0 < merge["share_of_disagreements"] < 1 and merge["alpha_gain"] > 0 and len(merge["examples"]) <= 5
    split = kinds["split"][0]["evidence"]
    assert len(split["sides"]) == 2 and split["silhouette"] >= split["threshold"] and split["rule"]
    assert kinds["rewrite"][0]["evidence"]["per_category_alpha"] < 0.4
    assert kinds["retire"][0]["evidence"]["uses"] == 0
    assert StageRun.objects.filter(stage="propose_taxonomy_changes", status="succeeded").count() == 2
    # Stored, and a re-run proposes the same (same ids), applying nothing.
    assert run("propose_taxonomy_changes", "--taxonomy", TAXONOMY)["proposals"] == human["proposals"]
    assert TaxonomyProposal.objects.filter(status="open").count() == len(human["proposals"]) + len(
        {p["id"] for p in gold["proposals"]} - {p["id"] for p in human["proposals"]})

    v1 = resolve_version(TAXONOMY)
    before = list(Category.objects.filter(version=v1).order_by("pk").values_list("pk", "path", "description"))
    chosen = {kind: next(p for p in kinds[kind] if not (kind == "rewrite" and set(p["categories"]) & {
        c for q in (kinds["merge"][0], kinds["split"][0], kinds["retire"][0]) for c in q["categories"]}))
        for kind in kinds}
    chosen["merge"] = kinds["merge"][0]
    out = io.StringIO()
    call_command("accept_proposals", "wmt23-mqm", *[str(p["id"]) for p in chosen.values()], "--by", "alice",
                 "--reason", "one of each", stdout=out)
    assert out.getvalue().startswith("wmt23-mqm@2 (from wmt23-mqm@1")
    v2 = resolve_version("wmt23-mqm@2")
    # V1 untouched, row by row.
    assert list(Category.objects.filter(version=v1).order_by("pk").values_list("pk", "path", "description")) == before
    mapping: dict[str, list[tuple[str, str | None]]] = {}
    for m in CategoryMapping.objects.filter(source__version=v1).select_related("source", "target"):
        assert m.target is None or m.target.version_id == v2.pk
        mapping.setdefault(m.source.path, []).append((m.kind, m.target.path if m.target else None))
    assert set(mapping) == {c[1] for c in before}  # every category of V1 has a mapping
    keep, drop = chosen["merge"]["categories"]
    assert mapping[keep] == mapping[drop] == [("merged", keep)]
    (split_path,) = chosen["split"]["categories"]
    assert sorted(mapping[split_path]) == sorted(("split", t) for t in chosen["split"]["evidence"]["targets"])
    (retired,) = chosen["retire"]["categories"]
    assert mapping[retired] == [("retired", "Other")]
    (rewritten,) = chosen["rewrite"]["categories"]
    assert mapping[rewritten] == [("kept", rewritten)]
    assert Category.objects.get(version=v2, path=rewritten).description == chosen["rewrite"]["description"]
    assert Category.objects.filter(version=v2, path=chosen["add"]["new_name"]).exists()
    assert not Category.objects.filter(version=v2, path__in=[drop, split_path, retired]).exists()
    assert set(TaxonomyProposal.objects.filter(status="accepted").values_list("pk", flat=True)) == {
        p["id"] for p in chosen.values()}
    with pytest.raises(CommandError, match="already accepted into wmt23-mqm@2"):
        call_command("accept_proposals", "wmt23-mqm", str(chosen["add"]["id"]), "--by", "alice")


def test_clear_errors():
    with pytest.raises(CommandError, match="unknown taxonomy 'nope'"):
        call_command("propose_taxonomy_changes", "--taxonomy", "nope")
    version = make_version(["A", "B"])
    add_label(make_prediction("1"), version, "h1", "A")
    with pytest.raises(CommandError, match=r"no gold labels in errors@1 yet: run `adjudicate` first"):
        call_command("propose_taxonomy_changes", "--taxonomy", "errors", "--source", "gold")
    with pytest.raises(CommandError, match="no proposal #99"):
        call_command("accept_proposals", "errors", "99", "--by", "alice")
    with pytest.raises(CommandError, match="the following arguments are required: --by"):
        call_command("accept_proposals", "errors", "1")


@pytest.fixture
def proposal():
    version = make_version(["A", "B", "Other"])
    for i in range(3):
        p = make_prediction(str(i))
        add_label(p, version, "h1", "A")
        add_label(p, version, "h2", "B")
    return TaxonomyProposal.objects.create(version=version, key="k", kind="merge", categories=["A", "B"],
                                           new_name="A", description="A or B", source="human")


def test_accepting_through_the_api_is_staff_only(proposal):
    user = get_user_model().objects.create_user("bob", password="pw")
    client = APIClient()
    client.force_authenticate(user)
    assert client.get("/api/proposals/", {"taxonomy": "errors"}).json()["proposals"][0]["status"] == "open"
    assert client.post("/api/proposals/accept/", {"taxonomy": "errors", "ids": [proposal.pk]},
                       format="json").status_code == 403
    user.is_staff = True
    user.save()
    response = client.post("/api/proposals/accept/", {"taxonomy": "errors", "ids": [proposal.pk], "reason": "r"},
                           format="json")
    assert response.status_code == 201 and response.json()["taxonomy_version"] == "errors@2"
    assert response.json()["mapping"]["B"] == {"kind": "merged", "targets": ["A"]}
    proposal.refresh_from_db()
    assert (proposal.status, proposal.decided_by, str(proposal.accepted_in)) == ("accepted", "bob", "errors@2")
    again = client.post("/api/proposals/accept/", {"taxonomy": "errors", "ids": [proposal.pk]}, format="json")
    assert again.status_code == 400 and "already accepted" in again.json()["detail"]


def test_the_page_shows_the_accept_button_to_staff_only(client, proposal):
    user = get_user_model().objects.create_user("carol", password="pw")
    client.force_login(user)
    page = client.get("/proposals/", {"taxonomy": "errors"}).content.decode()
    assert "A or B" in page and 'id="accept"' not in page
    assert client.post("/proposals/", {"taxonomy": "errors", "ids": [proposal.pk]}).status_code == 403
    user.is_staff = True
    user.save()
    assert 'id="accept"' in client.get("/proposals/", {"taxonomy": "errors"}).content.decode()
    page = client.post("/proposals/", {"taxonomy": "errors@1", "ids": [proposal.pk], "reason": "ok"}).content.decode()
    assert "Made <strong>errors@2</strong>" in page
