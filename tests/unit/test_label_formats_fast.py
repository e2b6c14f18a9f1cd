"""The column-wise fast path for label CSVs gives exactly the rows (line numbers included) and the errors
of the row reader `read_labels`."""
from __future__ import annotations

import random
from dataclasses import astuple
from pathlib import Path

import pytest

from annotation.core import label_formats
from annotation.core.label_formats import read_label_batches, read_labels
from annotation.errors import InputError
from tests.csv_fuzz import FILE_DEFECTS, outcome, quoted_text, random_csv

HEADER = "dataset,example_id,model,annotator,category,source,title,confidence,note\n"


def fast_rows(path: Path) -> list[tuple]:
    return [astuple(row) for batch in read_label_batches(path) for row in batch.rows()]


def row_reader_rows(path: Path) -> list[tuple]:
    return [astuple(row) for row in read_labels(path)]


def random_note(rnd: random.Random) -> str:
    """A valid CSV field with commas, quotes, newlines and non-ASCII inside."""
    return quoted_text(rnd, ["a", "é", " ", ",", '"', "\n", "\r\n", "\t", "文", "0", ""], 5)


# One defect per file at a random row: errors, and things only the row reader decides (a line break
# in a value, a confidence Python reads and Arrow does not), so the fallback starts mid-file.
DEFECTS = {
    "none": None,
    "empty annotator": ("annotator", " "),
    "padded names": ("model", " m1 "),
    "bad category": ("category", "A / / B"),
    "slash category": ("category", "Fluency/Grammar"),
    "unknown source": ("source", "robot"),
    "upper-case source": ("source", "Gold"),
    "confidence Arrow refuses": ("confidence", " 0.5"),
    "confidence out of range": ("confidence", "1.5"),
    "confidence not a number": ("confidence", "high"),
    "confidence nan": ("confidence", "nan"),
    "line break in a name": ("example_id", '"e\n1"'),
    "over-long name": ("annotator", "x" * 201),
    "quote inside a bare field": ("note", 'x"y'),
    "unclosed quote": ("title", '"never closed'),
}


def random_labels_csv(rnd: random.Random, rows: int, defect: str) -> bytes:
    return random_csv(rnd, HEADER, rows, lambda i: {
        "dataset": rnd.choice(["d", "d2"]), "example_id": f"e{i % 40}", "model": rnd.choice(["m1", "m2", '"m 3"']),
        "annotator": rnd.choice(["ann", "bob", "文"]),
        "category": rnd.choice(["Style", "Accuracy / Omission", "style"]),
        "source": rnd.choice(["", "human", "judge", "gold"]), "title": rnd.choice(["", "t"]),
        "confidence": rnd.choice(["", "0.5", "1", "0", "+.25", '"0.75"', "1e-3"]), "note": random_note(rnd),
    }, DEFECTS, defect)


ALL_DEFECTS = [*DEFECTS, *FILE_DEFECTS]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("defect", ALL_DEFECTS)
def test_fast_path_agrees_with_the_row_reader_on_fuzzed_csv(tmp_path, small_blocks, defect, seed):
    rnd = random.Random(f"{defect}-{seed}")
    path = tmp_path / "fuzz.csv"
    path.write_bytes(random_labels_csv(rnd, rows=rnd.randint(1, 80), defect=defect))
    assert outcome(fast_rows, path) == outcome(row_reader_rows, path)


def clean_lines(rows: int) -> list[str]:
    return [HEADER] + [f"d,e{i},m{i % 3},ann{i % 2},Accuracy/Omission,,t,0.5,\"n, {i}\"\r\n" for i in range(rows)]


def test_clean_files_take_the_fast_path_and_match(tmp_path, small_blocks, monkeypatch):
    path = tmp_path / "clean.csv"
    path.write_text("".join(clean_lines(300)), encoding="utf-8")
    expected = row_reader_rows(path)
    monkeypatch.setattr(label_formats, "read_labels", lambda *_, **__: pytest.fail("the row reader was used"))
    assert fast_rows(path) == expected
    assert [row[0] for row in expected] == list(range(2, 302))  # line numbers
    assert expected[0][5] == "Accuracy / Omission" and expected[0][9] == 0.5


def test_fallback_mid_file_neither_drops_nor_repeats_rows(tmp_path, small_blocks):
    # Row 250's note spans two lines: the row reader takes over there, and every later line moves by one.
    lines = clean_lines(400)
    lines[251] = 'd,e250,m,ann,Style,,t,,"two\nlines"\n'
    path = tmp_path / "mixed.csv"
    path.write_text("".join(lines), encoding="utf-8")
    rows = fast_rows(path)
    assert [row[2] for row in rows] == [f"e{i}" for i in range(400)]
    assert rows[251][0] == 254  # the row after the two-line one
    assert rows == row_reader_rows(path)


def test_error_late_in_the_file_names_its_line(tmp_path, small_blocks):
    lines = clean_lines(300) + ["d,e300,m,ann,Style,,t,high,\n"]
    path = tmp_path / "late.csv"
    path.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(InputError, match=r"late\.csv:302: confidence 'high' is not a number"):
        fast_rows(path)
