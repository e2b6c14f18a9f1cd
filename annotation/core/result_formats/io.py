"""What every results reader shares: the rows and batches it yields, and lines, JSON lines and CSV rows
read so that a problem names its file and line."""
from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from annotation.errors import InputError

BATCH_ROWS = 20_000

csv.field_size_limit(sys.maxsize)


@dataclass(frozen=True, slots=True)
class ResultRow:
    """One (example, model) result, from the row readers."""

    dataset: str
    example_id: str
    model: str
    input_text: str
    output_text: str
    score: float
    reference: str


_BATCH_FIELDS = ("dataset", "example_id", "model", "input_text", "output_text", "score", "reference")


@dataclass(slots=True)
class ResultBatch:
    """Consecutive rows of one file, column by column (the columns have equal length)."""

    dataset: list[str]
    example_id: list[str]
    model: list[str]
    input_text: list[str]
    output_text: list[str]
    score: list[float]
    reference: list[str]

    def __len__(self) -> int:
        return len(self.example_id)

    @classmethod
    def of_rows(cls, rows: Sequence[ResultRow]) -> ResultBatch:
        return cls(*([getattr(row, name) for row in rows] for name in _BATCH_FIELDS))

    def rows(self) -> Iterator[tuple]:
        """(dataset, example_id, model, input_text, output_text, score, reference) per row."""
        return zip(*(getattr(self, name) for name in _BATCH_FIELDS))


def batched(rows: Iterable[ResultRow], size: int) -> Iterator[ResultBatch]:
    """Rows gathered into batches of `size` (the last one shorter)."""
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield ResultBatch.of_rows(chunk)


def text_lines(path: Path) -> Iterator[str]:
    """Decoded physical lines; a bad byte is reported on its own line (a text wrapper decodes in blocks)."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(str(path), None, f"cannot read the file ({exc.strerror})") from None
    with handle:
        for line_number, raw in enumerate(handle, start=1):
            try:
                # A byte-order mark (spreadsheets write one) is not part of the first field.
                yield raw.decode("utf-8-sig" if line_number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(str(path), line_number, f"not valid UTF-8 ({exc.reason})") from None


def json_lines(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line; broken JSON or bad encoding names the line."""
    for line_number, text in enumerate(text_lines(path), start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(str(path), line_number, f"broken JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(record, dict):
            raise InputError(str(path), line_number, "each line must be a JSON object")
        yield line_number, record


def csv_rows(path: Path, reader: Any) -> Iterator[Any]:
    """The rows of a CSV reader; a malformed one is an InputError at its line."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InputError(str(path), reader.line_num, f"broken CSV: {exc}") from None
        yield row


def csv_records(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict]]:
    """(line number, record) for each CSV row; checks the header has the `required` columns."""
    reader = csv.DictReader(text_lines(path))
    try:
        header = reader.fieldnames or []
    except csv.Error as exc:
        raise InputError(str(path), 1, f"broken CSV header: {exc}") from None
    missing = [c for c in required if c not in header]
    if missing:
        if "dataset" in missing and len(missing) == 1:
            raise InputError(str(path), 1, "no 'dataset' column: add one or pass --dataset")
        raise InputError(str(path), 1, f"missing column(s) {', '.join(missing)} in header {header}")
    for record in csv_rows(path, reader):
        if None in record:
            raise InputError(str(path), reader.line_num, "more fields than the header has")
        yield reader.line_num, record
