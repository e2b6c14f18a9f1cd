"""Ingestion: the bundled real data, idempotent re-ingest, in-place updates and every kind of bad input."""
from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from annotation.core.result_formats import arrow
from annotation.models import Dataset, EvaluatedModel, Prediction, StageRun
from annotation.services.ingest import ingest_results

DATA = Path(__file__).resolve().parents[2] / "data"
MQM = DATA / "wmt23-mqm-ende" / "sxs_mqm_generalMT2023_ende.3ratingsPerSegment.tsv.tar.gz"
BBM = DATA / "big-bench-mistake"
HEADER = "example_id,model,input_text,output_text,score,correct_answer,dataset\n"

pytestmark = pytest.mark.django_db


def snapshot() -> list[tuple]:
    """Everything ingestion writes, in a comparable form."""
    return sorted(
        Prediction.objects.values_list(
            "example__dataset__name", "example__example_id", "model__name", "example__input_text",
            "example__reference", "output_text", "score", "is_failure",
        )
    )


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def test_bundled_real_data_ingests_with_expected_counts():
    report = ingest_results(paths=[DATA])
    assert report.rows == 1040 + 986 + 4 * 300
    assert Dataset.objects.count() == 6
    mqm = Prediction.objects.filter(example__dataset__name="wmt23-mqm-ende")
    assert mqm.count() == 1040 and mqm.values("model").distinct().count() == 10
    # refA is the reference translation, so the reference of every item is refA's own output.
    ref_a = mqm.get(model__name="refA", example__example_id="1")
    assert ref_a.example.reference == ref_a.output_text
    assert "<v>" not in "".join(mqm.values_list("output_text", flat=True))
    # BIG-Bench-Mistake: score 1 exactly when the answer equals the target (whitespace aside).
    word_sorting = Prediction.objects.filter(example__dataset__name="bbm_word_sorting")
    assert word_sorting.filter(score=1.0).count() == 45
    assert word_sorting.filter(is_failure=True).count() == 255


def test_mqm_score_is_minus_the_mean_rater_penalty():
    ingest_results(paths=[MQM])
    # Segment 1 of GPT4-5shot_with_ONLINE-W: one rater marks a Minor Fluency/Punctuation (0.1),
    # the other two find nothing: -(0.1 + 0 + 0) / 3.
    prediction = Prediction.objects.get(example__example_id="1", model__name="GPT4-5shot_with_ONLINE-W")
    assert prediction.score == pytest.approx(-0.1 / 3, abs=1e-6)


def test_reingest_of_same_file_changes_nothing():
    ingest_results(paths=[BBM])
    before = snapshot()
    stamps = sorted(Prediction.objects.values_list("pk", "updated_at"))
    report = ingest_results(paths=[BBM])
    assert all(f.created == 0 and f.updated == 0 for f in report.files)
    assert snapshot() == before
    assert sorted(Prediction.objects.values_list("pk", "updated_at")) == stamps


def test_changed_row_updates_in_place(tmp_path):
    first = write(tmp_path, "r.csv", HEADER + "e1,m1,Q,wrong,0,ans,d\ne2,m1,Q2,ans2,1,ans2,d\ne3,m1,Q3,ans3,1,ans3,d\n")
    ingest_results(paths=[first])
    pk = Prediction.objects.get(example__example_id="e1").pk
    second = write(tmp_path, "r.csv", HEADER + "e1,m1,Q,ans,1,ans,d\ne2,m1,Q2,ans2,1,ans2,d\ne3,m1,Q3,ans3,1,ans3,d\n")
    report = ingest_results(paths=[second])
    assert (report.files[0].created, report.files[0].updated, report.files[0].unchanged) == (0, 1, 2)
    updated = Prediction.objects.get(example__example_id="e1")
    assert updated.pk == pk and updated.output_text == "ans" and updated.score == 1.0
    assert Prediction.objects.count() == 3


def test_dataset_option_fills_a_missing_dataset_column(tmp_path):
    path = write(tmp_path, "r.csv", "example_id,model,input_text,output_text,score\n1,m,in,out,0.5\n")
    ingest_results(paths=[path], dataset="mine")
    assert Prediction.objects.get().example.dataset.name == "mine"


def test_jsonl_and_parquet_give_the_same_rows_as_csv(tmp_path):
    rows = [
        {"example_id": str(i), "model": m, "input_text": f"q{i}", "output_text": f"a{i}{m}", "score": (i % 3) / 2,
         "correct_answer": f"r{i}", "dataset": "same"}
        for i in range(20) for m in ("m1", "m2")
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "r.csv", index=False)
    ingest_results(paths=[tmp_path / "r.csv"])
    from_csv = snapshot()
    for name in ("r.jsonl", "r.parquet"):
        Dataset.objects.all().delete()
        if name.endswith(".jsonl"):
            write(tmp_path, name, "\n".join(json.dumps(r) for r in rows) + "\n")
        else:
            pd.DataFrame(rows).to_parquet(tmp_path / name)
        ingest_results(paths=[tmp_path / name])
        assert snapshot() == from_csv, name


def test_failure_rule_uses_seven_tenths_of_the_mean_unless_overridden(tmp_path):
    # Scores 0, 0.5, 1, 1 -> mean 0.625 -> threshold 0.4375: only the 0 fails.
    path = write(tmp_path, "r.csv", HEADER + "a,m,q,o,0,r,d\nb,m,q,o,0.5,r,d\nc,m,q,o,1,r,d\ne,m,q,o,1,r,d\n")
    ingest_results(paths=[path])
    assert Dataset.objects.get().applied_threshold == pytest.approx(0.4375)
    assert sorted(Prediction.objects.filter(is_failure=True).values_list("example__example_id", flat=True)) == ["a"]


def test_failure_flags_follow_the_whole_dataset_not_each_batch(tmp_path, monkeypatch):
    # Small blocks: early batches hold only 1.0 scores and late ones only 0.2, so a batch's own mean
    # (which sets the flags written with the rows) is not the dataset's. Mean 0.7 -> threshold 0.49.
    monkeypatch.setattr(arrow, "ARROW_BLOCK_BYTES", 256)
    scores = [1.0] * 100 + [0.6] * 50 + [0.2] * 50
    path = write(tmp_path, "r.csv", HEADER + "".join(f"e{i},m,q,o,{s},r,d\n" for i, s in enumerate(scores)))
    ingest_results(paths=[path])
    assert Dataset.objects.get().applied_threshold == pytest.approx(0.49)
    failing = set(Prediction.objects.filter(is_failure=True).values_list("example__example_id", flat=True))
    assert failing == {f"e{i}" for i in range(150, 200)}


def test_a_changed_score_moves_the_threshold_and_flags_flip_both_ways(tmp_path):
    first = write(tmp_path, "a.csv", HEADER + "a,m,q,o,1,r,d\nb,m,q,o,1,r,d\nc,m,q,o,0.5,r,d\n")
    ingest_results(paths=[first])
    # Mean 0.833 -> threshold 0.583: c fails.
    assert set(Prediction.objects.filter(is_failure=True).values_list("example__example_id", flat=True)) == {"c"}
    second = write(tmp_path, "b.csv", HEADER + "a,m,q,o,0.1,r,d\n")
    ingest_results(paths=[second])
    # Mean (0.1 + 1 + 0.5) / 3 = 0.533 -> threshold 0.373: a now fails and c now passes.
    assert set(Prediction.objects.filter(is_failure=True).values_list("example__example_id", flat=True)) == {"a"}


# --- bad input: exit non-zero, name file + line + problem, write nothing from that file --------------

BAD_INPUTS = [
    ("missing_column.csv", "example_id,model,input_text,score,dataset\n1,m,q,1,d\n",
     r"missing_column\.csv:1: missing column\(s\) output_text"),
    ("bad_score.csv", HEADER + "1,m,q,o,1,r,d\n2,m,q,o,high,r,d\n", r"bad_score\.csv:3: score 'high' is not a number"),
    ("nan_score.csv", HEADER + "1,m,q,o,nan,r,d\n", r"nan_score\.csv:2: score 'nan' is not a finite number"),
    ("broken.jsonl",
     ('{"example_id": "1", "model": "m", "input_text": "q", "output_text": "o", "score": 1, "dataset": "d"}\n'
      '{"example_id": 2,\n'), r"broken\.jsonl:2: broken JSON"),
    ("no_dataset.csv", "example_id,model,input_text,output_text,score\n1,m,q,o,1\n",
     r"no_dataset\.csv:1: no 'dataset' column"),
    ("latin1.csv", (HEADER + "1,m,q,o,1,r,d\n2,m,caf\xe9,o,1,r,d\n").encode("latin-1"),
     r"latin1\.csv:3: not valid UTF-8"),
    ("latin1.jsonl",
     (b'{"example_id": "1", "model": "m", "input_text": "q", "output_text": "o", "score": 1, "dataset": "d"}\n'
      b'{"example_id": "2", "model": "m", "input_text": "caf\xe9", "output_text": "o", "score": 1, "dataset": "d"}\n'),
     r"latin1\.jsonl:2: not valid UTF-8"),
    ("extra_field.csv", HEADER + "1,m,q,o,1,r,d,extra\n",
     r"extra_field\.csv:2: more fields than the header has \(8 vs 7\)"),
    ("missing_key.jsonl", '{"example_id": "1", "model": "m", "input_text": "q", "score": 1, "dataset": "d"}\n',
     r"missing_key\.jsonl:1: missing column\(s\) output_text"),
]


@pytest.mark.parametrize("name,content,message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_names_file_line_and_problem_and_writes_nothing(tmp_path, name, content, message):
    ingest_results(paths=[BBM / "word_sorting.jsonl"])
    before = snapshot()
    path = write(tmp_path, name, content)
    with pytest.raises(CommandError, match=message):
        call_command("ingest_results", str(path))
    assert snapshot() == before
    assert not Dataset.objects.filter(name="d").exists()
    assert StageRun.objects.filter(stage="ingest", status="failed").count() == 1


def test_unreadable_file_is_reported(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(CommandError, match=r"nope\.csv: no such file"):
        call_command("ingest_results", str(missing))
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    with pytest.raises(CommandError, match=r"no result files found|not a regular file"):
        call_command("ingest_results", str(folder))
    broken_archive = write(tmp_path, "x.tsv.tar.gz", gzip.compress(b"not a tar"))
    with pytest.raises(CommandError, match=r"x\.tsv\.tar\.gz: cannot read the archive"):
        call_command("ingest_results", str(broken_archive))
    assert Prediction.objects.count() == 0


def test_a_bad_row_late_in_a_large_file_rolls_back_the_whole_file(tmp_path):
    lines = [HEADER] + [f"{i},m,q{i},o,1,r,d\n" for i in range(12_000)] + ["12000,m,q,o,oops,r,d\n"]
    path = write(tmp_path, "big.csv", "".join(lines))
    with pytest.raises(CommandError, match=r"big\.csv:12002: score 'oops'"):
        call_command("ingest_results", str(path))
    assert Prediction.objects.count() == 0 and EvaluatedModel.objects.count() == 0


def test_earlier_good_files_stay_when_a_later_file_is_bad(tmp_path):
    good = write(tmp_path, "a_good.csv", HEADER + "1,m,q,o,1,r,good\n")
    bad = write(tmp_path, "b_bad.csv", HEADER + "1,m,q,o,x,r,bad\n")
    with pytest.raises(CommandError, match=r"b_bad\.csv:2"):
        call_command("ingest_results", str(tmp_path))
    assert list(Dataset.objects.values_list("name", flat=True)) == ["good"]
    assert good.exists() and bad.exists()


def test_bad_mqm_archive_line_is_reported(tmp_path):
    tsv = "system\tdoc\tdocSegId\tglobalSegId\trater\tsource\ttarget\tcategory\tseverity\n" "s\td\t1\t1\tr1\tsrc\ttgt\n"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("x.tsv")
        info.size = len(tsv.encode())
        archive.addfile(info, io.BytesIO(tsv.encode()))
    path = write(tmp_path, "short.tsv.tar.gz", buffer.getvalue())
    with pytest.raises(CommandError, match=r"short\.tsv\.tar\.gz:2: expected at least 9 tab-separated fields, got 7"):
        call_command("ingest_results", str(path))


def stored_rows() -> list[tuple]:
    """Every prediction column in id order, ids counted from the first (so two ingests compare)."""
    rows = list(Prediction.objects.order_by("pk").values_list(
        "pk", "example__dataset__name", "example__example_id", "model__name", "output_text", "score",
        "is_failure", "content_key"))
    return [(pk - rows[0][0], *values) for pk, *values in rows]


def test_a_batch_without_repeats_stores_what_the_row_picking_path_stores(tmp_path):
    # A first ingest without repeated rows takes the columns as they are; a repeat (here an earlier
    # version of row 7, just before it) sends the batch through picking each key's last row. The
    # stored rows, their ids and content keys must be the same either way.
    lines = [f"e{i // 3},m{i % 3},q{i // 3},o{i},{(i % 4) / 3},r{i // 3},d{i % 2}\n" for i in range(30)]
    ingest_results(paths=[write(tmp_path, "plain.csv", HEADER + "".join(lines))])
    plain = stored_rows()
    Dataset.objects.all().delete()
    repeated = [*lines[:7], "e2,m1,q2,stale,0.5,r2,d1\n", *lines[7:]]
    report = ingest_results(paths=[write(tmp_path, "repeated.csv", HEADER + "".join(repeated))])
    assert report.rows == 31 and report.files[0].created == 30
    assert stored_rows() == plain
    assert len(plain) == 30 and {row[4] for row in plain} == {f"o{i}" for i in range(30)}
