"""The column-wise fast path for CSV and Parquet gives exactly the rows and errors of the row readers."""
from __future__ import annotations

import random
from dataclasses import astuple
from pathlib import Path

import pandas as pd
import pytest

from annotation.core.result_formats import read_results, table
from annotation.core.result_formats.table import read_csv_rows, read_parquet_rows
from annotation.errors import InputError
from tests.csv_fuzz import FILE_DEFECTS, outcome, quoted_text, random_csv

HEADER = "example_id,model,input_text,output_text,score,correct_answer,dataset\n"


def fast_rows(path: Path, dataset: str | None = None) -> list[tuple]:
    return [row for batch in read_results(path, dataset=dataset) for row in batch.rows()]


def row_reader_rows(path: Path, dataset: str | None = None) -> list[tuple]:
    return [astuple(row) for row in read_csv_rows(path, dataset)]


def random_field(rnd: random.Random) -> str:
    """A valid CSV field with commas, quotes, newlines, tabs and non-ASCII inside."""
    return quoted_text(rnd, ["a", "b", "é", " ", ",", '"', "\n", "\r\n", "\t", "文", "0", ""], 6)


# One defect per file at a random row: some are errors, some only the row reader accepts
# (Python's float() takes " 1" and "1_0", Arrow does not), so the fallback starts mid-file.
DEFECTS = {
    "none": None,
    "quote inside a bare field": ("input_text", 'x"y'),
    "text after a closing quote": ("output_text", '"ab"c'),
    "score Arrow refuses": ("score", " 1"),
    "score with underscore": ("score", "1_0"),
    "score not a number": ("score", "high"),
    "score nan": ("score", "nan"),
    "score empty": ("score", ""),
    "blank example_id": ("example_id", " "),
    "blank dataset": ("dataset", ""),
    "unclosed quote": ("input_text", '"never closed'),
}


def random_results_csv(rnd: random.Random, rows: int, defect: str) -> bytes:
    return random_csv(rnd, HEADER, rows, lambda i: {
        "example_id": f"e{i % 40}", "model": rnd.choice(["m1", "m2", '"m 3"']), "input_text": random_field(rnd),
        "output_text": random_field(rnd), "score": rnd.choice(["1", "0", "0.5", "+.5", "1e-3", '"0.25"']),
        "correct_answer": random_field(rnd), "dataset": rnd.choice(["d", "d2"]),
    }, DEFECTS, defect)


ALL_DEFECTS = [*DEFECTS, *FILE_DEFECTS]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("defect", ALL_DEFECTS)
def test_fast_path_agrees_with_the_row_reader_on_fuzzed_csv(tmp_path, small_blocks, defect, seed):
    rnd = random.Random(f"{defect}-{seed}")
    path = tmp_path / "fuzz.csv"
    path.write_bytes(random_results_csv(rnd, rows=rnd.randint(1, 80), defect=defect))
    dataset = rnd.choice([None, "fallback"])
    expected = outcome(row_reader_rows, path, dataset)
    assert outcome(fast_rows, path, dataset) == expected


def test_clean_files_take_the_fast_path_and_match(tmp_path, small_blocks, monkeypatch):
    lines = [HEADER] + [
        f'e{i},m{i % 3},"q ""{i}"",\nline two",o\u00e9 {i},{i % 2},"r,{i}",d\r\n' for i in range(300)
    ]
    path = tmp_path / "clean.csv"
    path.write_text("".join(lines), encoding="utf-8")
    expected = row_reader_rows(path)
    monkeypatch.setattr(table, "read_csv_rows", lambda *_: pytest.fail("the row reader was used"))
    assert fast_rows(path) == expected
    assert len(expected) == 300


def test_fallback_mid_file_neither_drops_nor_repeats_rows(tmp_path, small_blocks):
    # Row 250 has a score Python reads but Arrow does not (" 1"): the row reader takes over there.
    lines = [HEADER] + [f"e{i},m,q{i},o{i},{' 1' if i == 250 else i % 2},r,d\n" for i in range(400)]
    path = tmp_path / "mixed.csv"
    path.write_text("".join(lines), encoding="utf-8")
    rows = fast_rows(path)
    assert [row[1] for row in rows] == [f"e{i}" for i in range(400)]
    assert rows[250][5] == 1.0
    assert rows == row_reader_rows(path)


def test_error_late_in_the_file_names_its_line(tmp_path, small_blocks):
    lines = [HEADER] + [f"e{i},m,q,o,1,r,d\n" for i in range(300)] + ['e300,m,"q\nq",o,high,r,d\n']
    path = tmp_path / "late.csv"
    path.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(InputError, match=r"late\.csv:303: score 'high' is not a number"):
        fast_rows(path)


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (HEADER + "e1,m,q,o,1,r,d\n").encode())
    assert fast_rows(path) == row_reader_rows(path) == [("d", "e1", "m", "q", "o", 1.0, "r")]


def test_parquet_with_non_text_columns_is_read_by_the_row_reader(tmp_path):
    frame = pd.DataFrame({
        "example_id": [1, 2, 3], "model": ["m", "m", "m"], "input_text": ["q1", "q2", "q3"],
        "output_text": ["o1", "o2", "o3"], "score": [1, 0, 1], "dataset": ["d", None, "d"],
    })
    path = tmp_path / "typed.parquet"
    frame.to_parquet(path)
    rows = fast_rows(path, dataset="fallback")
    assert rows == [astuple(row) for row in read_parquet_rows(path, "fallback")]
    assert [(row[0], row[1], row[5]) for row in rows] == [("d", "1", 1.0), ("fallback", "2", 0.0), ("d", "3", 1.0)]


def test_parquet_text_columns_take_the_fast_path(tmp_path, monkeypatch):
    frame = pd.DataFrame({
        "example_id": ["a", "b"], "model": ["m", "m"], "input_text": ["q1", "q2"], "output_text": ["o1", "o2"],
        "score": [0.5, 1.0], "correct_answer": ["r1", "r2"], "dataset": ["d", "d"],
    })
    path = tmp_path / "text.parquet"
    frame.to_parquet(path)
    expected = [astuple(row) for row in read_parquet_rows(path, None)]
    monkeypatch.setattr(table, "read_parquet_rows", lambda *_: pytest.fail("the row reader was used"))
    assert fast_rows(path) == expected == [("d", "a", "m", "q1", "o1", 0.5, "r1"), ("d", "b", "m", "q2", "o2", 1.0,
                                                                                    "r2")]


def test_parquet_bool_score_is_refused_with_its_row(tmp_path):
    frame = pd.DataFrame({
        "example_id": ["a"], "model": ["m"], "input_text": ["q"], "output_text": ["o"], "score": [True],
                          "dataset": ["d"],
    })
    path = tmp_path / "bool.parquet"
    frame.to_parquet(path)
    with pytest.raises(InputError, match=r"bool\.parquet:1: score True is not a number"):
        fast_rows(path)
