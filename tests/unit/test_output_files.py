"""Export files: formulas neutralised in CSV cells, and write failures as clear errors, never half a file."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from annotation.core.output_files import csv_text, ensure_directory, safe_cell, write_file
from annotation.errors import ErrorMapError


@pytest.mark.parametrize("cell, shown", [
    ("=1+1", "'=1+1"),
    ("+SUM(A1:A2)", "'+SUM(A1:A2)"),
    ("-2+3", "'-2+3"),
    ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1", "'\t=1"),
    ("\r=1", "'\r=1"),
    ("-0.5", "-0.5"),  # a number written as text is data, not a formula
    ("+3", "+3"),
    (" =1", " =1"),  # only the first character makes a formula
    ("a=1", "a=1"),
    ("", ""),
    (7, 7),
    (-1.5, -1.5),
    (None, None),
])
def test_a_cell_a_spreadsheet_would_run_is_shown_as_text(cell, shown):
    assert safe_cell(cell) == shown


def test_csv_text_neutralises_header_and_rows_and_round_trips_the_rest():
    text = csv_text(["id", "=title"], [["1", '=HYPERLINK("http://x")'], ["2", 'say "hi",\nbye']])
    assert list(csv.reader(io.StringIO(text))) == [
        ["id", "'=title"], ["1", "'=HYPERLINK(\"http://x\")"], ["2", 'say "hi",\nbye']]


def test_writing_to_a_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ErrorMapError, match=f"cannot write {tmp_path}: it is a directory"):
        write_file(tmp_path, "data")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_device_is_a_clear_error():
    with pytest.raises(ErrorMapError, match="cannot write /dev/full: No space left on device"):
        write_file(Path("/dev/full"), "x" * 100_000)
    assert Path("/dev/full").is_char_device()  # written in place, never renamed over


def test_a_file_is_replaced_whole_and_no_partial_file_is_left(tmp_path):
    target = tmp_path / "sub" / "out.csv"
    write_file(target, "first\n")
    write_file(target, b"second\n")
    assert target.read_text() == "second\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.csv"]


def test_a_file_where_a_folder_is_wanted_is_a_clear_error(tmp_path):
    existing = tmp_path / "report.html"
    existing.write_text("mine")
    with pytest.raises(ErrorMapError, match="it is a file, not a directory"):
        ensure_directory(existing)
    assert existing.read_text() == "mine"
    with pytest.raises(ErrorMapError, match="cannot write"):
        write_file(existing / "index.html", "x")  # a file in the way of the parent folder
