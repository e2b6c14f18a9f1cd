"""Every model has an admin page that opens on the demo data, and untrusted text is escaped there."""
import io

import pytest
from django.contrib import admin
from django.core.management import call_command
from django.urls import reverse

from annotation.models import Prediction

pytestmark = pytest.mark.django_db


def test_every_model_of_both_apps_is_in_the_admin_and_its_pages_open(admin_client):
    call_command("run_demo", "--no-labelstudio", stdout=io.StringIO())
    Prediction.objects.filter(pk=Prediction.objects.first().pk).update(output_text="<script>alert(1)</script>")
    registered = {m._meta.label for m in admin.site._registry}
    from django.apps import apps

    for app in ("annotation", "taxonomy"):
        for model in apps.get_app_config(app).get_models():
            assert model._meta.label in registered
            meta = model._meta
            response = admin_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
            assert response.status_code == 200, meta.label
    prediction = Prediction.objects.get(output_text__startswith="<script>")
    page = admin_client.get(reverse("admin:annotation_prediction_change", args=[prediction.pk])).content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)</script>" not in page
