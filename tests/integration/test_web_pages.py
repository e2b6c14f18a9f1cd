"""Web pages rendered by Django's test client on small factory data: what each page must survive
(data whose keys collide with template attribute lookups) and what it must show."""
from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from annotation.models import StageRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def user_client() -> Client:
    user = get_user_model().objects.create_user("viewer", password="pw-123456789")
    client = Client()
    client.force_login(user)
    return client


def test_dashboard_renders_a_run_whose_counts_have_a_key_named_items(user_client):
    # adjudicate and export_gold record counts with a key "items": the template's `counts.items`
    # used to pick that key (an int) instead of the dict's items, and `/` answered 500.
    StageRun.objects.create(stage="adjudicate", status="succeeded", counts={"items": 3, "auto_gold": 1})
    StageRun.objects.create(stage="export_gold", status="succeeded", counts={"items": 12, "keys": 2})
    response = user_client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<span class="run-count">items <b title="3">3</b></span>' in html
    assert '<span class="run-count">auto_gold <b title="1">1</b></span>' in html
    assert '<span class="run-count">items <b title="12">12</b></span>' in html


def test_atlas_examples_show_the_judges_required_criteria(user_client):
    # Criteria are dicts without a "name": `default:c.name` raised VariableDoesNotExist (500) on
    # every analysis with criteria, i.e. on every example the judge analysed.
    from annotation.models import Analysis, Label
    from tests.integration.agreement_factories import add_label, make_prediction, make_version

    version = make_version(["Reasoning / Logic"], name="tax")
    prediction = make_prediction("e1")
    add_label(prediction, version, "offline-judge", "Reasoning / Logic", source="judge")
    analysis = Analysis.objects.create(
        key="k1", content_key=prediction.content_key, backend="offline", status="ok",
        required_criteria=[{"criterion": "Keeps <b>order</b>", "present_in_wrong": False, "quality": "incorrect",
                            "evidence": "", "comment": "nearest gold failure"}])
    Label.objects.filter(prediction=prediction).update(analysis=analysis)
    response = user_client.get("/atlas/examples/", {"taxonomy": "tax@1", "source": "judge",
                                                     "category": "Reasoning / Logic"})
    assert response.status_code == 200
    assert "<li>Keeps &lt;b&gt;order&lt;/b&gt; — incorrect</li>" in response.content.decode()


# ---- adjudication from the web page ---------------------------------------------------------------

@pytest.fixture
def queue():
    """Two disputed items (three annotators disagree; the judge says Logic) queued by the unanimous rule,
    one with hostile output."""
    from io import StringIO

    from django.core.management import call_command

    from annotation.models import AdjudicationItem
    from tests.integration.agreement_factories import add_label, make_prediction, make_version

    version = make_version(["R / Arithmetic", "R / Logic", "K / Fact"])
    for example_id, output in (("split", "<script>window.__x=1</script>12*3=38"), ("other", "fine")):
        p = make_prediction(example_id, output=output)
        for n, cat in enumerate(["R / Arithmetic", "R / Logic", "K / Fact"]):
            add_label(p, version, f"h{n}", cat)
        add_label(p, version, "judge-v1", "R / Logic", source="judge", confidence=0.7)
    call_command("adjudicate", stdout=StringIO())
    return {q.prediction.example.example_id: q for q in AdjudicationItem.objects.select_related("prediction__example")}


def _gold(item) -> list[tuple[str, str, str]]:
    from annotation.models import Label

    return sorted(Label.objects.filter(source="gold", prediction=item.prediction)
                  .values_list("category__path", "annotator__name", "rationale"))


def _client(username: str, *, staff: bool, csrf: bool = False) -> Client:
    user = get_user_model().objects.create_user(username, password="pw-123456789", is_staff=staff)
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def test_staff_resolve_an_item_from_the_queue_page_through_resolve_item(queue):
    from annotation.models import AdjudicationDecision

    split, other = queue["split"], queue["other"]
    staff = _client("lead", staff=True)
    page = staff.get("/adjudication/").content.decode()
    assert f'action="/adjudication/{split.pk}/resolve/"' in page and 'class="resolve-button"' in page
    assert "<script>window.__x=1</script>" not in page and "&lt;script&gt;window.__x=1&lt;/script&gt;" in page
    response = staff.post(f"/adjudication/{split.pk}/resolve/",
                          {"category": ["R / Arithmetic", ""], "reason": "the first wrong step is 12*3=38",
                           "next": "/adjudication/?status=open"})
    assert response.status_code == 302 and response["Location"] == "/adjudication/?status=open"
    split.refresh_from_db()
    other.refresh_from_db()
    assert (split.status, other.status) == ("resolved", "open")
    decision = AdjudicationDecision.objects.get(prediction=split.prediction)
    assert (decision.categories, decision.method, decision.decided_by.name, decision.reason, decision.external_id) == (
        ["R / Arithmetic"], "adjudicator", "lead", "the first wrong step is 12*3=38",
        f"web:{get_user_model().objects.get(username='lead').pk}")
    assert _gold(split) == [("R / Arithmetic", "lead", "the first wrong step is 12*3=38")]
    assert _gold(other) == []
    after = staff.get("/adjudication/?status=open").content.decode()
    assert "resolved as R / Arithmetic" in after  # the message after the redirect


def test_a_resolve_with_an_unknown_category_or_no_reason_changes_nothing_and_says_why(queue):
    from annotation.models import AdjudicationDecision

    split = queue["split"]
    staff = _client("lead", staff=True)
    for form in ({"category": "Nope / Nothing", "reason": "x"}, {"category": "R / Logic", "reason": " "},
                 {"reason": "no category"}):
        page = staff.post(f"/adjudication/{split.pk}/resolve/", form, follow=True).content.decode()
        assert f"Queue item {split.pk} not resolved" in page
    split.refresh_from_db()
    assert split.status == "open" and AdjudicationDecision.objects.count() == 0 and _gold(split) == []


def test_resolving_needs_staff_a_post_and_the_csrf_token(queue):
    from annotation.models import AdjudicationDecision

    split = queue["split"]
    form = {"category": "R / Logic", "reason": "judge was right"}
    viewer = _client("viewer", staff=False)
    assert 'class="resolve-button"' not in viewer.get("/adjudication/").content.decode()
    assert viewer.post(f"/adjudication/{split.pk}/resolve/", form).status_code == 403
    staff = _client("lead", staff=True)
    assert staff.get(f"/adjudication/{split.pk}/resolve/").status_code == 405
    assert staff.post("/adjudication/999999999/resolve/", form, follow=True).status_code == 200  # says so
    assert _client("csrf-lead", staff=True, csrf=True).post(f"/adjudication/{split.pk}/resolve/",
                                                            form).status_code == 403
    assert Client().post(f"/adjudication/{split.pk}/resolve/", form).status_code == 302  # to the login page
    split.refresh_from_db()
    assert split.status == "open" and AdjudicationDecision.objects.count() == 0 and _gold(split) == []


def test_the_item_page_shows_every_label_the_decisions_and_escapes_the_output(queue):
    split = queue["split"]
    staff = _client("lead", staff=True)
    staff.post(f"/adjudication/{split.pk}/resolve/", {"category": "R / Logic", "reason": "first"})
    staff.post(f"/adjudication/{split.pk}/resolve/", {"category": "K / Fact", "reason": "second thoughts"})
    page = staff.get(f"/items/{split.prediction_id}/").content.decode()
    assert "&lt;script&gt;window.__x=1&lt;/script&gt;12*3=38" in page and "<script>window.__x" not in page
    for annotator in ("h0", "h1", "h2", "judge-v1", "lead"):
        assert f"<td>{annotator}</td>" in page
    assert page.index("first") < page.index("second thoughts") and "superseded" in page
    assert staff.get("/items/999999999/").status_code == 404


# ---- agreement, judge and the static report ----------------------------------------------------

@pytest.fixture
def audited():
    """Four items: two humans, the judge (with confidences) and gold on each.

    item  alice  bob    judge (conf)   gold
    i0    A      A      A (0.9)        A
    i1    A      B      A (0.9)        A
    i2    B      B      A (0.3)        B
    i3    B      A      B (0.7)        A
    alice is right on i0, i1, i2 (3 of 4); bob on i0, i2, i3 (3 of 4); they disagree on i1 and i3.
    """
    from tests.integration.agreement_factories import add_label, make_prediction, make_version

    version = make_version(["A", "B"], name="tax")
    rows = [("A", "A", "A", 0.9, "A"), ("A", "B", "A", 0.9, "A"), ("B", "B", "A", 0.3, "B"),
            ("B", "A", "B", 0.7, "A")]
    items = []
    for i, (alice, bob, judge, confidence, gold) in enumerate(rows):
        p = make_prediction(f"i{i}")
        items.append(p)
        add_label(p, version, "alice", alice)
        add_label(p, version, "bob", bob)
        add_label(p, version, "judge-1", judge, source="judge", confidence=confidence)
        add_label(p, version, "adjudicator", gold, source="gold")
    return items


def test_agreement_page_shows_accuracy_against_gold_and_links_the_disagreements(user_client, audited):
    html = user_client.get("/agreement/", {"taxonomy": "tax@1"}).content.decode()
    # per annotator: 4 items with gold, 3 of them right = 75%
    assert html.count('<td class="num accuracy-vs-gold" title="0.75">75%</td>') == 2
    assert "key=" not in html and "n_items=" not in html
    for item in (audited[1], audited[3]):
        assert f'<a href="/items/{item.pk}/">ds|{item.example.example_id}|m1</a>' in html
    assert f'/items/{audited[0].pk}/' not in html  # they agree on i0
    assert 'id="taxonomy-version">Taxonomy <b class="taxonomy-version">tax@1</b>' in html


def test_judge_page_shows_the_confusion_matrix_and_a_reliability_diagram_open(user_client, audited):
    html = user_client.get("/judge/", {"taxonomy": "tax@1"}).content.decode()
    section = html[html.index("against gold"):]
    # the matrix is on the page, not folded into a <details>
    before_matrix = section[:section.index('<table class="confusion">')]
    assert "<details" not in before_matrix
    # against gold: reference A -> judge A on i0, i1, B on i3; reference B -> judge A on i2
    assert 'title="A → A: 2 of 3">2</td>' in section and 'title="A → B: 1 of 3">1</td>' in section
    assert 'title="B → A: 1 of 1">1</td>' in section
    assert '<svg class="reliability"' in section[:section.index("<details")]
    # bins [0.2, 0.4): i2 (wrong); [0.6, 0.8): i3 (wrong); [0.8, 1.0]: i0, i1 (right) -> three bars
    assert section[:section.index("<details")].count('class="reliability-bar"') == 3


def test_the_static_report_has_a_judge_audit_page_and_names_each_pages_taxonomy_version(audited, tmp_path):
    from io import StringIO

    from django.core.management import call_command

    call_command("report", str(tmp_path / "report"), stdout=StringIO())
    judge = (tmp_path / "report" / "judge.html").read_text()
    assert "Judge reliability" in judge and '<table class="confusion">' in judge and "reliability diagram" in judge
    index = (tmp_path / "report" / "index.html").read_text()
    rows = re.findall(r'<a href="([^"]+)">[^<]*</a></td><td class="taxonomy-version">([^<]*)</td>', index)
    assert ("judge.html", "tax@1") in rows and ("agreement.html", "tax@1") in rows
    assert {name for name, _ in rows} >= {"signatures-judge-by-model.html", "atlas-human.html"}
    assert all(version == "tax@1" for _, version in rows)
    for name, _ in rows:
        assert 'class="taxonomy-version">tax@1<' in (tmp_path / "report" / name).read_text(), name


def test_admin_forms_of_plain_models_take_ids_instead_of_listing_every_prediction(queue):
    # An AdjudicationItem form listed every prediction in a <select> (seconds per page at 3,000
    # predictions, unusable at a million); its keys are raw ids now.
    superuser = get_user_model().objects.create_superuser("root", "root@example.org", "pw-123456789")
    client = Client()
    client.force_login(superuser)
    item = queue["split"]
    for url in ("/admin/annotation/adjudicationitem/add/", f"/admin/annotation/adjudicationitem/{item.pk}/change/",
                "/admin/annotation/adjudicationdecision/add/", "/admin/annotation/worksetfailure/add/"):
        html = client.get(url).content.decode()
        assert 'class="vForeignKeyRawIdAdminField"' in html, url
        assert f'<option value="{item.prediction_id}"' not in html, url
