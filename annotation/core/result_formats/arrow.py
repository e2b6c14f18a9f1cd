"""The column-wise fast path for CSV and Parquet: Arrow parses blocks in C++ threads, the checks run on
whole columns, and at the first block they cannot vouch for the row reader takes over."""
from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

from annotation.core.failure_rules import MAX_ABS_SCORE
from annotation.core.result_formats.io import NAME_MAX_LENGTH, ResultBatch

# One Arrow block becomes one batch: 1 MiB keeps memory flat and a batch near BATCH_ROWS short rows.
ARROW_BLOCK_BYTES = 1 << 20


Row = TypeVar("Row")
Batch = TypeVar("Batch")


class Unvouched(Exception):
    """A block holds something the column checks do not decide; the row reader will."""


class _CarriageReturnWatch:
    """A binary file that notes a carriage return not followed by a line feed: Arrow ends a row there,
    Python's csv module refuses it (so blocks read after one cannot be vouched for)."""

    def __init__(self, handle: Any) -> None:
        self.handle, self.seen, self._ends_with_cr = handle, False, False
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        chunk: bytes = self.handle.read(size)
        if self._ends_with_cr and not chunk.startswith(b"\n"):
            self.seen = True
        lone = chunk.count(b"\r") - chunk.count(b"\r\n") - chunk.endswith(b"\r")
        self.seen = self.seen or lone > 0
        self._ends_with_cr = chunk.endswith(b"\r")
        return chunk


def csv_blocks(path: Path, header: list[str]) -> Generator[Any, None, None]:
    """Arrow record batches of a CSV file, every column as text, parsed ahead in Arrow's threads.

    Empty lines are kept (as rows of empty fields, which no check vouches for), so in a block whose
    values hold no line break the rows are consecutive lines: row i of the file is line header + i."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    # A Python file, not the path: from a path Arrow reads the whole file ahead of a slower
    # consumer, so memory would grow with the file; through a Python file it stays a few blocks.
    with path.open("rb") as handle:
        watch = _CarriageReturnWatch(handle)
        reader = pa_csv.open_csv(
            watch,
            read_options=pa_csv.ReadOptions(block_size=ARROW_BLOCK_BYTES),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        if reader.schema.names != header:
            raise Unvouched("header")
        for block in reader:
            # The block's bytes were read before it was parsed: a lone carriage return in them is seen.
            if watch.seen:
                raise Unvouched("carriage return")
            yield block


def arrow_fast_path(
    blocks: Generator[Any, None, None],
    exact_rows: Callable[[], Iterator[Row]],
    check: Callable[[Any, int], Batch],
    batched_rows: Callable[[Iterator[Row]], Iterator[Batch]],
) -> Iterator[Batch]:
    """Arrow record batches checked column-wise by `check(block, rows given before it)`; from the first
    block that is not vouched for, the row reader carries on after the rows already given (it re-reads
    the head but yields nothing of it)."""
    import pyarrow as pa

    given = 0
    while True:
        try:
            block = next(blocks)
            batch = check(block, given)
        except StopIteration:
            return
        except (Unvouched, pa.ArrowException, OSError):
            break
        yield batch
        given += len(batch)  # type: ignore[arg-type]
    blocks.close()
    yield from batched_rows(islice(exact_rows(), given, None))


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
        values: list[str] = column.to_pylist()
        return values

    raw_score = block.column("score")
    if raw_score.null_count or not (
        pa.types.is_string(raw_score.type) or pa.types.is_integer(raw_score.type)
        or pa.types.is_floating(raw_score.type)
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
        dataset = [value or default_dataset or "" for value in text("dataset", NAME_MAX_LENGTH)]
        if "" in dataset:
            raise Unvouched("dataset")
    elif default_dataset:
        dataset = [default_dataset] * rows
    else:
        raise Unvouched("dataset")
    reference = text("correct_answer") if "correct_answer" in names else [""] * rows
    return ResultBatch(
        dataset, example_id, model, text("input_text"), text("output_text"), score.to_pylist(), reference
    )
