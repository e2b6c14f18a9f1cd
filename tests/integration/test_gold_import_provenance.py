"""Gold from `import_labels --source gold` is a decision: recorded, superseding the earlier one, and
`export_gold` provenance describes the labels it prints."""
from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from annotation.models import AdjudicationDecision, AdjudicationItem, Label
from tests.integration.agreement_factories import add_label, make_prediction, make_version

pytestmark = pytest.mark.django_db


def adjudicate(*args: str):
    out = io.StringIO()
    call_command("adjudicate", "--json", *args, stdout=out)
    return json.loads(out.getvalue())


@pytest.fixture
def auto_gold_item():
    """Item '1' made gold by the unanimous rule (R / Logic); item '2' queued (annotators split)."""
    version = make_version(["R / Logic", "K / Fact"])
    for example_id, cats in {"1": ["R / Logic", "R / Logic"], "2": ["R / Logic", "K / Fact"]}.items():
        p = make_prediction(example_id)
        for n, cat in enumerate(cats):
            add_label(p, version, f"h{n}", cat)
    adjudicate()
    return version


def import_gold(tmp_path, rows: str, name: str = "gold.csv") -> str:
    path = tmp_path / name
    path.write_text("dataset,example_id,model,annotator,category\n" + rows)
    out = io.StringIO()
    call_command("import_labels", str(path), "--source", "gold", "--taxonomy", "errors", stdout=out)
    return out.getvalue()


def test_imported_gold_supersedes_the_rule_and_export_describes_it(auto_gold_item, tmp_path):
    out = import_gold(tmp_path, "ds,1,m1,expert,K / Fact\nds,2,m1,expert,K / Fact\n")
    assert "recorded 2 gold decisions" in out and "superseding 1 earlier" in out
    # The item's gold is the imported set only (the auto rule's row went with its decision).
    assert sorted(Label.objects.filter(source="gold", prediction__example__example_id="1")
                  .values_list("category__path", "annotator__name")) == [("K / Fact", "expert")]
    history = adjudicate("--history", "ds|1|m1")
    assert [(h["method"], h["superseded"], h["decided_by"]) for h in history] == [
        ("auto_rule", True, "auto-gold"), ("import", False, "expert")]
    assert history[1]["categories"] == ["K / Fact"] and history[1]["external_id"] == "import:gold.csv"
    # The queued item is settled by the import.
    assert AdjudicationItem.objects.get(prediction__example__example_id="2").status == "resolved"
    path = tmp_path / "gold.jsonl"
    call_command("export_gold", str(path), stdout=io.StringIO())
    records = {r["example_id"]: r for r in map(json.loads, path.read_text().splitlines())}
    assert records["1"]["gold_categories"] == ["K / Fact"]
    assert records["1"]["provenance"]["method"] == "import"
    assert records["1"]["provenance"]["decided_by"] == "expert"
    assert "gold.csv" in records["1"]["provenance"]["reason"]


def test_reimport_changes_nothing_and_the_rule_keeps_the_import(auto_gold_item, tmp_path):
    import_gold(tmp_path, "ds,1,m1,expert,K / Fact\n")
    before = (list(Label.objects.order_by("pk").values_list("pk", "category_id", "annotator_id", "source")),
              list(AdjudicationDecision.objects.order_by("pk").values_list("pk", "superseded", "categories")))
    out = import_gold(tmp_path, "ds,1,m1,expert,K / Fact\n")
    assert "gold decisions" not in out and "1 unchanged" in out
    report = adjudicate()
    assert report["imported"] == 1 and report["changed"] == 0
    after = (list(Label.objects.order_by("pk").values_list("pk", "category_id", "annotator_id", "source")),
             list(AdjudicationDecision.objects.order_by("pk").values_list("pk", "superseded", "categories")))
    assert after == before


def test_a_later_adjudicator_supersedes_the_import(auto_gold_item, tmp_path):
    import_gold(tmp_path, "ds,1,m1,expert,K / Fact\n")
    adjudicate("--resolve", "ds|1|m1", "--category", "R / Logic", "--by", "ada", "--reason", "logic slip")
    history = adjudicate("--history", "ds|1|m1")
    assert [(h["method"], h["superseded"]) for h in history] == [
        ("auto_rule", True), ("import", True), ("adjudicator", False)]
    path = tmp_path / "gold.jsonl"
    call_command("export_gold", str(path), stdout=io.StringIO())
    record = json.loads(path.read_text().splitlines()[0])
    assert record["gold_categories"] == ["R / Logic"] and record["provenance"]["decided_by"] == "ada"


def test_export_never_attributes_gold_to_a_decision_it_contradicts(auto_gold_item, tmp_path):
    # Gold rows written outside any decision (an older import) beside the rule's decision.
    version = auto_gold_item
    Label.objects.filter(source="gold").delete()
    add_label(Label.objects.filter(prediction__example__example_id="1").first().prediction, version,
              "someone", "K / Fact", source="gold")
    path = tmp_path / "gold.jsonl"
    call_command("export_gold", str(path), stdout=io.StringIO())
    record = json.loads(path.read_text().splitlines()[0])
    assert record["gold_categories"] == ["K / Fact"]
    assert record["provenance"]["decided_by"] == "someone"
    assert record["provenance"]["method"] == "gold label without a recorded decision"
