"""Readers for benchmark results: the ErrorMap table (CSV, JSONL, Parquet), WMT23 MQM and BIG-Bench-Mistake.

`read_results` streams a file as `ResultBatch`es (rows column by column) and raises `InputError`
naming the file, the line and what was wrong. Readers never touch the database.

CSV and Parquet take a fast path: Arrow parses blocks in C++ threads and the checks run column-wise.
The row readers stay the reference: at the first block the column checks cannot vouch for, the row
reader takes over after the rows already given, so an error names its line exactly as it always has
(tests hold the two paths to the same rows, including on fuzzed CSV).
"""
from __future__ import annotations

import csv
import json
import math
import re
import sys
import tarfile
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

from annotation.errors import InputError

REQUIRED_COLUMNS = ("example_id", "model", "input_text", "output_text", "score")
OPTIONAL_COLUMNS = ("correct_answer", "dataset")
FORMATS = ("auto", "csv", "jsonl", "parquet", "wmt23-mqm", "big-bench-mistake")
WMT23_DEFAULT_DATASET = "wmt23-mqm-ende"
WMT23_REFERENCE_SYSTEM = "refA"
BBM_MODEL = "PaLM 2"
BATCH_ROWS = 20_000
# One Arrow block becomes one batch: 4 MiB keeps memory flat and a batch near BATCH_ROWS short rows.
ARROW_BLOCK_BYTES = 1 << 20

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
                first = json.loads(handle.readline() or b"{}")
        except (OSError, ValueError):
            return "jsonl"  # the JSONL reader reports the precise problem
        if isinstance(first, dict) and {"steps", "answer", "target"} <= first.keys():
            return "big-bench-mistake"
        return "jsonl"
    raise InputError(str(path), None, f"cannot tell the format from the name; pass --format ({', '.join(FORMATS[1:])})")


def read_results(
    path: Path, *, fmt: str = "auto", dataset: str | None = None, batch_rows: int = BATCH_ROWS
) -> Iterator[ResultBatch]:
    """Stream one results file in the given (or detected) format as batches of about `batch_rows` rows."""
    if not path.is_file():
        raise InputError(str(path), None, "no such file" if not path.exists() else "not a regular file")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "csv":
        return _csv_batches(path, dataset, batch_rows)
    if fmt == "parquet":
        return _parquet_batches(path, dataset, batch_rows)
    row_readers = {
        "jsonl": _read_jsonl,
        "wmt23-mqm": _read_wmt23_mqm,
        "big-bench-mistake": _read_big_bench_mistake,
    }
    if fmt not in row_readers:
        raise InputError(str(path), None, f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    return _batched(row_readers[fmt](path, dataset), batch_rows)


def _batched(rows: Iterable[ResultRow], size: int) -> Iterator[ResultBatch]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield ResultBatch.of_rows(chunk)


# --- the ErrorMap table -------------------------------------------------------------------------


def _table_row(path: Path, line: int, record: dict, default_dataset: str | None) -> ResultRow:
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


def _csv_header(path: Path, reader: Any, dataset: str | None) -> list[str]:
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


def _csv_batches(path: Path, dataset: str | None, batch_rows: int) -> Iterator[ResultBatch]:
    header = _csv_header(path, csv.reader(text_lines(path)), dataset)
    exact = partial(_read_csv, path, dataset)
    if len(set(header)) != len(header):
        # Duplicate names: the row reader takes the first of each; Arrow would refuse the column.
        yield from _batched(exact(), batch_rows)
        return
    yield from _arrow_fast_path(_csv_blocks(path, header), exact, dataset, batch_rows)


def _csv_blocks(path: Path, header: list[str]) -> Iterator[Any]:
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
            raise _Unvouched("header")
        yield from reader


def _read_csv(path: Path, dataset: str | None) -> Iterator[ResultRow]:
    """The reference CSV reader: csv.reader rows and positional fields, checked inline, line by line."""
    reader = csv.reader(text_lines(path))
    header = _csv_header(path, reader, dataset)
    i_example, i_model, i_input, i_output, i_score = (header.index(c) for c in REQUIRED_COLUMNS)
    i_reference = header.index("correct_answer") if "correct_answer" in header else None
    i_dataset = header.index("dataset") if "dataset" in header else None
    width = len(header)
    for fields in _csv_rows(path, reader):
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


def _csv_rows(path: Path, reader: Any) -> Iterator[Any]:
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
    for record in _csv_rows(path, reader):
        if None in record:
            raise InputError(str(path), reader.line_num, "more fields than the header has")
        yield reader.line_num, record


def _read_jsonl(path: Path, dataset: str | None) -> Iterator[ResultRow]:
    for line_number, record in json_lines(path):
        yield _table_row(path, line_number, record, dataset)


def _parquet_file(path: Path) -> tuple[Any, list[str]]:
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


def _parquet_batches(path: Path, dataset: str | None, batch_rows: int) -> Iterator[ResultBatch]:
    parquet, wanted = _parquet_file(path)
    blocks = parquet.iter_batches(batch_size=batch_rows, columns=wanted)
    yield from _arrow_fast_path(blocks, partial(_read_parquet, path, dataset), dataset, batch_rows)


def _read_parquet(path: Path, dataset: str | None) -> Iterator[ResultRow]:
    """The reference Parquet reader: record by record through the checks of `_table_row`."""
    parquet, wanted = _parquet_file(path)
    row_number = 0
    for batch in parquet.iter_batches(batch_size=10_000, columns=wanted):
        for record in batch.to_pylist():
            row_number += 1
            yield _table_row(path, row_number, record, dataset)


# --- the column-wise fast path (CSV and Parquet) -------------------------------------------------


class _Unvouched(Exception):
    """A block holds something the column checks do not decide; the row reader will."""


def _arrow_fast_path(
    blocks: Generator[Any, None, None], exact_rows: Callable[[], Iterator[ResultRow]], dataset: str | None, batch_rows: int
) -> Iterator[ResultBatch]:
    """Arrow record batches checked column-wise; from the first block that is not vouched for, the
    row reader carries on after the rows already given (it re-reads the head but yields nothing of it)."""
    import pyarrow as pa

    given = 0
    while True:
        try:
            block = next(blocks)
            batch = _checked_columns(block, dataset)
        except StopIteration:
            return
        except (_Unvouched, pa.ArrowException, OSError):
            break
        yield batch
        given += len(batch)
    blocks.close()
    yield from _batched(islice(exact_rows(), given, None), batch_rows)


def _checked_columns(block: Any, default_dataset: str | None) -> ResultBatch:
    """The checks of the row readers, column-wise; raises `_Unvouched` where a row may fail one."""
    import pyarrow as pa
    import pyarrow.compute as pc

    names = block.schema.names

    def text(name: str) -> list[str]:
        column = block.column(name)
        if column.null_count or not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            raise _Unvouched(name)
        return column.to_pylist()

    raw_score = block.column("score")
    if raw_score.null_count or not (
        pa.types.is_string(raw_score.type) or pa.types.is_integer(raw_score.type) or pa.types.is_floating(raw_score.type)
    ):
        raise _Unvouched("score")
    score = pc.cast(raw_score, pa.float64())  # ArrowInvalid on text that is not a number
    if not pc.all(pc.is_finite(score)).as_py():
        raise _Unvouched("score")
    example_id = [value.strip() for value in text("example_id")]
    model = [value.strip() for value in text("model")]
    if "" in example_id or "" in model:
        raise _Unvouched("example_id or model")
    rows = len(example_id)
    if "dataset" in names:
        dataset = [value or default_dataset for value in text("dataset")]
        if None in dataset or "" in dataset:
            raise _Unvouched("dataset")
    elif default_dataset:
        dataset = [default_dataset] * rows
    else:
        raise _Unvouched("dataset")
    reference = text("correct_answer") if "correct_answer" in names else [""] * rows
    return ResultBatch(
        dataset, example_id, model, text("input_text"), text("output_text"), score.to_pylist(), reference
    )


# --- shared helpers -----------------------------------------------------------------------------


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


# --- BIG-Bench-Mistake --------------------------------------------------------------------------


def normalise_answer(text: str) -> str:
    """Collapse whitespace: Dyck answers differ only in spacing from their targets."""
    return " ".join(text.split())


def _read_big_bench_mistake(path: Path, dataset: str | None) -> Iterator[ResultRow]:
    task = path.name.split(".")[0]
    dataset = dataset or f"bbm_{task}"
    for line_number, record in json_lines(path):
        missing = [k for k in ("input", "steps", "answer", "target") if k not in record]
        if missing:
            raise InputError(str(path), line_number, f"missing field(s) {', '.join(missing)}")
        steps = record["steps"]
        if not isinstance(steps, list):
            raise InputError(str(path), line_number, "'steps' must be a list of strings")
        answer = "" if record["answer"] is None else str(record["answer"])
        target = str(record["target"])
        output = "\n".join(str(s) for s in steps) + f"\nAnswer: {answer}"
        yield ResultRow(
            dataset=dataset,
            example_id=f"{task}-{line_number:05d}",
            model=BBM_MODEL,
            input_text=str(record["input"]),
            output_text=output,
            score=1.0 if normalise_answer(answer) == normalise_answer(target) else 0.0,
            reference=target,
        )


# --- WMT23 MQM ----------------------------------------------------------------------------------

MQM_COLUMNS = ("system", "doc", "docSegId", "globalSegId", "rater", "source", "target", "category", "severity")
_SPAN_MARKS = re.compile(r"</?v>")


@dataclass(frozen=True, slots=True)
class MqmRating:
    """One MQM error row of one rater on one (system, segment) item."""

    line: int
    system: str
    segment: str
    rater: str
    source: str
    target: str
    category: str
    severity: str


def mqm_weight(category: str, severity: str) -> float:
    """MQM penalty of one error: Major 5, Minor 1, Minor Fluency/Punctuation 0.1, Non-translation 25."""
    if category.lower().startswith("non-translation"):
        return 25.0
    if severity == "Major":
        return 5.0
    if severity == "Minor":
        return 0.1 if category == "Fluency/Punctuation" else 1.0
    return 0.0


def read_mqm_ratings(path: Path) -> Iterator[MqmRating]:
    """Stream the MQM rows of the TSV (plain or inside a .tar.gz), without the HOTW attention checks."""
    for line_number, fields in _mqm_lines(path):
        if fields[8] == "HOTW-test":
            continue
        yield MqmRating(
            line=line_number,
            system=fields[0],
            segment=fields[3],
            rater=fields[4],
            source=fields[5],
            target=_SPAN_MARKS.sub("", fields[6]),
            category=fields[7],
            severity=fields[8],
        )


def _mqm_lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    try:
        if path.name.lower().endswith((".tar.gz", ".tgz")):
            archive = tarfile.open(path, "r:gz")
            members = [m for m in archive.getmembers() if m.isfile() and m.name.endswith(".tsv")]
            if len(members) != 1:
                raise InputError(str(path), None, f"expected one .tsv in the archive, found {len(members)}")
            binary = archive.extractfile(members[0])
        else:
            archive, binary = None, path.open("rb")
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise InputError(str(path), None, f"cannot read the archive ({exc})") from None
    try:
        for line_number, raw in enumerate(binary, start=1):
            try:
                text = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise InputError(str(path), line_number, f"not valid UTF-8 ({exc.reason})") from None
            fields = text.split("\t")
            if line_number == 1:
                if tuple(fields[:9]) != MQM_COLUMNS:
                    raise InputError(str(path), 1, f"expected MQM columns {', '.join(MQM_COLUMNS)}")
                continue
            if len(fields) < 9:
                raise InputError(str(path), line_number, f"expected at least 9 tab-separated fields, got {len(fields)}")
            yield line_number, fields
    except (OSError, tarfile.TarError, EOFError, __import__("zlib").error) as exc:
        raise InputError(str(path), None, f"cannot read the archive ({exc})") from None
    finally:
        binary.close()
        if archive is not None:
            archive.close()


def _read_wmt23_mqm(path: Path, dataset: str | None) -> Iterator[ResultRow]:
    """One row per (system, segment): score = -(mean over raters of the MQM penalty), so higher is better.

    The file is ordered by rater rows, so items are gathered first (1,040 items: small and fixed).
    """
    dataset = dataset or WMT23_DEFAULT_DATASET
    items: dict[tuple[str, str], dict] = {}
    for rating in read_mqm_ratings(path):
        item = items.setdefault(
            (rating.system, rating.segment),
            {"source": rating.source, "target": rating.target, "penalty": {}},
        )
        penalty = item["penalty"]
        penalty[rating.rater] = penalty.get(rating.rater, 0.0) + mqm_weight(rating.category, rating.severity)
    references = {seg: item["target"] for (system, seg), item in items.items() if system == WMT23_REFERENCE_SYSTEM}
    for (system, segment), item in sorted(items.items(), key=lambda kv: (kv[0][0], int(kv[0][1]) if kv[0][1].isdigit() else kv[0][1])):
        penalties = item["penalty"].values()
        yield ResultRow(
            dataset=dataset,
            example_id=segment,
            model=system,
            input_text=item["source"],
            output_text=item["target"],
            score=-round(sum(penalties) / len(penalties), 6),
            reference=references.get(segment, ""),
        )
