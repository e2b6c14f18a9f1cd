"""Hostile or broken input files: every reader refuses them with FILE:LINE and a reason, and reads
with bounded memory whatever the file holds (limits set low here so the files stay small)."""
from __future__ import annotations

import io
import json
import tarfile
import tracemalloc
from pathlib import Path

import pandas as pd
import pytest

from annotation.core.failure_rules import failure_threshold
from annotation.core.label_formats import read_labels
from annotation.core.result_formats import InputLimits, read_results
from annotation.core.result_formats.io import DEFAULT_LIMITS
from annotation.core.result_formats.table import read_csv_rows
from annotation.errors import InputError

HEADER = "example_id,model,input_text,output_text,score,dataset\n"
MQM_HEADER = "system\tdoc\tdocSegId\tglobalSegId\trater\tsource\ttarget\tcategory\tseverity\n"
LABEL_HEADER = "dataset,example_id,model,annotator,category\n"
SMALL = InputLimits(max_line_bytes=64 * 1024, max_record_bytes=128 * 1024, max_columns=50,
                    max_decompressed_bytes=1 << 20)


def results(path: Path, limits: InputLimits = DEFAULT_LIMITS) -> list[tuple]:
    return [row for batch in read_results(path, limits=limits) for row in batch.rows()]


def refused(read, path: Path, *args, **kwargs) -> str:
    with pytest.raises(InputError) as caught:
        read(path, *args, **kwargs)
    return str(caught.value)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(tmp_path: Path, *records: str) -> Path:
    return write(tmp_path, "r.jsonl", "".join(r + "\n" for r in records))


GOOD_JSON = '{"example_id": "e1", "model": "m", "input_text": "q", "output_text": "o", "score": 1, "dataset": "d"}'


# --- values no database can store (PostgreSQL refused them with a DataError traceback) ------------

@pytest.mark.parametrize("line,message", [
    ("e1,m,in\x00put,o,1,d", r"r\.csv:3: input_text holds a NUL byte"),
    (f"{'x' * 201},m,q,o,1,d", r"r\.csv:3: example_id is 201 characters long \(at most 200\)"),
    (f"e1,{'m' * 300},q,o,1,d", r"r\.csv:3: model is 300 characters long"),
    (f"e1,m,q,o,1,{'d' * 201}", r"r\.csv:3: dataset is 201 characters long"),
    ("e1,m,q,o,1e308,d", r"r\.csv:3: score '1e308' is beyond \+-1e\+15"),
    ("e1,m,q,o," + "9" * 5000 + ",d", r"r\.csv:3: score '9999.*\(5,002 characters\) is not a finite number"),
])
def test_csv_values_a_database_cannot_hold_are_refused_at_their_line(tmp_path, line, message):
    path = write(tmp_path, "r.csv", HEADER + "e0,m,q,o,1,d\n" + line + "\n")
    assert refused(results, path) == refused(lambda p: list(read_csv_rows(p, None)), path)
    with pytest.raises(InputError, match=message):
        results(path)


@pytest.mark.parametrize("record,message", [
    (GOOD_JSON.replace('"o"', '"\\ud800"'), r"r\.jsonl:2: output_text holds a lone surrogate '\\ud800'"),
    (GOOD_JSON.replace('"q"', '"a\\u0000b"'), r"r\.jsonl:2: input_text holds a NUL byte"),
    (GOOD_JSON.replace('"score": 1', '"score": ' + "1" * 5000),
     r"r\.jsonl:2: broken JSON \(a number of 5,000 digits\)"),
    (GOOD_JSON.replace('"score": 1', '"score": 1e999'), r"r\.jsonl:2: score inf is not a finite number"),
    ("[" * 100_000 + "]" * 100_000, r"r\.jsonl:2: JSON nested too deeply"),
    (GOOD_JSON.replace('"model": "m"', '"model": "m", "model": "other"'), r"r\.jsonl:2: key 'model' appears twice"),
])
def test_json_values_that_crashed_the_reader_are_clean_errors(tmp_path, record, message):
    path = jsonl(tmp_path, GOOD_JSON, record)
    with pytest.raises(InputError, match=message):
        results(path)


def test_duplicate_csv_columns_are_refused_not_resolved(tmp_path):
    path = write(tmp_path, "r.csv", "example_id,model,input_text,output_text,score,score,dataset\ne,m,q,o,1,0,d\n")
    with pytest.raises(InputError, match=r"r\.csv:1: column\(s\) 'score' appear more than once"):
        results(path)
    labels = write(tmp_path, "l.csv", LABEL_HEADER.strip() + ",category\nd,e,m,a,X,Y\n")
    with pytest.raises(InputError, match=r"l\.csv:1: column\(s\) 'category' appear more than once"):
        list(read_labels(labels))


def test_three_huge_scores_never_make_an_infinite_threshold():
    # 1e308 * 3 / 3 overflows to inf in a plain mean; the threshold must be None, not inf.
    assert failure_threshold(dataset="d", mean_score=float("inf")) is None
    assert failure_threshold(dataset="d", mean_score=1e308, factor=10.0) is None
    assert failure_threshold(dataset="d", mean_score=2.0, explicit=float("inf")) == 0.7 * 2.0


# --- bounded input ------------------------------------------------------------------------------

def peak_python_bytes(read) -> int:
    tracemalloc.start()
    try:
        read()
    except InputError:
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_an_overlong_line_is_refused_without_being_held_in_memory(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes(HEADER.encode() + b"e0,m,q,o,1,d\ne1,m," + b"x" * (8 << 20) + b",o,1,d\n")
    with pytest.raises(InputError, match=r"r\.csv:3: line longer than 65,536 bytes"):
        results(path, SMALL)
    # An 8 MiB line read whole would allocate 8 MiB at least; bounded reads stay near the limit.
    assert peak_python_bytes(lambda: results(path, SMALL)) < 2 << 20


def test_a_record_of_many_short_lines_is_bounded_too(tmp_path):
    quoted = '"' + "y\n" * 100_000 + '"'
    path = write(tmp_path, "r.csv", HEADER + f"e0,m,q,o,1,d\ne1,m,{quoted},o,1,d\n")
    with pytest.raises(InputError, match=r"r\.csv:3: record longer than 131,072 bytes"):
        results(path, SMALL)


def test_a_million_columns_are_refused_at_the_header(tmp_path):
    path = write(tmp_path, "r.csv", HEADER.strip() + "," + ",".join(f"c{i}" for i in range(100)) + "\n")
    with pytest.raises(InputError, match=r"r\.csv:1: 106 columns \(at most 50"):
        results(path, SMALL)
    wide = jsonl(tmp_path, json.dumps({f"k{i}": i for i in range(60)}))
    with pytest.raises(InputError, match=r"r\.jsonl:1: an object with 60 keys \(at most 50\)"):
        results(wide, SMALL)


def mqm_archive(path: Path, body: bytes) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo("mqm.tsv")
        info.size = len(body)
        archive.addfile(info, io.BytesIO(body))
    return path


def test_a_decompression_bomb_is_refused_before_it_expands(tmp_path):
    # 8 MiB of one line compress to a few KB: refused from the member's declared size.
    path = mqm_archive(tmp_path / "bomb.tsv.tar.gz", MQM_HEADER.encode() + b"a" * (8 << 20) + b"\n")
    assert path.stat().st_size < 64 * 1024
    with pytest.raises(InputError, match=r"bomb\.tsv\.tar\.gz: the archive expands to more than 1,048,576 bytes"):
        results(path, SMALL)
    assert peak_python_bytes(lambda: results(path, SMALL)) < 2 << 20
    # Within the expansion limit, the one long line is still refused by the line limit.
    roomy = InputLimits(max_line_bytes=64 * 1024, max_decompressed_bytes=64 << 20)
    with pytest.raises(InputError, match=r"bomb\.tsv\.tar\.gz:2: line longer than 65,536 bytes"):
        results(path, roomy)
    assert peak_python_bytes(lambda: results(path, roomy)) < 2 << 20


def test_a_parquet_file_that_expands_past_the_limit_is_refused(tmp_path):
    path = tmp_path / "r.parquet"
    pd.DataFrame({"example_id": ["e"] * 4, "model": ["m"] * 4, "input_text": ["x" * (1 << 20)] * 4,
                  "output_text": ["o"] * 4, "score": [1.0] * 4, "dataset": ["d"] * 4}).to_parquet(path)
    assert path.stat().st_size < 1 << 20
    with pytest.raises(InputError, match=r"r\.parquet: the data expands to [\d,]+ bytes \(at most 1,048,576"):
        results(path, SMALL)


# --- category names in label files -------------------------------------------------------------

@pytest.mark.parametrize("category,message", [
    (" / ", r"l\.csv:2: category '/' has no name \(only separators\)"),
    ("A / / B", r"l\.csv:2: category 'A / / B' has an empty level"),
    ("/".join(f"c{i}" for i in range(10_000)), r"l\.csv:2: category path has 10000 levels \(at most 8\)"),
    ("n" * 250, r"l\.csv:2: category name of 250 characters \(at most 200\)"),
])
def test_bad_category_names_are_refused_with_file_and_line(tmp_path, category, message):
    path = write(tmp_path, "l.csv", LABEL_HEADER + f'd,e,m,a,"{category}"\n')
    with pytest.raises(InputError, match=message):
        list(read_labels(path))


def test_a_slash_separates_levels_in_label_files(tmp_path):
    path = write(tmp_path, "l.csv", LABEL_HEADER + "d,e,m,a,Fluency/Grammar\nd,e,m,b, accuracy /omission\n")
    assert [row.category for row in read_labels(path)] == ["Fluency / Grammar", "accuracy / omission"]
