"""The admin's delete confirmation counts what would go, per model, in a fixed number of queries."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annotation.models import EvaluatedModel, Label, Prediction
from taxonomy.models import Category, TaxonomyVersion
from tests.integration.agreement_factories import add_label, make_prediction, make_version

pytestmark = pytest.mark.django_db


def _model_with_labels(name: str, n: int, version: TaxonomyVersion) -> EvaluatedModel:
    for i in range(n):
        prediction = make_prediction(f"{name}-{i}", model=name)
        add_label(prediction, version, "ann", "Reasoning / Arithmetic", "Format")
    return EvaluatedModel.objects.get(name=name)


def _confirm(admin_client, model: EvaluatedModel) -> tuple[str, int]:
    url = reverse("admin:annotation_evaluatedmodel_delete", args=[model.pk])
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(url)
    assert response.status_code == 200
    return response.content.decode(), len(queries.captured_queries)


def test_delete_page_counts_each_cascade_and_costs_the_same_at_any_size(admin_client):
    version = make_version(["Reasoning / Arithmetic", "Format"])
    small = _model_with_labels("small", 2, version)
    large = _model_with_labels("large", 25, version)

    page, small_queries = _confirm(admin_client, small)
    assert "2 predictions" in page and "4 labels" in page and "1 evaluated model" in page
    large_page, large_queries = _confirm(admin_client, large)
    assert "25 predictions" in large_page and "50 labels" in large_page
    # Django's own page fetched and listed every row: its queries grew with the rows.
    assert large_queries == small_queries
    assert "large-3" not in large_page  # rows are counted, not listed


def test_delete_through_the_page_removes_exactly_what_it_counted(admin_client):
    version = make_version(["Reasoning / Arithmetic", "Format"])
    keep = _model_with_labels("keep", 3, version)
    gone = _model_with_labels("gone", 4, version)
    kept_labels = set(Label.objects.filter(prediction__model=keep).values_list("pk", "category_id"))

    response = admin_client.post(reverse("admin:annotation_evaluatedmodel_delete", args=[gone.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not Prediction.objects.filter(model__name="gone").exists()
    assert set(Label.objects.values_list("pk", "category_id")) == kept_labels


def test_a_category_in_use_is_protected_and_the_page_says_by_how_many_labels(admin_client):
    version = make_version(["Reasoning / Arithmetic", "Format"])
    _model_with_labels("m", 3, version)
    category = Category.objects.get(version=version, path="Format")
    page = admin_client.get(reverse("admin:taxonomy_category_delete", args=[category.pk])).content.decode()
    assert "3 labels" in page and "protected" in page.lower()
    # Deleting the whole version removes its labels' categories too; only the labels protect it.
    version_page = admin_client.get(reverse("admin:taxonomy_taxonomyversion_delete", args=[version.pk]))
    assert version_page.status_code == 200
    assert "6 labels" in version_page.content.decode()
