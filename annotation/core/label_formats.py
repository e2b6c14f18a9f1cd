"""Readers for external labels: the long label table (CSV or JSONL) and the WMT23 MQM ratings."""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from annotation.core.result_formats.io import csv_records, json_lines
from annotation.core.result_formats.mqm import WMT23_DEFAULT_DATASET, read_mqm_ratings
from annotation.errors import InputError

LABEL_COLUMNS = ("dataset", "example_id", "model", "annotator", "category")
LABEL_OPTIONAL_COLUMNS = ("source", "title", "summary", "confidence", "note")
LABEL_SOURCES = ("human", "judge", "gold")
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


def read_labels(path: Path, *, fmt: str = "auto") -> Iterator[LabelRow]:
    """Stream label rows from a long table or the MQM archive."""
    if not path.is_file():
        raise InputError(str(path), None, "no such file" if not path.exists() else "not a regular file")
    name = path.name.lower()
    if fmt == "auto":
        if name.endswith((".tsv.tar.gz", ".tsv")):
            fmt = "wmt23-mqm"
        elif name.endswith(".csv"):
            fmt = "csv"
        elif name.endswith((".jsonl", ".json")):
            fmt = "jsonl"
        else:
            raise InputError(str(path), None, f"cannot tell the format from the name; pass --format ({', '.join(LABEL_FORMATS[1:])})")
    if fmt == "csv":
        return _read_label_csv(path)
    if fmt == "jsonl":
        return (_label_row(path, line, record) for line, record in json_lines(path))
    if fmt == "wmt23-mqm":
        return read_mqm_labels(path)
    raise InputError(str(path), None, f"unknown label format {fmt!r}")


def _read_label_csv(path: Path) -> Iterator[LabelRow]:
    for line_number, record in csv_records(path, LABEL_COLUMNS):
        yield _label_row(path, line_number, record)


def _label_row(path: Path, line: int, record: dict) -> LabelRow:
    values = {c: ("" if record.get(c) is None else str(record.get(c)).strip()) for c in LABEL_COLUMNS}
    empty = [c for c, v in values.items() if not v]
    if empty:
        raise InputError(str(path), line, f"missing or empty column(s) {', '.join(empty)}")
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
    return LabelRow(
        line=line,
        source=source,
        confidence=confidence,
        title=str(record.get("title") or ""),
        summary=str(record.get("summary") or ""),
        note=str(record.get("note") or ""),
        **values,
    )


def mqm_category_path(category: str) -> str:
    """'Accuracy/Mistranslation' -> 'Accuracy / Mistranslation'; one-level names stay as they are."""
    return " / ".join(part.strip() for part in category.split("/") if part.strip())


def read_mqm_labels(path: Path, *, dataset: str = WMT23_DEFAULT_DATASET) -> Iterator[LabelRow]:
    """Each rater an annotator, each MQM category (severity aside) a label; HOTW checks left out."""
    for rating in read_mqm_ratings(path):
        yield LabelRow(
            line=rating.line,
            dataset=dataset,
            example_id=rating.segment,
            model=rating.system,
            annotator=rating.rater,
            category=mqm_category_path(rating.category),
            source="human",
            # The severity, and the rater's own words when they wrote a note (17 rows, mostly on Other).
            note=(": ".join(p for p in (rating.severity, rating.note) if p)
                  if rating.category != MQM_NO_ERROR else rating.note),
        )
