"""sample_failures and import_labels against the real database and the bundled data."""
from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from annotation.core.result_formats.mqm import read_mqm_ratings
from annotation.errors import ErrorMapError
from annotation.models import Dataset, EvaluatedModel, Example, Label, Prediction, WorkSet
from annotation.services.ingest import ingest_results
from annotation.services.label_import import STAGE_TABLE, import_labels
from annotation.services.sampling import sample_failures
from taxonomy.models import Category

DATA = Path(__file__).resolve().parents[2] / "data"
MQM = DATA / "wmt23-mqm-ende" / "sxs_mqm_generalMT2023_ende.3ratingsPerSegment.tsv.tar.gz"
BBM = DATA / "big-bench-mistake"

pytestmark = pytest.mark.django_db


def label_rows() -> list[tuple]:
    return sorted(Label.objects.values_list(
        "prediction__example__example_id", "prediction__model__name", "annotator__name", "category__path",
        "source", "note", "confidence",
    ))


def test_sample_is_stratified_reproducible_and_recorded():
    ingest_results(paths=[BBM])
    report = sample_failures(ratio=0.1, seed=3, name="a")
    failures = Prediction.objects.filter(is_failure=True).count()
    assert report.sampled == sum(-(-s.failures // 10) for s in report.strata)
    assert sum(s.failures for s in report.strata) == failures
    work_set = WorkSet.objects.get(name="a")
    assert (work_set.ratio, work_set.seed) == (0.1, 3)
    assert set(work_set.thresholds) == {d for d, _ in ((s.dataset, 0) for s in report.strata)}
    again = sample_failures(ratio=0.1, seed=3, name="b")
    ids_a = set(WorkSet.objects.get(name="a").failures.values_list("prediction_id", flat=True))
    ids_b = set(WorkSet.objects.get(name="b").failures.values_list("prediction_id", flat=True))
    assert ids_a == ids_b and again.created
    assert all(Prediction.objects.get(pk=pk).is_failure for pk in ids_a)


def test_resampling_same_name_and_settings_changes_nothing_and_conflicts_are_refused():
    ingest_results(paths=[BBM / "word_sorting.jsonl"])
    sample_failures(ratio=0.2, seed=1, name="ws")
    count = WorkSet.objects.get(name="ws").failures.count()
    assert not sample_failures(ratio=0.2, seed=1, name="ws").created
    assert WorkSet.objects.get(name="ws").failures.count() == count
    with pytest.raises(CommandError, match=r"drawn with other parameters: ratio 0.2 \(asked 0.3\)"):
        call_command("sample_failures", "--ratio", "0.3", "--seed", "1", "--name", "ws")


def test_threshold_override_changes_which_predictions_fail():
    ingest_results(paths=[MQM])
    call_command("sample_failures", "--threshold", "wmt23-mqm-ende=-10", "--ratio", "1", "--name", "strict")
    # -10 means an item fails only when its mean MQM penalty exceeds 10.
    expected = Prediction.objects.filter(score__lt=-10).count()
    assert WorkSet.objects.get(name="strict").failures.count() == expected > 0
    with pytest.raises(CommandError, match="unknown dataset 'nope'"):
        call_command("sample_failures", "--threshold", "nope=1")


def test_mqm_ratings_import_as_three_raters_per_item_and_reimport_changes_nothing():
    ingest_results(paths=[MQM])
    report = import_labels(path=MQM)
    # Independently from the raw file: each (system, segment, rater) is one set of categories.
    sets = defaultdict(set)
    for r in read_mqm_ratings(MQM):
        sets[(r.system, r.segment, r.rater)].add(r.category.replace("/", " / "))
    assert report.label_sets == len(sets) == 3120
    assert Label.objects.count() == sum(len(v) for v in sets.values())
    per_item = defaultdict(set)
    for model, example_id, annotator in Label.objects.values_list("prediction__model__name",
                                                                  "prediction__example__example_id", "annotator__name"):
        per_item[(model, example_id)].add(annotator)
    assert {len(a) for a in per_item.values()} == {3}
    accuracy = Category.objects.get(version__taxonomy__name="wmt23-mqm", path="Accuracy")
    assert accuracy.children.filter(name="Mistranslation").exists()
    before = label_rows()
    again = import_labels(path=MQM)
    assert (again.created, again.updated, again.deleted) == (0, 0, 0)
    assert label_rows() == before


def write_labels(path: Path, rows: list[dict]) -> Path:
    columns = ["dataset", "example_id", "model", "annotator", "category", "source", "title", "summary", "confidence",
               "note"]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})
    return path


def test_long_table_sets_unknown_categories_and_replacement(tmp_path):
    ingest_results(paths=[BBM / "word_sorting.jsonl"])
    item = {"dataset": "bbm_word_sorting", "example_id": "word_sorting-00001", "model": "PaLM 2"}
    path = write_labels(tmp_path / "l.csv", [
        {**item, "annotator": "ann", "category": "Reasoning / Ordering", "confidence": "0.9"},
        {**item, "annotator": "ann", "category": "Format", "note": "<script>alert(1)</script>"},
        {**item, "annotator": "bob", "category": "Format"},
    ])
    report = import_labels(path=path, taxonomy="mine")
    assert report.label_sets == 2 and report.created == 3
    assert set(report.new_categories) == {"Reasoning / Ordering", "Format"}
    assert Label.objects.get(annotator__name="ann", category__path="Format").note == "<script>alert(1)</script>"
    # The annotator's new set for the item replaces the old one: Format goes, Ordering stays.
    write_labels(path, [{**item, "annotator": "ann", "category": "reasoning / ordering", "confidence": "0.8"},
                        {**item, "annotator": "bob", "category": "Format"}])
    report = import_labels(path=path, taxonomy="mine")
    assert (report.created, report.updated, report.deleted, report.unchanged) == (0, 1, 1, 1)
    assert sorted(Label.objects.values_list("annotator__name", "category__path", "confidence")) == [
        ("ann", "Reasoning / Ordering", 0.8), ("bob", "Format", None)]



def _plan_nodes(node: dict):
    yield node
    for child in node.get("Plans", []):
        yield from _plan_nodes(child)


def test_label_import_matches_the_staged_rows_in_one_join_not_a_subquery_per_row(tmp_path):
    """The staged rows are matched to predictions by one join, whose plan is read as import_labels runs
    it. A correlated subquery per staged row (a SubPlan on PostgreSQL, a correlated scalar subquery on
    SQLite) stalled a PostgreSQL test run for minutes; a scan of a names table per staged row would be
    quadratic. Checked on the plan, not on the time."""
    ingest_results(paths=[BBM])
    items = Prediction.objects.values_list("example__dataset__name", "example__example_id", "model__name")
    rows = [{"dataset": d, "example_id": e, "model": m, "annotator": a, "category": "Reasoning"}
            for d, e, m in items for a in ("ann-a", "ann-b", "ann-c")]
    assert len(rows) > 6000
    plans = []

    def explain(execute, sql, params, many, context):
        if sql.startswith(f"UPDATE {STAGE_TABLE} SET prediction_id"):
            raw = context["cursor"].cursor
            if connection.vendor == "postgresql":
                raw.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql)
                plans.append(raw.fetchone()[0][0]["Plan"])
            else:
                raw.execute("EXPLAIN QUERY PLAN " + sql)
                plans.append([detail for *_, detail in raw.fetchall()])
        return execute(sql, params, many, context)

    with connection.execute_wrapper(explain):
        report = import_labels(path=write_labels(tmp_path / "labels.csv", rows), taxonomy="mine")
    assert report.created == len(rows)
    (plan,) = plans
    names = [model._meta.db_table for model in (Prediction, Example, Dataset, EvaluatedModel)]
    if connection.vendor == "postgresql":
        nodes = list(_plan_nodes(plan))
        assert not [n for n in nodes if n.get("Parent Relationship") in ("SubPlan", "InitPlan")], plan
        (stage_scan,) = [n for n in nodes if n.get("Relation Name") == STAGE_TABLE and n["Node Type"] != "ModifyTable"]
        assert stage_scan["Actual Loops"] == 1 and stage_scan["Actual Rows"] == len(rows)
        # Each table of names is read whole once (a hash or merge join) or by index per row; never
        # scanned whole per row.
        scans = [n for n in nodes if n.get("Relation Name") in names]
        assert {n["Relation Name"] for n in scans} == set(names)
        assert all(n["Node Type"] != "Seq Scan" or n["Actual Loops"] == 1 for n in scans), plan
    else:
        assert not [d for d in plan if "SUBQUERY" in d], plan
        assert [d for d in plan if d.startswith("SCAN")] == [f"SCAN {STAGE_TABLE}"], plan
        assert len([d for d in plan if d.startswith("SEARCH") and "USING" in d and "INDEX" in d]) == 4, plan

@pytest.mark.parametrize("rows,message", [
    ([{"dataset": "bbm_word_sorting", "example_id": "nope", "model": "PaLM 2", "annotator": "a", "category": "X"}],
     r"l\.csv:2: no prediction for .*example_id='nope'"),
    ([{"dataset": "bbm_word_sorting", "example_id": "word_sorting-00001", "model": "PaLM 2", "annotator": "a",
       "category": ""}], r"l\.csv:2: missing or empty column\(s\) category"),
    ([{"dataset": "bbm_word_sorting", "example_id": "word_sorting-00001", "model": "PaLM 2", "annotator": "a",
       "category": "X", "confidence": "sure"}], r"l\.csv:2: confidence 'sure' is not a number"),
    ([{"dataset": "bbm_word_sorting", "example_id": "word_sorting-00001", "model": "PaLM 2", "annotator": "a",
       "category": "X", "source": "robot"}], r"l\.csv:2: source 'robot' is not one of"),
])
def test_bad_label_rows_name_the_line_and_write_nothing(tmp_path, rows, message):
    ingest_results(paths=[BBM / "word_sorting.jsonl"])
    good = {"dataset": "bbm_word_sorting", "example_id": "word_sorting-00002", "model": "PaLM 2", "annotator": "a",
            "category": "Y"}
    path = write_labels(tmp_path / "l.csv", rows + [good])
    with pytest.raises(CommandError, match=message):
        call_command("import_labels", str(path))
    assert Label.objects.count() == 0 and Category.objects.count() == 0


def test_seed_outside_32_bits_is_refused_before_anything_is_written():
    ingest_results(paths=[BBM / "word_sorting.jsonl"])
    with pytest.raises(CommandError, match="--seed must fit in 32 bits"):
        call_command("sample_failures", "--seed", str(2**40))
    assert not WorkSet.objects.exists()


def own_results(path: Path, scores: list[float], dataset: str = "my-qa") -> Path:
    """A user's own small results table (one model)."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["dataset", "example_id", "model", "input_text", "output_text", "score"])
        for n, score in enumerate(scores):
            writer.writerow([dataset, f"q{n}", "my-model", f"question {n}", f"answer {n}", score])
    return path


def members(name: str) -> set[int]:
    return set(WorkSet.objects.get(name=name).failures.values_list("prediction_id", flat=True))


def test_a_work_set_keeps_its_members_when_results_change(tmp_path):
    ingest_results(paths=[own_results(tmp_path / "r.csv", [0, 0, 1, 1, 1, 1])])
    first = sample_failures(ratio=1, seed=0, name="frozen")
    before = members("frozen")
    assert first.created and len(before) == 2
    # Re-ingest with more failures: the same command again leaves the set as drawn, and says so.
    ingest_results(paths=[own_results(tmp_path / "r.csv", [0, 0, 0, 0, 1, 1])])
    out = io.StringIO()
    call_command("sample_failures", "--ratio", "1", "--seed", "0", "--name", "frozen", stdout=out)
    assert members("frozen") == before
    assert "unchanged" in out.getvalue() and "differ in 2 failures" in out.getvalue()
    with pytest.raises(ErrorMapError, match=r"datasets \[\] \(asked \['my-qa'\]\)"):
        sample_failures(ratio=1, seed=0, name="frozen", datasets=["my-qa"])
    with pytest.raises(CommandError, match="threshold of my-qa"):
        call_command("sample_failures", "--ratio", "1", "--name", "frozen", "--threshold", "my-qa=0.9")
    assert members("frozen") == before


def test_the_demo_work_set_never_takes_in_a_users_own_dataset(tmp_path):
    from taxonomy.services.demo import DEMO_WORK_SET, run_demo

    run_demo(say=lambda _: None, labelstudio=False)
    demo_before = members(DEMO_WORK_SET)
    ingest_results(paths=[own_results(tmp_path / "mine.csv", [0, 0, 0, 1])])
    run_demo(say=lambda _: None, labelstudio=False)
    assert members(DEMO_WORK_SET) == demo_before
    assert not Prediction.objects.filter(pk__in=demo_before, example__dataset__name="my-qa").exists()
