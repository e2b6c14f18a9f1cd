"""Importers against the database: bad files leave nothing behind and say FILE:LINE; the failure rule
stays finite; label imports never edit a taxonomy version that labels point at; uploads are bounded."""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotation.core.result_formats.io import NAME_MAX_LENGTH
from annotation.models import (
    Annotator,
    Dataset,
    EvaluatedModel,
    Example,
    Label,
    Prediction,
)
from annotation.services.ingest import apply_failure_rule, ingest_results
from annotation.services.label_import import import_labels
from taxonomy.models import Category, CategoryMapping, Taxonomy, TaxonomyVersion

pytestmark = pytest.mark.django_db

HEADER = "example_id,model,input_text,output_text,score,dataset\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def everything() -> list[tuple]:
    """Every row the importers write, by identity and value."""
    return [
        *Dataset.objects.values_list("pk", "name", "applied_threshold"),
        *EvaluatedModel.objects.values_list("pk", "name"),
        *Example.objects.values_list("pk", "example_id", "input_text"),
        *Prediction.objects.values_list("pk", "score", "is_failure", "output_text"),
        *Label.objects.values_list("pk", "prediction_id", "category__path", "annotator__name", "note"),
        *Category.objects.values_list("pk", "version_id", "path"),
        *TaxonomyVersion.objects.values_list("pk", "number"),
    ]


def test_name_bounds_are_the_database_columns():
    for model, name in [(Dataset, "name"), (EvaluatedModel, "name"), (Example, "example_id"), (Annotator, "name")]:
        assert model._meta.get_field(name).max_length == NAME_MAX_LENGTH


@pytest.mark.parametrize("rows,message", [
    ("a,m,q,o,1e308,d\nb,m,q,o,1e308,d\nc,m,q,o,1e308,d\n", r"r\.csv:2: score '1e308' is beyond"),
    ("a,m,q\x00,o,1,d\n", r"r\.csv:2: input_text holds a NUL byte"),
    (f"{'a' * 201},m,q,o,1,d\n", r"r\.csv:2: example_id is 201 characters long"),
])
def test_values_postgresql_refused_are_refused_alike_on_every_database(tmp_path, rows, message):
    ingest_results(paths=[write(tmp_path, "ok.csv", HEADER + "a,m,q,o,1,d\nb,m,q,o,0,d\n")])
    before = everything()
    with pytest.raises(CommandError, match=message):
        call_command("ingest_results", str(write(tmp_path, "r.csv", HEADER + rows)))
    assert everything() == before


def test_scores_stored_before_the_bound_still_give_a_finite_threshold(tmp_path, capsys):
    ingest_results(paths=[write(tmp_path, "ok.csv", HEADER + "a,m,q,o,1,d\n")])
    example = Example.objects.get()
    model = EvaluatedModel.objects.get()
    for i in range(3):  # as an older ingest stored them: their mean overflows on SQLite
        other = Example.objects.create(dataset=example.dataset, example_id=f"x{i}", input_text="q")
        Prediction.objects.create(example=other, model=model, output_text="o", score=1e308, content_key="k")
    apply_failure_rule()  # PostgreSQL's AVG overflowed here; SQLite's gave Inf
    # mean (1 + 3e308) / 4 = 7.5e307, threshold 0.7 x that: finite, and the three huge rows pass.
    threshold = Dataset.objects.get().applied_threshold
    assert threshold == pytest.approx(0.7 * (1 / 4 + 3 * (1e308 / 4))) and math.isfinite(threshold)
    assert sorted(Prediction.objects.values_list("score", "is_failure")) == [(1.0, True)] + [(1e308, False)] * 3
    call_command("summary", "--json")
    # Strict JSON: Infinity or NaN would fail here.
    out = capsys.readouterr().out
    json.loads(out, parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))
    assert "Infinity" not in out


# --- labels: categories and versions -------------------------------------------------------------

def ingest_items(tmp_path: Path) -> None:
    ingest_results(paths=[write(tmp_path, "r.csv", HEADER + "".join(f"e{i},m,q,o,{i % 2},d\n" for i in range(4)))])


def write_labels(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["dataset", "example_id", "model", "annotator", "category"])
        writer.writerows(("d", example, "m", annotator, category) for example, annotator, category in rows)
    return path


def test_a_slash_in_a_category_name_makes_a_path_instead_of_a_key_error(tmp_path):
    ingest_items(tmp_path)
    path = write_labels(tmp_path / "l.csv", [("e0", "ann", "Fluency/Grammar"), ("e1", "ann", "fluency / grammar")])
    report = import_labels(path=path, taxonomy="t")
    assert report.new_categories == ["Fluency / Grammar"]
    assert sorted(Label.objects.values_list("prediction__example__example_id", "category__path")) == [
        ("e0", "Fluency / Grammar"), ("e1", "Fluency / Grammar")]
    assert sorted(Category.objects.values_list("path", "parent__path")) == [
        ("Fluency", None), ("Fluency / Grammar", "Fluency")]


@pytest.mark.parametrize("category,message", [
    ("A / / B", r"l\.csv:3: category 'A / / B' has an empty level"),
    ("/", r"l\.csv:3: category '/' has no name \(only separators\)"),
    ("/".join(["deep"] * 10_000), r"l\.csv:3: category path has 10000 levels \(at most 8\)"),
])
def test_bad_categories_are_refused_at_their_line_and_nothing_is_written(tmp_path, category, message):
    ingest_items(tmp_path)
    before = everything()
    path = write_labels(tmp_path / "l.csv", [("e0", "ann", "Fine"), ("e1", "ann", category)])
    with pytest.raises(CommandError, match=message):
        call_command("import_labels", str(path), "--taxonomy", "t")
    assert everything() == before and not Taxonomy.objects.filter(name="t").exists()


def test_unknown_categories_make_a_new_version_once_labels_point_at_the_old_one(tmp_path):
    ingest_items(tmp_path)
    import_labels(path=write_labels(tmp_path / "a.csv", [("e0", "ann", "Accuracy / Omission"), ("e1", "ann", "Style")]),
                  taxonomy="t")
    v1 = TaxonomyVersion.objects.get(taxonomy__name="t")
    v1_tree = sorted(v1.categories.values_list("pk", "path", "parent_id", "description"))
    v1_labels = sorted(Label.objects.values_list("pk", "prediction_id", "category_id", "taxonomy_version_id"))
    report = import_labels(path=write_labels(tmp_path / "b.csv", [("e2", "bob", "Accuracy / Addition"),
                                                                  ("e3", "bob", "Style")]), taxonomy="t")
    assert (report.taxonomy_version, report.derived_from, report.new_categories) == ("t@2", "t@1",
                                                                                     ["Accuracy / Addition"])
    # @1 is exactly as it was; @2 holds its categories and the new one, each old one mapped as kept.
    assert sorted(v1.categories.values_list("pk", "path", "parent_id", "description")) == v1_tree
    assert sorted(Label.objects.filter(taxonomy_version=v1).values_list(
        "pk", "prediction_id", "category_id", "taxonomy_version_id")) == v1_labels
    v2 = TaxonomyVersion.objects.get(taxonomy__name="t", number=2)
    assert (v2.previous, v2.origin) == (v1, TaxonomyVersion.Origin.IMPORTED)
    assert sorted(v2.categories.values_list("path", flat=True)) == [
        "Accuracy", "Accuracy / Addition", "Accuracy / Omission", "Style"]
    assert sorted(CategoryMapping.objects.values_list("source__path", "target__path", "target__version", "kind")) == [
        ("Accuracy", "Accuracy", v2.pk, "kept"), ("Accuracy / Omission", "Accuracy / Omission", v2.pk, "kept"),
        ("Style", "Style", v2.pk, "kept")]
    assert sorted(Label.objects.filter(taxonomy_version=v2).values_list(
        "prediction__example__example_id", "category__path")) == [("e2", "Accuracy / Addition"), ("e3", "Style")]


def test_the_command_says_which_version_it_made(tmp_path):
    ingest_items(tmp_path)
    import_labels(path=write_labels(tmp_path / "a.csv", [("e0", "ann", "Style")]), taxonomy="t")
    out = io.StringIO()
    call_command("import_labels", str(write_labels(tmp_path / "b.csv", [("e1", "cy", "Tone")])), "--taxonomy", "t",
                 stdout=out)
    assert "in t@2:" in out.getvalue()
    assert "made t@2 from t@1 (labels point at t@1, so its categories are fixed" in out.getvalue()
    assert "added 1 categories: Tone" in out.getvalue()


def test_an_explicit_version_in_use_is_refused_with_how_to_go_on(tmp_path):
    ingest_items(tmp_path)
    import_labels(path=write_labels(tmp_path / "a.csv", [("e0", "ann", "Style")]), taxonomy="t")
    before = everything()
    path = write_labels(tmp_path / "b.csv", [("e1", "ann", "Tone")])
    with pytest.raises(CommandError, match=r"t@1 already has labels, so its categories are fixed.*Import with "
                                           r"--taxonomy t to make a new version of t from t@1"):
        call_command("import_labels", str(path), "--taxonomy", "t@1")
    assert everything() == before


def test_a_file_of_known_categories_goes_into_the_version_in_use(tmp_path):
    ingest_items(tmp_path)
    import_labels(path=write_labels(tmp_path / "a.csv", [("e0", "ann", "Style")]), taxonomy="t")
    report = import_labels(path=write_labels(tmp_path / "b.csv", [("e1", "bob", "style")]), taxonomy="t@1")
    assert (report.taxonomy_version, report.derived_from, report.created) == ("t@1", None, 1)
    assert TaxonomyVersion.objects.count() == 1


# --- uploads ------------------------------------------------------------------------------------

@pytest.fixture
def client():
    user = get_user_model().objects.create_user("api-user", password="pw-123456789")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return api


def test_an_upload_over_the_limit_is_refused_with_413_and_writes_nothing(client, settings):
    settings.ERRORMAP_MAX_UPLOAD_BYTES = 100_000
    body = (HEADER + "".join(f"e{i},m,{'q' * 100},o,1,d\n" for i in range(2_000))).encode()
    response = client.post("/api/ingest/", {"file": SimpleUploadedFile("big.csv", body)}, format="multipart")
    assert response.status_code == 413
    assert "ERRORMAP_MAX_UPLOAD_BYTES" in response.json()["detail"]
    assert not Prediction.objects.exists()
    small = client.post("/api/ingest/", {"file": SimpleUploadedFile("s.csv", body[:2_000].rsplit(b"\n", 1)[0] + b"\n")},
                        format="multipart")
    assert small.status_code == 202 and small.json()["status"] == "done", small.content


def test_upload_limits_reach_the_readers(client, settings):
    settings.ERRORMAP_MAX_COLUMNS = 10
    body = (HEADER.strip() + "," + ",".join(f"c{i}" for i in range(10)) + "\n").encode()
    response = client.post("/api/ingest/", {"file": SimpleUploadedFile("wide.csv", body)}, format="multipart")
    assert response.status_code == 202 and response.json()["status"] == "failed"
    assert "16 columns (at most 10; ERRORMAP_MAX_COLUMNS)" in response.json()["error"]
