"""export_gold: records with every source's labels and provenance, a datasheet, reproducible bytes."""
from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.management import CommandError, call_command

from tests.integration.agreement_factories import add_label, make_prediction, make_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def adjudicated():
    version = make_version(["R / Arithmetic", "R / Logic", "K / Fact"])
    for example_id, cats in {"1": ["R / Logic"] * 3, "2": ["K / Fact", "K / Fact", "R / Logic"],
                             "3": ["R / Arithmetic", "R / Logic", "K / Fact"]}.items():
        p = make_prediction(example_id, output=f"answer {example_id}, with \"quotes\"\nand a newline")
        for n, cat in enumerate(cats):
            add_label(p, version, f"h{n}", cat)
        add_label(p, version, "judge-v1", "R / Logic", source="judge")
    call_command("adjudicate", "--rule", "two-thirds", stdout=io.StringIO())
    call_command("adjudicate", "--resolve", "ds|3|m1", "--category", "R / Arithmetic", "--by", "ada",
                 "--reason", "12*3 is not 38", stdout=io.StringIO())
    return version


def test_jsonl_export_has_every_field_and_provenance(adjudicated, tmp_path):
    path = tmp_path / "gold.jsonl"
    call_command("export_gold", str(path), stdout=io.StringIO())
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["example_id"] for r in records] == ["1", "2", "3"]
    third = records[2]
    assert third["gold_categories"] == ["R / Arithmetic"]
    assert third["provenance"]["decided_by"] == "ada" and third["provenance"]["reason"] == "12*3 is not 38"
    assert third["annotator_labels"] == {"h0": ["R / Arithmetic"], "h1": ["R / Logic"], "h2": ["K / Fact"]}
    assert third["judge_labels"] == {"judge-v1": ["R / Logic"]}
    assert third["input"] == "input 3" and third["reference"] == "ref" and "newline" in third["output"]
    assert records[1]["item_agreement"] == pytest.approx(1 / 3)  # 1 of 3 pairs identical
    assert records[1]["provenance"]["method"] == "auto_rule" and "2/3" in records[1]["provenance"]["rule"]
    assert {r["taxonomy_version"] for r in records} == {"errors@1"}
    sheet = (tmp_path / "gold.jsonl.datasheet.md").read_text()
    assert "items: 3" in sheet and "Krippendorff's alpha" in sheet
    assert "1 items by adjudicator" in sheet and "2 items by auto_rule" in sheet


def test_same_database_gives_the_same_bytes(adjudicated, tmp_path):
    for run in ("first", "second"):
        for name in ("gold.jsonl", "gold.csv"):
            call_command("export_gold", str(tmp_path / run / name), stdout=io.StringIO())
    for name in ("gold.jsonl", "gold.csv", "gold.jsonl.datasheet.md", "gold.csv.datasheet.md"):
        assert (tmp_path / "first" / name).read_bytes() == (tmp_path / "second" / name).read_bytes(), name
    assert (tmp_path / "first" / "gold.jsonl").read_bytes() != (tmp_path / "first" / "gold.csv").read_bytes()


def test_csv_export_round_trips_text_with_quotes_and_newlines(adjudicated, tmp_path):
    path = tmp_path / "gold.csv"
    call_command("export_gold", str(path), "--format", "csv", stdout=io.StringIO())
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert len(rows) == 3
    assert rows[0]["output"] == 'answer 1, with "quotes"\nand a newline'
    assert json.loads(rows[2]["gold_categories"]) == ["R / Arithmetic"]


def test_nothing_to_export_is_a_clear_error(tmp_path):
    version = make_version(["A"])
    add_label(make_prediction("1"), version, "h0", "A")
    with pytest.raises(CommandError, match="no labels match"):
        call_command("export_gold", str(tmp_path / "g.jsonl"))


def test_with_notes_exports_annotators_notes_and_proposed_categories(adjudicated, tmp_path):
    from annotation.models import Label

    Label.objects.filter(source="human", annotator__name="h0", prediction__example__example_id="3").update(
        note="step 2 multiplies wrong, <script>x</script>", proposed_category="Carry error")
    Label.objects.filter(source="human", annotator__name="h1", prediction__example__example_id="3").update(
        note="looks like a logic slip")
    plain = tmp_path / "plain.jsonl"
    call_command("export_gold", str(plain), stdout=io.StringIO())
    assert "annotator_notes" not in json.loads(plain.read_text().splitlines()[2])
    path = tmp_path / "notes.jsonl"
    call_command("export_gold", str(path), "--with-notes", stdout=io.StringIO())
    third = json.loads(path.read_text().splitlines()[2])
    assert third["annotator_notes"] == {"h0": "step 2 multiplies wrong, <script>x</script>",
                                        "h1": "looks like a logic slip"}
    assert third["proposed_categories"] == {"h0": ["Carry error"]}
    assert json.loads(path.read_text().splitlines()[0])["annotator_notes"] == {}
    csv_path = tmp_path / "notes.csv"
    call_command("export_gold", str(csv_path), "--with-notes", stdout=io.StringIO())
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text())))
    assert json.loads(rows[2]["proposed_categories"]) == {"h0": ["Carry error"]}
    assert "annotator_notes" in (tmp_path / "notes.csv.datasheet.md").read_text()


def test_a_directory_or_a_full_device_as_the_output_is_a_clear_error(adjudicated, tmp_path):
    with pytest.raises(CommandError, match="it is a directory"):
        call_command("export_gold", str(tmp_path), stdout=io.StringIO())
    with pytest.raises(CommandError, match="No space left on device"):
        call_command("export_gold", "/dev/full", stdout=io.StringIO())
    assert list(tmp_path.iterdir()) == []  # nothing half-written beside it


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(tmp_path):
    version = make_version(["R / Logic"])
    p = make_prediction("1", output="=1+1")
    for n in range(3):
        add_label(p, version, f"h{n}", "R / Logic")
    call_command("adjudicate", "--rule", "two-thirds", stdout=io.StringIO())
    path = tmp_path / "gold.csv"
    call_command("export_gold", str(path), "--format", "csv", stdout=io.StringIO())
    (row,) = csv.DictReader(io.StringIO(path.read_text()))
    assert row["output"] == "'=1+1"
