"""What every results reader shares: the rows and batches it yields, and lines, JSON lines and CSV rows
read so that a problem names its file and line."""
from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, ClassVar, Self

from annotation.errors import InputError

BATCH_ROWS = 20_000
# Names and ids become CharFields of this length (Dataset, EvaluatedModel, Example.example_id,
# Annotator; a test keeps them equal): a longer one is refused here, the same on every database.
NAME_MAX_LENGTH = 200
# Fields are bounded by the record size (InputLimits.max_record_bytes), not by the csv module.
csv.field_size_limit(sys.maxsize)
# A NUL byte (PostgreSQL text cannot hold one) or a lone surrogate (from a JSON "\ud800" escape;
# not Unicode, no database can store it).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
MB = 1 << 20


@dataclass(frozen=True)
class InputLimits:
    """Bounds on what one input file may hold, so memory stays bounded whatever it holds.

    The defaults are generous for real benchmark files; the server's settings can change each one
    (ERRORMAP_MAX_LINE_BYTES, ERRORMAP_MAX_RECORD_BYTES, ERRORMAP_MAX_COLUMNS,
    ERRORMAP_MAX_DECOMPRESSED_BYTES).
    """

    max_line_bytes: int = 16 * MB  # one physical line
    max_record_bytes: int = 16 * MB  # one record: a CSV row whose quoted fields span lines
    max_columns: int = 1_000  # CSV header fields, keys of one JSON object
    max_decompressed_bytes: int = 4096 * MB  # what an archive or a Parquet file expands to


DEFAULT_LIMITS = InputLimits()


def shown(value: object, limit: int = 60) -> str:
    """A bounded repr for messages: a 200 MB field must not become a 200 MB error."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def checked_text(path: Path, line: int | None, column: str, value: str, max_length: int | None = None) -> str:
    """`value`, unless a database could not store it as it is: a NUL byte, a lone surrogate, or
    more than `max_length` characters."""
    if max_length is not None and len(value) > max_length:
        raise InputError(str(path), line, f"{column} is {len(value):,} characters long (at most {max_length})")
    bad = _UNSTORABLE.search(value)
    if bad is not None:
        what = "a NUL byte" if bad.group() == "\x00" else f"a lone surrogate {bad.group()!r} (not valid Unicode)"
        raise InputError(str(path), line, f"{column} holds {what}")
    return value


def checked_fields(path: Path, line: int | None, fields: dict[str, str], names: Sequence[str] = ()) -> None:
    """Every value of `fields` storable (see checked_text), those in `names` within NAME_MAX_LENGTH;
    one scan of all the text, the per-field checks only to name a culprit."""
    for name in names:
        if len(fields[name]) > NAME_MAX_LENGTH:
            checked_text(path, line, name, fields[name], NAME_MAX_LENGTH)
    if _UNSTORABLE.search("".join(fields.values())) is not None:
        for column, value in fields.items():
            checked_text(path, line, column, value)


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


class ColumnBatch:
    """Consecutive rows of one file, column by column: FIELDS names the columns (lists of equal length),
    in the order of a row's fields."""

    __slots__ = ()
    FIELDS: ClassVar[tuple[str, ...]] = ()

    def __len__(self) -> int:
        return len(getattr(self, self.FIELDS[0]))

    def columns(self) -> list[list[Any]]:
        return [getattr(self, name) for name in self.FIELDS]

    @classmethod
    def of_rows(cls, rows: Sequence[Any]) -> Self:
        return cls(*([getattr(row, name) for row in rows] for name in cls.FIELDS))

    @classmethod
    def batches(cls, rows: Iterable[Any], size: int) -> Iterator[Self]:
        """Rows gathered into batches of `size` (the last one shorter)."""
        iterator = iter(rows)
        while chunk := list(islice(iterator, size)):
            yield cls.of_rows(chunk)


@dataclass(slots=True)
class ResultBatch(ColumnBatch):
    """Consecutive result rows of one file, column by column."""

    FIELDS: ClassVar[tuple[str, ...]] = (
        "dataset", "example_id", "model", "input_text", "output_text", "score", "reference")
    dataset: list[str]
    example_id: list[str]
    model: list[str]
    input_text: list[str]
    output_text: list[str]
    score: list[float]
    reference: list[str]

    def rows(self) -> Iterator[tuple]:
        """(dataset, example_id, model, input_text, output_text, score, reference) per row."""
        return zip(*self.columns())


def batched(rows: Iterable[ResultRow], size: int) -> Iterator[ResultBatch]:
    """Result rows gathered into batches of `size` (the last one shorter)."""
    return ResultBatch.batches(rows, size)


def text_lines(path: Path, limits: InputLimits = DEFAULT_LIMITS) -> Iterator[str]:
    """Decoded physical lines; a bad byte is reported on its own line (a text wrapper decodes in blocks).

    A line is read with a bound, so one longer than `limits.max_line_bytes` is refused before it is
    held in memory.
    """
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(str(path), None, f"cannot read the file ({exc.strerror})") from None
    with handle:
        yield from decoded_lines(path, handle, limits)


def decoded_lines(path: Path, handle: Any, limits: InputLimits, first_line: int = 1) -> Iterator[str]:
    """The lines of a binary file object, each read with the line bound and decoded as UTF-8."""
    line_number = first_line - 1
    while raw := handle.readline(limits.max_line_bytes + 1):
        line_number += 1
        if len(raw) > limits.max_line_bytes:
            raise InputError(
                str(path), line_number,
                f"line longer than {limits.max_line_bytes:,} bytes (the limit; ERRORMAP_MAX_LINE_BYTES)",
            )
        try:
            # A byte-order mark (spreadsheets write one) is not part of the first field.
            yield raw.decode("utf-8-sig" if line_number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(str(path), line_number, f"not valid UTF-8 ({exc.reason})") from None


class _NumberTooLong(ValueError):
    pass


def _bounded_int(text: str) -> int:
    # Python refuses to read integers of more than 4,300 digits with a bare ValueError; no score or
    # id needs more than a few dozen.
    if len(text) > 100:
        raise _NumberTooLong(f"a number of {len(text):,} digits")
    return int(text)


def json_object(path: Path, line: int, text: str, limits: InputLimits = DEFAULT_LIMITS) -> dict:
    """One JSON object from one line: broken JSON, a repeated key, too many keys or nesting too deep
    for the parser is an InputError naming the line."""

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict:
        if len(pairs) > limits.max_columns:
            raise InputError(str(path), line, f"an object with {len(pairs):,} keys (at most {limits.max_columns:,})")
        record = dict(pairs)
        if len(record) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    raise InputError(str(path), line, f"key {shown(key)} appears twice in one object")
                seen.add(key)
        return record

    try:
        record = json.loads(text, object_pairs_hook=unique_keys, parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        raise InputError(str(path), line, f"broken JSON ({exc.msg} at column {exc.colno})") from None
    except _NumberTooLong as exc:
        raise InputError(str(path), line, f"broken JSON ({exc})") from None
    except RecursionError:
        raise InputError(str(path), line, "JSON nested too deeply") from None
    if not isinstance(record, dict):
        raise InputError(str(path), line, "each line must be a JSON object")
    return record


def json_lines(path: Path, limits: InputLimits = DEFAULT_LIMITS) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line; broken JSON or bad encoding names the line."""
    for line_number, text in enumerate(text_lines(path, limits), start=1):
        if text.strip():
            yield line_number, json_object(path, line_number, text, limits)


class CsvSource:
    """The lines a csv.reader reads, refusing a record (a row whose quoted fields may span lines)
    longer than `limits.max_record_bytes` while it is read, not after it is whole in memory."""

    def __init__(self, path: Path, limits: InputLimits = DEFAULT_LIMITS) -> None:
        self.path, self.limit = path, limits.max_record_bytes
        self.lines = text_lines(path, limits)
        self.pending = 0  # characters of the record being read
        self.line = self.record_start = 0

    def __iter__(self) -> CsvSource:
        return self

    def __next__(self) -> str:
        text = next(self.lines)
        self.line += 1
        if not self.pending:
            self.record_start = self.line
        self.pending += len(text)
        if self.pending > self.limit:
            raise InputError(
                str(self.path), self.record_start,
                f"record longer than {self.limit:,} bytes (the limit; ERRORMAP_MAX_RECORD_BYTES)",
            )
        return text

    def record_done(self) -> None:
        self.pending = 0


def csv_header(path: Path, reader: Any, source: CsvSource, limits: InputLimits = DEFAULT_LIMITS) -> list[str]:
    """The header of a CSV file: present, within the column limit, no name twice."""
    try:
        header: list[str] = next(reader)
    except StopIteration:
        raise InputError(str(path), 1, "the file is empty (expected a header row)") from None
    except csv.Error as exc:
        raise InputError(str(path), 1, f"broken CSV header: {exc}") from None
    source.record_done()
    if len(header) > limits.max_columns:
        raise InputError(str(path), 1,
                         f"{len(header):,} columns (at most {limits.max_columns:,}; ERRORMAP_MAX_COLUMNS)")
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise InputError(str(path), 1,
                         f"column(s) {', '.join(map(shown, repeated))} appear more than once in the header")
    return header


def csv_rows(path: Path, reader: Any, source: CsvSource) -> Iterator[Any]:
    """The rows of a CSV reader; a malformed one is an InputError at its line."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InputError(str(path), reader.line_num, f"broken CSV: {exc}") from None
        source.record_done()
        yield row


def csv_records(
    path: Path, required: tuple[str, ...], limits: InputLimits = DEFAULT_LIMITS
) -> Iterator[tuple[int, dict]]:
    """(line number, record) for each CSV row; checks the header has the `required` columns."""
    source = CsvSource(path, limits)
    reader = csv.reader(source)
    header = csv_header(path, reader, source, limits)
    missing = [c for c in required if c not in header]
    if missing:
        if "dataset" in missing and len(missing) == 1:
            raise InputError(str(path), 1, "no 'dataset' column: add one or pass --dataset")
        raise InputError(str(path), 1, f"missing column(s) {', '.join(missing)} in header {shown(header, 300)}")
    width = len(header)
    for fields in csv_rows(path, reader, source):
        if len(fields) > width:
            raise InputError(str(path), reader.line_num, "more fields than the header has")
        if fields:
            yield reader.line_num, dict(zip(header, fields))
