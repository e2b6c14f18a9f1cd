"""The column-wise fast path for CSV and Parquet: Arrow parses blocks in C++ threads, the checks run on
whole columns, and at the first block they cannot vouch for the row reader takes over."""
from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from annotation.core.failure_rules import MAX_ABS_SCORE
from annotation.core.result_formats.io import NAME_MAX_LENGTH, ResultBatch, ResultRow, batched

# One Arrow block becomes one batch: 1 MiB keeps memory flat and a batch near BATCH_ROWS short rows.
ARROW_BLOCK_BYTES = 1 << 20


class Unvouched(Exception):
    """A block holds something the column checks do not decide; the row reader will."""


def csv_blocks(path: Path, header: list[str]) -> Iterator[Any]:
    """Arrow record batches of a CSV file, every column as text, parsed ahead in Arrow's threads."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    # A Python file, not the path: from a path Arrow reads the whole file ahead of a slower
    # consumer, so memory would grow with the file; through a Python file it stays a few blocks.
    with path.open("rb") as handle:
        reader = pa_csv.open_csv(
            handle,
            read_options=pa_csv.ReadOptions(block_size=ARROW_BLOCK_BYTES),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        if reader.schema.names != header:
            raise Unvouched("header")
        yield from reader


def arrow_fast_path(
    blocks: Generator[Any, None, None], exact_rows: Callable[[], Iterator[ResultRow]], dataset: str | None, batch_rows: int
) -> Iterator[ResultBatch]:
    """Arrow record batches checked column-wise; from the first block that is not vouched for, the
    row reader carries on after the rows already given (it re-reads the head but yields nothing of it)."""
    import pyarrow as pa

    given = 0
    while True:
        try:
            block = next(blocks)
            batch = checked_columns(block, dataset)
        except StopIteration:
            return
        except (Unvouched, pa.ArrowException, OSError):
            break
        yield batch
        given += len(batch)
    blocks.close()
    yield from batched(islice(exact_rows(), given, None), batch_rows)


def checked_columns(block: Any, default_dataset: str | None) -> ResultBatch:
    """The checks of the row readers, column-wise; raises `Unvouched` where a row may fail one."""
    import pyarrow as pa
    import pyarrow.compute as pc

    names = block.schema.names

    def text(name: str, max_length: int | None = None) -> list[str]:
        column = block.column(name)
        if column.null_count or not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            raise Unvouched(name)
        # A NUL byte or an over-long name: the row reader names the line. (Arrow's strings are valid
        # UTF-8, so no lone surrogates here.)
        if pc.any(pc.match_substring(column, "\x00")).as_py():
            raise Unvouched(name)
        if max_length is not None and len(column) and pc.max(pc.utf8_length(column)).as_py() > max_length:
            raise Unvouched(name)
        return column.to_pylist()

    raw_score = block.column("score")
    if raw_score.null_count or not (
        pa.types.is_string(raw_score.type) or pa.types.is_integer(raw_score.type) or pa.types.is_floating(raw_score.type)
    ):
        raise Unvouched("score")
    score = pc.cast(raw_score, pa.float64())  # ArrowInvalid on text that is not a number
    if not pc.all(pc.is_finite(score)).as_py() or pc.max(pc.abs(score)).as_py() > MAX_ABS_SCORE:
        raise Unvouched("score")
    example_id = [value.strip() for value in text("example_id", NAME_MAX_LENGTH)]
    model = [value.strip() for value in text("model", NAME_MAX_LENGTH)]
    if "" in example_id or "" in model:
        raise Unvouched("example_id or model")
    rows = len(example_id)
    if "dataset" in names:
        dataset = [value or default_dataset for value in text("dataset", NAME_MAX_LENGTH)]
        if None in dataset or "" in dataset:
            raise Unvouched("dataset")
    elif default_dataset:
        dataset = [default_dataset] * rows
    else:
        raise Unvouched("dataset")
    reference = text("correct_answer") if "correct_answer" in names else [""] * rows
    return ResultBatch(
        dataset, example_id, model, text("input_text"), text("output_text"), score.to_pylist(), reference
    )
