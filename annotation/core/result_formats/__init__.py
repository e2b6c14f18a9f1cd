"""Readers for benchmark results, one module per format: the ErrorMap table (`table`, with its Arrow
fast path in `arrow`), WMT23 MQM (`mqm`) and BIG-Bench-Mistake (`bbm`); `io` holds what they share.

`read_results` streams a file as `ResultBatch`es (rows column by column) and raises `InputError`
naming the file, the line and what was wrong. Readers never touch the database.

CSV and Parquet take a fast path: Arrow parses blocks in C++ threads and the checks run column-wise.
The row readers stay the reference: at the first block the column checks cannot vouch for, the row
reader takes over after the rows already given, so an error names its line exactly as it always has
(tests hold the two paths to the same rows, including on fuzzed CSV).
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from annotation.core.result_formats.bbm import read_big_bench_mistake
from annotation.core.result_formats.io import (
    BATCH_ROWS,
    DEFAULT_LIMITS,
    NAME_MAX_LENGTH,
    InputLimits,
    ResultBatch,
    ResultRow,
    batched,
    checked_text,
)
from annotation.core.result_formats.mqm import read_wmt23_mqm
from annotation.core.result_formats.table import csv_batches, parquet_batches, read_jsonl_rows
from annotation.errors import InputError

__all__ = ["FORMATS", "InputLimits", "ResultBatch", "ResultRow", "detect_format", "read_results"]

FORMATS = ("auto", "csv", "jsonl", "parquet", "wmt23-mqm", "big-bench-mistake")


def detect_format(path: Path) -> str:
    """The format of a file from its name and, for JSONL, its first record's keys."""
    name = path.name.lower()
    if name.endswith((".tsv.tar.gz", ".tsv")):
        return "wmt23-mqm"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith((".jsonl", ".json")):
        try:
            with path.open("rb") as handle:
                first = json.loads(handle.readline(1 << 20) or b"{}")
        except (OSError, ValueError, RecursionError):
            return "jsonl"  # the JSONL reader reports the precise problem
        if isinstance(first, dict) and {"steps", "answer", "target"} <= first.keys():
            return "big-bench-mistake"
        return "jsonl"
    raise InputError(str(path), None, f"cannot tell the format from the name; pass --format ({', '.join(FORMATS[1:])})")


def read_results(
    path: Path,
    *,
    fmt: str = "auto",
    dataset: str | None = None,
    batch_rows: int = BATCH_ROWS,
    limits: InputLimits = DEFAULT_LIMITS,
) -> Iterator[ResultBatch]:
    """Stream one results file in the given (or detected) format as batches of about `batch_rows` rows."""
    if not path.is_file():
        raise InputError(str(path), None, "no such file" if not path.exists() else "not a regular file")
    if dataset is not None:
        checked_text(path, None, "the dataset name", dataset, NAME_MAX_LENGTH)
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "csv":
        return csv_batches(path, dataset, batch_rows, limits)
    if fmt == "parquet":
        return parquet_batches(path, dataset, batch_rows, limits)
    row_readers = {
        "jsonl": read_jsonl_rows,
        "wmt23-mqm": read_wmt23_mqm,
        "big-bench-mistake": read_big_bench_mistake,
    }
    if fmt not in row_readers:
        raise InputError(str(path), None, f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    return batched(row_readers[fmt](path, dataset, limits), batch_rows)
