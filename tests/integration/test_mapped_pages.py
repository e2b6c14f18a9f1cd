"""Pages on NAME@V+1 read V's labels through the mapping: the atlas examples of a merged category list
the examples V labelled with either part."""
from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from annotation.selectors import LabelFilter, label_values
from taxonomy.models import TaxonomyProposal
from taxonomy.services.versions import resolve_version
from tests.integration.agreement_factories import add_label, make_prediction, make_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def merged():
    version = make_version(["A", "B", "C", "Other"])
    items = [make_prediction(str(i), output=f"distinct output {i}") for i in range(5)]
    add_label(items[0], version, "offline", "A", source="judge")
    add_label(items[1], version, "offline", "B", source="judge")
    add_label(items[2], version, "offline", "A", "B", source="judge")
    add_label(items[3], version, "offline", "C", source="judge")
    add_label(items[4], version, "offline", "Other", source="judge")
    proposal = TaxonomyProposal.objects.create(version=version, key="m", kind="merge", categories=["A", "B"],
                                               new_name="A", description="A or B", source="human")
    call_command("accept_proposals", "errors", str(proposal.pk), "--by", "alice", stdout=io.StringIO())
    return items


def test_atlas_examples_of_the_merged_category_on_v2_show_v1s_examples(merged, client):
    client.force_login(get_user_model().objects.create_user("viewer", password="pw"))
    page = client.get("/atlas/examples/", {"taxonomy": "errors@2", "source": "judge", "category": "A"})
    html = page.content.decode()
    assert page.status_code == 200 and "errors@2" in html
    assert '<span id="example-count">3</span>' in html
    shown = {p.pk for p in merged if f'id="failure-{p.pk}"' in html}
    assert shown == {merged[0].pk, merged[1].pk, merged[2].pk}
    # Kept categories read through the mapping too; the retired part B is gone from V+1.
    assert '<span id="example-count">1</span>' in client.get(
        "/atlas/examples/", {"taxonomy": "errors@2", "source": "judge", "category": "C"}).content.decode()


def test_a_category_filter_on_v2_names_v2s_categories(merged):
    rows = label_values(LabelFilter(sources=("judge",), categories=("A",)), resolve_version("errors@2"),
                        "prediction_id", "category__path")
    # Items 0-2, and not C's item 3 (rows, not sets: item 2's two parts give two rows naming A).
    assert sorted(set(rows)) == [(merged[0].pk, "A"), (merged[1].pk, "A"), (merged[2].pk, "A")]
