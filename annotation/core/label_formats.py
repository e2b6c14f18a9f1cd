"""Readers for external labels: the long label table (CSV or JSONL) and the WMT23 MQM ratings."""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from annotation.core.label_sources import LabelSource
from annotation.core.result_formats.io import (
    DEFAULT_LIMITS,
    InputLimits,
    checked_fields,
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


def read_labels(path: Path, *, fmt: str = "auto", limits: InputLimits = DEFAULT_LIMITS) -> Iterator[LabelRow]:
    """Stream label rows from a long table or the MQM archive; categories come as canonical paths."""
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
