"""The ErrorMap results table (one row per example and model) as CSV, JSONL or Parquet.

The row readers here are the reference: each record is checked inline, so an error names its line.
CSV and Parquet go through the Arrow fast path first, which hands over to them where it must.
"""
from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from annotation.core.result_formats.arrow import arrow_fast_path, csv_blocks
from annotation.core.result_formats.io import (
    ResultBatch,
    ResultRow,
    batched,
    csv_rows,
    json_lines,
    text_lines,
)
from annotation.errors import InputError

REQUIRED_COLUMNS = ("example_id", "model", "input_text", "output_text", "score")
OPTIONAL_COLUMNS = ("correct_answer", "dataset")


def table_row(path: Path, line: int, record: dict, default_dataset: str | None) -> ResultRow:
    """Validate one record of the ErrorMap table."""
    missing = [c for c in REQUIRED_COLUMNS if record.get(c) is None]
    if missing:
        raise InputError(str(path), line, f"missing column(s) {', '.join(missing)}")
    dataset = record.get("dataset") or default_dataset
    if not dataset:
        raise InputError(str(path), line, "no dataset: add a 'dataset' column or pass --dataset")
    raw_score = record["score"]
    try:
        if isinstance(raw_score, bool):
            raise ValueError
        score = float(raw_score)
    except (TypeError, ValueError):
        raise InputError(str(path), line, f"score {raw_score!r} is not a number") from None
    if not math.isfinite(score):
        raise InputError(str(path), line, f"score {raw_score!r} is not a finite number")
    example_id, model = str(record["example_id"]).strip(), str(record["model"]).strip()
    if not example_id or not model:
        raise InputError(str(path), line, "example_id and model must not be empty")
    reference = record.get("correct_answer")
    return ResultRow(
        dataset=str(dataset),
        example_id=example_id,
        model=model,
        input_text=str(record["input_text"]),
        output_text=str(record["output_text"]),
        score=score,
        reference="" if reference is None else str(reference),
    )


def csv_header(path: Path, reader: Any, dataset: str | None) -> list[str]:
    """The header row of a CSV reader, checked for the ErrorMap columns."""
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(str(path), 1, "the file is empty (expected a header row)") from None
    except csv.Error as exc:
        raise InputError(str(path), 1, f"broken CSV header: {exc}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise InputError(str(path), 1, f"missing column(s) {', '.join(missing)} in header {header}")
    if dataset is None and "dataset" not in header:
        raise InputError(str(path), 1, "no 'dataset' column: add one or pass --dataset")
    return header


def csv_batches(path: Path, dataset: str | None, batch_rows: int) -> Iterator[ResultBatch]:
    """A CSV results file as batches: Arrow's blocks while the column checks vouch for them."""
    header = csv_header(path, csv.reader(text_lines(path)), dataset)
    exact = partial(read_csv_rows, path, dataset)
    if len(set(header)) != len(header):
        # Duplicate names: the row reader takes the first of each; Arrow would refuse the column.
        yield from batched(exact(), batch_rows)
        return
    yield from arrow_fast_path(csv_blocks(path, header), exact, dataset, batch_rows)


def read_csv_rows(path: Path, dataset: str | None) -> Iterator[ResultRow]:
    """The reference CSV reader: csv.reader rows and positional fields, checked inline, line by line."""
    reader = csv.reader(text_lines(path))
    header = csv_header(path, reader, dataset)
    i_example, i_model, i_input, i_output, i_score = (header.index(c) for c in REQUIRED_COLUMNS)
    i_reference = header.index("correct_answer") if "correct_answer" in header else None
    i_dataset = header.index("dataset") if "dataset" in header else None
    width = len(header)
    for fields in csv_rows(path, reader):
        line = reader.line_num
        if len(fields) != width:
            if not fields:
                continue  # a blank line
            more_or_fewer = "more" if len(fields) > width else "fewer"
            raise InputError(str(path), line, f"{more_or_fewer} fields than the header has ({len(fields)} vs {width})")
        raw_score = fields[i_score]
        try:
            score = float(raw_score)
        except ValueError:
            raise InputError(str(path), line, f"score {raw_score!r} is not a number") from None
        if not math.isfinite(score):
            raise InputError(str(path), line, f"score {raw_score!r} is not a finite number")
        example_id, model = fields[i_example].strip(), fields[i_model].strip()
        if not example_id or not model:
            raise InputError(str(path), line, "example_id and model must not be empty")
        row_dataset = (fields[i_dataset] if i_dataset is not None else "") or dataset
        if not row_dataset:
            raise InputError(str(path), line, "no dataset: fill the 'dataset' column or pass --dataset")
        reference = fields[i_reference] if i_reference is not None else ""
        yield ResultRow(row_dataset, example_id, model, fields[i_input], fields[i_output], score, reference)


def read_jsonl_rows(path: Path, dataset: str | None) -> Iterator[ResultRow]:
    """A JSONL results file, one object per line."""
    for line_number, record in json_lines(path):
        yield table_row(path, line_number, record, dataset)


def parquet_file(path: Path) -> tuple[Any, list[str]]:
    """The open Parquet file and the ErrorMap columns it has."""
    import pyarrow.parquet as pq  # imported here: only Parquet users pay for it

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several unrelated types for unreadable files
        raise InputError(str(path), None, f"not a readable Parquet file ({exc})") from None
    columns = parquet.schema_arrow.names
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise InputError(str(path), None, f"missing column(s) {', '.join(missing)} in {columns}")
    return parquet, [c for c in REQUIRED_COLUMNS + OPTIONAL_COLUMNS if c in columns]


def parquet_batches(path: Path, dataset: str | None, batch_rows: int) -> Iterator[ResultBatch]:
    """A Parquet results file as batches: Arrow's record batches while the column checks vouch for them."""
    parquet, wanted = parquet_file(path)
    blocks = parquet.iter_batches(batch_size=batch_rows, columns=wanted)
    yield from arrow_fast_path(blocks, partial(read_parquet_rows, path, dataset), dataset, batch_rows)


def read_parquet_rows(path: Path, dataset: str | None) -> Iterator[ResultRow]:
    """The reference Parquet reader: record by record through the checks of `table_row`."""
    parquet, wanted = parquet_file(path)
    row_number = 0
    for batch in parquet.iter_batches(batch_size=10_000, columns=wanted):
        for record in batch.to_pylist():
            row_number += 1
            yield table_row(path, row_number, record, dataset)
