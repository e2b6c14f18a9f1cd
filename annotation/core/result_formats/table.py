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

from annotation.core.failure_rules import MAX_ABS_SCORE
from annotation.core.result_formats import arrow
from annotation.core.result_formats.arrow import arrow_fast_path, csv_blocks
from annotation.core.result_formats.io import (
    DEFAULT_LIMITS,
    CsvSource,
    InputLimits,
    ResultBatch,
    ResultRow,
    batched,
    checked_fields,
    csv_header,
    csv_rows,
    json_lines,
    shown,
)
from annotation.errors import InputError

REQUIRED_COLUMNS = ("example_id", "model", "input_text", "output_text", "score")
OPTIONAL_COLUMNS = ("correct_answer", "dataset")


def checked_score(path: Path, line: int, raw: object) -> float:
    """A score as a float: a number, finite, and within MAX_ABS_SCORE (so every mean stays finite)."""
    if isinstance(raw, bool):  # a JSON true is no score, though float() takes it
        raise InputError(str(path), line, f"score {shown(raw)} is not a number")
    try:
        score = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise InputError(str(path), line, f"score {shown(raw)} is not a number") from None
    if not math.isfinite(score):
        raise InputError(str(path), line, f"score {shown(raw)} is not a finite number")
    if abs(score) > MAX_ABS_SCORE:
        raise InputError(str(path), line, f"score {shown(raw)} is beyond +-{MAX_ABS_SCORE:g} (no metric is that large)")
    return score


def checked_row(
    path: Path, line: int, dataset: str, example_id: str, model: str, input_text: str, output_text: str,
    score: float, reference: str,
) -> ResultRow:
    """A row of text fields a database can store: names within NAME_MAX_LENGTH, no NUL byte or lone surrogate."""
    checked_fields(path, line, {
        "dataset": dataset, "example_id": example_id, "model": model, "input_text": input_text,
        "output_text": output_text, "correct_answer": reference,
    }, names=("dataset", "example_id", "model"))
    return ResultRow(dataset, example_id, model, input_text, output_text, score, reference)


def table_row(path: Path, line: int, record: dict, default_dataset: str | None) -> ResultRow:
    """Validate one record of the ErrorMap table."""
    missing = [c for c in REQUIRED_COLUMNS if record.get(c) is None]
    if missing:
        raise InputError(str(path), line, f"missing column(s) {', '.join(missing)}")
    dataset = record.get("dataset") or default_dataset
    if not dataset:
        raise InputError(str(path), line, "no dataset: add a 'dataset' column or pass --dataset")
    score = checked_score(path, line, record["score"])
    example_id, model = str(record["example_id"]).strip(), str(record["model"]).strip()
    if not example_id or not model:
        raise InputError(str(path), line, "example_id and model must not be empty")
    reference = record.get("correct_answer")
    return checked_row(
        path, line, str(dataset), example_id, model, str(record["input_text"]), str(record["output_text"]),
        score, "" if reference is None else str(reference),
    )


def table_header(path: Path, reader: Any, source: CsvSource, dataset: str | None, limits: InputLimits) -> list[str]:
    """The header row of a CSV reader, checked for the ErrorMap columns."""
    header = csv_header(path, reader, source, limits)
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise InputError(str(path), 1, f"missing column(s) {', '.join(missing)} in header {shown(header, 300)}")
    if dataset is None and "dataset" not in header:
        raise InputError(str(path), 1, "no 'dataset' column: add one or pass --dataset")
    return header


def csv_batches(path: Path, dataset: str | None, batch_rows: int, limits: InputLimits) -> Iterator[ResultBatch]:
    """A CSV results file as batches: Arrow's blocks while the column checks vouch for them."""
    source = CsvSource(path, limits)
    header = table_header(path, csv.reader(source), source, dataset, limits)
    exact = partial(read_csv_rows, path, dataset, limits)
    if min(limits.max_line_bytes, limits.max_record_bytes) < arrow.ARROW_BLOCK_BYTES:
        # Arrow refuses a row longer than its block, so it keeps to limits of at least a block;
        # tighter limits are the row reader's to enforce.
        yield from batched(exact(), batch_rows)
        return
    yield from arrow_fast_path(csv_blocks(path, header), exact,
                               lambda block, _: arrow.checked_columns(block, dataset),
                               partial(batched, size=batch_rows))


def read_csv_rows(path: Path, dataset: str | None, limits: InputLimits = DEFAULT_LIMITS) -> Iterator[ResultRow]:
    """The reference CSV reader: csv.reader rows and positional fields, checked inline, line by line."""
    source = CsvSource(path, limits)
    reader = csv.reader(source)
    header = table_header(path, reader, source, dataset, limits)
    i_example, i_model, i_input, i_output, i_score = (header.index(c) for c in REQUIRED_COLUMNS)
    i_reference = header.index("correct_answer") if "correct_answer" in header else None
    i_dataset = header.index("dataset") if "dataset" in header else None
    width = len(header)
    for fields in csv_rows(path, reader, source):
        line = reader.line_num
        if len(fields) != width:
            if not fields:
                continue  # a blank line
            more_or_fewer = "more" if len(fields) > width else "fewer"
            raise InputError(str(path), line,
                             f"{more_or_fewer} fields than the header has ({len(fields):,} vs {width})")
        score = checked_score(path, line, fields[i_score])
        example_id, model = fields[i_example].strip(), fields[i_model].strip()
        if not example_id or not model:
            raise InputError(str(path), line, "example_id and model must not be empty")
        row_dataset = (fields[i_dataset] if i_dataset is not None else "") or dataset
        if not row_dataset:
            raise InputError(str(path), line, "no dataset: fill the 'dataset' column or pass --dataset")
        reference = fields[i_reference] if i_reference is not None else ""
        yield checked_row(path, line, row_dataset, example_id, model, fields[i_input], fields[i_output], score,
                          reference)


def read_jsonl_rows(path: Path, dataset: str | None, limits: InputLimits = DEFAULT_LIMITS) -> Iterator[ResultRow]:
    """A JSONL results file, one object per line."""
    for line_number, record in json_lines(path, limits):
        yield table_row(path, line_number, record, dataset)


def parquet_file(path: Path, limits: InputLimits = DEFAULT_LIMITS) -> tuple[Any, list[str]]:
    """The open Parquet file and the ErrorMap columns it has; refused when its data would expand past
    `limits.max_decompressed_bytes` (a few KB of compressed repeats can hold gigabytes)."""
    import pyarrow as pa  # imported here: only Parquet users pay for it
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (OSError, ValueError, pa.ArrowException) as exc:  # pyarrow's errors for unreadable files
        raise InputError(str(path), None, f"not a readable Parquet file ({exc})") from None
    columns = parquet.schema_arrow.names
    if len(columns) > limits.max_columns:
        raise InputError(str(path), None,
                         f"{len(columns):,} columns (at most {limits.max_columns:,}; ERRORMAP_MAX_COLUMNS)")
    metadata = parquet.metadata
    expanded = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    if expanded > limits.max_decompressed_bytes:
        raise InputError(
            str(path), None,
            f"the data expands to {expanded:,} bytes (at most {limits.max_decompressed_bytes:,}; "
            "ERRORMAP_MAX_DECOMPRESSED_BYTES)",
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise InputError(str(path), None, f"missing column(s) {', '.join(missing)} in {columns}")
    return parquet, [c for c in REQUIRED_COLUMNS + OPTIONAL_COLUMNS if c in columns]


def parquet_batches(path: Path, dataset: str | None, batch_rows: int, limits: InputLimits) -> Iterator[ResultBatch]:
    """A Parquet results file as batches: Arrow's record batches while the column checks vouch for them."""
    parquet, wanted = parquet_file(path, limits)
    blocks = parquet.iter_batches(batch_size=batch_rows, columns=wanted)
    yield from arrow_fast_path(blocks, partial(read_parquet_rows, path, dataset, limits),
                               lambda block, _: arrow.checked_columns(block, dataset),
                               partial(batched, size=batch_rows))


def read_parquet_rows(path: Path, dataset: str | None, limits: InputLimits = DEFAULT_LIMITS) -> Iterator[ResultRow]:
    """The reference Parquet reader: record by record through the checks of `table_row`."""
    import pyarrow as pa

    parquet, wanted = parquet_file(path, limits)
    row_number = 0
    batches = parquet.iter_batches(batch_size=10_000, columns=wanted)
    while True:
        try:
            batch = next(batches, None)
        except (pa.ArrowException, OSError) as exc:  # a damaged page or footer
            raise InputError(str(path), row_number + 1, f"unreadable Parquet data ({shown(str(exc), 200)})") from None
        if batch is None:
            return
        for record in batch.to_pylist():
            row_number += 1
            yield table_row(path, row_number, record, dataset)
