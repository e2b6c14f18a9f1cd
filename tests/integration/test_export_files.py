"""Exports through one safe write: bad output paths are clear errors, CSV cells never run as formulas."""
from __future__ import annotations

import csv
import io

import pytest
from django.core.management import CommandError, call_command

from annotation.models import Label
from tests.integration.agreement_factories import add_label, make_prediction, make_version

pytestmark = pytest.mark.django_db


def test_export_errors_neutralises_formulas_in_every_cell(tmp_path):
    version = make_version(["R / Logic"], name="tax")
    add_label(make_prediction("1"), version, "judge-v1", "R / Logic", source="judge")
    Label.objects.update(error_title="=1+1", error_summary="@SUM(A1)")  # untrusted text from the judge
    out = tmp_path / "errors.csv"
    call_command("export_errors", "tax", str(out), stdout=io.StringIO())
    (row,) = csv.DictReader(io.StringIO(out.read_text()))
    assert (row["error_title"], row["error_summary"]) == ("'=1+1", "'@SUM(A1)")
    assert row["category_path"] == "R / Logic"


def test_report_into_an_existing_file_is_a_clear_error(tmp_path):
    existing = tmp_path / "report.html"
    existing.write_text("keep me")
    with pytest.raises(CommandError, match="it is a file, not a directory"):
        call_command("report", str(existing), stdout=io.StringIO())
    assert existing.read_text() == "keep me"


def test_export_errors_into_a_directory_is_a_clear_error(tmp_path):
    version = make_version(["R / Logic"], name="tax")
    add_label(make_prediction("1"), version, "judge-v1", "R / Logic", source="judge")
    with pytest.raises(CommandError, match="it is a directory"):
        call_command("export_errors", "tax", str(tmp_path), stdout=io.StringIO())
