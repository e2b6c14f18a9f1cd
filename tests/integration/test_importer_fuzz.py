"""Fuzzing every importer with hypothesis: whatever a file holds, an import either succeeds or fails
with the application's error (FILE:LINE), and a failed import leaves the database exactly as it was.
The webhook's JSON parsing is fuzzed the same way: never a server error."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from tempfile import TemporaryDirectory

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotation.errors import ErrorMapError
from annotation.models import Annotator, Dataset, EvaluatedModel, Example, Label, Prediction
from annotation.services.ingest import ingest_results
from annotation.services.label_import import import_labels
from taxonomy.models import Category, CategoryMapping, TaxonomyVersion

pytestmark = pytest.mark.django_db

FUZZ = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
RESULT_COLUMNS = ["example_id", "model", "input_text", "output_text", "score", "correct_answer", "dataset"]
LABEL_COLUMNS = ["dataset", "example_id", "model", "annotator", "category", "source", "confidence", "note"]
MQM_COLUMNS = ["system", "doc", "docSegId", "globalSegId", "rater", "source", "target", "category", "severity"]


def snapshot() -> list[tuple]:
    """Every row an import can write, by identity and value (run records aside)."""
    return [
        *Dataset.objects.values_list("pk", "name", "applied_threshold").order_by("pk"),
        *EvaluatedModel.objects.values_list("pk", "name").order_by("pk"),
        *Example.objects.values_list("pk", "example_id", "input_text", "reference").order_by("pk"),
        *Prediction.objects.values_list("pk", "score", "is_failure", "output_text").order_by("pk"),
        *Annotator.objects.values_list("pk", "name").order_by("pk"),
        *Label.objects.values_list("pk", "prediction_id", "category_id", "source", "note", "confidence").order_by("pk"),
        *TaxonomyVersion.objects.values_list("pk", "number").order_by("pk"),
        *Category.objects.values_list("pk", "path").order_by("pk"),
        *CategoryMapping.objects.values_list("pk", "source_id", "target_id").order_by("pk"),
    ]


def all_or_nothing(run) -> None:
    """Run an import: success, or an ErrorMapError with nothing written. Anything else fails the test."""
    before = snapshot()
    try:
        run()
    except ErrorMapError:
        assert snapshot() == before


# Text that stresses the readers: separators, quotes, newlines, NUL, non-ASCII, long runs.
texts = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", " ", "e1", "m", "d", "1", "0.5", "1e308", "-1e400", "nan", "9" * 400, "x" * 250,
                     "a,b", '"q"', "line\nbreak", "tab\there", "nul\x00byte", "Fluency/Grammar", "A / / B",
                     " / ", "/".join(["deep"] * 20), "é文", "\ufeffbom"]),
)
values = st.one_of(texts, st.integers(min_value=-(10**30), max_value=10**30), st.floats(), st.none(),
                   st.booleans(), st.lists(st.integers(), max_size=2))

# Mutations of a well-formed file's bytes.
mutations = st.lists(st.one_of(
    st.tuples(st.just("insert"), st.integers(min_value=0), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("cut"), st.integers(min_value=0), st.just(b"")),
    st.tuples(st.just("insert"), st.integers(min_value=0), st.sampled_from(
        [b"\xff", b"\x00", b'"', b"\n", b"\r", b",", b"\t", b"\\ud800", b'\\u0000', b"{", b"]"])),
), max_size=3)


def mutate(data: bytes, changes: list[tuple]) -> bytes:
    for kind, at, piece in changes:
        at = at % (len(data) + 1)
        data = data[:at] + piece + data[at:] if kind == "insert" else data[:at]
    return data


def csv_text(columns: list[str], rows: list[dict]) -> str:
    import csv

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    return out.getvalue()


def jsonl_text(rows: list[dict]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def result_rows():
    return st.lists(st.fixed_dictionaries({c: values for c in RESULT_COLUMNS}), min_size=1, max_size=6)


def label_rows():
    item = st.fixed_dictionaries({
        "dataset": st.sampled_from(["d", "d", "other"]), "example_id": st.sampled_from(["e0", "e1", "e2", "nope"]),
        "model": st.sampled_from(["m", "m", "x"]), "annotator": texts, "category": texts,
        "source": st.sampled_from(["", "human", "judge", "gold", "robot"]), "confidence": values, "note": texts,
    })
    return st.lists(item, min_size=1, max_size=6)


@pytest.fixture
def items():
    """Predictions for the label files to name: d / e0..e2 / m."""
    with TemporaryDirectory() as folder:
        path = Path(folder) / "items.csv"
        path.write_text(csv_text(RESULT_COLUMNS, [
            {"example_id": f"e{i}", "model": "m", "input_text": "q", "output_text": "o", "score": i % 2,
             "dataset": "d"} for i in range(3)]))
        ingest_results(paths=[path])


def import_file(suffix: str, data: bytes, run) -> None:
    with TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz{suffix}"
        path.write_bytes(data)
        all_or_nothing(lambda: run(path))


@FUZZ
@given(rows=result_rows(), changes=mutations, as_jsonl=st.booleans())
def test_results_csv_and_jsonl(rows, changes, as_jsonl):
    text = jsonl_text(rows) if as_jsonl else csv_text(RESULT_COLUMNS, rows)
    import_file(".jsonl" if as_jsonl else ".csv", mutate(text.encode("utf-8", "surrogatepass"), changes),
                lambda path: ingest_results(paths=[path]))


# A Parquet column has one type: each column draws its type, then its values (some missing).
column_values = st.sampled_from([
    st.one_of(st.none(), texts), st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63 - 1)),
    st.floats(), st.booleans(),
])


@FUZZ
@given(data=st.data(), corrupt=mutations)
def test_results_parquet(data, corrupt):
    size = data.draw(st.integers(min_value=1, max_value=6))
    columns = data.draw(st.lists(st.sampled_from(RESULT_COLUMNS), min_size=1, unique=True))
    frame = pd.DataFrame({c: data.draw(st.lists(data.draw(column_values), min_size=size, max_size=size))
                          for c in columns})
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    import_file(".parquet", mutate(buffer.getvalue(), corrupt), lambda path: ingest_results(paths=[path]))


@FUZZ
@given(rows=label_rows(), changes=mutations, as_jsonl=st.booleans())
def test_labels_csv_and_jsonl(items, rows, changes, as_jsonl):
    text = jsonl_text(rows) if as_jsonl else csv_text(LABEL_COLUMNS, rows)
    import_file(".jsonl" if as_jsonl else ".csv", mutate(text.encode("utf-8", "surrogatepass"), changes),
                lambda path: import_labels(path=path, taxonomy="fuzz"))


mqm_rows = st.lists(st.fixed_dictionaries({c: texts for c in MQM_COLUMNS}), min_size=1, max_size=6)


@FUZZ
@given(rows=mqm_rows, changes=mutations, archived=st.booleans(), as_labels=st.booleans())
def test_wmt23_mqm(items, rows, changes, archived, as_labels):
    body = "\t".join(MQM_COLUMNS) + "\n" + "".join("\t".join(str(r[c]) for c in MQM_COLUMNS) + "\n" for r in rows)
    data = mutate(body.encode("utf-8", "surrogatepass"), changes)
    if archived:
        packed = io.BytesIO()
        with tarfile.open(fileobj=packed, mode="w:gz") as archive:
            info = tarfile.TarInfo("mqm.tsv")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        data = packed.getvalue()
    suffix = ".tsv.tar.gz" if archived else ".tsv"
    if as_labels:
        import_file(suffix, data, lambda path: import_labels(path=path, fmt="wmt23-mqm", taxonomy="fuzz"))
    else:
        import_file(suffix, data, lambda path: ingest_results(paths=[path], fmt="wmt23-mqm"))


bbm_rows = st.lists(st.fixed_dictionaries({"input": values, "steps": st.one_of(st.lists(values, max_size=3), values),
                                           "answer": values, "target": values}), min_size=1, max_size=6)


@FUZZ
@given(rows=bbm_rows, changes=mutations)
def test_big_bench_mistake(rows, changes):
    data = mutate(jsonl_text(rows).encode("utf-8", "surrogatepass"), changes)
    import_file(".jsonl", data, lambda path: ingest_results(paths=[path], fmt="big-bench-mistake"))


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), texts),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(texts, inner, max_size=3)),
    max_leaves=10,
)
deliveries = st.fixed_dictionaries({}, optional={
    "action": st.one_of(st.sampled_from(["ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED"]),
                        json_values),
    "project": json_values, "task": json_values, "annotation": json_values, "annotations": json_values,
})


@FUZZ
@given(body=st.one_of(
    deliveries.map(lambda d: json.dumps(d).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=40),
    st.sampled_from([b"[" * 100_000, b'{"action": "\\ud800"}', b'{"project": ' + b"9" * 5000 + b"}",
                     b'{"a": 1, "a": 2}', b"\xff\xfe"]),
))
def test_webhook_json_parsing_never_answers_with_a_server_error(client, settings, body):
    settings.LABEL_STUDIO_WEBHOOK_SECRET = "fuzz-secret"
    response = client.post("/api/labelstudio/webhook/", data=body, content_type="application/json",
                           headers={"X-ErrorMap-Webhook-Secret": "fuzz-secret"})
    assert response.status_code < 500, response.content
