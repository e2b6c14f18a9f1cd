"""Readers for external labels: the long label table (CSV or JSONL) and the WMT23 MQM ratings."""
from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, ClassVar

from annotation.core.label_sources import LabelSource
from annotation.core.result_formats import arrow
from annotation.core.result_formats.arrow import Unvouched, arrow_fast_path, csv_blocks
from annotation.core.result_formats.io import (
    BATCH_ROWS,
    DEFAULT_LIMITS,
    NAME_MAX_LENGTH,
    ColumnBatch,
    CsvSource,
    InputLimits,
    checked_fields,
    csv_header,
    csv_records,
    json_lines,
)
from annotation.core.result_formats.mqm import WMT23_DEFAULT_DATASET, read_mqm_ratings
from annotation.errors import InputError
from taxonomy.core.paths import CategoryPathError, join_path, parse_category_path, split_path
from taxonomy.core.verdicts import NOT_AN_ERROR

LABEL_COLUMNS = ("dataset", "example_id", "model", "annotator", "category")
LABEL_OPTIONAL_COLUMNS = ("source", "title", "summary", "confidence", "note")
LABEL_SOURCES = tuple(source.value for source in LabelSource)
LABEL_FORMATS = ("auto", "csv", "jsonl", "wmt23-mqm")
MQM_NO_ERROR = "No-error"


@dataclass(frozen=True, slots=True)
class LabelRow:
    """One (item, annotator, category) row; several rows for one item and annotator form a set."""

    line: int
    dataset: str
    example_id: str
    model: str
    annotator: str
    category: str
    source: str | None = None
    title: str = ""
    summary: str = ""
    confidence: float | None = None
    note: str = ""


@dataclass(slots=True)
class LabelBatch(ColumnBatch):
    """Consecutive label rows of one file, column by column."""

    FIELDS: ClassVar[tuple[str, ...]] = (
        "line", "dataset", "example_id", "model", "annotator", "category", "source", "title", "summary",
        "confidence", "note")
    line: list[int]
    dataset: list[str]
    example_id: list[str]
    model: list[str]
    annotator: list[str]
    category: list[str]
    source: list[str | None]
    title: list[str]
    summary: list[str]
    confidence: list[float | None]
    note: list[str]

    def rows(self) -> Iterator[LabelRow]:
        return (LabelRow(*values) for values in zip(*self.columns()))


def label_format(path: Path, fmt: str = "auto") -> str:
    """The label file's format, from its name unless given."""
    if fmt != "auto":
        return fmt
    name = path.name.lower()
    if name.endswith((".tsv.tar.gz", ".tsv")):
        return "wmt23-mqm"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".jsonl", ".json")):
        return "jsonl"
    raise InputError(str(path), None,
                     f"cannot tell the format from the name; pass --format ({', '.join(LABEL_FORMATS[1:])})")


def read_label_batches(
    path: Path, *, fmt: str = "auto", limits: InputLimits = DEFAULT_LIMITS, batch_rows: int = BATCH_ROWS
) -> Iterator[LabelBatch]:
    """The rows of `read_labels`, as batches; a CSV file goes through Arrow's blocks, checked column-wise,
    while the column checks vouch for them (the row reader takes over from the first they do not)."""
    if not path.is_file():
        raise InputError(str(path), None, "no such file" if not path.exists() else "not a regular file")
    if label_format(path, fmt) != "csv":
        return LabelBatch.batches(read_labels(path, fmt=fmt, limits=limits), batch_rows)
    return _csv_label_batches(path, limits, batch_rows)


def _csv_label_batches(path: Path, limits: InputLimits, batch_rows: int) -> Iterator[LabelBatch]:
    source = CsvSource(path, limits)
    header = csv_header(path, csv.reader(source), source, limits)
    first_line = source.line + 1  # the line after the header
    exact = partial(read_labels, path, fmt="csv", limits=limits)
    by_rows = partial(LabelBatch.batches, size=batch_rows)
    if (min(limits.max_line_bytes, limits.max_record_bytes) < arrow.ARROW_BLOCK_BYTES
            or any(c not in header for c in LABEL_COLUMNS)):
        # Arrow keeps to limits of at least a block; a missing column is the row reader's error.
        yield from by_rows(exact())
        return
    yield from arrow_fast_path(csv_blocks(path, header), exact,
                               lambda block, given: checked_label_columns(block, first_line + given), by_rows)


def checked_label_columns(block: Any, first_line: int) -> LabelBatch:
    """The checks of `_label_row`, column-wise, on a block whose first row is `first_line`; raises
    `Unvouched` where a row may fail one, or where a value holds a line break (lines would not count)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    names = set(block.schema.names)
    rows = block.num_rows

    def text(name: str, max_length: int | None = None) -> Any:
        column = block.column(name)
        if column.null_count or not pa.types.is_string(column.type):
            raise Unvouched(name)
        # A NUL byte, or a line break (the row would span lines): the row reader decides.
        if pc.any(pc.match_substring_regex(column, "[\\x00\\n\\r]")).as_py():
            raise Unvouched(name)
        if max_length is not None and rows and pc.max(pc.utf8_length(column)).as_py() > max_length:
            raise Unvouched(name)
        return column

    def by_value(name: str, clean: Any) -> list:
        """Each distinct value cleaned once (few distinct values, many rows)."""
        encoded = pc.dictionary_encode(text(name, NAME_MAX_LENGTH if name in _NAME_COLUMNS else None))
        values = [clean(value) for value in encoded.dictionary.to_pylist()]
        return list(map(values.__getitem__, encoded.indices.to_pylist()))

    def name(value: str) -> str:
        value = value.strip()
        if not value:
            raise Unvouched("empty")
        return value

    def category(value: str) -> str:
        parsed = _parsed_category(name(value))
        if isinstance(parsed, CategoryPathError):
            raise Unvouched("category")
        return parsed

    def label_source(value: str) -> str | None:
        cleaned = value.strip().lower() or None
        if cleaned is not None and cleaned not in LABEL_SOURCES:
            raise Unvouched("source")
        return cleaned

    def free_text(column: str) -> list[str]:
        return text(column).to_pylist() if column in names else [""] * rows

    example_id = [name(value) for value in text("example_id", NAME_MAX_LENGTH).to_pylist()]
    return LabelBatch(
        line=list(range(first_line, first_line + rows)),
        dataset=by_value("dataset", name),
        example_id=example_id,
        model=by_value("model", name),
        annotator=by_value("annotator", name),
        category=by_value("category", category),
        source=by_value("source", label_source) if "source" in names else [None] * rows,
        title=free_text("title"),
        summary=free_text("summary"),
        confidence=_confidences(text("confidence")) if "confidence" in names else [None] * rows,
        note=free_text("note"),
    )


_NAME_COLUMNS = ("dataset", "example_id", "model", "annotator")


def _confidences(column: Any) -> list[float | None]:
    """Empty is none; anything else a number in [0, 1] (Arrow's parse; what it refuses, the row reader reads)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    empty = pc.equal(column, "")
    if pc.all(empty).as_py():
        return [None] * len(column)
    numbers = pc.cast(pc.if_else(empty, pa.scalar(None, pa.string()), column), pa.float64())
    fine = pc.and_(pc.is_finite(numbers), pc.and_(pc.greater_equal(numbers, 0.0), pc.less_equal(numbers, 1.0)))
    if not pc.all(fine).as_py():  # nulls (the empty ones) are skipped
        raise Unvouched("confidence")
    values: list[float | None] = numbers.to_pylist()
    return values


def read_labels(path: Path, *, fmt: str = "auto", limits: InputLimits = DEFAULT_LIMITS) -> Iterator[LabelRow]:
    """Stream label rows from a long table or the MQM archive; categories come as canonical paths.

    The reference reader: each record is checked inline, so an error names its line."""
    if not path.is_file():
        raise InputError(str(path), None, "no such file" if not path.exists() else "not a regular file")
    fmt = label_format(path, fmt)
    if fmt == "csv":
        return (_label_row(path, line, record) for line, record in csv_records(path, LABEL_COLUMNS, limits))
    if fmt == "jsonl":
        return (_label_row(path, line, record) for line, record in json_lines(path, limits))
    if fmt == "wmt23-mqm":
        return read_mqm_labels(path, limits=limits)
    raise InputError(str(path), None, f"unknown label format {fmt!r}")


def _label_row(path: Path, line: int, record: dict) -> LabelRow:
    values = {c: ("" if record.get(c) is None else str(record.get(c)).strip()) for c in LABEL_COLUMNS}
    empty = [c for c, v in values.items() if not v]
    if empty:
        raise InputError(str(path), line, f"missing or empty column(s) {', '.join(empty)}")
    values["category"] = category_path(path, line, values["category"])
    source = (str(record.get("source") or "")).strip().lower() or None
    if source is not None and source not in LABEL_SOURCES:
        raise InputError(str(path), line, f"source {source!r} is not one of {', '.join(LABEL_SOURCES)}")
    raw_confidence = record.get("confidence")
    confidence = None
    if raw_confidence not in (None, ""):
        try:
            confidence = float(raw_confidence)
        except (TypeError, ValueError):
            raise InputError(str(path), line, f"confidence {raw_confidence!r} is not a number") from None
        if not (math.isfinite(confidence) and 0 <= confidence <= 1):
            raise InputError(str(path), line, f"confidence {raw_confidence!r} is not between 0 and 1")
    texts = {"title": str(record.get("title") or ""), "summary": str(record.get("summary") or ""),
             "note": str(record.get("note") or "")}
    checked_fields(path, line, {**values, **texts}, names=("dataset", "example_id", "model", "annotator"))
    return LabelRow(line=line, source=source, confidence=confidence, **texts, **values)


def category_path(path: Path, line: int, text: str) -> str:
    """The canonical path of a category named in a file ('Fluency/Grammar' -> 'Fluency / Grammar')."""
    parsed = _parsed_category(text)
    if isinstance(parsed, CategoryPathError):
        raise InputError(str(path), line, str(parsed))
    return parsed


@lru_cache(maxsize=8192)
def _parsed_category(text: str) -> str | CategoryPathError:
    # A file repeats a few category names over and over: each is parsed once.
    try:
        return parse_category_path(text)
    except CategoryPathError as exc:
        return exc


def mqm_category_path(category: str) -> str:
    """'Accuracy/Mistranslation' -> 'Accuracy / Mistranslation'; one-level names stay as they are."""
    return join_path(split_path(category))


def read_mqm_labels(
    path: Path, *, dataset: str = WMT23_DEFAULT_DATASET, limits: InputLimits = DEFAULT_LIMITS
) -> Iterator[LabelRow]:
    """Each rater an annotator, each MQM category (severity aside) a label; HOTW checks left out."""
    for rating in read_mqm_ratings(path, limits):
        yield LabelRow(
            line=rating.line,
            dataset=dataset,
            example_id=rating.segment,
            model=rating.system,
            annotator=rating.rater,
            # MQM's "No-error" says the translation has no error: the platform's verdict, counted apart
            # from error categories (never merged, split or shown in a signature as an error).
            category=(NOT_AN_ERROR if rating.category == MQM_NO_ERROR
                      else category_path(path, rating.line, mqm_category_path(rating.category))),
            source=LabelSource.HUMAN.value,
            # The severity, and the rater's own words when they wrote a note (17 rows, mostly on Other).
            note=(": ".join(p for p in (rating.severity, rating.note) if p)
                  if rating.category != MQM_NO_ERROR else rating.note),
        )
