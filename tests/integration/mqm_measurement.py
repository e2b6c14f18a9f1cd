"""The WMT23 MQM ratings read straight from the archive, for the measurement tests (issue 13).

Each (system, segment) item has exactly three raters; a rater's value on an item is their set of
MQM categories. Tests derive judge, human and gold labels from these real ratings and write them
as a long label table, so every command reads real data through the ordinary import.
"""
from __future__ import annotations

import csv
import io
import math
import tarfile
from collections import defaultdict
from pathlib import Path

from annotation.core.label_formats import mqm_category_path
from annotation.core.result_formats.mqm import WMT23_DEFAULT_DATASET

MQM = (Path(__file__).resolve().parents[2] / "data" / "wmt23-mqm-ende"
       / "sxs_mqm_generalMT2023_ende.3ratingsPerSegment.tsv.tar.gz")
DATASET = WMT23_DEFAULT_DATASET


def mqm_rater_sets() -> dict[tuple[str, str], dict[str, frozenset[str]]]:
    """(system, segment) -> rater -> set of category paths ('Accuracy / Mistranslation')."""
    with tarfile.open(MQM, "r:gz") as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith(".tsv"))
        rows = csv.reader(io.TextIOWrapper(archive.extractfile(member), encoding="utf-8"),
                          delimiter="\t", quoting=csv.QUOTE_NONE)
        next(rows)
        sets: dict = defaultdict(lambda: defaultdict(set))
        for system, _doc, _doc_seg, seg, rater, _src, _tgt, category, severity, *_ in rows:
            if severity == "HOTW-test":
                continue
            sets[(system, seg)][rater].add(mqm_category_path(category))
    return {item: {r: frozenset(c) for r, c in by.items()} for item, by in sets.items()}


def write_label_table(path: Path, rows: list[tuple[str, str, str, str, str]]) -> Path:
    """rows of (system, segment, annotator, category, source) as the long label CSV."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["dataset", "example_id", "model", "annotator", "category", "source"])
        for system, segment, annotator, category, source in rows:
            writer.writerow([DATASET, segment, system, annotator, category, source])
    return path


def wilson_by_hand(k: float, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval written out (Wilson 1927), to check the platform's against."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)
